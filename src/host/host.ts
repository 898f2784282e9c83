/**
 * The plugin host: routes the engine's transitions to plugins, with setups, failure policies,
 * demotions and a boot demotion (DESIGN.md "Plugin host semantics"). Its parts: the run queue per
 * scope with coalescing (scope-queue.ts), the phases of one run around the VIP step (phases.ts),
 * plugins' health checks (plugin-health.ts), one hook run with its timeout (runner.ts) and context
 * (context.ts). `[health.NAME]` commands are the daemon's (daemon/health-checks.ts).
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import type { Logger } from '../ports/logger.js';
import type { CarpModel } from '../config/model.js';
import { DEFAULT_GROUP } from '../core/demotion.js';
import type { ExecPort } from '../ports/exec.js';
import type { HostFs } from '../ports/fs.js';
import type { StateSource, VhidStatus } from '../ports/state-source.js';
import { sleep, type HostTimers, type Scheduler } from '../ports/timers.js';
import type { OsName } from '../render/os.js';
import type { TemplateSource as Templates } from '../render/template.js';
import { childLogger, LEVEL, type RunState } from './context.js';
import { messageOf, PluginsInvalidError } from './errors.js';
import { Hysteresis, type HealthRecord } from './health.js';
import { callHook, type HookCallDeps, type HookStart } from './hook-call.js';
import { orderPlugins, type LoadedPlugin } from './loader.js';
import { TransitionLog, type TransitionEvent, type TransitionRecord } from './log.js';
import { runPhases, waitVip } from './phases.js';
import { checkPluginHealth, schedulePluginHealth } from './plugin-health.js';
import type { HookOutcome } from './runner.js';
import { deferred, type PluginRt, type Request, type RunRecord, type ScopeRt } from './runtime.js';
import { combinedState, type ScopeDef } from './scope.js';
import { ScopeQueue } from './scope-queue.js';
import type { CarpState, HookName } from './types.js';
import { scopeView, vhidViews } from './views.js';

/**
 * What the host needs of the state source: vhid states (vhids not listed are INIT), the demotion
 * ledger, and optionally netSettled (without it the post-phase starts one event-loop turn after
 * the pre-phase). In the plugin-host child these are messages to and from the daemon.
 */
export type HostEngine = Pick<StateSource, 'setDemotion'> & {
  status(): readonly Pick<VhidStatus, 'key' | 'state'>[];
  netSettled?: StateSource['netSettled'];
};

export interface HostOptions {
  model: CarpModel;
  /** Validated plugins (loadPlugins); the host runs them in dependency order. */
  plugins: readonly LoadedPlugin[];
  engine: HostEngine;
  logger: Logger;
  templates: Templates;
  os: OsName;
  /** Commands, files, timers and schedules: the composition root passes the real ones or fakes. */
  exec: ExecPort;
  fs: HostFs;
  timers: HostTimers;
  scheduler: Scheduler;
  wallClock?: () => Date;
  /**
   * Recording mode (`carpd plan`): hooks see ctx.dryRun; start() runs no setup, health check or
   * boot demotion, and marks every plugin ready.
   */
  dryRun?: boolean;
  /** The state scopes are taken to be in before their first run (what `ctx.event.from` says then). */
  initialState?: CarpState;
  /** How long the post-phase waits for the VIP step, ms. Default 5000. */
  vipWaitMs?: number;
  /** Pause between attempts under `retry N`, ms. Default 1000. */
  retryDelayMs?: number;
  /** How often a failed setup is tried again, ms. Default 30000. */
  setupRetryMs?: number;
  /** Demotion held in group `carp` until every plugin is set up. Default 240. */
  bootDemotion?: number;
  /** Transitions kept in the log. Default 100. */
  logSize?: number;
}

/** A plugin's state, for the control socket. */
export interface PluginStatus {
  name: string;
  origin: string;
  scope: string;
  /** setup has succeeded. */
  ready: boolean;
  /** The state its scope was last driven to. */
  state?: CarpState;
  /** Demotion held by its failure policy or health check. */
  demoted: number;
  healthy?: boolean;
  failures: number;
  lastResult?: string;
}

export type { HealthRecord, HookStart, RunRecord };

/**
 * Who holds the boot demotion in the ledger: its own name, so that the daemon's own boot hold
 * (`boot`, lifted once the sockets are open) cannot lift this one before the plugins are set up.
 */
export const BOOT_DEMOTER = 'boot:plugins';

