/**
 * What the kernel state sources (FreeBSD devd, OpenBSD route monitor) share: the transition
 * events, the per-vhid view built from `ifconfig` snapshots, the phase gate that cannot hold the
 * VIP, the timers port and a bounded backoff. The kernel runs the protocol; carpd only follows it,
 * so the packet counters stay at zero and the VIP work is the kernel's, done before we hear.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { DemotionLedger } from '../core/demotion.js';
import { LOG, type Logger } from '../ports/logger.js';
import type { RunCommand } from '../ports/exec.js';
import { newStats, type CarpStats } from '../proto/counters.js';
import type { CarpState, DemotionView, LastTransition, StateSourceCapabilities, TransitionEvent, VhidCounters, VhidStatus } from '../ports/state-source.js';
import { run } from './exec.js';

/** Timers, as a port: tests drive them by hand, the daemon uses the real ones. */
export interface KernelTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_TIMERS: KernelTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface KernelSourceOptions {
  /** Runs ifconfig/sysctl (argv only); default adapters/exec run(). */
  exec?: RunCommand;
  /** Added to the scrubbed base environment of every command (tests put the fake tools first on PATH). */
  env?: Record<string, string>;
  /** Per-command limit (ms). */
  commandTimeoutMs?: number;
  /** How often the kernel's state is read again, to correct a missed event (ms); 0 turns it off. */
  snapshotIntervalMs?: number;
  /** First and largest reconnect/restart delay (ms); the delay doubles between them. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  timers?: KernelTimers;
  logger?: Logger;
  wallClock?: () => Date;
  /** Monotonic ms, for upMs. */
  monotonic?: () => number;
  /** Names for vhids by key (e.g. pfSense config.xml descriptions). */
  names?: ReadonlyMap<string, string>;
}

/** One vhid as a snapshot of the kernel reads it. */
export interface KernelVhid {
  key: string;
  vhid: number;
  /** The interface carpd's config names: FreeBSD the vhid's interface, OpenBSD the carpdev. */
  interface: string;
  /** OpenBSD: carpN. */
  carpIf?: string;
  state: CarpState;
  advbase: number;
  advskew: number;
  addresses: string[];
  groups: string[];
}

interface Entry extends KernelVhid {
  startedAt: number;
  lastReason: string;
  lastTransition?: LastTransition;
}

/**
 * A bounded exponential backoff: min, 2·min, … up to max; reset() after a good connection.
 * The attempt counter is capped so the shift never overflows.
 */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {}
  next(): number {
    const ms = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    return ms;
  }
  reset(): void {
    this.attempt = 0;
  }
}

export const DEFAULTS = {
  commandTimeoutMs: 10_000,
  snapshotIntervalMs: 10_000,
  backoffMinMs: 250,
  backoffMaxMs: 30_000,
} as const;

const NO_LOG: Logger = { log: () => undefined };

export abstract class KernelSourceBase extends EventEmitter {
  readonly kind = 'kernel' as const;
  /**
   * forceState: both kernels take `ifconfig … state master|backup` (see the subclasses).
   * prePhaseHoldsVip: the kernel moved the VIP before devd/route monitor told us.
   * packetCounters: carpd sends and reads no packets here.
   */
  readonly capabilities: StateSourceCapabilities = { forceState: true, prePhaseHoldsVip: false, packetCounters: false };
  readonly stats: CarpStats = newStats();
  readonly badAuthByPeer: ReadonlyMap<string, number> = new Map();
  protected readonly ledgerImpl = new DemotionLedger();
  protected readonly entries = new Map<string, Entry>();
  protected readonly exec: RunCommand;
  protected readonly timers: KernelTimers;
  protected readonly logger: Logger;
  protected readonly snapshotIntervalMs: number;
  protected readonly commandTimeoutMs: number;
  protected readonly backoff: Backoff;
  protected running = false;
  /** The kernel's demotion counter as last read (FreeBSD sysctl, OpenBSD the carp group). */
  protected kernelDemotion = 0;
  private seq = 0;
  private phaseGate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined;
  private snapshotTimer: unknown;
  private snapshotting: Promise<void> | undefined;
  private snapshotAgain = false;
  /** Bumped per key by every event, so a snapshot begun before an event does not undo it. */
  private readonly eventGen = new Map<string, number>();
  /** Serializes the demotion writes: each computes its delta when it runs. */
  private demotionQueue: Promise<void> = Promise.resolve();

