/**
 * The CARP state machine for one vhid. Pure: no I/O, no clock; `now` (monotonic ms) is an input
 * and every output is an effect for the shell to perform, in order.
 *
 * Election rules follow FreeBSD sys/netinet/ip_carp.c `carp_input_c()` / `carp_master_down()`,
 * with OpenBSD's demote-byte comparisons and ucarp's equal-priority tie-break (lower source
 * address keeps MASTER). PROTOCOL.md ("Election") summarizes them.
 */

export type CarpState = 'INIT' | 'BACKUP' | 'MASTER';
export type MasterDownFormula = 'freebsd' | 'openbsd';

/** Largest advskew that demotion folds into (FreeBSD CARP_MAXSKEW). */
export const CARP_MAXSKEW = 240;
/** OpenBSD's bow-out advert: "take over now". */
export const BOWOUT = { advbase: 255, advskew: 255 } as const;

export interface MachineConfig {
  key: string;
  vhid: number;
  advbase: number;
  advskew: number;
  preempt: boolean;
  masterDown: MasterDownFormula;
  /** ucarp's -r; the kernels use 3. */
  deadRatio: number;
  /** Our advert source address, for the equal-priority tie-break. */
  srcip?: string;
  /** Our IPv6 advert source (the interface's link-local), for the tie-break against IPv6 adverts. */
  srcip6?: string;
}

/** An authenticated advert from a peer. */
export interface Advert {
  src: string;
  advbase: number;
  advskew: number;
  demote: number;
  /** A VRRPv3 advert (src/core/vrrp-machine.ts): its priority and Max Adver Int; the CARP fields are 0. */
  vrrp?: VrrpFields;
}

/** What a VRRPv3 advert says: priority (0 = the master stops) and its interval in centiseconds. */
export interface VrrpFields {
  priority: number;
  intervalCs: number;
}

export type Input =
  | { type: 'start'; linkUp: boolean }
  | { type: 'advert'; advert: Advert }
  | { type: 'timeout' }
  | { type: 'demotion'; demotion: number }
  | { type: 'link'; up: boolean }
  | { type: 'force'; state: 'MASTER' | 'BACKUP'; reason: string; holdMs?: number }
  | { type: 'shutdown' };

export type Effect =
  | { type: 'transition'; from: CarpState; to: CarpState; reason: string }
  | { type: 'send'; advbase: number; advskew: number; demote: number; vrrp?: VrrpFields }
  | { type: 'vip'; op: 'add' | 'del' }
  | { type: 'garp' };

export interface Timers {
  advertise?: number;
  masterDown?: number;
}

/** The advskew that goes on the wire: demotion folded in the FreeBSD way, never improving it. */
export function effectiveAdvskew(advskew: number, demotion: number): number {
  if (demotion <= 0) return advskew;
  return Math.max(advskew, Math.min(CARP_MAXSKEW, advskew + demotion));
}

/** An advert interval in ms: advbase + advskew/256 s. */
export function intervalMs(advbase: number, advskew: number): number {
  return advbase * 1000 + (advskew * 1000) / 256;
}