export class PluginHost extends EventEmitter {
  private readonly timers: HostTimers;
  private readonly exec: ExecPort;
  private readonly fs: HostFs;
  private readonly scheduler: Scheduler;
  private readonly scopes = new Map<string, ScopeRt>();
  /** Scopes containing each vhid key. */
  private readonly scopesOf = new Map<string, ScopeRt[]>();
  private readonly plugins: PluginRt[] = [];
  private readonly states = new Map<string, CarpState>();
  private readonly log: TransitionLog;
  private readonly abort = new AbortController();
  private readonly queue: ScopeQueue;
  private readonly stops: (() => void)[] = [];
  private setupPass: Promise<void> = Promise.resolve();
  private setupTimer: unknown;
  private bootHeld = false;
  private started = false;
  private stopping = false;
  private bootDone = deferred();
  private hookDepsCache: HookCallDeps | undefined;

  constructor(private readonly opts: HostOptions) {
    super();
    this.timers = opts.timers;
    this.exec = opts.exec;
    this.fs = opts.fs;
    this.scheduler = opts.scheduler;
    this.log = new TransitionLog(opts.logSize ?? 100);
    // One abort listener per hook in flight (at most one per scope, plus health checks): no leak.
    setMaxListeners(0, this.abort.signal);
    this.queue = new ScopeQueue({
      run: (scope, req) => this.execRun(scope, req),
      ready: () => this.setupPass,
      error: (message) => this.say(LEVEL.ERR, `plugin host: ${message}`),
    });
    for (const v of opts.model.vhids) this.states.set(v.key, 'INIT');
    const { ordered, errors } = orderPlugins(opts.plugins);
    if (errors.length > 0) throw new PluginsInvalidError(errors);
    for (const lp of ordered) {
      let scope = this.scopes.get(lp.scope.key);
      if (!scope) {
        scope = { def: lp.scope, plugins: [], ...(opts.initialState ? { completed: opts.initialState } : {}) };
        this.scopes.set(lp.scope.key, scope);
        for (const k of lp.scope.vhids) this.scopesOf.set(k, [...(this.scopesOf.get(k) ?? []), scope]);
      }
      const p: PluginRt = {
        lp,
        scope,
        ready: false,
        state: {},
        log: childLogger(opts.logger, `plugin ${lp.name}: `, () => opts.model.global.log),
        held: 0,
        self: new Map(),
        healthBusy: false,
        failures: 0,
      };
      if (lp.health) p.health = new Hysteresis(lp.health.rise, lp.health.fall);
      scope.plugins.push(p);
      this.plugins.push(p);
    }
  }

  private say(level: number, msg: string): void {
    if (level <= this.opts.model.global.log) this.opts.logger.log(level, `carpd: ${msg}`);
  }

  private now(): string {
    return (this.opts.wallClock?.() ?? new Date()).toISOString();
  }

  private setDemotion(group: string, by: string, count: number): void {
    try {
      this.opts.engine.setDemotion(group, by, count);
    } catch (e) {
      this.say(LEVEL.ERR, `demotion ${by} in ${group}: ${messageOf(e)}`);
    }
  }

  /**
   * Holds the boot demotion, starts every plugin's setup (in dependency order) and the health
   * checks. Returns at once: nothing here waits on a plugin.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const s of this.opts.engine.status()) this.states.set(s.key, s.state);
    if (this.opts.dryRun) {
      for (const p of this.plugins) p.ready = true;
      this.bootDone.resolve();
      return;
    }
    if (this.plugins.length > 0) {
      this.setDemotion(DEFAULT_GROUP, BOOT_DEMOTER, this.opts.bootDemotion ?? 240);
      this.bootHeld = true;
    }
    this.setupPass = this.setupAll();
    this.track(this.setupPass.then(() => this.converge()));
    this.startHealth();
  }

  /** Resolves true once every plugin's setup has succeeded (false if the host stopped first). */
  whenBooted(): Promise<boolean> {
    return this.bootDone.promise.then(() => this.plugins.every((p) => p.ready));
  }

  private async setupAll(): Promise<void> {
    for (const p of this.plugins) await this.setupOne(p);
    this.checkBoot();
  }

  private async setupOne(p: PluginRt): Promise<void> {
    if (p.ready || this.stopping) return;
    if (!p.lp.decl.hooks.setup) {
      p.ready = true;
      return;
    }
    const out = await this.invoke(p, 'setup', 'setup', undefined, { changed: false });
    p.ready = out.result === 'ok';
  }

