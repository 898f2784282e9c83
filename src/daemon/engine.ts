/**
 * The daemon loop: the thin shell around the pure core. It owns the sockets, one timer and the
 * per-vhid machines; it turns packets, timer expiry, link changes and admin commands into inputs,
 * and performs the effects in order. The protocol never waits on anything here: VIP changes and
 * gratuitous ARP run in a per-vhid queue after the advert has been sent.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { CarpSocket, Transport } from '../ports/transport.js';
import type { Clock } from '../ports/clock.js';
import { LOG, type Logger } from '../ports/logger.js';
import type { NetBackend } from '../ports/net.js';
import type { CarpModel, VhidConfig } from '../config/model.js';
import { DEFAULT_GROUP, DemotionLedger } from '../core/demotion.js';
import { groupsOf } from '../config/groups.js';
import { VhidMachine, type Effect, type Input } from '../core/machine.js';
import { buildAdvert, checkAdvert } from '../proto/advert.js';
import { dropCounter, newStats, type CarpStats } from '../proto/counters.js';
import { makeAuthContext, type AuthContext } from '../proto/hmac.js';
import { RateLimiter } from './rate-limit.js';
import type { LastTransition, StateSource, StateSourceCapabilities, TransitionEvent, VhidStatus } from '../ports/state-source.js';

export type { LastTransition, TransitionEvent, VhidStatus };

export const CARP_GROUP = '224.0.0.18';

export interface EngineOptions {
  transport: Transport;
  net: NetBackend;
  clock: Clock;
  logger: Logger;
  /** Random source (tests pass a deterministic one). */
  random?: (n: number) => Buffer;
  /** Wall clock for event timestamps. */
  wallClock?: () => Date;
  /**
   * Make-before-break for planned handovers: when a demoted master yields to a peer's advert, keep
   * the VIP this long so the new master's gratuitous ARP lands before ours goes. 0 (default): off.
   */
  handoverHoldMs?: number;
}

/** A peer's advert as last heard for a vhid, with the monotonic time it arrived. */
export interface HeardAdvert {
  src: string;
  advbase: number;
  advskew: number;
  demote: number;
  at: number;
}

/** What `reconfigure` did, by vhid key. */
export interface ReconfigureResult {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

interface Vhid {
  cfg: VhidConfig;
  machine: VhidMachine;
  ctx: AuthContext;
  socket: CarpSocket;
  counter: bigint;
  groups: string[];
  stats: { advertsSent: number; advertsReceived: number; transitionsToMaster: number; badauth: number };
  /** A pending retry of a failed VIP add. */
  vipRetry?: NodeJS.Timeout;
  /** Serializes VIP and ARP work for this vhid so add/del never reorder. */
  netQueue: Promise<void>;
  /** Monotonic time the vhid was started. */
  startedAt: number;
  lastHeard?: HeardAdvert;
  lastTransition?: LastTransition;
  /** Set between a planned MASTER -> BACKUP transition and its VIP release. */
  handover?: boolean;
  /** A make-before-break hold in the VIP queue (planned handover). */
  hold?: Hold;
}

/** A pending VIP release held back for a planned handover. */
interface Hold {
  /** Set when this vhid became MASTER again meanwhile: the VIP stays. */
  keep: boolean;
  ended: boolean;
  end?: () => void;
}

const U64 = (1n << 64n) - 1n;
/** How many distinct bad-authentication sources are counted one by one. */
export const MAX_BADAUTH_PEERS = 1024;
/** First retry of a failed VIP add, doubling up to the max. */
const VIP_RETRY_MS = 1000;
const VIP_RETRY_MAX_MS = 30_000;
/** Consecutive failed (or, to undo, good) adverts for the send-error demotion (FreeBSD CARP_SENDAD_MAX_ERRORS / MIN_SUCCESS). */
const SENDERR_MAX = 3;
/** How far ahead of its due time a timer may be served together with an earlier one. */
const TIMER_BATCH_MS = 2;

export class Engine extends EventEmitter implements StateSource {
  readonly kind = 'carpd' as const;
  readonly capabilities: StateSourceCapabilities = { forceState: true, prePhaseHoldsVip: true, packetCounters: true };
  readonly stats: CarpStats = newStats();
  readonly ledger = new DemotionLedger();
  /** Bad authentication count per `src vhid@if`. */
  readonly badAuthByPeer = new Map<string, number>();
  private readonly vhids = new Map<string, Vhid>();
  /** interface → vhid number → Vhid */
  private readonly byIf = new Map<string, Map<number, Vhid>>();
  private readonly sockets = new Map<string, CarpSocket>();
  private readonly ownAddresses = new Set<string>();
  private readonly ifAddress = new Map<string, string | undefined>();
  private readonly sendHealthByIf = new Map<string, { errors: number; failedInRow: number; okInRow: number }>();
  /** Monotonic time a CARP packet from a peer last arrived, per interface. */
  private readonly peerHeard = new Map<string, number>();
  private readonly limiter = new RateLimiter(60_000);
  private seq = 0;
  private phaseGate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined;
  private phaseBudgetMs = 500;
  private stopLinks?: () => void;
  private running = false;

