/**
 * The whole CARP node as a pure reducer: every vhid's machine, the demotion ledger, and the
 * policy around them that is not per-vhid (send-error demotion, VIP failure and its backoff,
 * the make-before-break handover, the pre-phase budget, reconfiguration). No I/O and no clock:
 * `now` (monotonic ms) is an input, timers are data (`NamedTimer`), and every output is an effect
 * for the shell to perform, in order. The shell (src/daemon/engine.ts) owns sockets, the codec,
 * the VIP commands and the one real timer armed for `nextDue()`.
 */
import { DEFAULT_GROUP, DemotionLedger } from './demotion.js';
import { LOG } from './levels.js';
import { VhidMachine, intervalMs, type Advert, type CarpState, type Input as MachineInput, type MasterDownFormula, type VrrpFields } from './machine.js';
import { ReplayGuard, type ReplayProtection } from './replay.js';
import { VrrpMachine } from './vrrp-machine.js';

/** One vhid as the node needs it; the shell derives it from the configuration. */
export interface NodeVhid {
  key: string;
  vhid: number;
  ifname: string;
  addresses: string[];
  advbase: number;
  advskew: number;
  deadRatio: number;
  /** Our advert source: the configured one or the interface's address (the tie-break). */
  srcip?: string;
  /** Our IPv6 advert source (the interface's link-local), the tie-break against IPv6 adverts. */
  srcip6?: string;
  /** Demotion groups, `carp` first. */
  groups: string[];
  /** 3: VRRPv3 (src/core/vrrp-machine.ts), with `priority` and `intervalCs`; absent or 2: CARP. */
  version?: 2 | 3;
  /** VRRPv3 priority, 1..255 (default 100). */
  priority?: number;
  /** VRRPv3 advertisement interval, centiseconds (default 100). */
  intervalCs?: number;
  /** The vhid's configuration in canonical form: equal means unchanged on reconfigure. */
  fingerprint: string;
  /**
   * Where our advert counter starts (random, from the shell; the kernels' carp_prepare_ad()
   * starts at a random 64-bit value too). Absent: the vhid number, for tests of the election.
   */
  counter?: bigint;
}

export interface NodeConfig {
  preempt: boolean;
  masterDown: MasterDownFormula;
  /** Demotion of a dead link or a VIP that cannot be added (FreeBSD's 240). */
  ifdownDemotion: number;
  /** Demotion after SENDERR_MAX failed adverts in a row (FreeBSD senderr_demotion_factor). */
  senderrDemotion: number;
  /** Make-before-break: how long a demoted master that yields keeps its VIP. 0: off. */
  handoverHoldMs: number;
  /** How strictly advert counters are checked (src/core/replay.ts). Default `once`. */
  replayProtection?: ReplayProtection;
  /** Standing demotions of the configuration, held by `config`. */
  demotions: { group: string; count: number }[];
  vhids: NodeVhid[];
  /**
   * How often to compare the VIPs with the kernel's address list (a `check-vips` effect, answered
   * with `vip-check`); the first check is at start. 0 or absent: never (the shell cannot list).
   */
  vipCheckMs?: number;
}

