/**
 * The daemon's side of the plugin-host child: plugins run in a process of their own, so a hook
 * that spins or throws cannot stall adverts or crash the daemon (keepalived forks its scripts,
 * OpenBSD separates privileges, homebridge runs child bridges for the same reason).
 *
 * The supervisor follows the state source (transitions, the pre-phase gate, netSettled), forwards
 * to the child, applies the demotions the child asks for and owns them by name, so that when the
 * child dies it undoes exactly those. A dead child is restarted with a bounded backoff; meanwhile,
 * and until its plugins are set up again, the node holds the `plugins` demotion. Nothing a child
 * does makes the daemon exit.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../ports/logger.js';
import { DEFAULT_GROUP } from '../core/demotion.js';
import { PluginLoadError, PluginsInvalidError } from '../host/errors.js';
import type { HookRecord } from '../host/log.js';
import { parseFromChild, type FromChild, type ToChild, type VhidState } from '../host/messages.js';
import type { HostChannel, HostSpawner } from '../ports/host-channel.js';
import type { CarpState, StateSource, TransitionEvent } from '../ports/state-source.js';
import type { HostTimers } from '../ports/timers.js';

/** Who holds the demotion of a node whose plugin host is down (as the daemon's boot hold, 128). */
export const PLUGINS_DEMOTER = 'plugins';
export const PLUGINS_DEMOTION = 128;

/** Stable codes of the supervisor's own errors. */
export const SUPERVISOR_CODES = {
  /** The child exited (or did not answer) before its plugins were loaded. */
  START: 'CARPD_ERR_PLUGIN_HOST_START',
} as const;

export class PluginHostStartError extends Error {
  readonly code = SUPERVISOR_CODES.START;
  constructor(message: string) {
    super(message);
    this.name = 'PluginHostStartError';
  }
}

/** The part of the state source the supervisor uses. */
export type SupervisedSource = Pick<StateSource, 'on' | 'off' | 'setPhaseGate' | 'netSettled' | 'status' | 'setDemotion'>;

export type InitMessage = Extract<ToChild, { type: 'init' }>;

export interface SupervisorOptions {
  source: SupervisedSource;
  logger: Logger;
  spawn: HostSpawner;
  timers: HostTimers;
  /** What the child is started with (its vhid states are added at each start). */
  init: Omit<InitMessage, 'type' | 'states'>;
  /** The engine's pre-phase budget, ms. */
  budgetMs: number;
  /** First restart delay, doubled per crash in a row up to restartMaxMs. Default 1000. */
  restartMinMs?: number;
  restartMaxMs?: number;
  /** A child that ran this long before it died starts the backoff afresh. Default 60000. */
  stableMs?: number;
  /** How long loading the plugins may take. Default 60000. */
  startTimeoutMs?: number;
  /** How long teardown may take at shutdown before the child is killed. Default 30000. */
  stopTimeoutMs?: number;
  /** How often a ready child is pinged. Default 5000. */
  pingEveryMs?: number;
  /**
   * A child that has not answered a ping for this long is hung (a plugin blocks its event loop
   * for good: no hook timeout can fire there) and is killed, then restarted. Default 60000.
   */
  hangMs?: number;
}

/** Emitted as `child` when the plugin host starts, is set up, dies or is restarted. */
export interface ChildEvent {
  event: 'ready' | 'setup-done' | 'exit' | 'restart' | 'load-failed';
  time: string;
  detail: string;
}

/** Ledger names a child may hold: the host's boot hold, and each plugin's own entries. */
const CHILD_DEMOTER = /^(boot:plugins|plugin:[a-z][a-z0-9-]*(:self)?)$/;
/** Pending gates are dropped this long after the budget (the engine has stopped waiting). */
const GATE_SLACK_MS = 1000;

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

type StartOutcome = { kind: 'ready' } | { kind: 'load-failed'; errors: PluginLoadError[] } | { kind: 'exit'; detail: string } | { kind: 'timeout' };

interface Child {
  ch: HostChannel;
  ready: boolean;
  /** Keys whose transitions may run pre-phase hooks in this child. */
  gated: Set<string>;
  exited: boolean;
  startedAt: number;
  started: Deferred<StartOutcome>;
  exit: Deferred<void>;
  /** Vhid states as last sent to this child. */
  sent: Map<string, CarpState>;
  /** The watchdog: pings sent, the time of the last answer, and the timer (the load timer until ready). */
  pings: number;
  lastPong: number;
  pingTimer?: unknown;
}

