/**
 * `carpd run`: the daemon in the foreground, wired to the Linux adapters, with its service side:
 * the control socket (carpctl), maintenance mode, schedules, metrics, and signals (HUP reload,
 * TERM/INT clean shutdown, USR1 status dump, USR2 for ucarp mode).
 */
import { join } from 'node:path';
import { MonotonicClock } from '../adapters/clock.js';
import { loadConfigFiles } from '../adapters/config-files.js';
import { nodeCron } from '../adapters/cron.js';
import { realTimers } from '../adapters/host-timers.js';
import { NftFloodGuard, type FloodGuard } from '../adapters/flood-guard.js';
import { run, runInGroup } from '../adapters/exec.js';
import {
  acquireInstanceLock,
  defaultRunDir,
  InstanceLockError,
  lockFileName,
  netnsInode,
  type InstanceLock,
  type LockScope,
} from '../adapters/instance-lock.js';
import { FileIntentStore } from '../adapters/intent-file.js';
import { KeepalivedSource } from '../adapters/keepalived-source.js';
import { createKernelCarpSource, kernelOsOf, type KernelOs } from '../adapters/kernel-carp.js';
import { interfaceExists, LinuxNet } from '../adapters/linux-net.js';
import { RawTransport } from '../adapters/raw-transport.js';
import { LinuxVmac } from '../adapters/vmac.js';
import { listenUnix } from '../adapters/unix-socket.js';
import { formatDiagnostic } from '../config/errors.js';
import type { LoadResult } from '../config/load.js';
import type { CarpModel, VhidConfig } from '../config/model.js';
import { DEFAULT_GROUP } from '../core/demotion.js';
import { PluginsInvalidError } from '../host/errors.js';
import type { HookRecord } from '../host/log.js';
import { LOG, type Logger } from '../ports/logger.js';
import type { NetBackend } from '../ports/net.js';
import type { StateSource } from '../ports/state-source.js';
import { netstatLines } from '../proto/counters.js';
import { keepalivedConfSnippet } from '../sources/keepalived-conf.js';
import type { ScriptPolicy } from '../proto/ucarp-scripts.js';
import { DEFAULT_CONTROL_PATH, ControlCode } from './control-protocol.js';
import { ControlServer } from './control-server.js';
import { Engine, type TransitionEvent } from './engine.js';
import { engineLabel } from './engine-caps.js';
import { EventLog } from './event-log.js';
import { Maintenance } from './maintenance.js';
import { MetricsServer, renderMetrics } from './metrics.js';
import type { ChildEvent } from './plugin-supervisor.js';
import { startPluginHost } from './plugins.js';
import { formatStatus, statusReport } from './reports.js';
import { Schedules } from './schedule.js';
import { ScriptQueue, scriptArgv } from './scripts.js';

/** The ledger entry that holds a starting node back until its set-up is done (OpenBSD rc demotes by 128). */
export const BOOT_DEMOTER = 'boot';
export const BOOT_DEMOTION = 128;
/** How long a demoted master keeps the VIP after yielding, so the new master's ARP lands first. */
export const HANDOVER_HOLD_MS = 2000;

export interface DaemonOptions {
  model: CarpModel;
  logger: Logger;
  /** Replace the net backend (ucarp mode leaves VIPs to the scripts). */
  net?: NetBackend;
  /** Called for every transition, after the core has acted. Never awaited by the protocol. */
  onTransition?: (ev: TransitionEvent) => void;
  /** What SIGUSR1 / SIGUSR2 do; defaults: status dump / nothing. */
  onUsr1?: (engine: Engine) => void;
  onUsr2?: (engine: Engine) => void;
  /** SIGHUP ends the daemon (ucarp), instead of asking for a reload. */
  hupExits?: boolean;
  /** When up/down scripts run (ucarp's -n and -z); default: both off... and on shutdown. */
  scripts?: ScriptPolicy;
  /**
   * The service side: control socket, boot hold, maintenance, schedules, metrics. Default on,
   * except with `hupExits` (ucarp mode: one process per vhid, no control socket).
   */
  service?: boolean;
  /** Re-reads the configuration for SIGHUP. Default: the `-c` files of this process's `carpd run` command line. */
  reload?: () => LoadResult;
  /**
   * The instance lock (adapters/instance-lock.ts): the run directory (default $RUNTIME_DIRECTORY,
   * /run/carpd) and what it guards (default the whole network namespace; ucarp mode: its vhid on
   * its interface). Taken before anything else, so a second daemon touches nothing.
   */
  lock?: { runDir?: string; scope?: LockScope };
}

