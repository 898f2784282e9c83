/** Config errors and diagnostics: stable codes, `file:line` locations, never secret values. */

/** Stable error and warning codes; tests assert these, not message text. */
export const Code = {
  USAGE: 'CARPD_ERR_USAGE',
  CONFIG_READ: 'CARPD_ERR_CONFIG_READ',
  CONFIG_FORMAT: 'CARPD_ERR_CONFIG_FORMAT',
  CONFIG_SYNTAX: 'CARPD_ERR_CONFIG_SYNTAX',
  CONFIG_SECTION: 'CARPD_ERR_CONFIG_SECTION',
  CONFIG_KEY: 'CARPD_ERR_CONFIG_KEY',
  CONFIG_DUPLICATE: 'CARPD_ERR_CONFIG_DUPLICATE',
  CONFIG_VALUE: 'CARPD_ERR_CONFIG_VALUE',
  CONFIG_MISSING: 'CARPD_ERR_CONFIG_MISSING',
  CONFIG_CONFLICT: 'CARPD_ERR_CONFIG_CONFLICT',
  CONFIG_MODE: 'CARPD_ERR_CONFIG_MODE',
  CONFIG_LIMIT: 'CARPD_ERR_CONFIG_LIMIT',
  PASSFILE: 'CARPD_ERR_PASSFILE',
  PASSFILE_MODE: 'CARPD_ERR_PASSFILE_MODE',
  PASSWORD_LENGTH: 'CARPD_ERR_PASSWORD_LENGTH',
  VHID: 'CARPD_ERR_VHID',
  VHID_DUPLICATE: 'CARPD_ERR_VHID_DUPLICATE',
  ADVBASE: 'CARPD_ERR_ADVBASE',
  ADVSKEW: 'CARPD_ERR_ADVSKEW',
  INTERFACE: 'CARPD_ERR_INTERFACE',
  NO_ADDRESS: 'CARPD_ERR_NO_ADDRESS',
  ADDRESS: 'CARPD_ERR_ADDRESS',
  PEER: 'CARPD_ERR_PEER',
  SRCIP: 'CARPD_ERR_SRCIP',
  GROUP: 'CARPD_ERR_GROUP',
  PARENT: 'CARPD_ERR_PARENT',
  VHID_SEGMENT: 'CARPD_ERR_VHID_SEGMENT',
  UNSUPPORTED: 'CARPD_ERR_UNSUPPORTED',
  REFERENCE: 'CARPD_ERR_REFERENCE',
  PEER_MISMATCH: 'CARPD_ERR_PEER_MISMATCH',
  PEER_MISSING: 'CARPD_ERR_PEER_MISSING',
  ENGINE: 'CARPD_ERR_ENGINE',
  WARN_ADDRESS_DUPLICATE: 'CARPD_WARN_ADDRESS_DUPLICATE',
  WARN_SCRIPT_PATH: 'CARPD_WARN_SCRIPT_PATH',
  WARN_NO_SCRIPT: 'CARPD_WARN_NO_SCRIPT',
  WARN_PASS_ON_ARGV: 'CARPD_WARN_PASS_ON_ARGV',
  WARN_KERNEL_CARP: 'CARPD_WARN_KERNEL_CARP',
  WARN_SUBNET: 'CARPD_WARN_SUBNET',
  WARN_IGNORED: 'CARPD_WARN_IGNORED',
  WARN_OVERRIDE: 'CARPD_WARN_OVERRIDE',
  WARN_DUPLICATE: 'CARPD_WARN_DUPLICATE',
  WARN_PEER_ADVSKEW: 'CARPD_WARN_PEER_ADVSKEW',
  WARN_PEER_INTERFACE: 'CARPD_WARN_PEER_INTERFACE',
  WARN_PREEMPT: 'CARPD_WARN_PREEMPT',
  WARN_REASSIGNED: 'CARPD_WARN_REASSIGNED',
  WARN_MORE: 'CARPD_WARN_MORE',
} as const;

export type Severity = 'error' | 'warning';

/** One finding about a configuration, located at `file:line`. */
export interface Diagnostic {
  severity: Severity;
  file: string;
  /** 1-based; 0 when the source has no lines (the command line). */
  line: number;
  code: string;
  message: string;
}

/** A location in a configuration source. */
export interface SourceRef {
  file: string;
  line: number;
}

/** A configuration problem that stops the caller; `code` is one of `Code`. */
export class ConfigError extends Error {
  readonly code: string;
  readonly file?: string;
  readonly line?: number;

  constructor(code: string, message: string, where: Partial<SourceRef> = {}) {
    super(clipMessage(message));
    this.name = 'ConfigError';
    this.code = code;
    if (where.file !== undefined) this.file = where.file;
    if (where.line !== undefined) this.line = where.line;
  }

  /** The error for the first error-severity diagnostic. */
  static fromDiagnostic(d: Diagnostic): ConfigError {
    return new ConfigError(d.code, d.message, { file: d.file, line: d.line });
  }
}

/** A value echoed in a message is cut to this many characters (an 8 MB value is not printed whole). */
export const MAX_ECHO = 80;
/** A whole message is cut to this many characters, whatever it quotes. */
const MAX_MESSAGE = 1000;
/** At most this many diagnostics are reported; the rest are counted in one "N more" line. */
export const MAX_DIAGNOSTICS = 100;