export class PluginSupervisor extends EventEmitter {
  private child: Child | undefined;
  /** `group\0by` → the entry, for every ledger entry a child holds now. */
  private readonly owned = new Map<string, { group: string; by: string }>();
  private readonly gates = new Map<number, { resolve: () => void; timer: unknown }>();
  private crashes = 0;
  private restartTimer: unknown;
  private held = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private attached = false;
  /** Transitions of the current protocol step, not yet sent. */
  private batch: TransitionEvent[] = [];

  constructor(private readonly opts: SupervisorOptions) {
    super();
  }

  private say(level: number, msg: string): void {
    if (level <= this.opts.init.model.global.log || level <= 1) this.opts.logger.log(level, `carpd: ${msg}`);
  }

  private note(event: ChildEvent['event'], detail: string): void {
    this.emit('child', { event, time: new Date().toISOString(), detail } satisfies ChildEvent);
  }

  /**
   * Starts the child and waits for its plugins to load. Throws PluginsInvalidError when they do
   * not (start-up must stop, as before), PluginHostStartError when the child dies or hangs.
   */
  async start(): Promise<void> {
    if (!this.attached) {
      this.attached = true;
      this.opts.source.on('transition', this.onTransition);
      this.opts.source.setPhaseGate(this.gate, this.opts.budgetMs);
    }
    const c = this.spawnChild();
    let timer: unknown;
    const out = await Promise.race([
      c.started.promise,
      new Promise<StartOutcome>((r) => (timer = this.opts.timers.setTimeout(() => r({ kind: 'timeout' }), this.opts.startTimeoutMs ?? 60_000))),
    ]);
    this.opts.timers.clearTimeout(timer);
    if (out.kind === 'ready') return;
    this.stopping = true;
    c.ch.kill('SIGKILL');
    this.detach();
    this.releaseOwned();
    if (out.kind === 'load-failed') throw new PluginsInvalidError(out.errors);
    throw new PluginHostStartError(
      out.kind === 'timeout' ? 'the plugin host did not load its plugins in time' : `the plugin host exited while loading its plugins (${out.detail})`,
    );
  }

  /** Whether a child is up with its plugins loaded. */
  get live(): boolean {
    return this.child?.ready === true;
  }

  /** The pid of the current child, if any. */
  get pid(): number | undefined {
    return this.child?.exited === false ? this.child.ch.pid : undefined;
  }

  private spawnChild(): Child {
    const ch = this.opts.spawn();
    const c: Child = {
      ch,
      ready: false,
      gated: new Set(),
      exited: false,
      startedAt: this.opts.timers.now(),
      started: deferred(),
      exit: deferred(),
      sent: new Map(),
      pings: 0,
      lastPong: this.opts.timers.now(),
    };
    this.child = c;
    ch.onMessage((raw) => this.onMessage(c, raw));
    ch.onExit((code, signal) => this.onExit(c, code, signal));
    const states = this.opts.source.status().map((s): VhidState => ({ key: s.key, state: s.state }));
    for (const s of states) c.sent.set(s.key, s.state);
    this.send(c, { type: 'init', ...this.opts.init, states });
    return c;
  }

  private send(c: Child, m: ToChild): void {
    if (!c.exited) c.ch.send(m);
  }

  private onMessage(c: Child, raw: unknown): void {
    if (c !== this.child || c.exited) return;
    const m = parseFromChild(raw);
    if (!m) {
      this.say(2, 'plugin host: dropped a malformed message from the child');
      return;
    }
    this.handle(c, m);
  }

