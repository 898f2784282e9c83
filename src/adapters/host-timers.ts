/** Real timers and schedules (setTimeout, setInterval, node-cron) behind the HostTimers and Scheduler ports. */
import { scheduleCron } from './cron.js';
import type { HostTimers, Scheduler } from '../ports/timers.js';

export { validCron } from './cron.js';

export const realTimers: HostTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

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
