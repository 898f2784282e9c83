/**
 * The VRRPv3 state machine for one vhid (RFC 5798 §6.4), with the same step/effects shape as
 * the CARP machine (src/core/machine.ts), so the node (src/core/node.ts) runs either. Pure: no
 * I/O, no clock; `now` (monotonic ms) is an input.
 *
 * Where the sources differ, what this follows:
 * - Election: priority first, then the primary (source) address, higher wins (RFC 5798 §6.4.3,
 *   keepalived vrrp_state_master_rx()). FreeBSD's vrrp_input_c() also compares the interval, a
 *   CARP habit the RFC does not have: a carpd with a shorter interval than a keepalived master
 *   would preempt it on every advert and be sent back by keepalived's higher priority, so carpd
 *   leaves it out.
 * - Preempt: a BACKUP with preempt takes over at once from a lower-priority master (FreeBSD
 *   vrrp_input_c() "preempting a slower master"); the RFC discards the advert and lets the
 *   master-down timer run out, which ends the same way 3 intervals later.
 * - Master-down: 3 × Master_Adver_Interval + Skew_Time, Skew_Time = ((256 − priority) ×
 *   Master_Adver_Interval) / 256, Master_Adver_Interval learned from the master's adverts
 *   (RFC 5798 §6.1, §6.4.2; FreeBSD carp_setrun()). Kept exact in ms here (FreeBSD rounds the
 *   skew down to a centisecond, keepalived keeps microseconds).
 * - Priority 0: a MASTER that stops, or is forced to BACKUP, sends priority 0; a BACKUP that
 *   hears it sets its master-down timer to Skew_Time (RFC 5798 §6.4.2, keepalived
 *   vrrp_state_backup()); a MASTER that hears it advertises at once (§6.4.3).
 * - Priority 255, the address owner: becomes MASTER at start without waiting (§6.4.1) and
 *   ignores peers' adverts (FreeBSD vrrp_input_c(), RFC 9568 §7.1).
 * - Demotion: FreeBSD applies none to a VRRP vhid (DEMOTE_ADVSKEW is CARP only); carpd maps its
 *   demotion ledger onto the priority the way keepalived applies track weights
 *   (vrrp_set_effective_priority(): priority − demotion, clamped to 1..254, an owner never moves).
 */
import type { Advert, CarpState, Effect, Input, MachineConfig } from './machine.js';

export interface VrrpMachineConfig extends MachineConfig {
  /** Configured priority, 1..255. */
  priority: number;
  /** Advertisement_Interval, centiseconds (1..4095). */
  intervalCs: number;
}

export const VRRP_PRIO_OWNER = 255;

/** The priority that goes on the wire: demotion lowers it, never below 1; an owner keeps 255. */
export function effectivePriority(priority: number, demotion: number): number {
  if (priority >= VRRP_PRIO_OWNER || demotion <= 0) return priority;
  return Math.max(1, Math.min(VRRP_PRIO_OWNER - 1, priority - demotion));
}

/** Skew_Time in ms: ((256 − priority) × Master_Adver_Interval) / 256, the interval in centiseconds. */
export function skewMs(priority: number, masterIntervalCs: number): number {
  return ((256 - priority) * masterIntervalCs * 10) / 256;
}

/** Master_Down_Interval in ms: 3 × Master_Adver_Interval + Skew_Time. */
export function masterDownIntervalMs(priority: number, masterIntervalCs: number): number {
  return 3 * masterIntervalCs * 10 + skewMs(priority, masterIntervalCs);
}

/** An address as a number for comparison (IPv4 or IPv6); undefined if unreadable. */
function addressValue(a: string | undefined): bigint | undefined {
  if (!a) return undefined;
  const s = a.split('%')[0]!.split('/')[0]!;
  if (!s.includes(':')) {
    const p = s.split('.');
    if (p.length !== 4 || p.some((o) => !/^\d{1,3}$/.test(o) || Number(o) > 255)) return undefined;
    return p.reduce((acc, o) => acc * 256n + BigInt(o), 0n);
  }
  const [head = '', tail] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return groups.reduce((acc, g) => acc * 65536n + BigInt(Number.parseInt(g, 16)), 0n);
}