  private handle(c: Child, m: FromChild): void {
    switch (m.type) {
      case 'ready':
        if (c.pingTimer !== undefined) this.opts.timers.clearTimeout(c.pingTimer);
        c.ready = true;
        c.gated = new Set(m.gated);
        c.lastPong = this.opts.timers.now();
        this.watch(c);
        c.started.resolve({ kind: 'ready' });
        this.note('ready', `plugins loaded (${m.plugins.join(', ') || 'none'}) in pid ${c.ch.pid ?? '?'}`);
        return;
      case 'load-failed': {
        const errors = m.errors.map((e) => new PluginLoadError(e.code, e.plugin, e.message));
        c.started.resolve({ kind: 'load-failed', errors });
        if (!this.stopping) for (const e of errors) this.say(1, `plugin: ${e.message} [${e.code}]`);
        this.note('load-failed', errors.map((e) => e.message).join('; '));
        return;
      }
      case 'setup-done':
        if (this.held) {
          this.held = false;
          this.setDemotion(DEFAULT_GROUP, PLUGINS_DEMOTER, 0);
          this.say(5, 'plugin host: plugins set up again; demotion lifted');
        }
        this.note('setup-done', 'every plugin is set up');
        return;
      case 'pre-phase-done': {
        const g = this.gates.get(m.seq);
        if (!g) return;
        this.gates.delete(m.seq);
        this.opts.timers.clearTimeout(g.timer);
        g.resolve();
        return;
      }
      case 'demote': {
        if (!CHILD_DEMOTER.test(m.by)) {
          this.say(2, `plugin host: refused a demotion by "${m.by.slice(0, 64)}" (not a plugin's)`);
          return;
        }
        const k = `${m.group}\0${m.by}`;
        if (m.count > 0) this.owned.set(k, { group: m.group, by: m.by });
        else this.owned.delete(k);
        this.setDemotion(m.group, m.by, m.count);
        return;
      }
      case 'hook':
        this.emit('hook', m.record satisfies HookRecord);
        return;
      case 'log':
        this.opts.logger.log(m.level, m.message);
        return;
      case 'pong':
        if (m.n <= c.pings) c.lastPong = this.opts.timers.now();
        return;
      case 'stopped':
        return;
    }
  }

  /** Pings the child on a schedule; kills it when it has not answered for hangMs. */
  private watch(c: Child): void {
    c.pingTimer = this.opts.timers.setTimeout(() => {
      c.pingTimer = undefined;
      if (c.exited || c !== this.child) return;
      const silentMs = this.opts.timers.now() - c.lastPong;
      const hangMs = this.opts.hangMs ?? 60_000;
      if (silentMs >= hangMs) {
        this.say(1, `plugin host: no answer for ${Math.round(silentMs)} ms (a plugin blocks its event loop?); killing it`);
        c.ch.kill('SIGKILL');
        return;
      }
      this.send(c, { type: 'ping', n: ++c.pings });
      this.watch(c);
    }, this.opts.pingEveryMs ?? 5000);
  }

