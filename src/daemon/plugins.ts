/**
 * Wiring the plugin host to the engine: load and validate every configured plugin (built-in
 * `plugins/` and the operator's `pluginDir`), install the pre-phase gate, subscribe to
 * transitions, hold the boot demotion and start the setups. Nothing here waits on a plugin.
 */
import { join } from 'node:path';
import type { Logger } from '../adapters/ports.js';
import type { CarpModel } from '../config/model.js';
import { PluginLoadError, PluginsInvalidError, HOST_CODES } from '../host/errors.js';
import type { HostFs } from '../ports/fs.js';
import type { ExecPort } from '../ports/exec.js';
import { PluginHost, type HostEngine } from '../host/host.js';
import { loadPlugins } from '../host/loader.js';
import type { TransitionEvent } from '../host/log.js';
import { packageRoot } from '../adapters/package-root.js';
import type { HostTimers, Scheduler } from '../ports/timers.js';
import { validCron } from '../adapters/host-timers.js';
import { detectOs, type OsName } from '../render/os.js';
import { Templates } from '../render/template.js';

/** The engine as the host uses it (the real Engine fits). */
export interface PluginHostEngine extends HostEngine {
  on(event: 'transition', fn: (ev: TransitionEvent) => void): unknown;
  off(event: 'transition', fn: (ev: TransitionEvent) => void): unknown;
  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined, budgetMs?: number): void;
}

export interface StartPluginHostOptions {
  /** Default: this machine's OS. */
  os?: OsName;
  /** Default: `plugins/` and `templates/` of the carpd package. */
  builtinPluginDir?: string;
  builtinTemplateDir?: string;
  exec?: ExecPort;
  fs?: HostFs;
  timers?: HostTimers;
  scheduler?: Scheduler;
  wallClock?: () => Date;
  bootDemotion?: number;
  setupRetryMs?: number;
  retryDelayMs?: number;
  vipWaitMs?: number;
  logSize?: number;
}

/** `[health.NAME]` problems that must stop start-up. */
function checkHealthConfigs(model: CarpModel): PluginLoadError[] {
  const out: PluginLoadError[] = [];
  for (const h of model.health ?? []) {
    const who = `health.${h.name}`;
    if (h.command.length === 0) out.push(new PluginLoadError(HOST_CODES.HEALTH, who, `has no command (${h.source})`));
    if (h.schedule !== undefined && !validCron(h.schedule)) out.push(new PluginLoadError(HOST_CODES.HEALTH, who, `schedule "${h.schedule}" is not a valid cron expression (${h.source})`));
    if (h.schedule === undefined && !(typeof h.intervalMs === 'number' && h.intervalMs > 0)) out.push(new PluginLoadError(HOST_CODES.HEALTH, who, `needs an interval or a schedule (${h.source})`));
  }
  return out;
}

/** The plugins and templates of a model, loaded and validated; throws PluginsInvalidError listing every problem. */
async function loadForModel(model: CarpModel, opts: Pick<StartPluginHostOptions, 'os' | 'builtinPluginDir' | 'builtinTemplateDir'>) {
  const os = opts.os ?? detectOs();
  if (!os) throw new PluginsInvalidError([new PluginLoadError(HOST_CODES.OS, '*', `carpd plugins do not run on ${process.platform}`)]);
  const root = opts.builtinPluginDir && opts.builtinTemplateDir ? '' : packageRoot();
  const templates = new Templates(
    { builtin: opts.builtinTemplateDir ?? join(root, 'templates'), ...(model.global.templateDir ? { override: model.global.templateDir } : {}) },
    os,
  );
  const healthErrors = checkHealthConfigs(model);
  let plugins;
  try {
    plugins = await loadPlugins(model, {
      dirs: { builtin: opts.builtinPluginDir ?? join(root, 'plugins'), ...(model.global.pluginDir ? { operator: model.global.pluginDir } : {}) },
      os,
      templates,
    });
  } catch (e) {
    if (e instanceof PluginsInvalidError) throw new PluginsInvalidError([...e.errors, ...healthErrors]);
    throw e;
  }
  if (healthErrors.length > 0) throw new PluginsInvalidError(healthErrors);
  return { os, templates, plugins };
}

/**
 * What start-up would refuse about the model's plugins and health checks, without starting
 * anything: `carpd check` runs this so a bad plugin is found before a restart, not during one.
 */
export async function pluginProblems(model: CarpModel, opts: Pick<StartPluginHostOptions, 'os' | 'builtinPluginDir' | 'builtinTemplateDir'> = {}): Promise<PluginLoadError[]> {
  if ((model.plugins?.length ?? 0) === 0 && (model.health?.length ?? 0) === 0) return [];
  try {
    await loadForModel(model, opts);
    return [];
  } catch (e) {
    if (e instanceof PluginsInvalidError) return e.errors;
    throw e;
  }
}

/** Loads and validates the plugins (throws PluginsInvalidError listing every problem), then starts the host. */
export async function startPluginHost(
  engine: PluginHostEngine,
  model: CarpModel,
  logger: Logger,
  opts: StartPluginHostOptions = {},
): Promise<{ host: PluginHost; stop(): Promise<void> }> {
  const { os, templates, plugins } = await loadForModel(model, opts);

  const host = new PluginHost({
    model,
    plugins,
    engine,
    logger,
    templates,
    os,
    ...(opts.exec ? { exec: opts.exec } : {}),
    ...(opts.fs ? { fs: opts.fs } : {}),
    ...(opts.timers ? { timers: opts.timers } : {}),
    ...(opts.scheduler ? { scheduler: opts.scheduler } : {}),
    ...(opts.wallClock ? { wallClock: opts.wallClock } : {}),
    ...(opts.bootDemotion !== undefined ? { bootDemotion: opts.bootDemotion } : {}),
    ...(opts.setupRetryMs !== undefined ? { setupRetryMs: opts.setupRetryMs } : {}),
    ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
    ...(opts.vipWaitMs !== undefined ? { vipWaitMs: opts.vipWaitMs } : {}),
    ...(opts.logSize !== undefined ? { logSize: opts.logSize } : {}),
  });

  return attachHost(engine, host, model.global.prePhaseBudgetMs ?? 500);
}

/**
 * Subscribes `host` to the engine's transitions, installs its pre-phases as the engine's phase
 * gate, and starts it. `stop` lets queued runs finish, tears the plugins down and detaches.
 */
export function attachHost(engine: PluginHostEngine, host: PluginHost, budgetMs: number): { host: PluginHost; stop(): Promise<void> } {
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