export class VrrpMachine {
  state: CarpState = 'INIT';
  timers: { advertise?: number; masterDown?: number } = {};
  /** Sum of the demotion counters of this vhid's groups. */
  demotion = 0;
  /** Master_Adver_Interval (centiseconds): our own until a master's advert says otherwise. */
  masterIntervalCs: number;
  /** Address of the current master as last heard (BACKUP), for status. */
  masterSrc?: string;
  lastAdvert?: Advert;
  lastReason = '';
  /** The master-down timer now running is a priority-0 advert's Skew_Time. */
  private stopHeard = false;
  private delayedArp = -1;
  private reassertedAt = -Infinity;
  /** Set by a forced BACKUP: do not preempt until we are MASTER again. */
  private preemptSuppressed = false;

  constructor(public cfg: VrrpMachineConfig) {
    this.masterIntervalCs = cfg.intervalCs;
  }

  /** The priority we advertise now. */
  get wirePriority(): number {
    return effectivePriority(this.cfg.priority, this.demotion);
  }

  /** CARP's wire fields, for the shape the node and status share: VRRP carries neither. */
  get wireAdvskew(): number {
    return 0;
  }

  get demoteByte(): number {
    return 0;
  }

  masterDownMs(): number {
    return masterDownIntervalMs(this.wirePriority, this.masterIntervalCs);
  }

  nextDue(): number | undefined {
    const { advertise, masterDown } = this.timers;
    if (advertise === undefined) return masterDown;
    if (masterDown === undefined) return advertise;
    return Math.min(advertise, masterDown);
  }

  step(input: Input, now: number): Effect[] {
    const fx: Effect[] = [];
    switch (input.type) {
      case 'start':
        if (input.linkUp) this.begin(now, 'initialization complete', fx);
        break;
      case 'advert':
        this.onAdvert(input.advert, now, fx);
        break;
      case 'timeout':
        if (this.timers.masterDown !== undefined && now >= this.timers.masterDown && this.state === 'BACKUP') {
          this.toMaster(now, this.stopHeard ? 'master sent priority 0' : 'master timed out', fx);
        } else if (this.timers.advertise !== undefined && now >= this.timers.advertise && this.state === 'MASTER') {
          this.advertise(now, fx);
        }
        break;
      case 'demotion':
        if (input.demotion === this.demotion) break;
        this.demotion = input.demotion;
        // A new priority is news at once (keepalived sends on its next advert; FreeBSD's CARP
        // advertises at once on a demotion change, carp_demote_adj()).
        if (this.state === 'MASTER') this.advertise(now, fx);
        break;
      case 'link':
        if (!input.up && this.state !== 'INIT') this.toInit('hardware interface down', fx);
        else if (input.up && this.state === 'INIT') this.begin(now, 'hardware interface up', fx);
        break;
      case 'force':
        if (input.state === 'MASTER' && this.state !== 'MASTER') this.toMaster(now, input.reason, fx);
        else if (input.state === 'BACKUP') {
          this.preemptSuppressed = true;
          if (this.state === 'MASTER') {
            // Priority 0 makes the backup take over after its Skew_Time; we hold off one
            // master-down time so our own timer does not take it back.
            this.sendStop(fx);
            this.toBackup(now, input.reason, fx, input.holdMs ?? this.masterDownMs());
          } else if (this.state !== 'BACKUP') this.toBackup(now, input.reason, fx, input.holdMs ?? 0);
        }
        break;
      case 'shutdown':
        // RFC 5798 §6.4.3 "If a Shutdown event is received": send an ADVERTISEMENT with priority 0.
        if (this.state === 'MASTER') this.sendStop(fx);
        if (this.state !== 'INIT') this.toInit('shutdown', fx);
        break;
    }
    return fx;
  }

  /** Leaving INIT: the owner goes straight to MASTER (RFC 5798 §6.4.1), anyone else to BACKUP. */
  private begin(now: number, reason: string, fx: Effect[]): void {
    if (this.wirePriority === VRRP_PRIO_OWNER) {
      // Like toBackup() from INIT: a VIP left behind by an instance killed with -9 is ours anyway.
      this.toMaster(now, `${reason}, address owner`, fx);
      return;
    }
    this.toBackup(now, reason, fx);
  }

