/**
 * The daemon loop: the thin shell around the pure core. It owns the sockets, one timer and the
 * per-vhid machines; it turns packets, timer expiry, link changes and admin commands into inputs,
 * and performs the effects in order. The protocol never waits on anything here: VIP changes and
 * gratuitous ARP run in a per-vhid queue after the advert has been sent.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { CarpSocket, Clock, Logger, NetBackend, Transport } from '../adapters/ports.js';
import type { CarpModel, VhidConfig } from '../config/model.js';
import { DEFAULT_GROUP, DemotionLedger } from '../core/demotion.js';
import { VhidMachine, type CarpState, type Effect, type Input } from '../core/machine.js';
import { buildAdvert, checkAdvert } from '../proto/advert.js';
import { dropCounter, newStats, type CarpStats } from '../proto/counters.js';
import { makeAuthContext, type AuthContext } from '../proto/hmac.js';
import { RateLimiter } from './rate-limit.js';

export const CARP_GROUP = '224.0.0.18';

/** Log levels (syslog priorities) used by carpd; compared against net.inet.carp.log. */
export const LOG = { ERR: 1, STATE: 1, WARN: 2, BADPKT: 2, INFO: 5, DEBUG: 7 } as const;

export interface TransitionEvent {
  seq: number;
  time: string;
  vhid: number;
  interface: string;
  key: string;
  from: CarpState;
  to: CarpState;
  reason: string;
}

export interface EngineOptions {
  transport: Transport;
  net: NetBackend;
  clock: Clock;
  logger: Logger;
  /** Random source (tests pass a deterministic one). */
  random?: (n: number) => Buffer;
  /** Wall clock for event timestamps. */
  wallClock?: () => Date;
}

interface Vhid {
  cfg: VhidConfig;
  machine: VhidMachine;
  ctx: AuthContext;
  socket: CarpSocket;
  counter: bigint;
  /** The last advert we sent: our loop-detection cookie. */
  lastSent?: Buffer;
  groups: string[];
  stats: { advertsSent: number; advertsReceived: number; transitionsToMaster: number; badauth: number };
  /** Serializes VIP and ARP work for this vhid so add/del never reorder. */
  netQueue: Promise<void>;
}

export interface VhidStatus {
  key: string;
  vhid: number;
  interface: string;
  name?: string;
  state: CarpState;
  advbase: number;
  advskew: number;
  wireAdvskew: number;
  demote: number;
  addresses: string[];
  masterSrc?: string;
  lastReason: string;
  lastAdvert?: { src: string; advbase: number; advskew: number; demote: number };
}

const U64 = (1n << 64n) - 1n;
/** How far ahead of its due time a timer may be served together with an earlier one. */
const TIMER_BATCH_MS = 2;

