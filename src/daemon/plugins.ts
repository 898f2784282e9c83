/**
 * Wiring the plugin host to the state source. By default the host runs in a child process under
 * a PluginSupervisor (plugin-supervisor.ts): its plugins are loaded and validated there, the
 * pre-phase gate and transitions are forwarded, and a crash restarts it. The `[health.NAME]`
 * checks run here, in the daemon. Nothing here waits on a plugin.
 *
 * `attachHost` keeps the in-process form (tests on the simulated clock, `inProcess`).
 */
import { EventEmitter } from 'node:events';
import { groupExec } from '../adapters/exec.js';
import { forkHostProcess } from '../adapters/host-process.js';
import { realFs } from '../adapters/host-fs.js';
import { realScheduler, realTimers, validCron } from '../adapters/host-timers.js';
import type { Logger } from '../ports/logger.js';
import type { CarpModel } from '../config/model.js';
import { PluginLoadError, PluginsInvalidError } from '../host/errors.js';
import { PluginHost } from '../host/host.js';
import { loadModelPlugins, type LoadModelOptions } from '../host/load-model.js';
import type { ChildHostOptions } from '../host/messages.js';
import type { ExecPort } from '../ports/exec.js';
import type { HostFs } from '../ports/fs.js';
import type { HostSpawner } from '../ports/host-channel.js';
import type { TransitionEvent } from '../ports/state-source.js';
import type { HostTimers, Scheduler } from '../ports/timers.js';
import { HealthChecks, healthConfigProblems } from './health-checks.js';
import { PluginSupervisor, type SupervisedSource } from './plugin-supervisor.js';

/** The state source as the plugin host uses it (the real Engine fits). */
export type PluginHostEngine = SupervisedSource;

export interface StartPluginHostOptions extends LoadModelOptions, ChildHostOptions {
  /** Run the plugins in the daemon's own process (no isolation). Default false. */
  inProcess?: boolean;
  /** Starts the plugin-host child. Default: fork dist/src/host/child.js. */
  spawn?: HostSpawner;
  /** For the `[health.NAME]` checks (and in-process hooks). */
  exec?: ExecPort;
  /** In-process hooks only. */
  fs?: HostFs;
  wallClock?: () => Date;
  timers?: HostTimers;
  scheduler?: Scheduler;
  /** Supervisor tunables (plugin-supervisor.ts). */
  restartMinMs?: number;
  restartMaxMs?: number;
  stopTimeoutMs?: number;
}

/** What the daemon gets: `hook`, `health` and `child` events, and stop (a closure: safe to pass on unbound). */
export interface PluginHostHandle {
  host: EventEmitter;
  stop: () => Promise<void>;
}

/**
 * What start-up would refuse about the model's plugins and health checks, without starting
 * anything: `carpd check` runs this so a bad plugin is found before a restart, not during one.
 */
export async function pluginProblems(model: CarpModel, opts: LoadModelOptions = {}): Promise<PluginLoadError[]> {
  if ((model.plugins?.length ?? 0) === 0 && (model.health?.length ?? 0) === 0) return [];
  const health = healthConfigProblems(model, validCron);
  try {
    await loadModelPlugins(model, opts);
    return health;
  } catch (e) {
    if (e instanceof PluginsInvalidError) return [...e.errors, ...health];
    throw e;
  }
}

/** The model as the child gets it: no vhid secrets (plugins never see them), no `[health.NAME]` (the daemon runs those). */
function childModel(model: CarpModel): CarpModel {
  const { health: _health, ...rest } = model;
  return { ...rest, vhids: model.vhids.map((v) => ({ ...v, password: '' })) };
}

/**
 * Starts the `[health.NAME]` checks and the plugin host (in a child process unless `inProcess`).
 * Throws PluginsInvalidError listing every problem when a plugin or health check is invalid.
 * In process, `host` is the PluginHost itself (tests look inside it).
 */