/** IPv6 text (zone dropped) as 8 groups; undefined if not IPv6. core imports nothing, hence this small copy. */
function ipv6Groups(a: string | undefined): number[] | undefined {
  const halves = a?.replace(/%.*$/, '').split('::');
  if (!halves || halves.length > 2 || !a!.includes(':')) return undefined;
  const part = (t: string) => (t === '' ? [] : t.split(':').map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const [l, r = []] = halves.map(part) as [number[], number[]?];
  const fill = 8 - l.length - r.length;
  const g = [...l, ...new Array<number>(halves.length === 2 ? Math.max(fill, 1) : 0).fill(0), ...r];
  return g.length === 8 && g.every((x) => x >= 0) ? g : undefined;
}

function compareIpv6(a: string, b: string): number | undefined {
  const x = ipv6Groups(a);
  const y = ipv6Groups(b);
  if (!x || !y) return undefined;
  const i = x.findIndex((g, n) => g !== y[n]);
  return i < 0 ? 0 : x[i]! - y[i]!;
}

function ipv4ToInt(a: string | undefined): number | undefined {
  if (!a) return undefined;
  const p = a.split('.');
  if (p.length !== 4) return undefined;
  return p.reduce((acc, o) => acc * 256 + Number(o), 0);
}

export class VhidMachine {
  state: CarpState = 'INIT';
  timers: Timers = {};
  /** Sum of the demotion counters of this vhid's groups. */
  demotion = 0;
  /** Adverts left before the repeated gratuitous ARP; -1 when none is pending. */
  private delayedArp = -1;
  /** When we last reasserted against a slower master (at most once an advertisement interval). */
  private reassertedAt = -Infinity;
  /** Set by a forced BACKUP: do not preempt until we are MASTER again. */
  private preemptSuppressed = false;
  /** Address of the current master as last heard (BACKUP), for status. */
  masterSrc?: string;
  lastAdvert?: Advert;
  lastReason = '';

  constructor(public cfg: MachineConfig) {}

  get wireAdvskew(): number {
    return effectiveAdvskew(this.cfg.advskew, this.demotion);
  }

  get demoteByte(): number {
    return Math.min(255, Math.max(0, this.demotion));
  }

  /** Master-down interval in ms, from the local advbase/advskew (PROTOCOL.md "Timers"). */
  masterDownMs(): number {
    const skew = this.wireAdvskew;
    if (this.cfg.masterDown === 'openbsd') return 3 * intervalMs(this.cfg.advbase, skew);
    return this.cfg.advbase * this.cfg.deadRatio * 1000 + (skew * 1000) / 256;
  }

  /** The earliest due timer, or undefined when none is armed. */
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
        if (input.linkUp) this.toBackup(now, 'initialization complete', fx);
        break;
      case 'advert':
        this.onAdvert(input.advert, now, fx);
        break;
      case 'timeout':
        this.onTimeout(now, fx);
        break;
      case 'demotion':
        this.onDemotion(input.demotion, now, fx);
        break;
      case 'link':
        if (!input.up && this.state !== 'INIT') this.toInit('hardware interface down', fx);
        else if (input.up && this.state === 'INIT') this.toBackup(now, 'hardware interface up', fx);
        break;
      case 'force':
        if (input.state === 'MASTER' && this.state !== 'MASTER') this.toMaster(now, input.reason, fx);
        else if (input.state === 'BACKUP') {
          this.preemptSuppressed = true;
          if (this.state === 'MASTER') {
            // Hand over at once rather than leave the segment masterless for a master-down time:
            // the bow-out makes the peer take over now, and we hold off one master-down time so
            // our own timer does not take it back.
            fx.push({ type: 'send', advbase: BOWOUT.advbase, advskew: BOWOUT.advskew, demote: this.demoteByte });
            this.toBackup(now, input.reason, fx, input.holdMs ?? this.masterDownMs());
          } else if (this.state !== 'BACKUP') this.toBackup(now, input.reason, fx, input.holdMs ?? 0);
        }
        break;
      case 'shutdown':
        if (this.state === 'MASTER') {
          fx.push({ type: 'send', advbase: BOWOUT.advbase, advskew: BOWOUT.advskew, demote: this.demoteByte });
        }
        if (this.state !== 'INIT') this.toInit('shutdown', fx);
        break;
    }
    return fx;
  }

  private onTimeout(now: number, fx: Effect[]): void {
    if (this.timers.masterDown !== undefined && now >= this.timers.masterDown && this.state === 'BACKUP') {
      this.toMaster(now, 'master timed out', fx);
      return;
    }
    if (this.timers.advertise !== undefined && now >= this.timers.advertise && this.state === 'MASTER') {
      this.advertise(now, fx);
    }
  }

  private onDemotion(demotion: number, now: number, fx: Effect[]): void {
    if (demotion === this.demotion) return;
    this.demotion = demotion;
    // A change in demotion makes a master advertise at once (FreeBSD carp_demote_adj()).
    if (this.state === 'MASTER') this.advertise(now, fx);
  }

  private onAdvert(ad: Advert, now: number, fx: Effect[]): void {
    if (this.state === 'INIT') return;
    this.lastAdvert = ad;
    const ours = this.cfg.advbase * 256 + this.wireAdvskew;
    const theirs = ad.advbase * 256 + ad.advskew;
    const ourDemote = this.demoteByte;

    if (this.state === 'MASTER') {
      const tieLost = ours === theirs && ad.demote === ourDemote && this.loses(ad.src);
      if ((ours > theirs && ad.demote <= ourDemote) || ad.demote < ourDemote || tieLost) {
        this.masterSrc = ad.src;
        this.toBackup(now, ad.demote < ourDemote ? 'less demoted advertisement received' : 'more frequent advertisement received', fx);
      } else if (now - this.reassertedAt >= intervalMs(this.cfg.advbase, this.wireAdvskew)) {
        // A slower master is on the wire: reassert our claim at once (ucarp does the same), but at
        // most once an advertisement interval. Answering every such advert let a flood of them
        // (forged slower adverts, or replays) make us send an advert and spawn a gratuitous ARP per
        // packet received.
        this.reassertedAt = now;
        this.advertise(now, fx);
        fx.push({ type: 'garp' });
        this.delayedArp = 2;
      }
      return;
    }

    // BACKUP
    this.masterSrc = ad.src;
    if (ad.advbase === BOWOUT.advbase && ad.advskew === BOWOUT.advskew) {
      this.toMaster(now, 'master bowed out', fx);
      return;
    }
    if (this.cfg.preempt && !this.preemptSuppressed && ours < theirs && ad.demote >= ourDemote) {
      this.toMaster(now, 'preempting a slower master', fx);
      return;
    }
    if (ad.demote > ourDemote) {
      this.toMaster(now, 'preempting a more demoted master', fx);
      return;
    }
    // FreeBSD compares 3 × advbase plus our own skew (carp_input_c(): sc_tv keeps its usec part).
    if (this.cfg.advbase > 0 && intervalMs(ad.advbase, ad.advskew) > this.cfg.advbase * this.cfg.deadRatio * 1000 + (this.wireAdvskew * 1000) / 256) {
      this.toMaster(now, 'master will time out', fx);
      return;
    }
    this.timers.masterDown = now + this.masterDownMs();
  }

  /** Equal priority: the lower source address keeps MASTER (ucarp's rule). */
  private loses(theirSrc: string): boolean {
    // An IPv6 advert is compared with our IPv6 source, byte by byte (lower keeps MASTER, as for IPv4).
    if (theirSrc.includes(':')) {
      const c = this.cfg.srcip6 === undefined ? undefined : compareIpv6(theirSrc, this.cfg.srcip6);
      return c === undefined ? true : c < 0;
    }
    const a = ipv4ToInt(theirSrc);
    const b = ipv4ToInt(this.cfg.srcip);
    if (a === undefined || b === undefined) return true; // FreeBSD: equal yields
    return a < b;
  }

  private advertise(now: number, fx: Effect[]): void {
    const advskew = this.wireAdvskew;
    fx.push({ type: 'send', advbase: this.cfg.advbase, advskew, demote: this.demoteByte });
    this.timers.advertise = now + intervalMs(this.cfg.advbase, advskew);
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
    this.masterSrc = this.cfg.srcip;
    this.timers.masterDown = undefined;
    this.delayedArp = -1;
    this.advertise(now, fx);
    fx.push({ type: 'vip', op: 'add' }, { type: 'garp' });
    // Repeat the ARP after the second advert, "for some L3 switches" (ip_carp.c carp_master_down()).
    this.delayedArp = 2;
  }

  private toBackup(now: number, reason: string, fx: Effect[], holdMs = 0): void {
    // Leaving INIT also clears the VIP: a previous instance killed with SIGKILL, or a link that
    // dropped while MASTER, may have left it on the interface, and a BACKUP must not hold it.
    const release = this.state === 'MASTER' || this.state === 'INIT';
    this.set('BACKUP', reason, fx);
    if (release) fx.push({ type: 'vip', op: 'del' });
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
    this.masterSrc = undefined;
  }
}