  constructor(protected readonly opts: KernelSourceOptions) {
    super();
    this.exec = opts.exec ?? run;
    this.timers = opts.timers ?? REAL_TIMERS;
    this.logger = opts.logger ?? NO_LOG;
    this.snapshotIntervalMs = opts.snapshotIntervalMs ?? DEFAULTS.snapshotIntervalMs;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs;
    this.backoff = new Backoff(opts.backoffMinMs ?? DEFAULTS.backoffMinMs, opts.backoffMaxMs ?? DEFAULTS.backoffMaxMs);
  }

  /** Typed for the one event the port defines (EventEmitter's own signature takes any listener). */
  override on(event: 'transition', fn: (ev: TransitionEvent) => void): this {
    return super.on(event, fn);
  }

  override off(event: 'transition', fn: (ev: TransitionEvent) => void): this {
    return super.off(event, fn);
  }

  get ledger(): DemotionView {
    return this.ledgerImpl;
  }

  /** Reads the kernel's vhids (and demotion); undefined when the command failed. */
  protected abstract readSnapshot(): Promise<KernelVhid[] | undefined>;
  /** Brings the kernel's counter for `group` in line with carpd's share; resolves when written. */
  protected abstract writeDemotion(group: string): Promise<void>;
  /** Start following the kernel's events (devd, route monitor). */
  protected abstract openEvents(): void;
  /** Stop following them: close the socket or end the child, cancel its retry. */
  protected abstract closeEvents(): void;
  /** The groups in which carpd may have demoted, to take back at stop. */
  protected abstract demotedGroups(): string[];

  /** Follows the events first, then reads the kernel: a change in between is in one of the two. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.openEvents();
    await this.snapshotNow();
    this.applyLedger();
    this.armSnapshots();
  }

  /** Stops following, then takes back exactly the demotion carpd added. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopSnapshots();
    this.closeEvents();
    await this.idle();
    await this.releaseDemotion(this.demotedGroups());
  }

  protected async runCmd(argv: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
    try {
      const r = await this.exec(argv, { timeoutMs: this.commandTimeoutMs, ...(this.opts.env ? { env: this.opts.env } : {}) });
      const ok = r.exitCode === 0;
      if (!ok)
        this.logger.log(LOG.WARN, `carp: kernel: ${argv[0]} failed: ${r.spawnError ?? r.signal ?? `exit ${r.exitCode}`} ${r.stderr.trim().slice(0, 200)}`);
      return { ok, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      this.logger.log(LOG.WARN, `carp: kernel: ${argv[0]} failed: ${err instanceof Error ? err.message : String(err)}`);
      return { ok: false, stdout: '', stderr: '' };
    }
  }

  protected now(): number {
    return (this.opts.monotonic ?? (() => performance.now()))();
  }

  /** Marks that an event about `key` arrived (a snapshot already running leaves that key alone). */
  protected noteEvent(key: string): void {
    this.eventGen.set(key, (this.eventGen.get(key) ?? 0) + 1);
  }

  /** A vhid's state as an event reports it; emits when it changed. False when the key is unknown. */
  protected applyEvent(key: string, state: CarpState, reason: string): boolean {
    const e = this.entries.get(key);
    if (!e) return false;
    this.noteEvent(key);
    if (e.state !== state) this.transition(e, state, reason);
    return true;
  }

