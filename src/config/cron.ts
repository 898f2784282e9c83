/** Cron expressions as node-cron reads them (5 fields, or 6 with seconds first). */
import cron from 'node-cron';

/** True when node-cron would accept `expr` as a schedule. */
export function validateCron(expr: string): boolean {
  try {
    return cron.validate(expr);
  } catch {
    return false;
  }
}