  constructor(private model: CarpModel, private readonly opts: EngineOptions) {
    super();
  }

  private log(level: number, msg: string): void {
    if (level <= this.model.global.log || level <= 0) this.opts.logger.log(level, msg);
  }

  private random(n: number): Buffer {
    return (this.opts.random ?? randomBytes)(n);
  }

  /** Open sockets, create machines, and start every vhid (INIT → BACKUP when its link is up). */
  start(): void {
    if (this.running) return;
    this.running = true;
    for (const cfg of this.model.vhids) this.addVhid(cfg);
    const ifnames = [...this.byIf.keys()];
    this.watchLinks();
    for (const ifname of ifnames) {
      if (!this.opts.net.linkUp(ifname)) this.ledger.adjust(DEFAULT_GROUP, `link:${ifname}`, this.ifdownDemotion());
    }
    // net.inet.carp.demotion (sysctl.conf) or `demotion` in carpd.conf: a standing demotion.
    this.applyConfigDemotion(this.model);
    this.refreshDemotion();
    const now = this.opts.clock.now();
    for (const v of this.vhids.values()) this.apply(v, { type: 'start', linkUp: this.opts.net.linkUp(v.cfg.interface) }, now);
    this.arm();
  }

  private watchLinks(): void {
    this.stopLinks?.();
    this.stopLinks = this.opts.net.watchLinks([...this.byIf.keys()], (ifname, up) => this.onLink(ifname, up));
  }

  private ifdownDemotion(): number {
    return this.model.global.ifdownDemotion ?? 240;
  }

  /** The interface's own address, asked once per interface (it runs `ip`, synchronously). */
  private interfaceAddress(ifname: string): string | undefined {
    if (!this.ifAddress.has(ifname)) this.ifAddress.set(ifname, this.opts.net.primaryAddress(ifname));
    return this.ifAddress.get(ifname);
  }

  private socketFor(cfg: VhidConfig): CarpSocket {
    const existing = this.sockets.get(cfg.interface);
    if (existing) return existing;
    const srcip = cfg.srcip ?? this.interfaceAddress(cfg.interface);
    if (srcip) this.ownAddresses.add(srcip);
    const socket = this.opts.transport.open({ ifname: cfg.interface, ...(srcip ? { srcip } : {}), group: CARP_GROUP });
    socket.onMessage((pkt) => this.onPacket(cfg.interface, pkt));
    socket.onSendError((err) => {
      if (this.limiter.allow(`senderr ${cfg.interface}`)) this.log(LOG.WARN, `carp: send error on ${cfg.interface}: ${err.message}`);
      this.sendResult(cfg.interface, false);
    });
    this.sockets.set(cfg.interface, socket);
    return socket;
  }

