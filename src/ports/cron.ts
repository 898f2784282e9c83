/** Housekeeping schedules (maintenance windows, plugin jobs) on cron expressions; never protocol timing. */
export interface Cron {
  /** Whether the expression is accepted (5 fields, or 6 with seconds first). */
  valid(expression: string): boolean;
  /** Run `fn` on the schedule, never two at once; returns the stop function. */
  schedule(expression: string, fn: () => void, name?: string): () => void;
  /** Where the cron library's own messages go. */
  setLogger(log: { info(m: string): void; warn(m: string): void; error(m: string): void }): void;
}