  /** Lifts the boot demotion once all are set up; otherwise tries the failed setups again later. */
  private checkBoot(): void {
    if (this.plugins.every((p) => p.ready)) {
      if (this.bootHeld) {
        this.setDemotion(DEFAULT_GROUP, BOOT_DEMOTER, 0);
        this.bootHeld = false;
        this.say(LEVEL.INFO, `plugins set up (${this.plugins.map((p) => p.lp.name).join(', ')}); boot demotion lifted`);
      }
      this.bootDone.resolve();
      return;
    }
    if (this.stopping) return;
    const failed = this.plugins.filter((p) => !p.ready).map((p) => p.lp.name);
    const retryMs = this.opts.setupRetryMs ?? 30_000;
    this.say(LEVEL.WARN, `setup failed for ${failed.join(', ')}; the node stays demoted; trying again in ${retryMs} ms`);
    this.setupTimer = this.timers.setTimeout(() => {
      this.setupTimer = undefined;
      this.track(this.retrySetups());
    }, retryMs);
  }

  private async retrySetups(): Promise<void> {
    for (const p of this.plugins) {
      if (p.ready) continue;
      await this.setupOne(p);
      // Now set up: bring it to its scope's current state. The queue tracks the run (and reports
      // its failure); the returned pre-phase promise only ever resolves, and nobody waits for it here.
      if (p.ready) void this.request(p.scope, this.scopeState(p.scope.def), undefined, 'setup succeeded', true);
    }
    this.checkBoot();
  }

  /** After the first setup pass: every scope no transition has touched yet is driven to its state. */
  private converge(): void {
    for (const scope of this.scopes.values()) {
      // Fire and forget, as in retrySetups: the queue tracks the run; the pre-phase promise never rejects.
      if (scope.wanted === undefined) void this.request(scope, this.scopeState(scope.def), undefined, 'boot');
    }
  }

  private scopeState(def: ScopeDef): CarpState {
    return combinedState(def.vhids.map((k) => this.states.get(k) ?? 'INIT'));
  }

  /** The vhid keys whose transitions may run a pre-phase hook (render, pre-master, pre-backup). */
  gatedKeys(): string[] {
    const pre: HookName[] = ['render', 'pre-master', 'pre-backup'];
    return [...this.scopesOf].filter(([, scopes]) => scopes.some((s) => s.plugins.some((p) => pre.some((h) => p.lp.decl.hooks[h])))).map(([k]) => k);
  }

  /**
   * Routes one transition. Returns the promise the engine's VIP step waits for (the pre-phases of
   * the scopes it changes), or undefined when no scope changes. That promise never rejects (a run's
   * failure is reported by the queue), so a caller that waits with idle() instead may drop it.
   */
  handle(ev: TransitionEvent): Promise<void> | undefined {
    if (this.abort.signal.aborted) return undefined;
    this.states.set(ev.key, ev.to);
    this.log.add(ev);
    const gates: Promise<void>[] = [];
    for (const scope of this.scopesOf.get(ev.key) ?? []) {
      const target = this.scopeState(scope.def);
      if (target === scope.wanted) continue;
      gates.push(this.request(scope, target, ev, ev.reason));
    }
    return gates.length === 0 ? undefined : Promise.all(gates).then(() => undefined);
  }

  private request(scope: ScopeRt, target: CarpState, ev: TransitionEvent | undefined, reason: string, force = false): Promise<void> {
    return this.queue.request(scope, target, ev, reason, force);
  }

  private track(p: Promise<void>): void {
    this.queue.track(p);
  }

  private async execRun(scope: ScopeRt, req: Request): Promise<void> {
    const runs = new Map<PluginRt, RunState>();
    const rec = await runPhases(scope, req, {
      step: async (p, hook) => {
        if (!runs.has(p)) runs.set(p, { changed: false });
        const out = await this.invoke(p, hook, hook, req, runs.get(p)!, scope.completed);
        if (out.result === 'ok') return true;
        this.onFailure(p);
        return false;
      },
      vipStep: (key) => waitVip(this.opts.engine.netSettled?.(key), this.timers, this.opts.vipWaitMs ?? 5000),
      hold: (p, count) => this.hold(p, count),
    });
    this.emit('run', rec);
  }

  /** A hook failed for good: the plugin's failure policy applies. */
  private onFailure(p: PluginRt): void {
    p.failures++;
    const policy = p.lp.policy;
    if (policy.kind !== 'demote') return;
    p.health?.fail();
    if (p.held !== policy.by) {
      this.hold(p, policy.by);
      this.say(LEVEL.WARN, `plugin ${p.lp.name}: demoting group ${p.lp.scope.group} by ${policy.by} until it recovers`);
    }
  }

  /** Sets the policy/health demotion of a plugin. */
  private hold(p: PluginRt, count: number): void {
    if (p.held === count) return;
    if (count === 0) this.say(LEVEL.INFO, `plugin ${p.lp.name}: recovered; demotion lifted`);
    p.held = count;
    this.setDemotion(p.lp.scope.group, `plugin:${p.lp.name}`, count);
  }