  private setDemotion(group: string, by: string, count: number): void {
    try {
      this.opts.source.setDemotion(group, by, count);
    } catch (e) {
      this.say(1, `plugin host: demotion ${by} in ${group}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private releaseOwned(): void {
    for (const { group, by } of this.owned.values()) this.setDemotion(group, by, 0);
    this.owned.clear();
  }

  private releaseGates(): void {
    for (const g of this.gates.values()) {
      this.opts.timers.clearTimeout(g.timer);
      g.resolve();
    }
    this.gates.clear();
  }

  private onExit(c: Child, code: number | null, signal: string | null): void {
    if (c.exited) return;
    c.exited = true;
    c.ready = false;
    if (c.pingTimer !== undefined) this.opts.timers.clearTimeout(c.pingTimer);
    const detail = signal ? `killed by ${signal}` : code === null ? 'could not start' : `exit status ${code}`;
    c.started.resolve({ kind: 'exit', detail });
    c.exit.resolve();
    if (c !== this.child) return;
    // Its pre-phases will never complete, and what it held in the ledger is nobody's now.
    this.releaseGates();
    this.releaseOwned();
    if (this.stopping) return;
    if (!this.held) {
      this.held = true;
      this.setDemotion(DEFAULT_GROUP, PLUGINS_DEMOTER, PLUGINS_DEMOTION);
    }
    const ranMs = this.opts.timers.now() - c.startedAt;
    if (ranMs >= (this.opts.stableMs ?? 60_000)) this.crashes = 0;
    const min = this.opts.restartMinMs ?? 1000;
    const delay = Math.min(this.opts.restartMaxMs ?? 30_000, min * 2 ** Math.min(this.crashes, 16));
    this.crashes++;
    this.say(1, `plugin host exited (${detail}); the node is demoted by ${PLUGINS_DEMOTION} until its plugins are set up again; restarting it in ${delay} ms`);
    this.note('exit', `${detail}; restarting in ${delay} ms`);
    this.restartTimer = this.opts.timers.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      const n = this.spawnChild();
      this.note('restart', `plugin host restarted${n.ch.pid !== undefined ? ` as pid ${n.ch.pid}` : ''}`);
      // A restarted child that never loads its plugins would keep the node demoted for good.
      const ms = this.opts.startTimeoutMs ?? 60_000;
      n.pingTimer = this.opts.timers.setTimeout(() => {
        n.pingTimer = undefined;
        if (n.ready || n.exited || n !== this.child) return;
        this.say(1, `plugin host: did not load its plugins within ${ms} ms; killing it`);
        n.ch.kill('SIGKILL');
      }, ms);
    }, delay);
  }

  /**
   * Runs inside the engine's protocol step: it only queues. The transitions of one step go to the
   * child together, right after the step, with one status() call for the whole burst.
   */
  private readonly onTransition = (ev: TransitionEvent): void => {
    const c = this.child;
    if (!c || c.exited) return;
    if (this.batch.length === 0) queueMicrotask(() => this.flush(c));
    this.batch.push(ev);
    // After this protocol step has queued its pre-phase and VIP work: netSettled covers them.
    queueMicrotask(() => {
      let settled: Promise<void>;
      try {
        settled = this.opts.source.netSettled(ev.key);
      } catch {
        settled = Promise.resolve();
      }
      void settled
        .catch(() => undefined)
        .then(() => {
          if (this.child === c) this.send(c, { type: 'vip-settled', seq: ev.seq, key: ev.key });
        });
    });
  };

  /** Sends the queued transitions, the first with the vhid states that changed otherwise (a reload's new vhids). */
  private flush(c: Child): void {
    const evs = this.batch.splice(0);
    if (c !== this.child || c.exited) return;
    const moved = new Set(evs.map((e) => e.key));
    const states: VhidState[] = [];
    for (const s of this.opts.source.status()) {
      if (moved.has(s.key) || c.sent.get(s.key) === s.state) continue;
      c.sent.set(s.key, s.state);
      states.push({ key: s.key, state: s.state });
    }
    evs.forEach((ev, i) => {
      c.sent.set(ev.key, ev.to);
      this.send(c, { type: 'transition', ev, states: i === 0 ? states : [] });
    });
  }

  /**
   * The pre-phase of `ev` in the child; none while no child is ready (the VIP step does not wait
   * for a restart), and none when no plugin following the vhid has a pre-phase hook (a round trip
   * to the child saved).
   */
  private readonly gate = (ev: TransitionEvent): Promise<void> | undefined => {
    if (!this.child?.ready || !this.child.gated.has(ev.key)) return undefined;
    const d = deferred<void>();
    const timer = this.opts.timers.setTimeout(() => {
      this.gates.delete(ev.seq);
      d.resolve();
    }, this.opts.budgetMs + GATE_SLACK_MS);
    this.gates.set(ev.seq, { resolve: () => d.resolve(), timer });
    return d.promise;
  };

  private detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.opts.source.off('transition', this.onTransition);
    this.opts.source.setPhaseGate(undefined);
  }

  /**
   * Sends `stop` (the child lets queued runs finish and runs teardown), kills the child if it has
   * not exited within stopTimeoutMs, undoes what it held, and detaches from the state source.
   */
  stop(): Promise<void> {
    return (this.stopped ??= this.doStop());
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== undefined) this.opts.timers.clearTimeout(this.restartTimer);
    const c = this.child;
    if (c && !c.exited) {
      this.send(c, { type: 'stop' });
      if (!(await this.waitExit(c, this.opts.stopTimeoutMs ?? 30_000))) {
        this.say(2, `plugin host: teardown did not finish in ${this.opts.stopTimeoutMs ?? 30_000} ms; killing it`);
        c.ch.kill('SIGKILL');
        await this.waitExit(c, 5000);
      }
    }
    this.releaseGates();
    this.releaseOwned();
    if (this.held) this.setDemotion(DEFAULT_GROUP, PLUGINS_DEMOTER, 0);
    this.held = false;
    this.detach();
  }

  private async waitExit(c: Child, ms: number): Promise<boolean> {
    let timer: unknown;
    const r = await Promise.race([c.exit.promise.then(() => true), new Promise<boolean>((ok) => (timer = this.opts.timers.setTimeout(() => ok(false), ms)))]);
    this.opts.timers.clearTimeout(timer);
    return r;
  }
}
