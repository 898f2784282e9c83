/** Cron expressions as node-cron reads them (5 fields, or 6 with seconds first). */
export { validCron as validateCron } from '../adapters/cron.js';
