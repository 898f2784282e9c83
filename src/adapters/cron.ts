/** node-cron behind two functions: housekeeping schedules only, never protocol timing. */
import cron from 'node-cron';
import type { Cron } from '../ports/cron.js';

/** Whether node-cron accepts `expression` (5 fields, or 6 with seconds first). */
export function validCron(expression: string): boolean {
  try {
    return cron.validate(expression);
  } catch {
    return false;
  }
}

/** Run `fn` on a cron schedule, never two at once; returns the stop function. */
export function scheduleCron(expression: string, fn: () => void, name?: string): () => void {
  const task = cron.schedule(expression, () => fn(), { noOverlap: true, ...(name ? { name } : {}) });
  return () => void task.destroy();
}

/** Where node-cron's own messages go. */
export function setCronLogger(log: { info(m: string): void; warn(m: string): void; error(m: string): void }): void {
  cron.setLogger({
    info: (m) => log.info(String(m)),
    warn: (m) => log.warn(String(m)),
    error: (m) => log.error(m instanceof Error ? m.message : String(m)),
    debug: (m) => log.info(m instanceof Error ? m.message : String(m)),
  });
}

export const nodeCron: Cron = { valid: validCron, schedule: scheduleCron, setLogger: setCronLogger };
