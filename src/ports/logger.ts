/**
 * The logging port. Levels are syslog priorities (0 emerg .. 7 debug), as net.inet.carp.log uses
 * them; callers filter by the configured level before logging.
 */

/** Something the daemon can log through. */
export interface Logger {
  log(level: number, message: string): void;
}

export { LOG } from '../core/levels.js';

const LEVEL_NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

/** The syslog name of a level, clamped to 0..7. */
export function levelName(level: number): string {
  return LEVEL_NAMES[Math.max(0, Math.min(7, Math.trunc(level)))]!;
}