  /** Runs one hook, with the plugin's retries (never for setup passes of health checks). */
  private async invoke(p: PluginRt, hook: HookName, fnName: HookName, req: Request | undefined, run: RunState, from?: CarpState): Promise<HookOutcome> {
    const policy = p.lp.policy;
    const attempts = policy.kind === 'retry' && hook !== 'checkHealth' && hook !== 'teardown' ? policy.times + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      const out = await this.attempt(p, hook, fnName, req, run, attempt, from);
      if (out.result === 'ok') return out;
      // A newer request makes this action stale: don't retry it.
      if (attempt >= attempts || this.stopping || (req && p.scope.pending)) return out;
      await sleep(this.timers, this.opts.retryDelayMs ?? 1000);
    }
  }

  private async attempt(
    p: PluginRt,
    hook: HookName,
    fnName: HookName,
    req: Request | undefined,
    run: RunState,
    attempt: number,
    from?: CarpState,
  ): Promise<HookOutcome> {
    const { out, rec } = await callHook({ p, hook, fnName, req, run, attempt, ...(from ? { from } : {}) }, this.hookDeps);
    p.lastResult = out.result;
    if (rec.seq > 0) this.log.hook(rec);
    if (out.error && hook !== 'checkHealth') {
      const cause = out.error.causeCode ? ` [${out.error.causeCode}]` : '';
      this.say(LEVEL.ERR, `${out.error.describe()} [${out.error.code}]${cause}${attempt > 1 ? ` (attempt ${attempt})` : ''}`);
    }
    this.emit('hook', rec);
    return out;
  }

  private get hookDeps(): HookCallDeps {
    return (this.hookDepsCache ??= {
      os: this.opts.os,
      exec: this.exec,
      fs: this.fs,
      templates: this.opts.templates,
      timers: this.timers,
      dryRun: this.opts.dryRun === true,
      signal: this.abort.signal,
      now: () => this.now(),
      scopeView: (p, state) => scopeView(p.scope.def, state ?? this.scopeState(p.scope.def), this.opts.model, this.states),
      vhidViews: () => vhidViews(this.opts.model, this.states),
      selfDemote: (p, group, count) => this.selfDemote(p, group, count),
      started: (h) => this.emit('hook-start', h),
    });
  }

  private selfDemote(p: PluginRt, group: string, count: number): void {
    if ((p.self.get(group) ?? 0) === count) return;
    if (count === 0) p.self.delete(group);
    else p.self.set(group, count);
    this.setDemotion(group, `plugin:${p.lp.name}:self`, count);
  }

  private startHealth(): void {
    this.stops.push(...schedulePluginHealth(this.plugins, this.scheduler, (p) => void this.pluginHealth(p)));
  }

  private async pluginHealth(p: PluginRt): Promise<void> {
    const rec = await checkPluginHealth(p, {
      check: (q) => this.invoke(q, 'checkHealth', 'checkHealth', undefined, { changed: false }),
      hold: (q, count) => this.hold(q, count),
      say: (level, message) => this.say(level, message),
      stopping: () => this.stopping,
    });
    if (rec) this.emit('health', rec);
  }

  /** Resolves when no run is in flight or queued (bounded). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** The last transitions with their hook runs, oldest first. */
  transitions(): TransitionRecord[] {
    return this.log.list();
  }

  status(): PluginStatus[] {
    return this.plugins.map((p) => ({
      name: p.lp.name,
      origin: p.lp.origin,
      scope: p.scope.def.key,
      ready: p.ready,
      ...(p.scope.completed ? { state: p.scope.completed } : {}),
      demoted: p.held,
      ...(p.health ? { healthy: p.health.ok } : {}),
      failures: p.failures,
      ...(p.lastResult ? { lastResult: p.lastResult } : {}),
    }));
  }

  /**
   * Lets queued runs finish (the engine's shutdown transitions included), runs `teardown` in
   * reverse dependency order, and undoes every demotion the host set.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const s of this.stops.splice(0)) s();
    if (this.setupTimer !== undefined) this.timers.clearTimeout(this.setupTimer);
    await this.idle();
    for (const p of [...this.plugins].reverse()) {
      if (p.ready && p.lp.decl.hooks.teardown) await this.invoke(p, 'teardown', 'teardown', undefined, { changed: false });
    }
    this.abort.abort();
    await this.idle();
    if (this.bootHeld) this.setDemotion(DEFAULT_GROUP, BOOT_DEMOTER, 0);
    this.bootHeld = false;
    for (const p of this.plugins) {
      if (p.held > 0) this.setDemotion(p.lp.scope.group, `plugin:${p.lp.name}`, 0);
      p.held = 0;
      for (const g of [...p.self.keys()]) this.selfDemote(p, g, 0);
    }
    this.bootDone.resolve();
  }
}
