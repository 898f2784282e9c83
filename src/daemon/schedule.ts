/**
 * Housekeeping on a schedule (never protocol timing): maintenance windows from `[maintenance]`
 * (enter at a cron time; leave after a duration or at another cron time) with node-cron, and the
 * periodic gratuitous ARP refresh while MASTER (`garp_refresh`, for switches with long ARP caches).
 */
import type { Cron } from '../ports/cron.js';
import { LOG, type Logger } from '../ports/logger.js';
import type { HostTimers } from '../ports/timers.js';
import type { CarpModel } from '../config/model.js';
import type { Maintenance } from './maintenance.js';

/** Who a scheduled maintenance window is recorded as. */
export const SCHEDULE = 'schedule';
/** setTimeout's largest delay; longer waits re-arm. */
const MAX_DELAY_MS = 0x7fffffff;

export interface ScheduleDeps {
  engine: { refreshGarp(): number };
  cron: Cron;
  /** The garp refresh and a window's end (a port, so the tests run on a simulated clock). */
  timers: HostTimers;
  maintenance?: Maintenance;
  logger: Logger;
  /** Wall-clock ms (Date.now): a window's end is recorded as a date, to survive a restart. */
  now?: () => number;
}

/** Problems with the schedule parts of a model, as messages (empty when fine). */
export function checkSchedules(model: CarpModel, validCron: (expression: string) => boolean): string[] {
  const out: string[] = [];
  const m = model.maintenance;
  if (m?.enter !== undefined && !validCron(m.enter)) out.push(`${m.source}: maintenance enter: not a cron expression: ${m.enter}`);
  if (m?.leave !== undefined && !validCron(m.leave)) out.push(`${m.source}: maintenance leave: not a cron expression: ${m.leave}`);
  if (m && m.leave === undefined && m.durationMs === undefined && m.enter !== undefined)
    out.push(`${m.source}: maintenance: enter needs a leave time or a duration`);
  const g = model.global.garpRefresh;
  if (g !== undefined && (!Number.isFinite(g) || g < 0)) out.push(`garp_refresh: must be a number of seconds >= 0`);
  return out;
}

/** The running schedules; `start` again (after `stop`) on reload. */
export class Schedules {
  private tasks: (() => void)[] = [];
  private garpTimer: unknown;
  private leaveTimer: unknown;

  constructor(private readonly deps: ScheduleDeps) {
    const l = deps.logger;
    deps.cron.setLogger({
      info: (m) => l.log(LOG.DEBUG, `carpd: schedule: ${m}`),
      warn: (m) => l.log(LOG.WARN, `carpd: schedule: ${m}`),
      error: (m) => l.log(LOG.ERR, `carpd: schedule: ${m}`),
    });
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  /** Start what `model` asks for. Bad expressions are logged and skipped. */
  start(model: CarpModel): void {
    for (const problem of checkSchedules(model, (expression) => this.deps.cron.valid(expression))) this.deps.logger.log(LOG.ERR, `carpd: ${problem}`);
    const m = model.maintenance;
    const mt = this.deps.maintenance;
    if (m && mt) {
      if (m.enter !== undefined && this.deps.cron.valid(m.enter)) {
        this.tasks.push(this.deps.cron.schedule(m.enter, () => this.enter(m.durationMs), 'maintenance-enter'));
      }
      if (m.leave !== undefined && this.deps.cron.valid(m.leave)) {
        this.tasks.push(this.deps.cron.schedule(m.leave, () => this.leave(), 'maintenance-leave'));
      }
      // A window that began before a restart still ends on time.
      const st = mt.state;
      if (st.on && st.by === SCHEDULE && st.until) this.armLeave(Date.parse(st.until));
    }
    const every = model.global.garpRefresh;
    if (every !== undefined && Number.isFinite(every) && every > 0) this.armGarp(Math.max(1000, every * 1000));
  }

  private armGarp(ms: number): void {
    this.garpTimer = this.deps.timers.setTimeout(() => {
      const n = this.deps.engine.refreshGarp();
      if (n > 0) this.deps.logger.log(LOG.DEBUG, `carpd: gratuitous ARP refresh for ${n} vhid(s)`);
      this.armGarp(ms);
    }, ms);
  }

  stop(): void {
    for (const stop of this.tasks) stop();
    this.tasks = [];
    if (this.garpTimer !== undefined) this.deps.timers.clearTimeout(this.garpTimer);
    this.garpTimer = undefined;
    if (this.leaveTimer !== undefined) this.deps.timers.clearTimeout(this.leaveTimer);
    this.leaveTimer = undefined;
  }

  /** Scheduled entry; a maintenance already on (by carpctl, say) is left as it is. */
  private enter(durationMs: number | undefined): void {
    const mt = this.deps.maintenance;
    if (!mt || mt.state.on) return;
    const until = durationMs !== undefined ? new Date(this.now() + durationMs) : undefined;
    try {
      mt.set(true, SCHEDULE, until);
    } catch (err) {
      this.deps.logger.log(LOG.ERR, `carpd: scheduled maintenance: ${(err as Error).message}`);
      return;
    }
    if (until) this.armLeave(until.getTime());
  }

  /** Scheduled exit: ends only a window the schedule began, never an admin's maintenance. */
  private leave(): void {
    const mt = this.deps.maintenance;
    if (!mt || !mt.state.on || mt.state.by !== SCHEDULE) return;
    if (this.leaveTimer !== undefined) this.deps.timers.clearTimeout(this.leaveTimer);
    this.leaveTimer = undefined;
    try {
      mt.set(false, SCHEDULE);
    } catch (err) {
      this.deps.logger.log(LOG.ERR, `carpd: scheduled maintenance end: ${(err as Error).message}`);
    }
  }

  private armLeave(at: number): void {
    if (this.leaveTimer !== undefined) this.deps.timers.clearTimeout(this.leaveTimer);
    this.leaveTimer = undefined;
    const left = at - this.now();
    if (!Number.isFinite(left) || left <= 0) {
      this.leave();
      return;
    }
    this.leaveTimer = this.deps.timers.setTimeout(
      () => {
        this.leaveTimer = undefined;
        if (at - this.now() > 0) this.armLeave(at);
        else this.leave();
      },
      Math.min(left, MAX_DELAY_MS),
    );
  }
}