  private addVhid(cfg: VhidConfig): void {
    const socket = this.socketFor(cfg);
    const srcip = cfg.srcip ?? this.interfaceAddress(cfg.interface);
    const machine = new VhidMachine({
      key: cfg.key,
      vhid: cfg.vhid,
      advbase: cfg.advbase,
      advskew: cfg.advskew,
      preempt: this.model.global.preempt,
      masterDown: this.model.global.masterDown ?? 'freebsd',
      deadRatio: cfg.deadRatio ?? 3,
      ...(srcip ? { srcip } : {}),
    });
    const v: Vhid = {
      cfg,
      machine,
      ctx: makeAuthContext(cfg.password, cfg.vhid, cfg.addresses),
      socket,
      counter: this.random(8).readBigUInt64BE(0),
      groups: groupsOf(cfg, this.model),
      stats: { advertsSent: 0, advertsReceived: 0, transitionsToMaster: 0, badauth: 0 },
      netQueue: Promise.resolve(),
      startedAt: this.opts.clock.now(),
    };
    this.vhids.set(cfg.key, v);
    let m = this.byIf.get(cfg.interface);
    if (!m) this.byIf.set(cfg.interface, (m = new Map()));
    m.set(cfg.vhid, v);
  }

  private onPacket(ifname: string, pkt: Buffer): void {
    const table = this.byIf.get(ifname);
    if (!table) return;
    const res = checkAdvert(pkt, (vhid) => table.get(vhid)?.ctx);
    if (!res.ok) {
      if (res.src && this.ownAddresses.has(res.src)) return;
      this.peerHeard.set(ifname, this.opts.clock.now());
      this.stats.carps_ipackets++;
      this.stats[dropCounter(res.reason)]++;
      if (res.reason === 'badauth' && res.vhid !== undefined) {
        const v = table.get(res.vhid);
        if (v) v.stats.badauth++;
        let peer = `${res.src ?? '?'} ${res.vhid}@${ifname}`;
        // Bounded: a flood from spoofed sources lands in one bucket.
        if (!this.badAuthByPeer.has(peer) && this.badAuthByPeer.size >= MAX_BADAUTH_PEERS) peer = `* ${res.vhid}@${ifname}`;
        const n = (this.badAuthByPeer.get(peer) ?? 0) + 1;
        this.badAuthByPeer.set(peer, n);
        if (n === 1) {
          this.log(LOG.BADPKT, `carp: ${res.vhid}@${ifname}: bad authentication from ${res.src} vhid ${res.vhid}: check the password and the vhid's address list`);
        }
      } else if (this.limiter.allow(`${res.reason} ${res.src ?? ''} ${ifname}`)) {
        this.log(LOG.BADPKT, `carp: ${ifname}: packet from ${res.src ?? '?'} dropped: ${res.reason}`);
      }
      return;
    }
    if (this.ownAddresses.has(res.src)) return; // our own advert looped back
    const now = this.opts.clock.now();
    this.peerHeard.set(ifname, now);
    this.stats.carps_ipackets++;
    const v = table.get(res.header.vhid);
    if (!v) return;
    v.stats.advertsReceived++;
    // FreeBSD and ucarp copy the peer's counter on every valid receive.
    v.counter = res.header.counter;
    v.lastHeard = { src: res.src, advbase: res.header.advbase, advskew: res.header.advskew, demote: res.header.demote, at: now };
    if (this.model.global.log >= LOG.DEBUG) this.log(LOG.DEBUG, `carp: ${v.cfg.key}: advert from ${res.src} advbase ${res.header.advbase} advskew ${res.header.advskew} demote ${res.header.demote}`);
    this.apply(v, { type: 'advert', advert: { src: res.src, advbase: res.header.advbase, advskew: res.header.advskew, demote: res.header.demote } }, now);
    this.arm();
  }

  private onLink(ifname: string, up: boolean): void {
    this.log(LOG.INFO, `carp: ${ifname}: link ${up ? 'up' : 'down'}`);
    if (up) {
      this.reopenSocket(ifname);
      this.ledger.set(DEFAULT_GROUP, `senderr:${ifname}`, 0);
      this.sendHealthByIf.delete(ifname);
    }
    this.ledger.set(DEFAULT_GROUP, `link:${ifname}`, up ? 0 : this.ifdownDemotion());
    // Demotion first, so the master-down timer that link-up arms uses the current skew.
    this.refreshDemotion();
    const now = this.opts.clock.now();
    for (const v of this.byIf.get(ifname)?.values() ?? []) this.apply(v, { type: 'link', up }, now);
    this.arm();
  }