/** One line per vhid, in ifconfig's words. */
export function statusLines(engine: StateSource): string[] {
  return engine.status().map((s) => `${s.interface}: carp: ${s.state} vhid ${s.vhid} advbase ${s.advbase} advskew ${s.advskew}`);
}

/** SIGUSR1: status with diagnosis, demotions, counters and bad-auth peers, one log line each. */
export function dumpStatus(engine: StateSource, logger: Logger, events?: EventLog, maintenance?: Maintenance): void {
  for (const l of formatStatus(statusReport(engine, events, maintenance))) logger.log(0, l.replace(/^\t/, '  '));
  logger.log(0, 'carp:');
  for (const l of netstatLines(engine.stats, false)) logger.log(0, l);
  for (const [peer, n] of engine.badAuthByPeer) logger.log(0, `bad authentication from ${peer.replace(' ', ' vhid ')} x${n}`);
}

/**
 * The config files and overrides of `carpd run` as they appear on this process's command line
 * (`-c FILE`, `--config FILE`, `--format F`, `--log-level N`), as a reloader; undefined when the
 * process is not `carpd run … -c FILE`.
 */
export function commandLineReloader(argv: readonly string[] = process.argv.slice(2)): (() => LoadResult) | undefined {
  if (argv[0] !== 'run') return undefined;
  const files: string[] = [];
  let format: string | undefined;
  let logLevel: number | undefined;
  let control: string | undefined;
  let engine: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (name === '-c' || name === '--config') {
      const f = value();
      if (f !== undefined) files.push(f);
    } else if (name === '--format') format = value();
    else if (name === '--log-level') logLevel = Number(value());
    else if (name === '--control') control = value();
    else if (name === '--engine') engine = value();
  }
  if (files.length === 0) return undefined;
  return () => {
    const r = loadConfigFiles(files, {
      ...(format !== undefined ? { format } : {}),
      ...(engine === 'carpd' || engine === 'kernel' || engine === 'keepalived' ? { engine } : {}),
    });
    if (logLevel !== undefined && Number.isInteger(logLevel)) r.model.global.log = logLevel;
    if (control !== undefined) r.model.global.control = control;
    return r;
  };
}

/** How long after a reload a removed vhid's macvlan is deleted: its bow-out and socket close first (engine SOCKET_FLUSH_MS). */
const VMAC_PRUNE_DELAY_MS = 200;

/** The state directory: the config's, systemd's $STATE_DIRECTORY, or the OS default. */
export function stateDirFor(model: CarpModel): string {
  return model.global.stateDir ?? process.env.STATE_DIRECTORY?.split(':')[0] ?? (process.platform === 'linux' ? '/var/lib/carpd' : '/var/db/carpd');
}

