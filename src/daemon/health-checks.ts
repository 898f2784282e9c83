/**
 * `[health.NAME]` checks: node-level commands on a schedule that add or remove demotion with
 * rise/fall hysteresis (keepalived's track_script). They run in the daemon, not in the plugin-host
 * child: they are carpd's own configuration, not plugin code, and must keep working while the
 * child restarts.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../ports/logger.js';
import type { CarpModel, HealthConfig } from '../config/model.js';
import { HOST_CODES, PluginLoadError } from '../host/errors.js';
import { Hysteresis, type HealthRecord } from '../host/health.js';

export type { HealthRecord };
import type { ExecPort } from '../ports/exec.js';
import type { StateSource } from '../ports/state-source.js';
import type { Scheduler } from '../ports/timers.js';

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_INTERVAL_MS = 10_000;

/** `[health.NAME]` problems that must stop start-up. */
export function healthConfigProblems(model: CarpModel, validCron: (expression: string) => boolean): PluginLoadError[] {
  const out: PluginLoadError[] = [];
  for (const h of model.health ?? []) {
    const who = `health.${h.name}`;
    if (h.command.length === 0) out.push(new PluginLoadError(HOST_CODES.HEALTH, who, `has no command (${h.source})`));
    if (h.schedule !== undefined && !validCron(h.schedule))
      out.push(new PluginLoadError(HOST_CODES.HEALTH, who, `schedule "${h.schedule}" is not a valid cron expression (${h.source})`));
    if (h.schedule === undefined && !(typeof h.intervalMs === 'number' && h.intervalMs > 0))
      out.push(new PluginLoadError(HOST_CODES.HEALTH, who, `needs an interval or a schedule (${h.source})`));
  }
  return out;
}

export interface HealthChecksOptions {
  checks: readonly HealthConfig[];
  source: Pick<StateSource, 'setDemotion'>;
  exec: ExecPort;
  scheduler: Scheduler;
  logger: Logger;
  /** The configured log level (net.inet.carp.log). */
  logLevel: () => number;
}

interface Check {
  cfg: HealthConfig;
  hyst: Hysteresis;
  busy: boolean;
}

export class HealthChecks extends EventEmitter {
  private readonly checks: Check[];
  private readonly stops: (() => void)[] = [];
  private readonly abort = new AbortController();
  private stopping = false;

  constructor(private readonly opts: HealthChecksOptions) {
    super();
    this.checks = opts.checks.map((cfg) => ({ cfg, hyst: new Hysteresis(cfg.rise, cfg.fall), busy: false }));
  }

  private say(level: number, msg: string): void {
    if (level <= this.opts.logLevel()) this.opts.logger.log(level, `carpd: ${msg}`);
  }

  private setDemotion(group: string, by: string, count: number): void {
    try {
      this.opts.source.setDemotion(group, by, count);
    } catch (e) {
      this.say(1, `demotion ${by} in ${group}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  start(): void {
    for (const c of this.checks) {
      const tick = () => void this.runOne(c);
      this.stops.push(
        c.cfg.schedule !== undefined
          ? this.opts.scheduler.cron(c.cfg.schedule, tick)
          : this.opts.scheduler.every(c.cfg.intervalMs ?? DEFAULT_INTERVAL_MS, tick),
      );
    }
  }

  /** One run of a check (exit 0 passes); skipped while the previous one is still running. */
  async runOne(c: Check): Promise<void> {
    if (c.busy || this.stopping) return;
    c.busy = true;
    try {
      let ok = false;
      try {
        const r = await this.opts.exec.run(c.cfg.command, { timeoutMs: c.cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS, signal: this.abort.signal });
        ok = r.exitCode === 0;
      } catch (e) {
        this.say(1, `health ${c.cfg.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (this.stopping) return;
      const flipped = c.hyst.feed(ok);
      if (flipped) {
        this.say(
          flipped === 'down' ? 2 : 5,
          `health ${c.cfg.name}: ${flipped === 'down' ? `failing; demoting group ${c.cfg.group} by ${c.cfg.demote}` : 'passing again; demotion lifted'}`,
        );
        this.setDemotion(c.cfg.group, `health:${c.cfg.name}`, flipped === 'down' ? c.cfg.demote : 0);
      }
      this.emit('health', { name: `health:${c.cfg.name}`, ok, healthy: c.hyst.ok, ...(flipped ? { flipped } : {}) } satisfies HealthRecord);
    } finally {
      c.busy = false;
    }
  }

  /** Stops the schedules, kills running checks, and undoes their demotions. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const s of this.stops.splice(0)) s();
    this.abort.abort();
    for (const c of this.checks) if (!c.hyst.ok) this.setDemotion(c.cfg.group, `health:${c.cfg.name}`, 0);
  }
}
