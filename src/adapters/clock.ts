/** The real clock: monotonic milliseconds and the daemon's one timer. */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../ports/clock.js';

/** setTimeout's largest delay; longer waits re-arm in steps. */
const MAX_DELAY_MS = 0x7fffffff;
/** How early the first of the two timer stages wakes. */
const COARSE_MS = 15;

/**
 * Monotonic time from `performance.now()`, with one real setTimeout armed for the earliest due
 * time. Callbacks run at or after `at`, never before: Node's timers work in whole milliseconds
 * and can fire a fraction early, so an early wake-up re-arms for the rest.
 */
export class MonotonicClock implements Clock {
  private handle: NodeJS.Timeout | undefined;
  private due: { at: number; cb: () => void } | undefined;

  now(): number {
    return performance.now();
  }

  setTimer(at: number, cb: () => void): void {
    if (!Number.isFinite(at)) throw new RangeError(`setTimer: bad due time ${at}`);
    this.due = { at, cb };
    this.arm();
  }

  clearTimer(): void {
    this.due = undefined;
    if (this.handle) clearTimeout(this.handle);
    this.handle = undefined;
  }

  private arm(): void {
    if (this.handle) clearTimeout(this.handle);
    const due = this.due;
    if (!due) {
      this.handle = undefined;
      return;
    }
    // libuv measures timers against a loop time cached at the start of each turn, so a long
    // setTimeout lands a few ms late. Aim COARSE_MS early, then finish with a short one.
    const left = due.at - this.now();
    const delay = Math.min(Math.max(0, left > COARSE_MS * 2 ? left - COARSE_MS : Math.ceil(left)), MAX_DELAY_MS);
    this.handle = setTimeout(() => this.fire(due), delay);
  }

  private fire(due: { at: number; cb: () => void }): void {
    this.handle = undefined;
    // A stale wake-up (re-armed or cleared meanwhile) does nothing.
    if (this.due !== due) return;
    if (this.now() < due.at) {
      this.arm();
      return;
    }
    // Cleared before the call so the callback may arm the next timer.
    this.due = undefined;
    due.cb();
  }
}
