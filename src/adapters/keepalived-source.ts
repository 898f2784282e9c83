/**
 * KeepalivedSource: the StateSource for a Linux box where keepalived runs VRRP and carpd follows it.
 *
 * Keys: one vhid per vrrp_instance, key `INSTANCE@<name>` (`INSTANCE@VI_1`): the fifo's own first
 * word, then the instance name, which is unique in a keepalived.conf where vrid@interface need not
 * be (VRRPv2 and v3, IPv4 and IPv6 instances may share a vrid). `vhid` and `interface` carry
 * keepalived's virtual_router_id and interface once a state dump has told them (0 and '' before).
 * A sync group is the instance's demotion/scope group: status().groups is `['carp', <group>]`, so
 * a plugin following `group:<sync group>` sees the group MASTER when all members are (as
 * keepalived's sync groups behave). keepalived's own GROUP lines are kept as syncGroups() and
 * emitted as 'group' events with key `GROUP@<name>`; they are not vhid transitions.
 *
 * Events: notify_fifo lines (notify_fifo() in keepalived/vrrp/vrrp_notify.c). keepalived opens the
 * FIFO O_RDWR|O_NONBLOCK (fifo_open() in keepalived/core/notify.c) and drops a line no reader
 * takes, so the fifo is never the only truth:
 * State: a state dump on SIGUSR1 (vrrp_print_data(), keepalived.data) or SIGJSON
 * (vrrp_print_json(), keepalived.json) at start, when keepalived's pid changes, after a STOP or
 * an unknown instance on the fifo, and every `resnapshotMs`.
 * Demotion: the DemotionLedger's total goes into keepalived's track_file, which keepalived applies
 * as value × weight to the priority (track_file.c update_track_file_status()).
 * keepalived has no forced state, no pre-phase that can hold its VIP, and its packet counters are
 * its own: force() is false, the phase gate is called but not waited for, the counters stay 0.
 */
import { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { DEFAULT_GROUP, DemotionLedger } from '../core/demotion.js';
import { LOG, type Logger } from '../ports/logger.js';
import type {
  CarpState,
  DemotionView,
  LastTransition,
  StateSource,
  StateSourceCapabilities,
  TransitionEvent,
  VhidCounters,
  VhidStatus,
} from '../ports/state-source.js';
import { newStats, type CarpStats } from '../proto/counters.js';
import { DEFAULT_FIFO, DEFAULT_TRACK_FILE } from '../sources/keepalived-conf.js';
import { parseKeepalivedData, type KeepalivedTrackRef } from '../sources/keepalived-data.js';
import { parseKeepalivedFifoLine } from '../sources/keepalived-fifo.js';
import { parseKeepalivedJson, type KeepalivedJsonInstance } from '../sources/keepalived-json.js';
import { LineSplitter } from '../sources/text.js';
import { realKeepalivedIo, type FifoReader, type FileIdentity, type KeepalivedIo } from './keepalived-io.js';

export interface KeepalivedSourceOptions {
  logger: Logger;
  io?: KeepalivedIo;
  /** The notify_fifo carpd creates and reads. */
  fifo?: string;
  /** The track_file carpd writes its demotion into. */
  trackFile?: string;
  /** Demotion groups with a track_file of their own; the others add up in `trackFile`. */
  groupTrackFiles?: Record<string, string>;
  /** keepalived's main pid file (`-p`); it forwards the dump signals to its VRRP child. */
  pidFile?: string;
  /** Where the VRRP child writes its dumps: `$TMPDIR/keepalived.data` (open_dump_file()). */
  dataFile?: string;
  jsonFile?: string;
  /** `data` (has sync groups and tracked files), `json` (needs --enable-json), or `auto`: data, then json. */
  dump?: 'data' | 'json' | 'auto';
  /** How often the pid file is read (ms). */
  pidCheckMs?: number;
  /**
   * How often a fresh dump corrects missed fifo lines (ms; default 5 min). Lines are lost only
   * when the FIFO's pipe buffer fills while carpd stalls, and each dump costs a log line in
   * keepalived ("Printing VRRP data … on signal"), so this is rare.
   */
  resnapshotMs?: number;
  /** How long a dump may take to appear (ms). */
  dumpTimeoutMs?: number;
  wallClock?: () => Date;
  /** Monotonic ms. */
  now?: () => number;
}

/** What carpd knows of one vrrp_instance. */
interface Instance {
  name: string;
  state: CarpState;
  /** keepalived's own word (MASTER, BACKUP, FAULT, STOP, …). */
  kaState: string;
  vrid?: number;
  interface?: string;
  priority?: number;
  effectivePriority?: number;
  syncGroup?: string;
  masterRouter?: string;
  vips: string[];
  trackFiles: KeepalivedTrackRef[];
  lastReason: string;
  lastTransition?: LastTransition;
  seenAt: number;
  toMaster: number;
  /** counters.fifoLines when its last notify line arrived (0: none). */
  lastLine: number;
}

/** One instance as a dump reports it, data or JSON. */
interface DumpInstance {
  name: string;
  state: CarpState;
  kaState: string;
  vrid?: number;
  interface?: string;
  priority?: number;
  effectivePriority?: number;
  syncGroup?: string;
  masterRouter?: string;
  vips: string[];
  trackFiles?: KeepalivedTrackRef[];
}

interface Dump {
  instances: DumpInstance[];
  groups?: { name: string; state: string }[];
}

export type SyncGroupState = { name: string; state: CarpState; kaState: string };

/** SIGUSR1 and SIGRTMIN+2 with glibc, used when `keepalived --signum` cannot be asked. */
const FALLBACK_SIGNUM = { DATA: 10, JSON: 36 } as const;
/**
 * A process younger than this may not have installed its handlers yet, and SIGUSR1's default
 * action is to terminate: the dump waits until keepalived has been up this long.
 */
const START_GRACE_MS = 1_500;
const DUMP_POLL_MS = 10;
/** Reads of a fresh dump until two agree (a dump rewritten in place can be read half-written). */
const DUMP_READS = 20;
/** A STOP or an unknown instance on the fifo asks for a dump this much later, so a burst asks once. */
const DUMP_DEBOUNCE_MS = 250;
/** keepalived's FAULT is −254 (process_update_vrrp_track_file_status()); carpd's demotion never faults. */
export const MAX_TRACK_VALUE = 253;

export const instanceKey = (name: string): string => `INSTANCE@${name}`;
export const groupKey = (name: string): string => `GROUP@${name}`;

export class KeepalivedSource extends EventEmitter implements StateSource {
  readonly kind = 'keepalived' as const;
  readonly capabilities: StateSourceCapabilities = { forceState: false, prePhaseHoldsVip: false, packetCounters: false };
  readonly stats: CarpStats = newStats();
  readonly badAuthByPeer: ReadonlyMap<string, number> = new Map();
  private readonly ledgerImpl = new DemotionLedger();
  private readonly io: KeepalivedIo;
  private readonly instances = new Map<string, Instance>();
  private readonly groups = new Map<string, SyncGroupState>();
  private readonly opts: Required<Omit<KeepalivedSourceOptions, 'io' | 'wallClock' | 'now' | 'groupTrackFiles'>> & Pick<KeepalivedSourceOptions, 'wallClock'>;
  private readonly groupFiles: Record<string, string>;
  private readonly now: () => number;
  private seq = 0;
  private fifo: FifoReader | undefined;
  private splitter = new LineSplitter();
  /** A pid check is under way (they run on an interval and must not overlap). */
  private checking = false;
  private readonly decoder = new StringDecoder('utf8');
  private phaseGate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined;
  private pid: number | undefined;
  /** Whether `pid` was alive when last looked at. */
  private pidAlive = false;
  private pidTimer: NodeJS.Timeout | undefined;
  private resnapTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private dumping: Promise<boolean> | undefined;
  private dumpAgain = false;
  private signums: { DATA?: number; JSON?: number } | undefined;
  private running = false;
  /** Track files: the value last asked for, and the write in flight. */
  private readonly trackWrites = new Map<string, { want: number; written?: number; busy?: Promise<void> }>();
  /** Counts for tests and status: fifo lines read, dumps taken, lines refused. */
  readonly counters = { fifoLines: 0, fifoRejected: 0, dumps: 0, dumpFailures: 0 };

  constructor(opts: KeepalivedSourceOptions) {
    super();
    this.io = opts.io ?? realKeepalivedIo;
    this.opts = {
      logger: opts.logger,
      fifo: opts.fifo ?? DEFAULT_FIFO,
      trackFile: opts.trackFile ?? DEFAULT_TRACK_FILE,
      pidFile: opts.pidFile ?? '/run/keepalived.pid',
      dataFile: opts.dataFile ?? '/tmp/keepalived.data',
      jsonFile: opts.jsonFile ?? '/tmp/keepalived.json',
      dump: opts.dump ?? 'auto',
      pidCheckMs: Math.max(100, opts.pidCheckMs ?? 1_000),
      resnapshotMs: Math.max(1_000, opts.resnapshotMs ?? 300_000),
      dumpTimeoutMs: Math.max(100, opts.dumpTimeoutMs ?? 3_000),
      wallClock: opts.wallClock,
    };
    this.groupFiles = { ...opts.groupTrackFiles };
    this.now = opts.now ?? (() => performance.now());
  }

  get ledger(): DemotionView {
    return this.ledgerImpl;
  }

  private log(level: number, msg: string): void {
    this.opts.logger.log(level, msg);
  }

  /**
   * Creates and opens the FIFO, writes the current demotion, and takes the first dump, so the
   * state is right even when keepalived started first. Resolves once that dump is in (or failed).
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.openFifo();
    } catch (err) {
      this.running = false;
      throw err;
    }
    await this.writeTracks();
    this.pidTimer = setInterval(() => void this.checkPid(), this.opts.pidCheckMs);
    this.pidTimer.unref();
    this.resnapTimer = setInterval(() => void this.snapshot('periodic'), this.opts.resnapshotMs);
    this.resnapTimer.unref();
    await this.snapshot('start');
  }

  /** Stops reading, and takes carpd's demotion back out of keepalived (the track files read 0). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.pidTimer);
    clearInterval(this.resnapTimer);
    clearTimeout(this.debounceTimer);
    this.fifo?.close();
    this.fifo = undefined;
    await this.dumping?.catch(() => undefined);
    this.ledgerImpl.clear();
    await this.writeTracks();
  }

  private async openFifo(): Promise<void> {
    const path = this.opts.fifo;
    await this.io.ensureFifo(path);
    // A partial line from a FIFO we no longer read must not prefix the first line of the next one.
    this.splitter = new LineSplitter();
    const reader = await this.io.openFifo(
      path,
      (chunk) => this.onChunk(chunk),
      (err) => {
        this.log(LOG.ERR, `keepalived: reading ${path}: ${err.message}; reopening it`);
        reader.close();
        if (this.fifo === reader) this.fifo = undefined;
      },
    );
    this.fifo = reader;
  }

  /**
   * keepalived may unlink a FIFO it created when it exits (notify_fifo_close() in the current
   * sources; Debian's 2.2.7 was seen to leave it), and an admin may remove it: whatever is at the
   * path now, if it is not the inode we read, is opened (or made) again.
   */
  private async checkFifo(): Promise<void> {
    if (this.fifo) {
      if (await this.fifo.stillAtPath()) return;
      this.log(LOG.WARN, `keepalived: ${this.opts.fifo} was replaced or removed; reopening it`);
      this.fifo.close();
      this.fifo = undefined;
    }
    try {
      if (this.running) await this.openFifo();
    } catch (err) {
      this.log(LOG.ERR, `keepalived: cannot reopen ${this.opts.fifo}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private onChunk(chunk: Buffer): void {
    for (const line of this.splitter.push(this.decoder.write(chunk))) this.onLine(line);
  }

  /** One notify_fifo line. Exported behaviour: the unit tests feed lines through a fake FIFO. */
  private onLine(line: string): void {
    this.counters.fifoLines++;
    const l = parseKeepalivedFifoLine(line);
    switch (l.kind) {
      case 'invalid':
        this.counters.fifoRejected++;
        if (this.counters.fifoRejected <= 10) this.log(LOG.WARN, `keepalived: ${this.opts.fifo}: ${l.reason}`);
        return;
      case 'other':
        return;
      case 'rx-lower-priority':
        return;
      case 'priority': {
        const inst = this.instances.get(l.name);
        if (inst) inst.effectivePriority = l.priority;
        return;
      }
      case 'group': {
        const prev = this.groups.get(l.name);
        this.groups.set(l.name, { name: l.name, state: l.carpState, kaState: l.state });
        if (prev?.state !== l.carpState) this.emitGroup(l.name, prev?.state ?? 'INIT', l.carpState, `keepalived: sync group ${l.state}`);
        return;
      }
      case 'instance': {
        const known = this.instances.get(l.name);
        const inst = known ?? this.addInstance(l.name);
        inst.lastLine = this.counters.fifoLines;
        inst.effectivePriority = l.priority;
        inst.kaState = l.state;
        this.move(inst, l.carpState, `keepalived: ${l.state}, priority ${l.priority}`);
        if (l.state === 'DELETED') this.instances.delete(l.name);
        // A new instance (keepalived started or reloaded) or one stopping: the dump tells the rest.
        if (!known || l.state === 'STOP' || l.state === 'DELETED') this.snapshotSoon();
        return;
      }
    }
  }

  private addInstance(name: string): Instance {
    const inst: Instance = {
      name,
      state: 'INIT',
      kaState: 'INIT',
      vips: [],
      trackFiles: [],
      lastReason: 'not seen yet',
      seenAt: this.now(),
      toMaster: 0,
      lastLine: 0,
    };
    this.instances.set(name, inst);
    return inst;
  }

  /** A state change of one instance: recorded, then announced. */
  private move(inst: Instance, to: CarpState, reason: string): void {
    inst.lastReason = reason;
    if (inst.state === to) return;
    const from = inst.state;
    inst.state = to;
    if (to === 'MASTER') inst.toMaster++;
    const ev: TransitionEvent = {
      seq: ++this.seq,
      time: (this.opts.wallClock?.() ?? new Date()).toISOString(),
      vhid: inst.vrid ?? 0,
      interface: inst.interface ?? '',
      key: instanceKey(inst.name),
      from,
      to,
      reason,
    };
    inst.lastTransition = { seq: ev.seq, time: ev.time, from, to, reason };
    this.log(LOG.STATE, `keepalived: ${ev.key}: ${from} -> ${to} (${reason})`);
    // keepalived has moved the VIP already (or will, on its own): the gate is told, never awaited.
    try {
      this.phaseGate?.(ev)?.catch(() => undefined);
    } catch (err) {
      this.log(LOG.ERR, `keepalived: ${ev.key}: pre-phase failed to start: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      this.emit('transition', ev);
    } catch (err) {
      this.log(LOG.ERR, `keepalived: ${ev.key}: transition listener failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private emitGroup(name: string, from: CarpState, to: CarpState, reason: string): void {
    const ev: TransitionEvent = {
      seq: ++this.seq,
      time: (this.opts.wallClock?.() ?? new Date()).toISOString(),
      vhid: 0,
      interface: '',
      key: groupKey(name),
      from,
      to,
      reason,
    };
    try {
      this.emit('group', ev);
    } catch (err) {
      this.log(LOG.ERR, `keepalived: ${ev.key}: group listener failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private snapshotSoon(): void {
    if (!this.running || this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.snapshot('fifo');
    }, DUMP_DEBOUNCE_MS);
    this.debounceTimer.unref();
  }

  private async readPid(): Promise<number | undefined> {
    const text = await this.io.readText(this.opts.pidFile).catch(() => undefined);
    const n = Number(text?.trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  }

  private async checkPid(): Promise<void> {
    if (!this.running || this.checking) return;
    this.checking = true;
    try {
      await this.checkPidOnce();
    } catch (err) {
      this.log(LOG.ERR, `keepalived: checking ${this.opts.pidFile}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.checking = false;
    }
  }

  private async checkPidOnce(): Promise<void> {
    await this.checkFifo();
    const pid = await this.readPid();
    // kill -9 leaves the pid file behind: the same pid, no longer alive, is keepalived gone too.
    const alive = pid !== undefined && (await this.alive(pid));
    if (pid === this.pid && alive === this.pidAlive) return;
    this.log(LOG.INFO, `keepalived: pid ${this.pid ?? 'none'} -> ${pid ?? 'none'}${alive ? '' : ' (not running)'}; taking a fresh state dump`);
    this.pid = pid;
    this.pidAlive = alive;
    // Not awaited: a dump still waiting on the keepalived that died (up to dumpTimeoutMs per kind)
    // must not hold up noticing the next one; snapshot() runs one more round for this request.
    void this.snapshot('pid');
  }

  /**
   * Takes a dump and applies it. One at a time: a request while one runs asks for one more after
   * it, never more. Resolves true when a dump was applied.
   */
  snapshot(why: string): Promise<boolean> {
    if (!this.running) return Promise.resolve(false);
    if (this.dumping) {
      this.dumpAgain = true;
      return this.dumping;
    }
    const run = async (): Promise<boolean> => {
      let ok = false;
      // Bounded: at most one extra round for requests that came in meanwhile.
      for (let round = 0; round < 2 && this.running; round++) {
        this.dumpAgain = false;
        // Runs from timers with nobody to catch: a failure (EPERM, say) is logged, never thrown.
        ok = await this.snapshotOnce(why).catch((err: unknown) => {
          this.counters.dumpFailures++;
          this.log(LOG.ERR, `keepalived: state dump failed: ${err instanceof Error ? err.message : String(err)}`);
          return false;
        });
        if (!this.dumpAgain) break;
      }
      return ok;
    };
    this.dumping = run().finally(() => (this.dumping = undefined));
    return this.dumping;
  }

  private async snapshotOnce(why: string): Promise<boolean> {
    const pid = await this.readPid();
    this.pid = pid;
    this.pidAlive = pid !== undefined && (await this.alive(pid));
    if (pid === undefined || !this.pidAlive) {
      this.notRunning(pid === undefined ? `no pid in ${this.opts.pidFile}` : `pid ${pid} is gone`);
      return false;
    }
    const age = await this.io.processAgeMs(pid);
    if (age !== undefined && age < START_GRACE_MS) await sleep(START_GRACE_MS - age);
    if (!this.running) return false;
    const kinds: ('data' | 'json')[] = this.opts.dump === 'auto' ? ['data', 'json'] : [this.opts.dump];
    for (const kind of kinds) {
      const mark = this.counters.fifoLines;
      const dump = await this.takeDump(pid, kind);
      if (!this.running) return false;
      if (dump) {
        this.counters.dumps++;
        this.apply(dump, `keepalived state dump (${why})`, mark);
        return true;
      }
    }
    this.counters.dumpFailures++;
    return false;
  }

  /**
   * A pid file outlives a keepalived killed with -9, and its pid may since belong to another
   * program, which SIGUSR1 would kill: only a live process named keepalived is signalled.
   */
  private async alive(pid: number): Promise<boolean> {
    if (!this.io.signal(pid, 0)) return false;
    return (await this.io.processName(pid)) === 'keepalived';
  }

  /** keepalived is gone: none of its instances holds anything now. */
  private notRunning(why: string): void {
    for (const inst of this.instances.values()) {
      inst.kaState = 'STOP';
      this.move(inst, 'INIT', `keepalived is not running (${why})`);
    }
  }

  private async signalNumber(kind: 'DATA' | 'JSON'): Promise<number> {
    if (!this.signums) {
      const [DATA, JSON] = await Promise.all([this.io.signum('DATA').catch(() => undefined), this.io.signum('JSON').catch(() => undefined)]);
      this.signums = { ...(DATA ? { DATA } : {}), ...(JSON ? { JSON } : {}) };
    }
    return this.signums[kind] ?? FALLBACK_SIGNUM[kind];
  }

  /**
   * Signals keepalived and reads the dump once it has been rewritten. Debian's 2.2.7 writes it to
   * a temporary file and renames it (fopen_safe()); older versions rewrite it in place, hence the
   * reads until two agree.
   */
  private async takeDump(pid: number, kind: 'data' | 'json'): Promise<Dump | undefined> {
    const path = kind === 'data' ? this.opts.dataFile : this.opts.jsonFile;
    const before = await this.io.identity(path);
    const sig = await this.signalNumber(kind === 'data' ? 'DATA' : 'JSON');
    if (!this.io.signal(pid, sig)) return undefined;
    const deadline = this.now() + this.opts.dumpTimeoutMs;
    let fresh: FileIdentity | undefined;
    while (this.now() < deadline && this.running) {
      const id = await this.io.identity(path);
      if (id && id.size > 0 && !sameIdentity(id, before)) {
        fresh = id;
        break;
      }
      await sleep(DUMP_POLL_MS);
    }
    if (!fresh) {
      this.log(LOG.WARN, `keepalived: no fresh ${path} within ${this.opts.dumpTimeoutMs} ms of signal ${sig} to pid ${pid}`);
      return undefined;
    }
    let last: string | undefined;
    for (let i = 0; i < DUMP_READS && this.running; i++) {
      const text = await this.io.readText(path).catch(() => undefined);
      if (text !== undefined && text === last) {
        const dump = kind === 'data' ? fromData(text) : fromJson(text);
        if (typeof dump === 'string') {
          this.log(LOG.WARN, `keepalived: ${path}: ${dump}`);
          return undefined;
        }
        return dump;
      }
      last = text;
      await sleep(DUMP_POLL_MS);
    }
    this.log(LOG.WARN, `keepalived: ${path} kept changing; dump ignored`);
    return undefined;
  }

  /**
   * A dump is the truth: states move to it, instances it lacks are gone. Except for an instance
   * whose notify line came in after the signal (line number > `mark`): keepalived may have
   * written the dump before that change, and the line is at least as new as the dump.
   */
  private apply(dump: Dump, reason: string, mark: number): void {
    const names = new Set(dump.instances.map((d) => d.name));
    for (const [name, inst] of this.instances) {
      if (names.has(name) || inst.lastLine > mark) continue;
      this.move(inst, 'INIT', `${reason}: instance no longer configured`);
      this.instances.delete(name);
    }
    for (const d of dump.instances) {
      const inst = this.instances.get(d.name) ?? this.addInstance(d.name);
      if (d.vrid !== undefined) inst.vrid = d.vrid;
      if (d.interface !== undefined) inst.interface = d.interface;
      if (d.priority !== undefined) inst.priority = d.priority;
      if (d.effectivePriority !== undefined) inst.effectivePriority = d.effectivePriority;
      if (d.syncGroup !== undefined) inst.syncGroup = d.syncGroup;
      if (d.masterRouter !== undefined || d.state !== 'BACKUP') inst.masterRouter = d.masterRouter;
      inst.vips = d.vips;
      if (d.trackFiles) inst.trackFiles = d.trackFiles;
      if (inst.lastLine > mark) continue;
      inst.kaState = d.kaState;
      if (inst.state !== d.state) this.move(inst, d.state, `${reason}: ${d.kaState}`);
    }
    for (const g of dump.groups ?? []) {
      const prev = this.groups.get(g.name);
      const state = g.state === 'MASTER' ? 'MASTER' : g.state === 'BACKUP' ? 'BACKUP' : 'INIT';
      this.groups.set(g.name, { name: g.name, state, kaState: g.state });
      if (prev && prev.state !== state) this.emitGroup(g.name, prev.state, state, `${reason}: sync group ${g.state}`);
    }
  }

  // --- demotion ---------------------------------------------------------------------------

  /** The value a track file should hold: its groups' demotion, capped below keepalived's FAULT. */
  private trackValues(): Map<string, number> {
    const out = new Map<string, number>();
    const own = new Set(Object.keys(this.groupFiles));
    const rest = new Set<string>([DEFAULT_GROUP, ...this.ledgerImpl.entries().map((e) => e.group)].filter((g) => !own.has(g)));
    out.set(this.opts.trackFile, Math.min(MAX_TRACK_VALUE, this.ledgerImpl.forGroups([...rest])));
    for (const [group, path] of Object.entries(this.groupFiles)) {
      out.set(path, Math.min(MAX_TRACK_VALUE, (out.get(path) ?? 0) + this.ledgerImpl.total(group)));
    }
    return out;
  }

  /** Brings every track file to its value; writes to one file never overlap, the last value wins. */
  private writeTracks(): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const [path, value] of this.trackValues()) {
      let w = this.trackWrites.get(path);
      if (!w) this.trackWrites.set(path, (w = { want: value }));
      w.want = value;
      jobs.push(this.flushTrack(path, w));
    }
    return Promise.all(jobs).then(() => undefined);
  }

  private flushTrack(path: string, w: { want: number; written?: number; busy?: Promise<void> }): Promise<void> {
    if (w.busy) return w.busy.then(() => (w.written === w.want ? undefined : this.flushTrack(path, w)));
    if (w.written === w.want) return Promise.resolve();
    const value = w.want;
    w.busy = this.io
      .writeAtomic(path, `${value}\n`)
      .then(
        () => {
          w.written = value;
        },
        (err: unknown) => {
          this.log(LOG.ERR, `keepalived: cannot write ${path}: ${err instanceof Error ? err.message : String(err)}`);
        },
      )
      .finally(() => {
        w.busy = undefined;
      });
    return w.busy.then(() => (w.written === w.want || w.written !== value ? undefined : this.flushTrack(path, w)));
  }

  /** Resolves when every track file write asked for so far is done. */
  async demotionWritten(): Promise<void> {
    await this.writeTracks();
  }

  demote(group: string, by: string, delta: number): number {
    const total = this.ledgerImpl.adjust(group, by, delta);
    void this.writeTracks();
    return total;
  }

  setDemotion(group: string, by: string, count: number): number {
    const total = this.ledgerImpl.set(group, by, count);
    void this.writeTracks();
    return total;
  }

  /** The demotion an instance gets from carpd: the value of its sync group's file, else the default file's. */
  private demotionOf(inst: Instance): number {
    const path = (inst.syncGroup && this.groupFiles[inst.syncGroup]) || this.opts.trackFile;
    return this.trackValues().get(path) ?? 0;
  }

  // --- the rest of the port -----------------------------------------------------------------

  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined): void {
    this.phaseGate = gate;
  }

  netSettled(_key: string): Promise<void> {
    return Promise.resolve();
  }

  force(_key: string, _state: 'MASTER' | 'BACKUP', _reason?: string, _holdMs?: number): boolean {
    return false;
  }

  refreshGarp(): number {
    return 0;
  }

  vhidStats(key: string): VhidCounters | undefined {
    const inst = this.byKey(key);
    return inst && { advertsSent: 0, advertsReceived: 0, transitionsToMaster: inst.toMaster, badauth: 0 };
  }

  private byKey(key: string): Instance | undefined {
    return key.startsWith('INSTANCE@') ? this.instances.get(key.slice('INSTANCE@'.length)) : undefined;
  }

  /** keepalived's sync groups as its GROUP lines and dumps last said. */
  syncGroups(): SyncGroupState[] {
    return [...this.groups.values()].map((g) => ({ ...g }));
  }

  /** keepalived's pid as last read. */
  get keepalivedPid(): number | undefined {
    return this.pid;
  }

  status(): VhidStatus[] {
    const now = this.now();
    return [...this.instances.values()].map((inst) => ({
      key: instanceKey(inst.name),
      vhid: inst.vrid ?? 0,
      interface: inst.interface ?? '',
      name: inst.name,
      state: inst.state,
      // keepalived elects by priority, not advbase/advskew; these carry no CARP meaning here.
      advbase: 0,
      advskew: 0,
      wireAdvskew: 0,
      demote: this.demotionOf(inst),
      addresses: [...inst.vips],
      groups: inst.syncGroup ? [DEFAULT_GROUP, inst.syncGroup] : [DEFAULT_GROUP],
      ...(inst.masterRouter ? { masterSrc: inst.masterRouter } : {}),
      lastReason: inst.lastReason,
      ...(inst.lastTransition ? { lastTransition: { ...inst.lastTransition } } : {}),
      upMs: now - inst.seenAt,
    }));
  }

  /** keepalived's own view of an instance: its state word and priorities (status() keeps CARP's shape). */
  keepalivedView(key: string): { kaState: string; priority?: number; effectivePriority?: number; trackFiles: KeepalivedTrackRef[] } | undefined {
    const inst = this.byKey(key);
    if (!inst) return undefined;
    return {
      kaState: inst.kaState,
      ...(inst.priority !== undefined ? { priority: inst.priority } : {}),
      ...(inst.effectivePriority !== undefined ? { effectivePriority: inst.effectivePriority } : {}),
      trackFiles: inst.trackFiles.map((t) => ({ ...t })),
    };
  }
}

function sameIdentity(a: FileIdentity, b: FileIdentity | undefined): boolean {
  return b !== undefined && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The fields both dumps carry. */
function dumpInstance(i: KeepalivedJsonInstance): DumpInstance {
  return {
    name: i.name,
    state: i.carpState,
    kaState: i.state,
    ...(i.vrid !== undefined ? { vrid: i.vrid } : {}),
    ...(i.interface !== undefined ? { interface: i.interface } : {}),
    ...(i.priority !== undefined ? { priority: i.priority } : {}),
    ...(i.effectivePriority !== undefined ? { effectivePriority: i.effectivePriority } : {}),
    vips: i.vips,
  };
}

function fromData(text: string): Dump | string {
  const d = parseKeepalivedData(text);
  if (d.kind === 'invalid') return d.reason;
  return {
    instances: d.instances.map((i) => ({
      ...dumpInstance(i),
      ...(i.syncGroup !== undefined ? { syncGroup: i.syncGroup } : {}),
      ...(i.masterRouter !== undefined ? { masterRouter: i.masterRouter } : {}),
      trackFiles: i.trackFiles,
    })),
    groups: d.groups,
  };
}

function fromJson(text: string): Dump | string {
  const d = parseKeepalivedJson(text);
  if (d.kind === 'invalid') return d.reason;
  return { instances: d.instances.map(dumpInstance) };
}