export function startPluginHost(
  source: PluginHostEngine,
  model: CarpModel,
  logger: Logger,
  opts: StartPluginHostOptions & { inProcess: true },
): Promise<{ host: PluginHost; stop: () => Promise<void> }>;
export function startPluginHost(source: PluginHostEngine, model: CarpModel, logger: Logger, opts?: StartPluginHostOptions): Promise<PluginHostHandle>;
export async function startPluginHost(
  source: PluginHostEngine,
  model: CarpModel,
  logger: Logger,
  opts: StartPluginHostOptions = {},
): Promise<PluginHostHandle> {
  const healthErrors = healthConfigProblems(model, validCron);
  let relay = new EventEmitter();
  const budgetMs = model.global.prePhaseBudgetMs ?? 500;
  const hostOptions: ChildHostOptions = {
    ...(opts.bootDemotion !== undefined ? { bootDemotion: opts.bootDemotion } : {}),
    ...(opts.setupRetryMs !== undefined ? { setupRetryMs: opts.setupRetryMs } : {}),
    ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
    ...(opts.vipWaitMs !== undefined ? { vipWaitMs: opts.vipWaitMs } : {}),
    ...(opts.logSize !== undefined ? { logSize: opts.logSize } : {}),
  };
  const loadOpts: LoadModelOptions = {
    ...(opts.os ? { os: opts.os } : {}),
    ...(opts.builtinPluginDir ? { builtinPluginDir: opts.builtinPluginDir } : {}),
    ...(opts.builtinTemplateDir ? { builtinTemplateDir: opts.builtinTemplateDir } : {}),
  };

  let stopPlugins: () => Promise<void> = async () => undefined;
  if ((model.plugins?.length ?? 0) > 0) {
    if (opts.inProcess) {
      let loaded;
      try {
        loaded = await loadModelPlugins(model, loadOpts);
      } catch (e) {
        if (e instanceof PluginsInvalidError) throw new PluginsInvalidError([...e.errors, ...healthErrors]);
        throw e;
      }
      if (healthErrors.length > 0) throw new PluginsInvalidError(healthErrors);
      const host = new PluginHost({
        model,
        plugins: loaded.plugins,
        engine: source,
        logger,
        templates: loaded.templates,
        os: loaded.os,
        exec: opts.exec ?? groupExec,
        fs: opts.fs ?? realFs(),
        timers: opts.timers ?? realTimers,
        scheduler: opts.scheduler ?? realScheduler,
        ...(opts.wallClock ? { wallClock: opts.wallClock } : {}),
        ...hostOptions,
      });
      relay = host;
      stopPlugins = attachHost(source, host, budgetMs).stop;
    } else {
      const sup = new PluginSupervisor({
        source,
        logger,
        spawn: opts.spawn ?? (() => forkHostProcess()),
        timers: opts.timers ?? realTimers,
        init: { model: childModel(model), options: hostOptions, ...loadOpts },
        budgetMs,
        ...(opts.restartMinMs !== undefined ? { restartMinMs: opts.restartMinMs } : {}),
        ...(opts.restartMaxMs !== undefined ? { restartMaxMs: opts.restartMaxMs } : {}),
        ...(opts.stopTimeoutMs !== undefined ? { stopTimeoutMs: opts.stopTimeoutMs } : {}),
      });
      sup.on('hook', (h) => relay.emit('hook', h));
      sup.on('child', (e) => relay.emit('child', e));
      // Start-up stops anyway: list the plugins' problems too, without running any setup.
      if (healthErrors.length > 0) throw new PluginsInvalidError([...(await pluginProblems({ ...model, health: [] }, loadOpts)), ...healthErrors]);
      await sup.start();
      stopPlugins = () => sup.stop();
    }
  } else if (healthErrors.length > 0) {
    throw new PluginsInvalidError(healthErrors);
  }

  const checks = new HealthChecks({
    checks: model.health ?? [],
    source,
    exec: opts.exec ?? groupExec,
    scheduler: opts.scheduler ?? realScheduler,
    logger,
    logLevel: () => model.global.log,
  });
  checks.on('health', (h) => relay.emit('health', h));
  checks.start();

  let stopped: Promise<void> | undefined;
  return {
    host: relay,
    stop: () =>
      (stopped ??= (async () => {
        checks.stop();
        await stopPlugins();
      })()),
  };
}

/**
 * Subscribes `host` to the state source's transitions, installs its pre-phases as the phase
 * gate, and starts it, all in this process. `stop` lets queued runs finish, tears the plugins
 * down and detaches.
 */
export function attachHost(engine: PluginHostEngine, host: PluginHost, budgetMs: number): { host: PluginHost; stop: () => Promise<void> } {
  // The engine emits the transition, then asks the gate: hand it the pre-phase of that event.
  let last: { seq: number; gate: Promise<void> | undefined } | undefined;
  const onTransition = (ev: TransitionEvent) => {
    last = { seq: ev.seq, gate: host.handle(ev) };
  };
  engine.on('transition', onTransition);
  engine.setPhaseGate((ev) => {
    const gate = last?.seq === ev.seq ? last.gate : undefined;
    last = undefined;
    return gate;
  }, budgetMs);
  host.start();

  let stopped: Promise<void> | undefined;
  return {
    host,
    stop: () =>
      (stopped ??= (async () => {
        await host.stop();
        engine.off('transition', onTransition);
        engine.setPhaseGate(undefined);
      })()),
  };
}
