/**
 * Log sinks: one line per event, to stderr (for daemon(8) and journald) or appended to a file.
 * Levels are syslog priorities, 0 emerg .. 7 debug, as net.inet.carp.log uses them; callers filter
 * by the configured level. Writing a log line never throws: a file that cannot be written falls
 * back to stderr.
 */
import { appendFileSync } from 'node:fs';
import type { Logger } from '../ports/logger.js';

export interface LoggerOptions {
  /** Append to this file instead of stderr (opened per line, so logrotate needs no signal). */
  file?: string;
  /** Prefix each line with an ISO timestamp (journald and syslog add their own). */
  timestamps?: boolean;
  tag?: string;
  /**
   * Start each stderr line with `<N>`, the priority journald reads (sd-daemon(3)). Default: when
   * stderr is the journal ($JOURNAL_STREAM is set).
   */
  priorityPrefix?: boolean;
}

/** A logger writing `[time] tag[pid]: message` lines. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const tag = `${opts.tag ?? 'carpd'}[${process.pid}]`;
  const journal = opts.priorityPrefix ?? (!opts.file && !!process.env.JOURNAL_STREAM);
  /** When the file last failed; it is tried again a minute later. */
  let brokenAt: number | undefined;
  return {
    log(level: number, message: string): void {
      const lvl = Math.max(0, Math.min(7, Math.trunc(level)));
      const sev = lvl >= 7 ? ' debug:' : '';
      // journald records the process name and pid itself.
      const line = journal ? `<${lvl}>${message}\n` : `${opts.timestamps ? `${new Date().toISOString()} ` : ''}${tag}:${sev} ${message}\n`;
      if (opts.file && (brokenAt === undefined || Date.now() - brokenAt > 60_000)) {
        try {
          appendFileSync(opts.file, line);
          brokenAt = undefined;
          return;
        } catch (err) {
          if (brokenAt === undefined)
            process.stderr.write(`${tag}: cannot write the log file ${opts.file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); logging to stderr\n`);
          brokenAt = Date.now();
        }
      }
      process.stderr.write(line);
    },
  };
}