  /**
   * A fresh socket after the link comes back: SO_BINDTODEVICE and the group membership hold the
   * interface index of the moment, and an interface deleted and created again (ifdown/ifup of a
   * VLAN, a networkd restart) would leave the old socket deaf and mute.
   */
  private reopenSocket(ifname: string): void {
    const table = this.byIf.get(ifname);
    const first = table?.values().next().value;
    if (!table || !first) return;
    this.sockets.get(ifname)?.close();
    this.sockets.delete(ifname);
    this.ifAddress.delete(ifname);
    try {
      const socket = this.socketFor(first.cfg);
      for (const v of table.values()) v.socket = socket;
    } catch (err) {
      this.log(LOG.ERR, `carp: ${ifname}: cannot reopen the CARP socket: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Push every vhid's current group demotion into its machine. */
  private refreshDemotion(): void {
    const now = this.opts.clock.now();
    for (const v of this.vhids.values()) this.apply(v, { type: 'demotion', demotion: this.ledger.forGroups(v.groups) }, now);
  }

  private onTimer = (): void => {
    const now = this.opts.clock.now();
    // Timers due within TIMER_BATCH_MS are handled in this same turn (treated as due now), so a
    // burst of vhids that time out together acts together: one `ip -batch`, not one each.
    for (const v of this.vhids.values()) {
      const due = v.machine.nextDue();
      if (due !== undefined && due <= now + TIMER_BATCH_MS) this.apply(v, { type: 'timeout' }, Math.max(now, due));
    }
    this.arm();
  };

  /** Arm the one real timer for the earliest due time. */
  private arm(): void {
    let earliest = Infinity;
    for (const v of this.vhids.values()) {
      const due = v.machine.nextDue();
      if (due !== undefined && due < earliest) earliest = due;
    }
    if (earliest === Infinity || !this.running) this.opts.clock.clearTimer();
    else this.opts.clock.setTimer(earliest, this.onTimer);
  }

  private apply(v: Vhid, input: Input, now: number): void {
    for (const fx of v.machine.step(input, now)) this.perform(v, fx, input);
  }

  private perform(v: Vhid, fx: Effect, input: Input): void {
    switch (fx.type) {
      case 'send': {
        v.counter = (v.counter + 1n) & U64;
        const payload = buildAdvert(v.ctx, { advbase: fx.advbase, advskew: fx.advskew, demote: fx.demote, counter: v.counter });
        v.socket.send(payload, v.cfg.peer);
        // Errors are reported in a microtask queued by send(); one queued after it sees them.
        const errorsBefore = this.sendHealth(v.cfg.interface).errors;
        queueMicrotask(() => {
          if (this.sendHealth(v.cfg.interface).errors === errorsBefore) this.sendResult(v.cfg.interface, true);
        });
        v.stats.advertsSent++;
        this.stats.carps_opackets++;
        break;
      }
      case 'vip': {
        if (fx.op === 'add' && v.hold) {
          // MASTER again while a handover still holds the VIP: it never left.
          v.hold.keep = true;
          this.endHold(v);
        }
        const hold = fx.op === 'del' && v.handover ? this.enqueueHold(v) : undefined;
        v.handover = false;
        for (const a of v.cfg.addresses) {
          if (fx.op === 'add') this.enqueueAdd(v, a, 0);
          else this.enqueueNet(v, `del ${a}`, async () => (hold?.keep ? undefined : this.opts.net.delVip(v.cfg.interface, a)));
        }
        // Leaving MASTER stops the retries but keeps a VIP failure's demotion: it is lifted by the
        // next add that works, so a node that cannot hold its address does not flap back to it.
        if (fx.op === 'del') this.cancelVipRetry(v);
        break;
      }
      case 'garp':
        for (const a of v.cfg.addresses) this.enqueueGarp(v, a);
        break;
      case 'transition': {
        if (fx.to === 'MASTER') {
          v.stats.transitionsToMaster++;
          // netstat words carps_preempt "transitions to master".
          this.stats.carps_preempt++;
        }
        this.log(LOG.STATE, `carp: ${v.cfg.key}: ${fx.from} -> ${fx.to} (${fx.reason})`);
        // A demoted master yielding to a peer's advert is a planned handover: make before break.
        v.handover = fx.from === 'MASTER' && fx.to === 'BACKUP' && input.type === 'advert' && v.machine.demotion > 0 && (this.opts.handoverHoldMs ?? 0) > 0;
        const ev: TransitionEvent = {
          seq: ++this.seq,
          time: (this.opts.wallClock?.() ?? new Date()).toISOString(),
          vhid: v.cfg.vhid,
          interface: v.cfg.interface,
          key: v.cfg.key,
          from: fx.from,
          to: fx.to,
          reason: fx.reason,
        };
        v.lastTransition = { seq: ev.seq, time: ev.time, from: ev.from, to: ev.to, reason: ev.reason };
        // Listeners and the gate run inside the protocol step: one that throws must not skip the
        // advert and VIP effects that follow, nor crash the daemon.
        try {
          this.emit('transition', ev);
        } catch (err) {
          this.log(LOG.ERR, `carp: ${v.cfg.key}: transition listener failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        // A pre-phase (pre-master, pre-backup) may hold the VIP step back, never the advert and
        // never beyond the budget: the protocol does not wait on plugins.
        let gate: Promise<void> | undefined;
        try {
          gate = this.phaseGate?.(ev);
        } catch (err) {
          this.log(LOG.ERR, `carp: ${v.cfg.key}: pre-phase failed to start: ${err instanceof Error ? err.message : String(err)}`);
        }
        if (gate) {
          this.enqueueNet(v, 'pre-phase', async () => {
            let timer: NodeJS.Timeout | undefined;
            const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), this.phaseBudgetMs)));
            const res = await Promise.race([gate.then(() => 'done' as const, () => 'done' as const), late]);
            clearTimeout(timer);
            if (res === 'late') this.log(LOG.WARN, `carp: ${v.cfg.key}: pre-${fx.to.toLowerCase()} phase still running after ${this.phaseBudgetMs} ms; moving the VIP anyway`);
          });
        }
        break;
      }
    }
  }

  /**
   * A gratuitous ARP, started in queue order (after the VIP add) but not waited for: arping lingers
   * for a second after its packet, and nothing after it (a VIP del, master hooks) should wait.
   */
  private enqueueGarp(v: Vhid, a: string): void {
    this.enqueueNet(v, `garp ${a}`, async () => {
      // A MASTER that has already yielded again (a start-up race) announces nothing.
      if (v.machine.state !== 'MASTER') return;
      this.opts.net.garp(v.cfg.interface, a).catch((err: unknown) => {
        if (v.machine.state !== 'MASTER') return; // the VIP went meanwhile; nothing to report
        if (this.limiter.allow(`garp ${v.cfg.key}`)) this.log(LOG.WARN, `carp: ${v.cfg.key}: garp ${a} failed: ${err instanceof Error ? err.message : String(err)}`);
      });
    });
  }

  /** Queue the make-before-break wait in front of a VIP release. */
  private enqueueHold(v: Vhid): Hold {
    const hold: Hold = { keep: false, ended: false };
    v.hold = hold;
    const ms = this.opts.handoverHoldMs ?? 0;
    this.log(LOG.INFO, `carp: ${v.cfg.key}: planned handover: releasing the VIP in ${ms} ms, after the new master's gratuitous ARP`);
    this.enqueueNet(v, 'handover hold', () => {
      if (hold.ended) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.endHold(v, hold), ms);
        hold.end = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    });
    this.enqueueNet(v, 'handover done', async () => {
      if (v.hold === hold) v.hold = undefined;
    });
    return hold;
  }

  private endHold(v: Vhid, hold = v.hold): void {
    if (!hold || hold.ended) return;
    hold.ended = true;
    hold.end?.();
    if (v.hold === hold) v.hold = undefined;
  }

  /**
   * Add one VIP. A MASTER that cannot hold its address black-holes the traffic, so a failure
   * demotes the node (`vip:KEY` in the carp group, like a dead link) until the add succeeds, and
   * the add is retried with backoff while this vhid stays MASTER.
   */
  private enqueueAdd(v: Vhid, a: string, attempt: number): void {
    this.enqueueNet(v, `add ${a}`, async () => {
      if (attempt > 0 && v.machine.state !== 'MASTER') return;
      try {
        await this.opts.net.addVip(v.cfg.interface, a);
      } catch (err) {
        this.log(LOG.ERR, `carp: ${v.cfg.key}: add ${a} failed${attempt ? ` (retry ${attempt})` : ''}: ${err instanceof Error ? err.message : String(err)}; demoting until it works`);
        this.setDemotion(DEFAULT_GROUP, `vip:${v.cfg.key}`, this.ifdownDemotion());
        const delay = Math.min(VIP_RETRY_MAX_MS, VIP_RETRY_MS * 2 ** attempt);
        clearTimeout(v.vipRetry);
        v.vipRetry = setTimeout(() => {
          v.vipRetry = undefined;
          if (this.running && v.machine.state === 'MASTER') this.enqueueAdd(v, a, attempt + 1);
        }, delay);
        v.vipRetry.unref?.();
        return;
      }
      this.clearVipFailure(v);
    });
  }

  private sendHealth(ifname: string): { errors: number; failedInRow: number; okInRow: number } {
    let h = this.sendHealthByIf.get(ifname);
    if (!h) this.sendHealthByIf.set(ifname, (h = { errors: 0, failedInRow: 0, okInRow: 0 }));
    return h;
  }

  /**
   * FreeBSD's send-error demotion (carp_send_ad_error_adjust()): three failed adverts in a row on
   * an interface demote the node by senderr_demotion (default 240); three good ones in a row, or
   * the link coming back, undo it.
   */
  private sendResult(ifname: string, ok: boolean): void {
    const h = this.sendHealth(ifname);
    const by = `senderr:${ifname}`;
    if (!ok) {
      h.errors++;
      h.okInRow = 0;
      if (++h.failedInRow === SENDERR_MAX && this.running) {
        this.log(LOG.ERR, `carp: ${ifname}: ${SENDERR_MAX} adverts in a row could not be sent; demoting`);
        this.setDemotion(DEFAULT_GROUP, by, this.model.global.senderrDemotion ?? 240);
      }
      return;
    }
    h.failedInRow = 0;
    if (++h.okInRow >= SENDERR_MAX && this.ledger.held(DEFAULT_GROUP, by) && this.running) {
      this.log(LOG.STATE, `carp: ${ifname}: adverts go out again; demotion undone`);
      this.setDemotion(DEFAULT_GROUP, by, 0);
    }
  }

  private cancelVipRetry(v: Vhid): void {
    clearTimeout(v.vipRetry);
    v.vipRetry = undefined;
  }

  /** Forget a VIP failure: no retry pending, no demotion held for it. */
  private clearVipFailure(v: Vhid): void {
    this.cancelVipRetry(v);
    if (this.ledger.held(DEFAULT_GROUP, `vip:${v.cfg.key}`)) this.setDemotion(DEFAULT_GROUP, `vip:${v.cfg.key}`, 0);
  }

  private enqueueNet(v: Vhid, what: string, job: () => Promise<void>): void {
    v.netQueue = v.netQueue.then(job).catch((err: unknown) => {
      this.log(LOG.ERR, `carp: ${v.cfg.key}: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  /**
   * Install the plugin host's pre-phase: called on every transition, it may return a promise the
   * VIP step waits for, at most `budgetMs`.
   */
  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined, budgetMs = 500): void {
    this.phaseGate = gate;
    this.phaseBudgetMs = budgetMs;
  }

  /**
   * The demotions the configuration stands for: net.inet.carp.demotion in the carp group and
   * each `[group.NAME] demote`, held by `config` (a reload sets them anew).
   */
  private applyConfigDemotion(model: CarpModel): void {
    for (const e of this.ledger.entries()) if (e.by === 'config') this.ledger.set(e.group, 'config', 0);
    if (model.global.demotion) this.ledger.set(DEFAULT_GROUP, 'config', model.global.demotion);
    for (const g of model.groups ?? []) if (g.demote) this.ledger.set(g.name, 'config', g.demote);
  }

  /** Resolves when the VIP and ARP work queued so far for `key` has finished (the plugin host waits for it before `master` hooks). */
  netSettled(key: string): Promise<void> {
    return this.vhids.get(key)?.netQueue ?? Promise.resolve();
  }

  /** Adjust a group's demotion on behalf of `by` (carpctl demote, plugins, health checks). */
  demote(group: string, by: string, delta: number): number {
    const total = this.ledger.adjust(group, by, delta);
    this.refreshDemotion();
    this.arm();
    return total;
  }

  /** Set `by`'s demotion in a group to exactly `count`. */
  setDemotion(group: string, by: string, count: number): number {
    const total = this.ledger.set(group, by, count);
    this.refreshDemotion();
    this.arm();
    return total;
  }

  /** Force a vhid's state, as an admin action; emits the same events as the protocol. */
  force(key: string, state: 'MASTER' | 'BACKUP', reason = 'user requested', holdMs?: number): boolean {
    const v = this.vhids.get(key);
    if (!v) return false;
    this.apply(v, { type: 'force', state, reason, ...(holdMs !== undefined ? { holdMs } : {}) }, this.opts.clock.now());
    this.arm();
    return true;
  }

  status(): VhidStatus[] {
    const now = this.opts.clock.now();
    return [...this.vhids.values()].map((v) => ({
      key: v.cfg.key,
      vhid: v.cfg.vhid,
      interface: v.cfg.interface,
      ...(v.cfg.name ? { name: v.cfg.name } : {}),
      state: v.machine.state,
      advbase: v.cfg.advbase,
      advskew: v.cfg.advskew,
      wireAdvskew: v.machine.wireAdvskew,
      demote: v.machine.demoteByte,
      addresses: v.cfg.addresses,
      groups: [...v.groups],
      ...(v.machine.masterSrc ? { masterSrc: v.machine.masterSrc } : {}),
      lastReason: v.machine.lastReason,
      ...(v.machine.lastAdvert ? { lastAdvert: { ...v.machine.lastAdvert } } : {}),
      ...(v.lastTransition ? { lastTransition: { ...v.lastTransition } } : {}),
      ...(v.lastHeard
        ? { lastHeard: { src: v.lastHeard.src, advbase: v.lastHeard.advbase, advskew: v.lastHeard.advskew, demote: v.lastHeard.demote, agoMs: now - v.lastHeard.at } }
        : {}),
      ...(this.peerHeard.has(v.cfg.interface) ? { peerHeardAgoMs: now - this.peerHeard.get(v.cfg.interface)! } : {}),
      upMs: now - v.startedAt,
    }));
  }

  /** Gratuitous ARP for every VIP of every MASTER vhid (the periodic refresh). Returns how many vhids. */
  refreshGarp(): number {
    let n = 0;
    for (const v of this.vhids.values()) {
      if (v.machine.state !== 'MASTER') continue;
      n++;
      for (const a of v.cfg.addresses) this.enqueueGarp(v, a);
    }
    return n;
  }

  /**
   * Apply a new model (SIGHUP): vhids that appeared start, vhids that went away bow out and release
   * their VIPs, changed vhids are updated in place. Unchanged vhids keep their state and timers.
   */
  reconfigure(next: CarpModel): ReconfigureResult {
    const res: ReconfigureResult = { added: [], removed: [], changed: [], unchanged: [] };
    const nextByKey = new Map(next.vhids.map((c) => [c.key, c]));
    this.model = next;
    if (!this.running) {
      res.added = next.vhids.map((c) => c.key);
      return res;
    }
    const now = this.opts.clock.now();
    const ifsBefore = new Set(this.byIf.keys());
    for (const v of this.vhids.values()) {
      v.machine.cfg.preempt = next.global.preempt;
      v.machine.cfg.masterDown = next.global.masterDown ?? 'freebsd';
    }
    for (const [key, v] of [...this.vhids]) {
      const cfg = nextByKey.get(key);
      if (!cfg) {
        this.removeVhid(v, now);
        res.removed.push(key);
      } else if (sameVhid(v.cfg, cfg)) {
        v.cfg = cfg;
        res.unchanged.push(key);
      } else if ((cfg.srcip ?? '') !== (v.cfg.srcip ?? '')) {
        // The source address is the machine's tie-break and the socket's: start afresh.
        this.removeVhid(v, now);
        res.changed.push(key);
      } else {
        this.updateVhid(v, cfg);
        res.changed.push(key);
      }
    }
    const fresh: Vhid[] = [];
    for (const cfg of next.vhids) {
      if (this.vhids.has(cfg.key)) continue;
      this.addVhid(cfg);
      fresh.push(this.vhids.get(cfg.key)!);
      if (!res.changed.includes(cfg.key)) res.added.push(cfg.key);
    }
    const ifsAfter = new Set(this.byIf.keys());
    if (ifsAfter.size !== ifsBefore.size || [...ifsAfter].some((i) => !ifsBefore.has(i))) this.watchLinks();
    for (const ifname of ifsBefore) if (!ifsAfter.has(ifname)) this.ledger.set(DEFAULT_GROUP, `link:${ifname}`, 0);
    for (const ifname of ifsAfter) {
      this.ledger.set(DEFAULT_GROUP, `link:${ifname}`, this.opts.net.linkUp(ifname) ? 0 : this.ifdownDemotion());
    }
    this.applyConfigDemotion(next);
    this.refreshDemotion();
    for (const v of fresh) this.apply(v, { type: 'start', linkUp: this.opts.net.linkUp(v.cfg.interface) }, now);
    this.arm();
    return res;
  }

  /** Take a vhid out: bow out if MASTER, release its VIPs, and close its socket when it was the last user. */
  private removeVhid(v: Vhid, now: number): void {
    this.apply(v, { type: 'shutdown' }, now);
    this.log(LOG.INFO, `carp: ${v.cfg.key}: removed from the configuration`);
    this.vhids.delete(v.cfg.key);
    const table = this.byIf.get(v.cfg.interface);
    table?.delete(v.cfg.vhid);
    if (table && table.size === 0) {
      this.byIf.delete(v.cfg.interface);
      const socket = this.sockets.get(v.cfg.interface);
      this.sockets.delete(v.cfg.interface);
      this.peerHeard.delete(v.cfg.interface);
      // Let the bow-out advert leave before the socket closes.
      void v.netQueue.then(() => new Promise((r) => setTimeout(r, 20))).then(() => socket?.close());
    }
  }

  /** Update a vhid's parameters in place; a MASTER swaps changed addresses at once. */
  private updateVhid(v: Vhid, cfg: VhidConfig): void {
    const old = v.cfg;
    v.cfg = cfg;
    v.machine.cfg.advbase = cfg.advbase;
    v.machine.cfg.advskew = cfg.advskew;
    v.machine.cfg.deadRatio = cfg.deadRatio ?? 3;
    v.groups = groupsOf(cfg, this.model);
    const addrsChanged = old.addresses.join(',') !== cfg.addresses.join(',');
    if (addrsChanged || old.password !== cfg.password) v.ctx = makeAuthContext(cfg.password, cfg.vhid, cfg.addresses);
    if (addrsChanged && v.machine.state === 'MASTER') {
      for (const a of old.addresses.filter((x) => !cfg.addresses.includes(x))) {
        this.enqueueNet(v, `del ${a}`, () => this.opts.net.delVip(cfg.interface, a));
      }
      for (const a of cfg.addresses.filter((x) => !old.addresses.includes(x))) {
        this.enqueueNet(v, `add ${a}`, () => this.opts.net.addVip(cfg.interface, a));
        this.enqueueGarp(v, a);
      }
    }
  }

  vhidStats(key: string): Vhid['stats'] | undefined {
    return this.vhids.get(key)?.stats;
  }

  /**
   * Clean shutdown: a bow-out advert from every master, VIPs removed, sockets closed.
   * Resolves when the VIP work has finished.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    const now = this.opts.clock.now();
    for (const v of this.vhids.values()) this.apply(v, { type: 'shutdown' }, now);
    // A handover still holding a VIP lets go now: we are leaving.
    for (const v of this.vhids.values()) this.endHold(v);
    this.running = false;
    this.opts.clock.clearTimer();
    this.stopLinks?.();
    await Promise.all([...this.vhids.values()].map((v) => v.netQueue));
    this.ledger.clear();
    // Give queued bow-out adverts a moment to leave before the sockets close.
    await new Promise((r) => setTimeout(r, 20));
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}

/** A vhid's configuration minus where it came from, with keys in a fixed order, for comparison. */
function canonical(cfg: VhidConfig): string {
  const { source: _source, fieldSources: _fieldSources, ...rest } = cfg;
  return JSON.stringify(Object.fromEntries(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b))));
}

function sameVhid(a: VhidConfig, b: VhidConfig): boolean {
  return canonical(a) === canonical(b);
}