/** A state source with its life: carpd's Engine, the kernel's CARP followed, or keepalived followed. */
interface Runner {
  source: StateSource;
  /** Only carpd's own engine: reconfiguration, ucarp's signals. */
  engine?: Engine;
  /** flood_guard = nft: carpd's own nftables table, reloaded with the vhids. */
  guard?: FloodGuard;
  /** vmac vhids: their macvlans, made before the engine opens sockets on them (src/adapters/vmac.ts). */
  vmac?: LinuxVmac;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The kernel to follow: kernel_os, CARPD_KERNEL_OS (tests simulate a BSD on Linux), the platform. */
export function kernelOsFor(model: CarpModel, env: NodeJS.ProcessEnv = process.env, platform: string = process.platform): KernelOs | undefined {
  const forced = env.CARPD_KERNEL_OS;
  return model.global.kernelOs ?? (forced === 'freebsd' || forced === 'openbsd' ? forced : kernelOsOf(platform));
}

function buildRunner(model: CarpModel, opts: DaemonOptions, levelled: Logger): Runner {
  const { logger } = opts;
  const engineKind = model.global.engine ?? 'carpd';
  if (engineKind === 'kernel') {
    const os = kernelOsFor(model);
    // load.ts refuses engine = kernel without a BSD; this is the same rule at the last moment.
    if (os === undefined) throw new Error('engine = kernel needs FreeBSD or OpenBSD (or kernel_os)');
    // CARPD_KERNEL_PATH: where ifconfig, sysctl and route are looked up (commands get a scrubbed
    // PATH); the integration tests put the simulated kernel's tools there.
    const toolPath = process.env.CARPD_KERNEL_PATH;
    const src = createKernelCarpSource(os, {
      logger: levelled,
      ...(model.global.devdSocket ? { devdPath: model.global.devdSocket } : {}),
      ...(toolPath ? { env: { PATH: toolPath } } : {}),
    });
    return { source: src, start: () => src.start(), stop: () => src.stop() };
  }
  if (engineKind === 'keepalived') {
    const g = model.global;
    const src = new KeepalivedSource({
      logger: levelled,
      ...(g.keepalivedFifo ? { fifo: g.keepalivedFifo } : {}),
      ...(g.keepalivedPidfile ? { pidFile: g.keepalivedPidfile } : {}),
      ...(g.keepalivedTrackFile ? { trackFile: g.keepalivedTrackFile } : {}),
      // keepalived writes its dumps into its own $TMPDIR (a PrivateTmp= unit has its own /tmp).
      ...(g.keepalivedDumpDir ? { dataFile: join(g.keepalivedDumpDir, 'keepalived.data'), jsonFile: join(g.keepalivedDumpDir, 'keepalived.json') } : {}),
    });
    return { source: src, start: () => src.start(), stop: () => src.stop() };
  }
  const engine = new Engine(model, {
    transport: new RawTransport(),
    // The backend's own messages obey the configured level like the engine's.
    net: opts.net ?? new LinuxNet({ logger: levelled }),
    clock: new MonotonicClock(),
    logger,
    handoverHoldMs: HANDOVER_HOLD_MS,
  });
  // The kernel drops forged CARP before it fills the socket buffer (src/adapters/flood-guard.ts).
  const guard = model.global.floodGuard === 'nft' ? new NftFloodGuard(run, levelled) : undefined;
  // Only on the real network (a test's fake NetBackend has no interfaces to hang a macvlan on).
  const vmac = opts.net ? undefined : new LinuxVmac({ run, logger: levelled, stateDir: stateDirFor(model) });
  return {
    source: engine,
    engine,
    ...(guard ? { guard } : {}),
    ...(vmac ? { vmac } : {}),
    start: async () => {
      await guard?.apply(model);
      // A macvlan that cannot be made (no such parent) fails the start; the ones made go again.
      await vmac?.apply(model).catch(async (err: unknown) => {
        await vmac.remove();
        throw err;
      });
      engine.start();
    },
    stop: async () => {
      await engine.stop();
      await guard?.remove();
      await vmac?.remove();
    },
  };
}

/**
 * The model the plugin host sees where carpd follows another engine: carpd's settings and plugins,
 * with the vhids the engine reported at start (a vhid it adds later is not in any plugin's scope
 * until carpd restarts).
 */
export function followedModel(model: CarpModel, source: Pick<StateSource, 'status'>, label: string): CarpModel {
  const vhids: VhidConfig[] = source.status().map((s) => ({
    key: s.key,
    vhid: s.vhid,
    interface: s.interface,
    addresses: [...s.addresses],
    advbase: s.advbase,
    advskew: s.advskew,
    password: '',
    source: label,
    ...(s.name !== undefined ? { name: s.name } : {}),
    groups: s.groups.filter((g) => g !== DEFAULT_GROUP),
  }));
  return { ...model, vhids };
}

/**
 * The up/down script queue as the daemon runs it: each script in its own process group, as the
 * plugin host runs its commands (adapters/exec.ts runInGroup). The script's exit ends the wait
 * even when it leaves a background child holding its output pipes (`sleep 1000 &`), which kept
 * execa's run() waiting and stalled every later script; the timeout kills everything it started.
 * In ucarp mode the scripts own the VIP: a stalled down script left it on two nodes.
 */
export function scriptQueue(logger: Logger, timeoutMs?: number): ScriptQueue {
  return new ScriptQueue(logger, runInGroup, timeoutMs);
}

/** The lock file a daemon with these options takes. */
export function instanceLockPath(lock: DaemonOptions['lock'] = {}, ino: number | undefined = netnsInode()): string {
  return join(lock.runDir ?? defaultRunDir(), lockFileName(lock.scope ?? { kind: 'netns' }, ino));
}

/**
 * Starts the daemon and resolves with the exit code once it has shut down cleanly. Refuses (exit
 * 1, nothing touched: no socket, no VIP deleted, no bow-out) while another daemon holds the
 * instance lock. Every engine takes it, the followed ones (kernel, keepalived) too: two followers
 * would run every plugin hook twice.
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const scope = opts.lock?.scope ?? { kind: 'netns' };
  const path = instanceLockPath(opts.lock);
  let lock: InstanceLock;
  try {
    lock = acquireInstanceLock(path, {
      what:
        scope.kind === 'netns'
          ? 'another carpd runs in this network namespace; a second one would delete its VIPs'
          : `another carpd ucarp runs vhid ${scope.vhid} on ${scope.interface} in this network namespace`,
    });
  } catch (err) {
    const msg = err instanceof InstanceLockError ? err.message : `cannot take the instance lock ${path}: ${(err as Error).message} (see --run-dir)`;
    opts.logger.log(LOG.ERR, `carpd: cannot start: ${msg}`);
    return 1;
  }
  // process.exit() (a second signal) skips the finally below; the file must not outlive us then either.
  const release = () => lock.release();
  process.on('exit', release);
  try {
    return await runLocked(opts);
  } finally {
    release();
    process.off('exit', release);
  }
}

async function runLocked(opts: DaemonOptions): Promise<number> {
  const { logger } = opts;
  let model = opts.model;
  const serviceOn = opts.service ?? !opts.hupExits;
  const say = (level: number, msg: string) => {
    if (level <= model.global.log || level <= 0) logger.log(level, msg);
  };
  const levelled: Logger = { log: (level, msg) => level <= model.global.log && logger.log(level, msg) };
  let runner: Runner;
  try {
    runner = buildRunner(model, opts, levelled);
  } catch (err) {
    logger.log(LOG.ERR, `carpd: cannot start: ${(err as Error).message}`);
    return 1;
  }
  // Everything below talks to the StateSource port; only reload and ucarp's signals need the Engine.
  const engine = runner.source;
  const own = runner.engine;
  const followed = own === undefined;
  if (engine instanceof KeepalivedSource) {
    // keepalived tells carpd nothing unless its configuration says so: print what it needs.
    const g = model.global;
    logger.log(LOG.STATE, 'carpd: following keepalived; keepalived.conf needs:');
    for (const l of keepalivedConfSnippet({
      ...(g.keepalivedFifo ? { fifo: g.keepalivedFifo } : {}),
      ...(g.keepalivedTrackFile ? { trackFile: g.keepalivedTrackFile } : {}),
    }).split('\n')) {
      if (l !== '') logger.log(LOG.STATE, `carpd:   ${l}`);
    }
  }
  const events = new EventLog();
  const scripts = scriptQueue(logger);
  const policy = opts.scripts ?? { neutral: false, shutdown: true };
  let byKey = new Map(model.vhids.map((v) => [v.key, v]));
  engine.on('transition', (ev: TransitionEvent) => {
    opts.onTransition?.(ev);
    const v = byKey.get(ev.key);
    const argv = v && scriptArgv(v, ev, policy);
    if (argv) scripts.push(argv);
    events.publish({ type: 'transition', ...ev });
  });

  let maintenance: Maintenance | undefined;
  let control: ControlServer | undefined;
  let schedules: Schedules | undefined;
  let metrics: MetricsServer | undefined;
  if (serviceOn) {
    const stateDir = stateDirFor(model);
    maintenance = new Maintenance(engine, new FileIntentStore(stateDir), {
      demote: model.maintenance?.demote,
      logger,
      onChange: (i) =>
        events.publish({
          type: 'admin',
          time: i.since,
          action: 'maintenance',
          detail: `${i.on ? 'on' : 'off'} (${i.by})${i.until ? ` until ${i.until}` : ''}`,
        }),
    });
    control = new ControlServer({ engine, events, listen: listenUnix, logger, maintenance, logLevel: () => model.global.log });
    const path = model.global.control ?? DEFAULT_CONTROL_PATH;
    try {
      await control.listen(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Daemons in network namespaces of one host share the filesystem: the first one gets the
      // socket, the others run on without one rather than not at all. Logged at any log level.
      logger.log(
        LOG.ERR,
        `carpd: control socket: ${(err as Error).message}${code === ControlCode.IN_USE || code === ControlCode.NOT_SOCKET ? '; running without a control socket' : ''}`,
      );
      if (code !== ControlCode.IN_USE && code !== ControlCode.NOT_SOCKET) return 1;
      control = undefined;
    }
    // Boot: stay demoted until set-up is done. Not where carpd follows: the kernel or keepalived
    // already runs CARP, and a carpd restart must not move the VIPs.
    if (!followed) engine.setDemotion(DEFAULT_GROUP, BOOT_DEMOTER, BOOT_DEMOTION);
    maintenance.restore();
  }

  const startRunner = async (): Promise<boolean> => {
    try {
      await runner.start();
      return true;
    } catch (err) {
      logger.log(LOG.ERR, `carpd: cannot start: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  };
  // A followed engine's vhids are the kernel's or keepalived's: the source starts first (it reads
  // them), and the plugin host validates its plugins against them.
  if (followed && !(await startRunner())) {
    await control?.close();
    return 1;
  }

  // The plugin host starts before the CARP sockets open: every plugin is validated first (a bad
  // one stops start-up, not a failover at 3 a.m.), and it holds its own boot demotion until every
  // set-up has succeeded. Hook runs go to the event log that `carpctl events` serves.
  let plugins: { stop(): Promise<void> } | undefined;
  if (!opts.hupExits && ((model.plugins?.length ?? 0) > 0 || (model.health?.length ?? 0) > 0)) {
    try {
      // A followed engine (kernel, keepalived) already runs CARP and holds its VIPs: restarting
      // carpd must not demote it while the plugins set up, or a preempting peer takes the VIPs.
      const ph = followed
        ? await startPluginHost(engine, followedModel(model, engine, engineLabel(engine)), logger, { bootDemotion: 0 })
        : await startPluginHost(engine, model, logger);
      ph.host.on('hook', (h: HookRecord) =>
        events.publish({
          type: 'hook',
          time: h.startedAt,
          plugin: h.plugin,
          hook: h.hook,
          ...(h.key ? { key: h.key } : {}),
          seq: h.seq,
          durationMs: h.durationMs,
          result: h.result,
          ...(h.error ? { error: h.error.message } : {}),
        }),
      );
      // The plugin-host child's life (a crash, its restart, set up again) for `carpctl events`.
      ph.host.on('child', (c: ChildEvent) => events.publish({ type: 'admin', time: c.time, action: 'plugin-host', detail: `${c.event}: ${c.detail}` }));
      plugins = ph;
    } catch (err) {
      const list = err instanceof PluginsInvalidError ? err.errors : [err as Error];
      for (const e of list) logger.log(LOG.ERR, `carpd: plugin: ${e.message}${(e as { code?: string }).code ? ` [${(e as { code?: string }).code}]` : ''}`);
      if (followed) await runner.stop();
      await control?.close();
      return 1;
    }
  }
  if (!followed && !(await startRunner())) {
    await plugins?.stop();
    await control?.close();
    return 1;
  }
  // Sockets are open and nothing else is pending: the boot hold ends.
  if (serviceOn && !followed) engine.setDemotion(DEFAULT_GROUP, BOOT_DEMOTER, 0);
  const socketNote = control ? `; control socket ${model.global.control ?? DEFAULT_CONTROL_PATH}` : '';
  if (followed) {
    say(LOG.STATE, `carpd: following ${engineLabel(engine)}: ${engine.status().length} vhid(s)${socketNote}`);
  } else {
    const ifs = [...new Set(model.vhids.map((v) => v.interface))];
    say(LOG.STATE, `carpd: running ${model.vhids.length} vhid(s) on ${ifs.join(', ')}${socketNote}`);
  }

  if (serviceOn) {
    schedules = new Schedules({ engine, cron: nodeCron, timers: realTimers, ...(maintenance ? { maintenance } : {}), logger });
    schedules.start(model);
    metrics = new MetricsServer(
      () => renderMetrics({ engine, events, ...(maintenance ? { maintenance } : {}), ...(control ? { control: control.stats } : {}) }),
      logger,
    );
    await metrics.reconfigure(model.global.metrics).catch((err: unknown) => say(LOG.ERR, `carpd: metrics: ${(err as Error).message}`));
  }

  const reloader = opts.reload ?? commandLineReloader();
  let reloading = false;
  const reload = async (): Promise<void> => {
    if (reloading) return;
    reloading = true;
    try {
      if (!reloader) {
        say(LOG.WARN, 'carpd: SIGHUP: no configuration files to re-read; keeping the running configuration');
        return;
      }
      let r: LoadResult;
      try {
        r = reloader();
      } catch (err) {
        say(LOG.ERR, `carpd: SIGHUP: ${(err as Error).message}; keeping the running configuration`);
        return;
      }
      const errors = r.diagnostics.filter((d) => d.severity === 'error');
      for (const d of r.diagnostics) say(d.severity === 'error' ? LOG.ERR : LOG.WARN, `carpd: ${formatDiagnostic(d)}`);
      if (errors.length > 0) {
        say(LOG.ERR, `carpd: SIGHUP: the configuration has ${errors.length} error(s); keeping the running configuration`);
        events.publish({ type: 'admin', time: new Date().toISOString(), action: 'reload', detail: `refused: ${errors.length} error(s)` });
        return;
      }
      const next = r.model;
      if ((next.global.control ?? DEFAULT_CONTROL_PATH) !== (model.global.control ?? DEFAULT_CONTROL_PATH)) {
        say(LOG.WARN, 'carpd: SIGHUP: a new control socket path takes effect at the next restart');
      }
      next.global.control = model.global.control;
      if ((next.global.engine ?? 'carpd') !== (model.global.engine ?? 'carpd')) {
        say(LOG.ERR, 'carpd: SIGHUP: a new engine takes effect at the next restart; keeping the running configuration');
        events.publish({ type: 'admin', time: new Date().toISOString(), action: 'reload', detail: 'refused: engine changed' });
        return;
      }
      if (!next.global.allow) say(LOG.WARN, 'carpd: SIGHUP: net.inet.carp.allow is off in the new configuration; stop carpd to stop CARP');
      if (plugins && JSON.stringify([next.plugins, next.health]) !== JSON.stringify([model.plugins, model.health])) {
        say(LOG.WARN, 'carpd: SIGHUP: plugin and health check changes take effect at the next restart');
      }
      // Interfaces that do not exist (a typo, a VLAN not created yet) would fail half-way through
      // the reconfiguration: refuse the reload instead, before anything changes. A followed
      // engine's vhids are the kernel's or keepalived's: only carpd's own settings reload.
      const missing = own ? [...new Set(next.vhids.map((v) => v.interface))].filter((i) => !interfaceExists(i)) : [];
      if (missing.length > 0) {
        say(LOG.ERR, `carpd: SIGHUP: no such interface: ${missing.join(', ')}; keeping the running configuration`);
        events.publish({ type: 'admin', time: new Date().toISOString(), action: 'reload', detail: `refused: no such interface ${missing.join(', ')}` });
        return;
      }
      if ((next.global.floodGuard ?? 'off') !== (model.global.floodGuard ?? 'off')) {
        say(LOG.WARN, 'carpd: SIGHUP: a new flood_guard takes effect at the next restart');
      }
      // Before the engine: a vhid added now must not meet a table that drops its peer's adverts.
      await runner.guard?.apply(next);
      let res = { added: [] as string[], removed: [] as string[], changed: [] as string[], unchanged: [] as string[] };
      try {
        // vmac: a new vhid's macvlan exists before the engine opens its socket on it.
        await runner.vmac?.apply(next);
        if (own) res = own.reconfigure(next);
        // A removed vhid's macvlan goes once its bow-out has left and its socket has closed.
        if (runner.vmac) {
          const vm = runner.vmac;
          setTimeout(() => void vm.prune(next).catch((err: unknown) => say(LOG.ERR, `carpd: vmac: ${(err as Error).message}`)), VMAC_PRUNE_DELAY_MS);
        }
      } catch (err) {
        say(LOG.ERR, `carpd: SIGHUP: applying the configuration failed: ${(err as Error).message}; the vhids it had not reached keep their old settings`);
        return;
      }
      model = next;
      byKey = new Map(model.vhids.map((v) => [v.key, v]));
      maintenance?.setDemote(model.maintenance?.demote);
      if (schedules) {
        schedules.stop();
        schedules.start(model);
      }
      await metrics?.reconfigure(model.global.metrics).catch((err: unknown) => say(LOG.ERR, `carpd: metrics: ${(err as Error).message}`));
      const list = (xs: string[]) => (xs.length ? ` (${xs.join(', ')})` : '');
      const detail = followed
        ? `carpd's settings; the vhids are ${engineLabel(engine)}'s`
        : `${res.added.length} added${list(res.added)}, ${res.removed.length} removed${list(res.removed)}, ${res.changed.length} changed${list(res.changed)}, ${res.unchanged.length} unchanged`;
      say(LOG.STATE, `carpd: SIGHUP: configuration reloaded: ${detail}`);
      events.publish({ type: 'admin', time: new Date().toISOString(), action: 'reload', detail });
    } finally {
      reloading = false;
    }
  };

  return new Promise((resolve) => {
    let stopping = false;
    const handlers: [NodeJS.Signals, () => void][] = [];
    const on = (sig: NodeJS.Signals, fn: () => void) => {
      handlers.push([sig, fn]);
      process.on(sig, fn);
    };
    const shutdown = (sig: string) => {
      if (stopping) {
        say(LOG.WARN, `carpd: ${sig} again, exiting now`);
        process.exit(1);
      }
      stopping = true;
      say(LOG.STATE, `carpd: ${sig}: shutting down`);
      schedules?.stop();
      // Bow out, release the VIPs, undo our demotions (the maintenance intent stays on disk).
      // The plugin host stops right after the engine, so its backup hooks see the last transitions.
      runner
        .stop()
        .then(() => plugins?.stop())
        .then(() => scripts.drain())
        .then(() => metrics?.close())
        .then(() => control?.close())
        .catch((err: unknown) => say(LOG.ERR, `carpd: shutdown: ${String(err)}`))
        .finally(() => {
          for (const [s, fn] of handlers) process.off(s, fn);
          offFatal();
          resolve(typeof process.exitCode === 'number' ? process.exitCode : 0);
        });
    };
    // A bug must not leave the VIPs behind with nobody advertising: log it, bow out, exit non-zero.
    // A second one while shutting down (the log's reader gone too, a failing stop step) is only
    // logged: exiting then would skip the very cleanup that is under way and leave the VIPs on.
    const fatal = (what: string) => (err: unknown) => {
      process.exitCode = 1;
      try {
        logger.log(0, `carpd: ${what}${stopping ? ' while shutting down' : ''}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      } catch {
        // the log is gone; the shutdown matters more than the message
      }
      if (!stopping) shutdown(what);
    };
    const onFatal = fatal('uncaught exception');
    const onRejection = fatal('unhandled rejection');
    process.on('uncaughtException', onFatal);
    process.on('unhandledRejection', onRejection);
    const offFatal = () => {
      process.off('uncaughtException', onFatal);
      process.off('unhandledRejection', onRejection);
    };
    on('SIGTERM', () => shutdown('SIGTERM'));
    on('SIGINT', () => shutdown('SIGINT'));
    on('SIGHUP', () => (opts.hupExits ? shutdown('SIGHUP') : void reload().catch((err: unknown) => say(LOG.ERR, `carpd: SIGHUP: ${(err as Error).message}`))));
    on('SIGUSR1', () => (opts.onUsr1 && own ? opts.onUsr1(own) : dumpStatus(engine, logger, events, maintenance)));
    on('SIGUSR2', () => own && opts.onUsr2?.(own));
  });
}