  private onAdvert(ad: Advert, now: number, fx: Effect[]): void {
    const v = ad.vrrp;
    if (this.state === 'INIT' || !v) return;
    this.lastAdvert = ad;
    const ours = this.wirePriority;
    // The address owner ignores the others (FreeBSD vrrp_input_c(): "our priority is 255").
    if (ours === VRRP_PRIO_OWNER) return;

    if (this.state === 'MASTER') {
      if (v.priority === 0) {
        // RFC 5798 §6.4.3: send an advert at once (and restart the advert timer).
        this.advertise(now, fx);
        return;
      }
      const theirs = addressValue(ad.src);
      // The advert's family picks our own source to compare with: an IPv6 advert comes from the
      // peer's link-local, compared with ours (srcip6), as keepalived compares within one
      // instance's family (vrrp_state_master_rx(), `addr_cmp(&vrrp->pkt_saddr, &vrrp->saddr)`).
      const mine = addressValue(ad.src.includes(':') ? this.cfg.srcip6 : this.cfg.srcip);
      const higherAddress = theirs !== undefined && mine !== undefined && theirs > mine;
      if (v.priority > ours || (v.priority === ours && higherAddress)) {
        this.masterSrc = ad.src;
        this.masterIntervalCs = v.intervalCs;
        this.toBackup(now, v.priority > ours ? 'higher priority advertisement received' : 'equal priority advertisement from a higher address', fx, 0, true);
      } else if (now - this.reassertedAt >= this.cfg.intervalCs * 10) {
        // A lower-priority master is on the wire (a healed split): advertise at once so it
        // yields now, at most once an interval (keepalived "forcing new election").
        this.reassertedAt = now;
        this.advertise(now, fx);
      }
      return;
    }

    // BACKUP
    this.masterSrc = ad.src;
    if (v.priority === 0) {
      // RFC 5798 §6.4.2: the master stopped; wait only Skew_Time, so the highest priority goes first.
      this.stopHeard = true;
      this.timers.masterDown = now + skewMs(ours, this.masterIntervalCs);
      return;
    }
    if (this.cfg.preempt && !this.preemptSuppressed && v.priority < ours) {
      this.toMaster(now, 'preempting a lower-priority master', fx);
      return;
    }
    this.masterIntervalCs = v.intervalCs;
    this.stopHeard = false;
    this.timers.masterDown = now + this.masterDownMs();
  }

  private sendStop(fx: Effect[]): void {
    fx.push({ type: 'send', advbase: 0, advskew: 0, demote: 0, vrrp: { priority: 0, intervalCs: this.cfg.intervalCs } });
  }

  private advertise(now: number, fx: Effect[]): void {
    fx.push({ type: 'send', advbase: 0, advskew: 0, demote: 0, vrrp: { priority: this.wirePriority, intervalCs: this.cfg.intervalCs } });
    this.timers.advertise = now + this.cfg.intervalCs * 10;
    if (this.delayedArp > 0) this.delayedArp--;
    if (this.delayedArp === 0) {
      fx.push({ type: 'garp' });
      this.delayedArp = -1;
    }
  }

  private set(to: CarpState, reason: string, fx: Effect[]): void {
    const from = this.state;
    this.state = to;
    this.lastReason = reason;
    fx.push({ type: 'transition', from, to, reason });
  }

  private toMaster(now: number, reason: string, fx: Effect[]): void {
    this.set('MASTER', reason, fx);
    this.preemptSuppressed = false;
    this.stopHeard = false;
    this.masterSrc = this.cfg.srcip ?? this.cfg.srcip6;
    this.timers.masterDown = undefined;
    this.delayedArp = -1;
    this.advertise(now, fx);
    fx.push({ type: 'vip', op: 'add' }, { type: 'garp' });
    // The second gratuitous ARP after the second advert, as the CARP machine does.
    this.delayedArp = 2;
  }

  /** `learned`: Master_Adver_Interval was just taken from an advert; otherwise it is ours again (§6.4.1). */
  private toBackup(now: number, reason: string, fx: Effect[], holdMs = 0, learned = false): void {
    const release = this.state === 'MASTER' || this.state === 'INIT';
    this.set('BACKUP', reason, fx);
    if (release) fx.push({ type: 'vip', op: 'del' });
    if (!learned) this.masterIntervalCs = this.cfg.intervalCs;
    this.stopHeard = false;
    this.timers.advertise = undefined;
    this.delayedArp = -1;
    this.timers.masterDown = now + holdMs + this.masterDownMs();
  }

  private toInit(reason: string, fx: Effect[]): void {
    const wasMaster = this.state === 'MASTER';
    this.set('INIT', reason, fx);
    if (wasMaster) fx.push({ type: 'vip', op: 'del' });
    this.timers = {};
    this.delayedArp = -1;
    this.stopHeard = false;
    this.masterSrc = undefined;
  }
}
