/** `carpd run`: the daemon in the foreground, wired to the Linux adapters. */
import type { Logger, NetBackend } from '../adapters/ports.js';
import { LinuxNet } from '../adapters/linux-net.js';
import { MonotonicClock } from '../adapters/clock.js';
import { RawTransport } from '../adapters/raw-transport.js';
import type { CarpModel } from '../config/model.js';
import { netstatLines } from '../proto/counters.js';
import { Engine, LOG, type TransitionEvent } from './engine.js';
import { ScriptQueue, scriptArgv, type ScriptPolicy } from './scripts.js';

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
}

/** One status line per vhid, in ifconfig's words. */
export function statusLines(engine: Engine): string[] {
  return engine.status().map((s) => {
    const master = s.state === 'BACKUP' && s.masterSrc ? ` master ${s.masterSrc}` : '';
    return `${s.interface}: carp: ${s.state} vhid ${s.vhid} advbase ${s.advbase} advskew ${s.advskew}${s.demote ? ` demote ${s.demote}` : ''}${master}`;
  });
}

/** SIGUSR1: status, demotions, counters and bad-auth peers, one log line each. */
export function dumpStatus(engine: Engine, logger: Logger): void {
  for (const l of statusLines(engine)) logger.log(0, l);
  for (const d of engine.ledger.entries()) logger.log(0, `demotion: group ${d.group} +${d.count} by ${d.by}`);
  logger.log(0, 'carp:');
  for (const l of netstatLines(engine.stats, false)) logger.log(0, l);
  for (const [peer, n] of engine.badAuthByPeer) logger.log(0, `bad authentication from ${peer.replace(' ', ' vhid ')} x${n}`);
}

/** Starts the daemon and resolves with the exit code once it has shut down cleanly. */
export function runDaemon(opts: DaemonOptions): Promise<number> {
  const { model, logger } = opts;
  const engine = new Engine(model, {
    transport: new RawTransport(),
    net: opts.net ?? new LinuxNet({ logger }),
    clock: new MonotonicClock(),
    logger,
  });
  const scripts = new ScriptQueue(logger);
  const policy = opts.scripts ?? { neutral: false, shutdown: true };
  const byKey = new Map(model.vhids.map((v) => [v.key, v]));
  engine.on('transition', (ev: TransitionEvent) => {
    opts.onTransition?.(ev);
    const v = byKey.get(ev.key);
    const argv = v && scriptArgv(v, ev, policy);
    if (argv) scripts.push(argv);
  });
  try {
    engine.start();
  } catch (err) {
    logger.log(LOG.ERR, `carpd: cannot start: ${err instanceof Error ? err.message : String(err)}`);
    return Promise.resolve(1);
  }
  const ifs = [...new Set(model.vhids.map((v) => v.interface))];
  logger.log(LOG.INFO, `carpd: running ${model.vhids.length} vhid(s) on ${ifs.join(', ')}`);

  return new Promise((resolve) => {
    let stopping = false;
    const handlers: [NodeJS.Signals, () => void][] = [];
    const on = (sig: NodeJS.Signals, fn: () => void) => {
      handlers.push([sig, fn]);
      process.on(sig, fn);
    };
    const shutdown = (sig: string) => {
      if (stopping) {
        logger.log(LOG.WARN, `carpd: ${sig} again, exiting now`);
        process.exit(1);
      }
      stopping = true;
      logger.log(LOG.INFO, `carpd: ${sig}: shutting down`);
      engine
        .stop()
        .then(() => scripts.drain())
        .catch((err: unknown) => logger.log(LOG.ERR, `carpd: shutdown: ${String(err)}`))
        .finally(() => {
          for (const [s, fn] of handlers) process.off(s, fn);
          resolve(0);
        });
    };
    on('SIGTERM', () => shutdown('SIGTERM'));
    on('SIGINT', () => shutdown('SIGINT'));
    on('SIGHUP', () => (opts.hupExits ? shutdown('SIGHUP') : logger.log(LOG.WARN, 'carpd: SIGHUP: configuration reload is not implemented yet; restart to apply changes')));
    on('SIGUSR1', () => (opts.onUsr1 ? opts.onUsr1(engine) : dumpStatus(engine, logger)));
    on('SIGUSR2', () => opts.onUsr2?.(engine));
  });
}