/**
 * Control characters a value may carry (a NUL, a lone CR, a newline inside quotes): printed raw
 * they would break the one-line `FILE:LINE: message` output, so they are shown escaped.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const CONTROL_ALL = /[\u0000-\u0008\u000a-\u001f\u007f\u2028\u2029]/g;
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\0': '\\0' };

function escapeControl(c: string): string {
  return ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** `value` for a message: whole when short, else its first MAX_ECHO characters, `…` and its size. */
export function clip(value: string): string {
  if (value.length <= MAX_ECHO) return value;
  return `${value.slice(0, MAX_ECHO)}… (${Buffer.byteLength(value, 'utf8')} bytes)`;
}

/**
 * Cuts what a message quotes. Every builder below passes its message through here, so none of the
 * many `not "${value}"` messages in the parsers can echo a huge value: each quoted run longer than
 * MAX_ECHO is clipped, and a message still too long (a value holding quotes) is cut as a whole.
 */
export function clipMessage(message: string): string {
  let m = message;
  if (m.length > MAX_ECHO) {
    // Split at the quotes rather than match /"[^"]{81,}"/: a regex over an 8 MB run overflows the stack.
    const parts = m.split('"');
    for (let i = 1; i < parts.length - 1; i += 2) if (parts[i]!.length > MAX_ECHO) parts[i] = clip(parts[i]!);
    m = parts.join('"');
  }
  // Escaped after clipping, so that a clipped value's size is the size of what the file held.
  if (CONTROL.test(m)) m = m.replace(CONTROL_ALL, escapeControl);
  return m.length <= MAX_MESSAGE ? m : `${m.slice(0, MAX_MESSAGE)}… (${Buffer.byteLength(m, 'utf8')} bytes)`;
}

/** Builds an error diagnostic. */
export function error(where: SourceRef, code: string, message: string): Diagnostic {
  return { severity: 'error', file: where.file, line: where.line, code, message: clipMessage(message) };
}

/** Builds a warning diagnostic. */
export function warning(where: SourceRef, code: string, message: string): Diagnostic {
  return { severity: 'warning', file: where.file, line: where.line, code, message: clipMessage(message) };
}

/**
 * The first MAX_DIAGNOSTICS diagnostics and one line counting the rest: garbage with an error on
 * each of 40,000 lines gives 101 lines, not 40,000. The count line is an error when any of the
 * rest is one, so cutting never turns a refused configuration into an accepted one.
 */
export function capDiagnostics(diagnostics: Diagnostic[], max = MAX_DIAGNOSTICS): Diagnostic[] {
  if (diagnostics.length <= max) return diagnostics;
  return capped(diagnostics.slice(0, max + 1), diagnostics.length - max, diagnostics.filter((d) => d.severity === 'error').length);
}

/**
 * capDiagnostics(diagnostics sorted by `compare`, stably), without sorting them all: only the
 * first max + 1 are kept in order while the rest are counted. Sorting 10^6 diagnostics (an
 * error on every line of a 4 MiB file) to print 100 took seconds.
 */
export function capSorted(diagnostics: readonly Diagnostic[], compare: (a: Diagnostic, b: Diagnostic) => number, max = MAX_DIAGNOSTICS): Diagnostic[] {
  if (diagnostics.length <= max) return [...diagnostics].sort(compare);
  // `best` holds the max + 1 smallest so far, in order; ties keep the input order (a stable sort's).
  const best: Diagnostic[] = [];
  for (const d of diagnostics) {
    if (best.length > max && compare(d, best[max]!) >= 0) continue;
    let lo = 0;
    let hi = best.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(d, best[mid]!) < 0) hi = mid;
      else lo = mid + 1;
    }
    best.splice(lo, 0, d);
    if (best.length > max + 1) best.pop();
  }
  return capped(best, diagnostics.length - max, diagnostics.filter((d) => d.severity === 'error').length);
}

/** The first `head.length - 1` of `head` and a line counting the `rest` not shown (`errors` among all). */
function capped(head: Diagnostic[], restCount: number, allErrors: number): Diagnostic[] {
  const kept = head.slice(0, -1);
  const errors = allErrors - kept.filter((d) => d.severity === 'error').length;
  const first = head[head.length - 1]!;
  const what = errors > 0 ? `${errors} error(s) and ${restCount - errors} warning(s)` : `${restCount} warning(s)`;
  const more = { file: first.file, line: first.line };
  kept.push(
    errors > 0 ? error(more, Code.CONFIG_LIMIT, `${restCount} more: ${what} not shown`) : warning(more, Code.WARN_MORE, `${restCount} more: ${what} not shown`),
  );
  return kept;
}

/** True when any diagnostic is an error. */
export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** `FILE:LINE: message`, or `FILE:LINE: warning: message`; sources without lines print `FILE: …`. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line > 0 ? `${d.file}:${d.line}` : d.file;
  return d.severity === 'warning' ? `${where}: warning: ${d.message}` : `${where}: ${d.message}`;
}

/** Parses a model `source` string (`file:line`); the line is 0 when there is none. */
export function parseSource(source: string): SourceRef {
  const m = /^(.*):(\d+)$/.exec(source);
  return m ? { file: m[1]!, line: Number(m[2]) } : { file: source, line: 0 };
}
