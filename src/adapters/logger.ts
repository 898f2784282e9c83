/**
 * Log sinks: one line per event, to stderr (for daemon(8) and journald) or appended to a file.
 * Levels are syslog priorities, 0 emerg .. 7 debug, as net.inet.carp.log uses them; callers filter
 * by the configured level. Writing a log line never throws: a file that cannot be written falls
 * back to stderr, and a stderr nobody reads any more is left alone (guardStdio).
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

let stdioGuarded = false;
let stderrOpen = true;
let stdoutOpen = true;
let onStdoutGone: (() => void) | undefined;

/**
 * Whatever reads carpd's output can go away: OpenBSD's daemon_logger, FreeBSD's `daemon -S`, the
 * logger(1) behind `carpd ucarp -B`, or `head` after `carpd inspect`. A write then fails with
 * EPIPE (Node ignores SIGPIPE), and the stream's 'error' event, with nobody listening, is an
 * uncaught exception: it killed the daemon and, logged to the same dead stderr, raised another
 * during the shutdown it started. With these listeners a closed stream is only marked closed; log
 * lines then go to the log file if there is one, or nowhere. `stdoutGone` is called once when
 * stdout closes (a one-shot command stops there; a daemon carries on).
 */
export function guardStdio(stdoutGone?: () => void): void {
  if (stdoutGone) onStdoutGone = stdoutGone;
  if (stdioGuarded) return;
  stdioGuarded = true;
  process.stderr.on('error', () => {
    stderrOpen = false;
  });
  process.stdout.on('error', () => {
    if (!stdoutOpen) return;
    stdoutOpen = false;
    onStdoutGone?.();
  });
}

/** Writes to stderr unless its reader has gone; never throws. */
export function writeStderr(text: string): void {
  if (!stderrOpen) return;
  try {
    process.stderr.write(text);
  } catch {
    stderrOpen = false;
  }
}

/** Writes to stdout unless its reader has gone; never throws. */
export function writeStdout(text: string): void {
  if (!stdoutOpen) return;
  try {
    process.stdout.write(text);
  } catch {
    stdoutOpen = false;
  }
}

/** A logger writing `[time] tag[pid]: message` lines. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  guardStdio();
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
            writeStderr(`${tag}: cannot write the log file ${opts.file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); logging to stderr\n`);
          brokenAt = Date.now();
        }
      }
      writeStderr(line);
    },
  };
}