/** What `reconfigure` did, by vhid key. */
export interface ReconfigureResult {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

export type NodeInput =
  | { type: 'start'; config: NodeConfig; links: Record<string, boolean> }
  /**
   * An authenticated advert from a peer for `key`, with its counter. Without a counter (tests of
   * the election alone) the replay check is skipped; the shell always passes it.
   */
  | { type: 'advert'; key: string; advert: Advert; counter?: bigint }
  /** The shell's one timer fired: every machine timer and named timer due is served. */
  | { type: 'tick' }
  | { type: 'link'; ifname: string; up: boolean }
  /** The outcome of a VIP add the node asked for. */
  | { type: 'vip-result'; key: string; cidr: string; ok: boolean; error?: string }
  /** Whether adverts on `ifname` left (raw socket send results): one failure, or `count` good sends in a row. */
  | { type: 'send-result'; ifname: string; ok: boolean; count?: number }
  /** The pre-phase of transition `seq` finished (or there was none to wait for). */
  | { type: 'phase-done'; key: string; seq: number }
  /** Whether a pre-phase gate is installed, and its budget. */
  | { type: 'phase-gate'; on: boolean; budgetMs: number }
  | { type: 'reconfigure'; config: NodeConfig; links: Record<string, boolean> }
  | { type: 'demote'; group: string; by: string; delta: number }
  | { type: 'set-demotion'; group: string; by: string; count: number }
  | { type: 'force'; key: string; state: 'MASTER' | 'BACKUP'; reason: string; holdMs?: number }
  /** Gratuitous ARP for every VIP of every MASTER (the periodic refresh). */
  | { type: 'garp-refresh' }
  /**
   * The kernel's addresses now, per interface (`address/prefix`), for the reconcile: a MASTER's
   * VIP that is missing is added again, a VIP still on a BACKUP is removed. `skip`: vhids with VIP
   * work in flight, which the list may not show yet. `why`: what prompted the look, for the log.
   */
  | { type: 'vip-check'; addresses: Record<string, string[]>; skip?: string[]; why: string }
  | { type: 'shutdown' };

/** VIP work, performed by the shell in order per vhid. */
export type NetEffect =
  { type: 'vip'; op: 'add' | 'del'; key: string; ifname: string; cidr: string } | { type: 'garp'; key: string; ifname: string; cidr: string };

export type NodeEffect =
  /** Send an advert with this counter (the node owns the counter: src/core/replay.ts). */
  | { type: 'send'; key: string; ifname: string; advbase: number; advskew: number; demote: number; counter: bigint; vrrp?: VrrpFields }
  /** An authenticated advert dropped because its counter was seen before (carps_replay). */
  | { type: 'replay'; key: string; src: string; counter: bigint }
  | { type: 'transition'; key: string; seq: number; from: CarpState; to: CarpState; reason: string }
  /** Ask the plugin host's pre-phase for transition `seq`; answer with `phase-done`. */
  | { type: 'phase'; key: string; seq: number }
  | NetEffect
  | { type: 'log'; level: number; message: string }
  | { type: 'reconfigured'; result: ReconfigureResult }
  /** Read the kernel's addresses of the node's interfaces and answer with `vip-check`. */
  | { type: 'check-vips' }
  /** The reconcile found a VIP the kernel disagreed on and queued its repair (for the counters). */
  | { type: 'vip-repaired'; key: string; cidr: string; op: 'add' | 'del' };

/** A policy timer, as data: the shell arms one real timer for the earliest of these and the machines'. */
export interface NamedTimer {
  /** `check`: the periodic VIP reconcile (key ''). */
  timer: 'retry' | 'hold' | 'budget' | 'check';
  key: string;
  dueAt: number;
  /** retry: the address to add again. */
  cidr?: string;
  /** budget: the transition whose pre-phase is awaited. */
  seq?: number;
}

/** Consecutive failed (or, to undo, good) adverts for the send-error demotion (FreeBSD CARP_SENDAD_MAX_ERRORS / MIN_SUCCESS). */
export const SENDERR_MAX = 3;
/** First retry of a failed VIP add, doubling up to the max. */
export const VIP_RETRY_MS = 1000;
export const VIP_RETRY_MAX_MS = 30_000;
/** Sources per vhid whose single counter is remembered (OpenBSD's replay cookie). */
export const COOKIE_SOURCES = 16;
/** How far ahead of its due time a policy timer (retry, hold, budget, check) is served together with an earlier one. */
export const TIMER_BATCH_MS = 2;
/**
 * How early a MASTER's advert may leave, at most, to go out with the others, and how much earlier
 * still its next one may be armed to catch up with them (never more than a twentieth of the
 * interval): two adverts are at least the interval minus twice this apart. An early advert is
 * harmless: a backup's master-down time is three intervals and more. A late one is not, and a
 * master-down timer is never served early at all.
 */
export const ADVERT_EARLY_MS = 10;

interface Barrier {
  barrier: number;
  to: CarpState;
  done: boolean;
  armed: boolean;
}

interface Slot {
  cfg: NodeVhid;
  machine: VhidMachine | VrrpMachine;
  /** VIP work waiting behind pre-phase barriers, in order. */
  pending: (Barrier | NetEffect)[];
  /** VIPs kept after a planned MASTER → BACKUP until the hold timer releases them. */
  held: boolean;
  /** Addresses whose add failed and has not worked since, with the retries made. */
  failing: Map<string, number>;
  /** The vhid's counters: ours to send, and the check of every peer's. */
  replay: ReplayGuard;
  /** Per source: its first accepted advert, while it has never sent another counter (OpenBSD's cookie). */
  cookies: Map<string, { counter: bigint; advbase: number; advskew: number; demote: number } | null>;
}

/**
 * True when `ad` is strictly better than what `m` advertises: CARP, less demoted, or as demoted with
 * a shorter interval; VRRP, a higher priority. A tie decided by the source address is not.
 */
function outranks(ad: Advert, m: VhidMachine | VrrpMachine): boolean {
  if (m instanceof VrrpMachine) return ad.vrrp !== undefined && ad.vrrp.priority > m.wirePriority;
  if (ad.demote !== m.demoteByte) return ad.demote < m.demoteByte;
  return intervalMs(ad.advbase, ad.advskew) < intervalMs(m.cfg.advbase, m.wireAdvskew);
}

/** A MASTER's advertisement interval in ms (CARP: advbase + advskew/256 s; VRRPv3: centiseconds). */
function advertIntervalMs(m: VhidMachine | VrrpMachine): number {
  return m instanceof VrrpMachine ? m.cfg.intervalCs * 10 : intervalMs(m.cfg.advbase, m.wireAdvskew);
}

/** How early this machine's advert may leave: ADVERT_EARLY_MS, at most a twentieth of its interval. */
function earlyMs(m: VhidMachine | VrrpMachine): number {
  return Math.min(ADVERT_EARLY_MS, advertIntervalMs(m) / 20);
}

function timerId(t: Pick<NamedTimer, 'timer' | 'key' | 'cidr' | 'seq'>): string {
  return `${t.timer} ${t.key} ${t.cidr ?? ''} ${t.seq ?? ''}`;
}

export class CarpNode {
  readonly ledger = new DemotionLedger();
  private config: NodeConfig | undefined;
  private readonly slots = new Map<string, Slot>();
  private readonly named = new Map<string, NamedTimer>();
  private readonly sendHealth = new Map<string, { failedInRow: number; okInRow: number }>();
  private phase = { on: false, budgetMs: 500 };
  private seq = 0;
  private running = false;

