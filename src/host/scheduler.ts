/**
 * Time for the plugin host: hook timeouts and retry delays (a timer port, so host tests can run on
 * the simulated clock), and the housekeeping schedules of health checks (intervals, or node-cron
 * expressions). Never used for protocol timing.
 */
import { scheduleCron, validCron as valid } from '../adapters/cron.js';

export interface HostTimers {
  /** Monotonic ms. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: HostTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Repeating jobs; each returns its stop function. */
export interface Scheduler {
  every(ms: number, fn: () => void): () => void;
  cron(expression: string, fn: () => void): () => void;
}

/** Whether node-cron accepts `expression`. */
export function validCron(expression: string): boolean {
  return valid(expression);
}

/** setInterval and node-cron. */
export const realScheduler: Scheduler = {
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
  cron(expression, fn) {
    return scheduleCron(expression, fn);
  },
};

/** A promise that resolves after `ms` on `timers`. */
export function sleep(timers: HostTimers, ms: number): Promise<void> {
  return new Promise((r) => timers.setTimeout(r, ms));
}
