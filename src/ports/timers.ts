/**
 * Time for the plugin host and the health checks: hook timeouts and retry delays (a port, so tests
 * run on a simulated clock), and housekeeping schedules. Never used for protocol timing.
 */

export interface HostTimers {
  /** Monotonic ms. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Repeating jobs; each returns its stop function. */
export interface Scheduler {
  every(ms: number, fn: () => void): () => void;
  cron(expression: string, fn: () => void): () => void;
}

/** A promise that resolves after `ms` on `timers`. */
export function sleep(timers: HostTimers, ms: number): Promise<void> {
  return new Promise((r) => timers.setTimeout(r, ms));
}