  /** The machine of a vhid, read-only for status. */
  machine(key: string): Readonly<VhidMachine | VrrpMachine> | undefined {
    return this.slots.get(key)?.machine;
  }

  vhid(key: string): Readonly<NodeVhid> | undefined {
    return this.slots.get(key)?.cfg;
  }

  keys(): string[] {
    return [...this.slots.keys()];
  }

  state(key: string): CarpState | undefined {
    return this.slots.get(key)?.machine.state;
  }

  /** The interfaces that carry at least one vhid. */
  interfaces(): string[] {
    return [...new Set([...this.slots.values()].map((s) => s.cfg.ifname))];
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** The policy timers armed now, earliest first. */
  timers(): NamedTimer[] {
    return [...this.named.values()].sort((a, b) => a.dueAt - b.dueAt);
  }

  /** The earliest due time over every machine and named timer. */
  nextDue(): number | undefined {
    let earliest: number | undefined;
    const see = (t: number | undefined) => {
      if (t !== undefined && (earliest === undefined || t < earliest)) earliest = t;
    };
    if (!this.running) return undefined;
    for (const s of this.slots.values()) see(s.machine.nextDue());
    for (const t of this.named.values()) see(t.dueAt);
    return earliest;
  }

  step(input: NodeInput, now: number): NodeEffect[] {
    const out: NodeEffect[] = [];
    switch (input.type) {
      case 'start':
        this.start(input.config, input.links, now, out);
        break;
      case 'advert': {
        const s = this.slots.get(input.key);
        if (s && this.running) this.advert(s, input.advert, input.counter, now, out);
        break;
      }
      case 'tick':
        if (this.running) this.tick(now, out);
        break;
      case 'link':
        if (this.running) this.link(input.ifname, input.up, now, out);
        break;
      case 'vip-result':
        this.vipResult(input.key, input.cidr, input.ok, input.error, now, out);
        break;
      case 'send-result':
        this.sendResult(input.ifname, input.ok, input.count ?? 1, now, out);
        break;
      case 'phase-done': {
        const s = this.slots.get(input.key);
        const b = s?.pending.find((p): p is Barrier => 'barrier' in p && p.barrier === input.seq);
        if (s && b) {
          b.done = true;
          this.flush(s, now, out);
        }
        break;
      }
      case 'phase-gate':
        this.phase = { on: input.on, budgetMs: input.budgetMs };
        if (!input.on) for (const s of this.slots.values()) this.release(s, out);
        break;
      case 'reconfigure':
        this.reconfigure(input.config, input.links, now, out);
        break;
      case 'demote':
        this.ledger.adjust(input.group, input.by, input.delta);
        this.refreshDemotion(now, out);
        break;
      case 'set-demotion':
        this.ledger.set(input.group, input.by, input.count);
        this.refreshDemotion(now, out);
        break;
      case 'force': {
        const s = this.slots.get(input.key);
        if (s && this.running) {
          this.apply(s, { type: 'force', state: input.state, reason: input.reason, ...(input.holdMs !== undefined ? { holdMs: input.holdMs } : {}) }, now, out);
        }
        break;
      }
      case 'vip-check':
        this.reconcile(input.addresses, new Set(input.skip ?? []), input.why, now, out);
        break;
      case 'garp-refresh':
        for (const s of this.slots.values()) {
          if (s.machine.state !== 'MASTER') continue;
          for (const cidr of s.cfg.addresses) this.queue(s, { type: 'garp', key: s.cfg.key, ifname: s.cfg.ifname, cidr });
          this.flush(s, now, out);
        }
        break;
      case 'shutdown':
        this.shutdown(now, out);
        break;
    }
    return out;
  }

  private start(config: NodeConfig, links: Record<string, boolean>, now: number, out: NodeEffect[]): void {
    if (this.running) return;
    this.running = true;
    this.config = config;
    for (const v of config.vhids) this.addSlot(v);
    for (const ifname of this.interfaces()) {
      if (links[ifname] === false) this.ledger.adjust(DEFAULT_GROUP, `link:${ifname}`, config.ifdownDemotion);
    }
    this.applyConfigDemotion(config);
    this.refreshDemotion(now, out);
    for (const s of this.slots.values()) this.apply(s, { type: 'start', linkUp: links[s.cfg.ifname] !== false }, now, out);
    // The first look is at once: a carpd killed with -9 left its VIPs behind, and this BACKUP must
    // not answer ARP for addresses the new master holds.
    this.armCheck(now);
  }

  private armCheck(dueAt: number): void {
    const every = this.config?.vipCheckMs ?? 0;
    const id = timerId({ timer: 'check', key: '' });
    if (every > 0) this.named.set(id, { timer: 'check', key: '', dueAt });
    else this.named.delete(id);
  }

  /**
   * A peer's advert: its counter first (src/core/replay.ts explains the rule and its corner
   * cases), then the election. A machine in INIT ignores adverts, and so does the check: a vhid
   * whose link is down learns nothing from what it cannot answer.
   */
  private advert(s: Slot, advert: Advert, counter: bigint | undefined, now: number, out: NodeEffect[]): void {
    const mode = this.config?.replayProtection ?? 'once';
    if (counter !== undefined && s.machine.state !== 'INIT') {
      let verdict = s.replay.check(counter, now, s.machine.masterDownMs(), mode);
      // OpenBSD sends one random counter for ever (ip_carp.c carp_prepare_ad(): vhe_replay_cookie),
      // so its every advert after the first repeats a counter. In `once` mode a source whose
      // adverts have only ever carried one counter may repeat it, with the same advbase, advskew
      // and demote: an unchanged copy says what that master says (this is as far as counters can
      // protect an OpenBSD master), while a re-stamped one, or one from another source, is dropped.
      // A new demote or a bow-out from such a master is dropped too: the backup then waits its
      // master-down time instead of reacting at once.
      const cookie = s.cookies.get(advert.src);
      if (mode === 'once') {
        const same = (c: typeof cookie) =>
          !!c && c.counter === counter && c.advbase === advert.advbase && c.advskew === advert.advskew && c.demote === advert.demote;
        if (verdict === 'replay' && same(cookie)) verdict = 'once';
        else if (verdict !== 'replay') {
          if (cookie === undefined) {
            if (s.cookies.size >= COOKIE_SOURCES) s.cookies.delete(s.cookies.keys().next().value!);
            s.cookies.set(advert.src, { counter, advbase: advert.advbase, advskew: advert.advskew, demote: advert.demote });
          } else if (cookie && cookie.counter !== counter) s.cookies.set(advert.src, null);
        }
      }
      if (verdict === 'replay') {
        out.push({ type: 'replay', key: s.cfg.key, src: advert.src, counter });
        return;
      }
      if (verdict === 'resync') {
        out.push({
          type: 'log',
          level: LOG.INFO,
          message: `carp: ${s.cfg.key}: counter from ${advert.src} accepted after a silence (a restarted peer?); our counter follows it`,
        });
      }
    }
    this.apply(s, { type: 'advert', advert }, now, out);
  }

  private addSlot(v: NodeVhid, replay?: ReplayGuard): Slot {
    const cfg = this.config!;
    const mcfg = {
      key: v.key,
      vhid: v.vhid,
      advbase: v.advbase,
      advskew: v.advskew,
      preempt: cfg.preempt,
      masterDown: cfg.masterDown,
      deadRatio: v.deadRatio,
      ...(v.srcip ? { srcip: v.srcip } : {}),
      ...(v.srcip6 ? { srcip6: v.srcip6 } : {}),
    };
    const machine = v.version === 3 ? new VrrpMachine({ ...mcfg, priority: v.priority ?? 100, intervalCs: v.intervalCs ?? 100 }) : new VhidMachine(mcfg);
    const s: Slot = {
      cfg: v,
      machine,
      pending: [],
      held: false,
      failing: new Map(),
      replay: replay ?? new ReplayGuard(v.counter ?? BigInt(v.vhid)),
      cookies: new Map(),
    };
    this.slots.set(v.key, s);
    return s;
  }

  /** Step one machine and turn its effects into the node's, adverts first. */
  private apply(s: Slot, input: MachineInput, now: number, out: NodeEffect[]): void {
    const fx = s.machine.step(input, now);
    const { key, ifname } = s.cfg;
    // The advert leaves before anything else happens, listeners included.
    for (const e of fx) {
      if (e.type === 'send') {
        out.push({
          type: 'send',
          key,
          ifname,
          advbase: e.advbase,
          advskew: e.advskew,
          demote: e.demote,
          counter: s.replay.next(),
          ...(e.vrrp ? { vrrp: e.vrrp } : {}),
        });
      }
    }
    let handover = false;
    for (const e of fx) {
      switch (e.type) {
        case 'transition': {
          const seq = ++this.seq;
          out.push({ type: 'transition', key, seq, from: e.from, to: e.to, reason: e.reason });
          // A demoted master yielding to a peer's advert, or a master preempted by a peer that
          // advertises strictly better (an admin lowered its advskew: FreeBSD pfsync.sh
          // pfsync_pbr), is a planned handover: make before break. A tie lost on the source
          // address (a split brain healing) releases at once.
          handover =
            e.from === 'MASTER' &&
            e.to === 'BACKUP' &&
            input.type === 'advert' &&
            (s.machine.demotion > 0 || outranks(input.advert, s.machine)) &&
            (this.config?.handoverHoldMs ?? 0) > 0;
          // A pre-phase (pre-master, pre-backup) may hold the VIP step back, never the advert.
          if (this.phase.on) {
            s.pending.push({ barrier: seq, to: e.to, done: false, armed: false });
            out.push({ type: 'phase', key, seq });
          }
          break;
        }
        case 'vip':
          if (e.op === 'add') {
            // MASTER again while a handover still holds the VIP: it never left.
            if (s.held) this.endHold(s);
            for (const cidr of s.cfg.addresses) this.queue(s, { type: 'vip', op: 'add', key, ifname, cidr });
          } else {
            // Leaving MASTER stops the retries but keeps a VIP failure's demotion: it is lifted by
            // the next add that works, so a node that cannot hold its address does not flap back.
            for (const cidr of s.cfg.addresses) this.named.delete(timerId({ timer: 'retry', key, cidr }));
            if (handover) this.beginHold(s, now, out);
            else this.queueDel(s);
          }
          break;
        case 'garp':
          for (const cidr of s.cfg.addresses) this.queue(s, { type: 'garp', key, ifname, cidr });
          break;
        case 'send':
          break;
      }
    }
    this.flush(s, now, out);
  }

  private queue(s: Slot, e: NetEffect): void {
    s.pending.push(e);
  }

  private queueDel(s: Slot): void {
    for (const cidr of s.cfg.addresses) this.queue(s, { type: 'vip', op: 'del', key: s.cfg.key, ifname: s.cfg.ifname, cidr });
  }

  /** Emit the VIP work up to the first pre-phase still running; arm its budget when it reaches the head. */
  private flush(s: Slot, now: number, out: NodeEffect[]): void {
    while (s.pending.length > 0) {
      const head = s.pending[0]!;
      if ('barrier' in head) {
        const id = timerId({ timer: 'budget', key: s.cfg.key, seq: head.barrier });
        if (head.done) {
          this.named.delete(id);
          s.pending.shift();
          continue;
        }
        if (!head.armed) {
          head.armed = true;
          this.named.set(id, { timer: 'budget', key: s.cfg.key, seq: head.barrier, dueAt: now + this.phase.budgetMs });
        }
        return;
      }
      out.push(head);
      s.pending.shift();
    }
  }

  /** Emit all queued VIP work now, pre-phases or not (the vhid is going away or the gate is gone). */
  private release(s: Slot, out: NodeEffect[]): void {
    for (const p of s.pending) if (!('barrier' in p)) out.push(p);
    s.pending = [];
    for (const [id, t] of this.named) if (t.key === s.cfg.key && t.timer === 'budget') this.named.delete(id);
  }

  private beginHold(s: Slot, now: number, out: NodeEffect[]): void {
    const ms = this.config?.handoverHoldMs ?? 0;
    s.held = true;
    this.named.set(timerId({ timer: 'hold', key: s.cfg.key }), { timer: 'hold', key: s.cfg.key, dueAt: now + ms });
    out.push({
      type: 'log',
      level: LOG.INFO,
      message: `carp: ${s.cfg.key}: planned handover: releasing the VIP in ${ms} ms, after the new master's gratuitous ARP`,
    });
  }

  private endHold(s: Slot): void {
    s.held = false;
    this.named.delete(timerId({ timer: 'hold', key: s.cfg.key }));
  }

  private tick(now: number, out: NodeEffect[]): void {
    // Machine timers. A master-down timer is served only once due: a BACKUP must never take over
    // before its time (before, any timer due within TIMER_BATCH_MS was served early, master-down
    // included). A MASTER's advert due within its early window goes out now with the others, and
    // they are re-armed together (keepTogether), so 255 vhids advertise in one burst. Before, each
    // advert timer was re-armed from its own due time, and the phases at which the vhids became
    // MASTER (spread by the backup's handling of a burst, packet by packet) stayed for ever: the old
    // master's adverts left over 40-70 ms, the backup's master-down timers followed them, and so did
    // its 255 transitions after a failover.
    const served: { s: Slot; at: number }[] = [];
    for (const s of this.slots.values()) {
      const m = s.machine;
      const due = m.nextDue();
      if (due === undefined) continue;
      const { advertise, masterDown } = m.timers;
      if (due <= now) {
        const was = m.timers.advertise;
        this.apply(s, { type: 'timeout' }, now, out);
        if (m.state === 'MASTER' && m.timers.advertise !== was) served.push({ s, at: now });
      } else if (m.state === 'MASTER' && masterDown === undefined && advertise !== undefined && advertise <= now + earlyMs(m)) {
        // Served at its own due time, so the machine sends; keepTogether then moves the next one.
        this.apply(s, { type: 'timeout' }, advertise, out);
        if (m.state === 'MASTER' && m.timers.advertise !== advertise) served.push({ s, at: advertise });
      }
    }
    if (served.length > 0) this.keepTogether(served, now);
    for (const t of this.timers()) {
      if (t.dueAt > now + TIMER_BATCH_MS) break;
      const id = timerId(t);
      if (this.named.get(id) !== t) continue;
      this.named.delete(id);
      if (t.timer === 'check') {
        this.armCheck(now + (this.config?.vipCheckMs ?? 0));
        out.push({ type: 'check-vips' });
        continue;
      }
      const s = this.slots.get(t.key);
      if (!s) continue;
      if (t.timer === 'hold') {
        s.held = false;
        if (s.machine.state !== 'MASTER') this.queueDel(s);
        this.flush(s, now, out);
      } else if (t.timer === 'budget') {
        const head = s.pending[0];
        if (head && 'barrier' in head && head.barrier === t.seq) {
          out.push({
            type: 'log',
            level: LOG.WARN,
            message: `carp: ${s.cfg.key}: pre-${head.to.toLowerCase()} phase still running after ${this.phase.budgetMs} ms; moving the VIP anyway`,
          });
          head.done = true;
          this.flush(s, now, out);
        }
      } else if (t.timer === 'retry' && t.cidr !== undefined && s.machine.state === 'MASTER' && s.cfg.addresses.includes(t.cidr)) {
        this.queue(s, { type: 'vip', op: 'add', key: s.cfg.key, ifname: s.cfg.ifname, cidr: t.cidr });
        // The gratuitous ARP of the transition went out while the address was missing (and failed):
        // the neighbours hear about it once it is really there.
        this.queue(s, { type: 'garp', key: s.cfg.key, ifname: s.cfg.ifname, cidr: t.cidr });
        this.flush(s, now, out);
      }
    }
  }

  /**
   * Re-arm the adverts just sent so they stay in one burst. Each one's next advert is due one
   * interval after it left (`now`, the tick: the adverts served early left now too), and moves
   * earlier still, by up to its early window, towards the latest other MASTER of the same interval
   * due before it in the half interval before: groups that became MASTER apart close up by that
   * much each interval and then go out in one tick. The leading group, with none before it, keeps
   * its pace. With the early send, two adverts are never less than the interval minus twice the
   * early window apart.
   */
  private keepTogether(served: { s: Slot; at: number }[], now: number): void {
    const batch = new Set(served.map((x) => x.s));
    const others: { at: number; every: number }[] = [];
    for (const s of this.slots.values()) {
      const at = s.machine.timers.advertise;
      if (!batch.has(s) && s.machine.state === 'MASTER' && at !== undefined) others.push({ at, every: advertIntervalMs(s.machine) });
    }
    for (const { s } of served) {
      const m = s.machine;
      const every = advertIntervalMs(m);
      const natural = now + every;
      let lead: number | undefined;
      for (const o of others) if (o.every === every && o.at < natural && o.at >= natural - every / 2 && (lead === undefined || o.at > lead)) lead = o.at;
      m.timers.advertise = lead === undefined ? natural : Math.max(lead, natural - earlyMs(m));
    }
  }

  private link(ifname: string, up: boolean, now: number, out: NodeEffect[]): void {
    out.push({ type: 'log', level: LOG.INFO, message: `carp: ${ifname}: link ${up ? 'up' : 'down'}` });
    if (up) {
      this.ledger.set(DEFAULT_GROUP, `senderr:${ifname}`, 0);
      this.sendHealth.delete(ifname);
    }
    this.ledger.set(DEFAULT_GROUP, `link:${ifname}`, up ? 0 : this.config!.ifdownDemotion);
    // Demotion first, so the master-down timer that link-up arms uses the current skew.
    this.refreshDemotion(now, out);
    for (const s of this.slots.values()) if (s.cfg.ifname === ifname) this.apply(s, { type: 'link', up }, now, out);
  }

  /**
   * A MASTER that cannot hold its address black-holes the traffic, so a failed add demotes the
   * node (`vip:KEY` in the carp group, like a dead link) until an add works, and is retried with
   * backoff while this vhid stays MASTER.
   */
  private vipResult(key: string, cidr: string, ok: boolean, error: string | undefined, now: number, out: NodeEffect[]): void {
    const s = this.slots.get(key);
    if (!s || !this.running) return;
    const by = `vip:${key}`;
    if (ok) {
      s.failing.delete(cidr);
      this.named.delete(timerId({ timer: 'retry', key, cidr }));
      if (s.failing.size === 0 && this.ledger.held(DEFAULT_GROUP, by) > 0) {
        this.ledger.set(DEFAULT_GROUP, by, 0);
        this.refreshDemotion(now, out);
      }
      return;
    }
    const attempt = s.failing.get(cidr) ?? 0;
    s.failing.set(cidr, attempt + 1);
    out.push({
      type: 'log',
      level: LOG.ERR,
      message: `carp: ${key}: add ${cidr} failed${attempt ? ` (retry ${attempt})` : ''}: ${error ?? 'unknown error'}; demoting until it works`,
    });
    this.ledger.set(DEFAULT_GROUP, by, this.config!.ifdownDemotion);
    if (s.machine.state === 'MASTER') {
      const delay = Math.min(VIP_RETRY_MAX_MS, VIP_RETRY_MS * 2 ** attempt);
      this.named.set(timerId({ timer: 'retry', key, cidr }), { timer: 'retry', key, cidr, dueAt: now + delay });
    }
    this.refreshDemotion(now, out);
  }

  /**
   * Keep every VIP true to the state, against the kernel's address list. Linux deletes every
   * secondary address of a subnet with its primary while net.ipv4.conf.IF.promote_secondaries is 0
   * (net/ipv4/devinet.c, __inet_del_ifa()): a VIP that became the primary of its /24 on this node
   * takes the other vhids' VIPs with it when it leaves, and a MASTER goes on advertising without
   * its addresses. Anyone else (`ip addr del`, a network manager) can do the same. So a MASTER's
   * (or a handover's held) VIP that is missing is added again, through the same add as a
   * transition: its result, failure demotion and retry backoff are those of `vipResult`; and a
   * VIP of a vhid that is not MASTER is removed, as keepalived does for its own VIPs only: an
   * address no vhid of carpd lists is never touched. Vhids with VIP work queued or in flight are
   * left for the next look, since the list may predate that work.
   */
  private reconcile(present: Record<string, string[]>, skip: Set<string>, why: string, now: number, out: NodeEffect[]): void {
    if (!this.running) return;
    const holds = (s: Slot) => s.machine.state === 'MASTER' || s.held;
    // Two vhids listing one address (a misconfiguration carpd check warns about): the one that
    // holds it wins, a BACKUP does not delete it from under a MASTER.
    const wanted = new Set<string>();
    for (const s of this.slots.values()) if (holds(s)) for (const cidr of s.cfg.addresses) wanted.add(`${s.cfg.ifname} ${addressKey(cidr)}`);
    const haveByIf = new Map<string, Set<string>>();
    for (const s of this.slots.values()) {
      const { key, ifname } = s.cfg;
      const list = present[ifname];
      if (!list || skip.has(key) || s.pending.length > 0) continue;
      // One set per interface, not per vhid: 255 vhids on one interface made this 255 × 255
      // addressKey calls per check, run on every address event of a mass failover.
      let have = haveByIf.get(ifname);
      if (!have) haveByIf.set(ifname, (have = new Set(list.map(addressKey))));
      const want = holds(s);
      for (const cidr of s.cfg.addresses) {
        const there = have.has(addressKey(cidr));
        if (want && !there) {
          // An add that failed has its own retry with backoff; it is not news.
          if (s.failing.has(cidr) || this.named.has(timerId({ timer: 'retry', key, cidr }))) continue;
          out.push({ type: 'vip-repaired', key, cidr, op: 'add' });
          out.push({
            type: 'log',
            level: LOG.WARN,
            message: `carp: ${key}: VIP ${cidr} vanished from ${ifname} while ${s.machine.state === 'MASTER' ? 'MASTER' : 'held for a handover'} (found by ${why}); re-added`,
          });
          this.queue(s, { type: 'vip', op: 'add', key, ifname, cidr });
          this.queue(s, { type: 'garp', key, ifname, cidr });
        } else if (!want && there && !wanted.has(`${ifname} ${addressKey(cidr)}`)) {
          out.push({ type: 'vip-repaired', key, cidr, op: 'del' });
          out.push({
            type: 'log',
            level: LOG.WARN,
            message: `carp: ${key}: VIP ${cidr} still on ${ifname} while ${s.machine.state} (found by ${why}); removed`,
          });
          this.queue(s, { type: 'vip', op: 'del', key, ifname, cidr });
        }
      }
      this.flush(s, now, out);
    }
  }

  /**
   * FreeBSD's send-error demotion (carp_send_ad_error_adjust()): three failed adverts in a row on
   * an interface demote the node by senderr_demotion; three good ones in a row, or the link coming
   * back, undo it.
   */
  private sendResult(ifname: string, ok: boolean, count: number, now: number, out: NodeEffect[]): void {
    if (!this.running) return;
    let h = this.sendHealth.get(ifname);
    if (!h) this.sendHealth.set(ifname, (h = { failedInRow: 0, okInRow: 0 }));
    const by = `senderr:${ifname}`;
    if (!ok) {
      h.okInRow = 0;
      if (++h.failedInRow === SENDERR_MAX) {
        out.push({ type: 'log', level: LOG.ERR, message: `carp: ${ifname}: ${SENDERR_MAX} adverts in a row could not be sent; demoting` });
        this.ledger.set(DEFAULT_GROUP, by, this.config!.senderrDemotion);
        this.refreshDemotion(now, out);
      }
      return;
    }
    h.failedInRow = 0;
    h.okInRow += count;
    if (h.okInRow >= SENDERR_MAX && this.ledger.held(DEFAULT_GROUP, by) > 0) {
      out.push({ type: 'log', level: LOG.STATE, message: `carp: ${ifname}: adverts go out again; demotion undone` });
      this.ledger.set(DEFAULT_GROUP, by, 0);
      this.refreshDemotion(now, out);
    }
  }

  /** Push every vhid's current group demotion into its machine. */
  private refreshDemotion(now: number, out: NodeEffect[]): void {
    for (const s of this.slots.values()) this.apply(s, { type: 'demotion', demotion: this.ledger.forGroups(s.cfg.groups) }, now, out);
  }

  /**
   * The demotions the configuration stands for: net.inet.carp.demotion in the carp group and each
   * `[group.NAME] demote`, held by `config` (a reload sets them anew).
   */
  private applyConfigDemotion(config: NodeConfig): void {
    for (const e of this.ledger.entries()) if (e.by === 'config') this.ledger.set(e.group, 'config', 0);
    for (const d of config.demotions) if (d.count > 0) this.ledger.adjust(d.group, 'config', d.count);
  }

  /**
   * A new configuration (SIGHUP): vhids that appeared start, vhids that went away bow out and
   * release their VIPs, changed vhids are updated in place. Unchanged vhids keep state and timers.
   */
  private reconfigure(next: NodeConfig, links: Record<string, boolean>, now: number, out: NodeEffect[]): void {
    const res: ReconfigureResult = { added: [], removed: [], changed: [], unchanged: [] };
    if (!this.running) {
      this.config = next;
      res.added = next.vhids.map((v) => v.key);
      out.push({ type: 'reconfigured', result: res });
      return;
    }
    const nextByKey = new Map(next.vhids.map((v) => [v.key, v]));
    const ifsBefore = new Set(this.interfaces());
    /** Counters of vhids started afresh: the peers know them, and a vhid's counter never goes back. */
    const guards = new Map<string, ReplayGuard>();
    this.config = next;
    for (const s of this.slots.values()) {
      s.machine.cfg.preempt = next.preempt;
      s.machine.cfg.masterDown = next.masterDown;
    }
    for (const [key, s] of [...this.slots]) {
      const v = nextByKey.get(key);
      if (!v) {
        this.removeSlot(s, now, out);
        res.removed.push(key);
      } else if (v.fingerprint === s.cfg.fingerprint) {
        s.cfg = v;
        res.unchanged.push(key);
      } else if ((v.srcip ?? '') !== (s.cfg.srcip ?? '') || (v.srcip6 ?? '') !== (s.cfg.srcip6 ?? '') || (v.version ?? 2) !== (s.cfg.version ?? 2)) {
        // The source address is the machine's tie-break and the socket's: start afresh. So does a
        // change of protocol, which FreeBSD refuses on a live vhid (delete and add it again).
        this.removeSlot(s, now, out);
        guards.set(key, s.replay);
        res.changed.push(key);
      } else {
        this.updateSlot(s, v, now, out);
        res.changed.push(key);
      }
    }
    const fresh: Slot[] = [];
    for (const v of next.vhids) {
      if (this.slots.has(v.key)) continue;
      fresh.push(this.addSlot(v, guards.get(v.key)));
      if (!res.changed.includes(v.key)) res.added.push(v.key);
    }
    const ifsAfter = new Set(this.interfaces());
    for (const ifname of ifsBefore) if (!ifsAfter.has(ifname)) this.ledger.set(DEFAULT_GROUP, `link:${ifname}`, 0);
    for (const ifname of ifsAfter) this.ledger.set(DEFAULT_GROUP, `link:${ifname}`, links[ifname] === false ? next.ifdownDemotion : 0);
    this.applyConfigDemotion(next);
    this.refreshDemotion(now, out);
    for (const s of fresh) this.apply(s, { type: 'start', linkUp: links[s.cfg.ifname] !== false }, now, out);
    // New vhids may find their addresses left behind: look at once (also picks up a new interval).
    this.armCheck(now);
    out.push({ type: 'reconfigured', result: res });
  }

  /** Take a vhid out: bow out if MASTER and release its VIPs, held ones included. */
  private removeSlot(s: Slot, now: number, out: NodeEffect[]): void {
    this.apply(s, { type: 'shutdown' }, now, out);
    if (s.held) {
      this.endHold(s);
      this.queueDel(s);
    }
    this.release(s, out);
    for (const [id, t] of this.named) if (t.key === s.cfg.key) this.named.delete(id);
    out.push({ type: 'log', level: LOG.INFO, message: `carp: ${s.cfg.key}: removed from the configuration` });
    this.slots.delete(s.cfg.key);
  }

  /** Update a vhid's parameters in place; a MASTER swaps changed addresses at once. */
  private updateSlot(s: Slot, v: NodeVhid, now: number, out: NodeEffect[]): void {
    const old = s.cfg;
    s.cfg = v;
    s.machine.cfg.advbase = v.advbase;
    s.machine.cfg.advskew = v.advskew;
    s.machine.cfg.deadRatio = v.deadRatio;
    if (s.machine instanceof VrrpMachine) {
      s.machine.cfg.priority = v.priority ?? 100;
      s.machine.cfg.intervalCs = v.intervalCs ?? 100;
    }
    const gone = old.addresses.filter((a) => !v.addresses.includes(a));
    for (const cidr of gone) {
      s.failing.delete(cidr);
      this.named.delete(timerId({ timer: 'retry', key: v.key, cidr }));
    }
    if (s.machine.state !== 'MASTER') return;
    for (const cidr of gone) this.queue(s, { type: 'vip', op: 'del', key: v.key, ifname: v.ifname, cidr });
    for (const cidr of v.addresses.filter((a) => !old.addresses.includes(a))) {
      this.queue(s, { type: 'vip', op: 'add', key: v.key, ifname: v.ifname, cidr });
      this.queue(s, { type: 'garp', key: v.key, ifname: v.ifname, cidr });
    }
    this.flush(s, now, out);
  }

  /** Bow out of every mastership, release every VIP (held ones too), stop every timer, undo every demotion. */
  private shutdown(now: number, out: NodeEffect[]): void {
    if (!this.running) return;
    for (const s of this.slots.values()) {
      this.apply(s, { type: 'shutdown' }, now, out);
      // A handover still holding a VIP lets go now: we are leaving.
      if (s.held) {
        this.endHold(s);
        this.queueDel(s);
      }
      this.release(s, out);
    }
    this.named.clear();
    this.running = false;
    this.ledger.clear();
  }
}

/**
 * An address without its prefix, in one spelling: IPv4 as is, IPv6 as eight lower-case hex groups
 * without leading zeros (the configuration may say 2001:DB8:0::1, the kernel says 2001:db8::1).
 * The prefix is left out on purpose: a VIP present with another prefix is present.
 */
export function addressKey(cidr: string): string {
  const addr = (cidr.split('/')[0] ?? '').split('%')[0]!.toLowerCase();
  if (!addr.includes(':')) return addr;
  let text = addr;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const o = v4.slice(1).map(Number);
    text = `${text.slice(0, v4.index)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return groups.map((g) => Number.parseInt(g || '0', 16).toString(16)).join(':');
}
