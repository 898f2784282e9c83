/** Log sinks: one line per event, to stderr (for daemon(8) and journald) or a file. */
import { appendFileSync } from 'node:fs';
import type { Logger } from '../adapters/ports.js';

const NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

export interface LoggerOptions {
  /** Append to this file instead of stderr. */
  file?: string;
  /** Prefix each line with an ISO timestamp (journald and syslog add their own). */
  timestamps?: boolean;
  tag?: string;
}

/** A logger writing `[time] tag[pid]: message` lines. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const tag = `${opts.tag ?? 'carpd'}[${process.pid}]`;
  return {
    log(level: number, message: string): void {
      const sev = level >= 7 ? ' debug:' : '';
      const line = `${opts.timestamps ? `${new Date().toISOString()} ` : ''}${tag}:${sev} ${message}\n`;
      if (opts.file) appendFileSync(opts.file, line);
      else process.stderr.write(line);
    },
  };
}

export function levelName(level: number): string {
  return NAMES[Math.max(0, Math.min(7, level))]!;
}