export class Engine extends EventEmitter {
  readonly stats: CarpStats = newStats();
  readonly ledger = new DemotionLedger();
  /** Bad authentication count per `src vhid@if`. */
  readonly badAuthByPeer = new Map<string, number>();
  private readonly vhids = new Map<string, Vhid>();
  /** interface → vhid number → Vhid */
  private readonly byIf = new Map<string, Map<number, Vhid>>();
  private readonly sockets = new Map<string, CarpSocket>();
  private readonly ownAddresses = new Set<string>();
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
    this.stopLinks = this.opts.net.watchLinks(ifnames, (ifname, up) => this.onLink(ifname, up));
    for (const ifname of ifnames) {
      if (!this.opts.net.linkUp(ifname)) this.ledger.adjust(DEFAULT_GROUP, `link:${ifname}`, this.ifdownDemotion());
    }
    this.refreshDemotion();
    const now = this.opts.clock.now();
    for (const v of this.vhids.values()) this.apply(v, { type: 'start', linkUp: this.opts.net.linkUp(v.cfg.interface) }, now);
    this.arm();
  }

  private ifdownDemotion(): number {
    return this.model.global.ifdownDemotion ?? 240;
  }

  private socketFor(cfg: VhidConfig): CarpSocket {
    const existing = this.sockets.get(cfg.interface);
    if (existing) return existing;
    const srcip = cfg.srcip ?? this.opts.net.primaryAddress(cfg.interface);
    if (srcip) this.ownAddresses.add(srcip);
    const socket = this.opts.transport.open({ ifname: cfg.interface, ...(srcip ? { srcip } : {}), group: CARP_GROUP });
    socket.onMessage((pkt) => this.onPacket(cfg.interface, pkt));
    socket.onSendError((err) => {
      if (this.limiter.allow(`senderr ${cfg.interface}`)) this.log(LOG.WARN, `carp: send error on ${cfg.interface}: ${err.message}`);
    });
    this.sockets.set(cfg.interface, socket);
    return socket;
  }

  private addVhid(cfg: VhidConfig): void {
    const socket = this.socketFor(cfg);
    const srcip = cfg.srcip ?? this.opts.net.primaryAddress(cfg.interface);
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
      groups: [DEFAULT_GROUP, ...(cfg.groups ?? [])],
      stats: { advertsSent: 0, advertsReceived: 0, transitionsToMaster: 0, badauth: 0 },
      netQueue: Promise.resolve(),
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
      this.stats.carps_ipackets++;
      this.stats[dropCounter(res.reason)]++;
      if (res.reason === 'badauth' && res.vhid !== undefined) {
        const v = table.get(res.vhid);
        if (v) v.stats.badauth++;
        const peer = `${res.src ?? '?'} ${res.vhid}@${ifname}`;
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
    this.stats.carps_ipackets++;
    const v = table.get(res.header.vhid);
    if (!v) return;
    // Our own advert coming back (a looped segment): its bytes are exactly what we last sent.
    // The counter alone can't tell, since we copy the peer's counter as FreeBSD does.
    if (v.lastSent && pkt.length >= 36 && v.lastSent.equals(pkt.subarray(pkt.length - 36))) return;
    v.stats.advertsReceived++;
    // FreeBSD and ucarp copy the peer's counter on every valid receive.
    v.counter = res.header.counter;
    const now = this.opts.clock.now();
    if (this.model.global.log >= LOG.DEBUG) this.log(LOG.DEBUG, `carp: ${v.cfg.key}: advert from ${res.src} advbase ${res.header.advbase} advskew ${res.header.advskew} demote ${res.header.demote}`);
    this.apply(v, { type: 'advert', advert: { src: res.src, advbase: res.header.advbase, advskew: res.header.advskew, demote: res.header.demote } }, now);
    this.arm();
  }

  private onLink(ifname: string, up: boolean): void {
    this.log(LOG.INFO, `carp: ${ifname}: link ${up ? 'up' : 'down'}`);
    this.ledger.set(DEFAULT_GROUP, `link:${ifname}`, up ? 0 : this.ifdownDemotion());
    const now = this.opts.clock.now();
    for (const v of this.byIf.get(ifname)?.values() ?? []) this.apply(v, { type: 'link', up }, now);
    this.refreshDemotion();
    this.arm();
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
    for (const fx of v.machine.step(input, now)) this.perform(v, fx);
  }

  private perform(v: Vhid, fx: Effect): void {
    switch (fx.type) {
      case 'send': {
        v.counter = (v.counter + 1n) & U64;
        const payload = buildAdvert(v.ctx, { advbase: fx.advbase, advskew: fx.advskew, demote: fx.demote, counter: v.counter });
        v.lastSent = payload;
        v.socket.send(payload, v.cfg.peer);
        v.stats.advertsSent++;
        this.stats.carps_opackets++;
        break;
      }
      case 'vip':
        for (const a of v.cfg.addresses) {
          this.enqueueNet(v, `${fx.op} ${a}`, () => (fx.op === 'add' ? this.opts.net.addVip(v.cfg.interface, a) : this.opts.net.delVip(v.cfg.interface, a)));
        }
        break;
      case 'garp':
        for (const a of v.cfg.addresses) this.enqueueNet(v, `garp ${a}`, () => this.opts.net.garp(v.cfg.interface, a));
        break;
      case 'transition': {
        if (fx.to === 'MASTER') {
          v.stats.transitionsToMaster++;
          // netstat words carps_preempt "transitions to master".
          this.stats.carps_preempt++;
        }
        this.log(LOG.STATE, `carp: ${v.cfg.key}: ${fx.from} -> ${fx.to} (${fx.reason})`);
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
        this.emit('transition', ev);
        // A pre-phase (pre-master, pre-backup) may hold the VIP step back, never the advert and
        // never beyond the budget: the protocol does not wait on plugins.
        const gate = this.phaseGate?.(ev);
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
      ...(v.machine.masterSrc ? { masterSrc: v.machine.masterSrc } : {}),
      lastReason: v.machine.lastReason,
      ...(v.machine.lastAdvert ? { lastAdvert: { ...v.machine.lastAdvert } } : {}),
    }));
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