  protected transition(e: Entry, to: CarpState, reason: string): void {
    const from = e.state;
    e.state = to;
    e.lastReason = reason;
    const ev: TransitionEvent = {
      seq: ++this.seq,
      time: (this.opts.wallClock?.() ?? new Date()).toISOString(),
      vhid: e.vhid,
      interface: e.interface,
      key: e.key,
      from,
      to,
      reason,
    };
    e.lastTransition = { seq: ev.seq, time: ev.time, from, to, reason };
    this.logger.log(LOG.STATE, `carp: ${e.key}: ${from} -> ${to} (${reason})`);
    // A listener that throws must not stop the others, nor the source: each is called on its own
    // (EventEmitter.emit would skip the listeners after a throwing one); raw, so once() wrappers remove themselves.
    for (const fn of this.rawListeners('transition') as ((ev: TransitionEvent) => void)[]) {
      try {
        fn(ev);
      } catch (err) {
        this.logger.log(LOG.ERR, `carp: ${e.key}: transition listener failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    // The pre-phase still runs (pre-master hooks), but the kernel already holds or dropped the VIP.
    try {
      const p = this.phaseGate?.(ev);
      if (p) p.catch(() => undefined);
    } catch (err) {
      this.logger.log(LOG.ERR, `carp: ${e.key}: pre-phase failed to start: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Takes a snapshot now; concurrent calls share one run, and a call during a run asks for one
   * more after it (so a change that happened mid-run is seen). Never rejects.
   */
  snapshotNow(): Promise<void> {
    if (this.snapshotting) {
      this.snapshotAgain = true;
      return this.snapshotting;
    }
    const p = (async () => {
      // Bounded: at most one follow-up per run requested meanwhile, and a few in a row.
      for (let i = 0; i < 4; i++) {
        this.snapshotAgain = false;
        await this.snapshotOnce();
        if (!this.snapshotAgain || !this.running) break;
      }
    })().finally(() => {
      this.snapshotting = undefined;
    });
    this.snapshotting = p;
    return p;
  }

  private async snapshotOnce(): Promise<void> {
    const gens = new Map(this.eventGen);
    const vhids = await this.readSnapshot();
    if (!vhids || !this.running) return;
    const seen = new Set<string>();
    for (const v of vhids) {
      seen.add(v.key);
      // An event about this key arrived while ifconfig ran: it is newer than what ifconfig printed.
      const stale = (this.eventGen.get(v.key) ?? 0) !== (gens.get(v.key) ?? 0);
      const e = this.entries.get(v.key);
      if (!e) {
        const fresh: Entry = { ...v, state: 'INIT', startedAt: this.now(), lastReason: 'kernel snapshot: found' };
        this.entries.set(v.key, fresh);
        if (v.state !== 'INIT') this.transition(fresh, v.state, `kernel snapshot: found ${v.state}`);
        continue;
      }
      e.advbase = v.advbase;
      e.advskew = v.advskew;
      e.addresses = v.addresses;
      e.groups = v.groups;
      if (v.carpIf !== undefined) e.carpIf = v.carpIf;
      e.interface = v.interface;
      if (!stale && e.state !== v.state) this.transition(e, v.state, `kernel snapshot: was ${e.state}, now ${v.state}`);
    }
    for (const [key, e] of [...this.entries]) {
      // An event about it during the run says it is there still; the next snapshot decides.
      if (seen.has(key) || (this.eventGen.get(key) ?? 0) !== (gens.get(key) ?? 0)) continue;
      // The vhid was removed from the kernel (ifconfig IF -vhid N, carpN destroyed).
      if (e.state !== 'INIT') this.transition(e, 'INIT', 'kernel snapshot: vhid gone');
      this.entries.delete(key);
      this.eventGen.delete(key);
    }
  }

  /** Starts the periodic snapshot; each run re-arms the next one after it finished. */
  protected armSnapshots(): void {
    if (this.snapshotIntervalMs <= 0 || !this.running) return;
    this.timers.clearTimeout(this.snapshotTimer);
    this.snapshotTimer = this.timers.setTimeout(() => {
      this.snapshotTimer = undefined;
      void this.snapshotNow().then(() => this.armSnapshots());
    }, this.snapshotIntervalMs);
  }

  protected stopSnapshots(): void {
    this.timers.clearTimeout(this.snapshotTimer);
    this.snapshotTimer = undefined;
  }

  /** Admin commands under way (force), so idle() can wait for them. */
  private readonly pending = new Set<Promise<unknown>>();

  protected track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }

  /** Waits for the admin commands, the demotion writes and the snapshot under way (tests and stop()). */
  async idle(): Promise<void> {
    // Bounded: a few rounds, as each may start a snapshot.
    for (let i = 0; i < 3; i++) {
      await Promise.all([...this.pending]);
      await this.demotionQueue;
      await this.snapshotting;
    }
  }

  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined, _budgetMs?: number): void {
    this.phaseGate = gate;
  }

  /** The kernel added or removed the VIP before the event reached us: nothing is queued. */
  netSettled(_key: string): Promise<void> {
    return Promise.resolve();
  }

  /** The kernel sends its own gratuitous ARP on becoming MASTER (carp_master_down → carp_send_arp). */
  refreshGarp(): number {
    return 0;
  }

  vhidStats(key: string): VhidCounters | undefined {
    return this.entries.has(key) ? { advertsSent: 0, advertsReceived: 0, transitionsToMaster: 0, badauth: 0 } : undefined;
  }

  status(): VhidStatus[] {
    const now = this.now();
    return [...this.entries.values()].map((e) => {
      const name = this.opts.names?.get(e.key) ?? e.carpIf;
      return {
        key: e.key,
        vhid: e.vhid,
        interface: e.interface,
        ...(name ? { name } : {}),
        state: e.state,
        advbase: e.advbase,
        advskew: e.advskew,
        // The kernel sends its advskew as configured (the demotion travels in its own field).
        wireAdvskew: e.advskew,
        demote: Math.min(255, Math.max(0, this.kernelDemotion)),
        addresses: [...e.addresses],
        groups: [...e.groups],
        lastReason: e.lastReason,
        ...(e.lastTransition ? { lastTransition: { ...e.lastTransition } } : {}),
        upMs: now - e.startedAt,
      };
    });
  }

  /** Before start() only the ledger moves (start writes it); after stop() nothing is written again. */
  demote(group: string, by: string, delta: number): number {
    const total = this.ledgerImpl.adjust(group, by, delta);
    if (this.running) void this.queueDemotion(group);
    return total;
  }

  setDemotion(group: string, by: string, count: number): number {
    const total = this.ledgerImpl.set(group, by, count);
    if (this.running) void this.queueDemotion(group);
    return total;
  }

  /** Writes what the ledger held before start(). */
  protected applyLedger(): void {
    for (const g of new Set(this.ledgerImpl.entries().map((e) => e.group))) void this.queueDemotion(g);
  }

  /** The kernel write runs after the ones before it; a failed write is retried by the next call. */
  protected queueDemotion(group: string): Promise<void> {
    this.demotionQueue = this.demotionQueue
      .then(() => this.writeDemotion(group))
      .catch((err: unknown) => {
        this.logger.log(LOG.ERR, `carp: kernel: demotion of ${group} failed: ${err instanceof Error ? err.message : String(err)}`);
      });
    return this.demotionQueue;
  }

  /** Undo carpd's whole share in the kernel (shutdown). */
  protected async releaseDemotion(groups: Iterable<string>): Promise<void> {
    this.ledgerImpl.clear();
    for (const g of groups) await this.queueDemotion(g);
  }

  protected key(vhid: number, ifname: string): string {
    return `${vhid}@${ifname}`;
  }

  protected entry(key: string): Readonly<KernelVhid> | undefined {
    return this.entries.get(key);
  }

  protected keysOn(carpIf: string): string[] {
    return [...this.entries.values()].filter((e) => e.carpIf === carpIf).map((e) => e.key);
  }
}
