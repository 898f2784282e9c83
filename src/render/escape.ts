/**
 * Escapers for rendered values, one per target format. Mustache's HTML escaping is never used:
 * every render names the escaper for its target, per call (the global `Mustache.escape` stays as it is).
 */
import { RenderError, RENDER_CODES } from './errors.js';

/** Turns one view value into text that is safe in the target format. */
export type Escaper = (value: unknown) => string;

/** The built-in escapers, by target format. */
export const ESCAPER_NAMES = ['none', 'shell-word', 'json', 'conf-quoted'] as const;
export type EscaperName = (typeof ESCAPER_NAMES)[number];

function scalar(value: unknown, format: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  throw new RenderError(RENDER_CODES.ESCAPE, `a ${typeof value === 'object' ? 'list or object' : typeof value} cannot be rendered as a ${format} value`);
}

const ESCAPERS: Record<EscaperName, Escaper> = {
  /** The value as it is (numbers and strings only). */
  none: (v) => scalar(v, 'plain'),
  /** One POSIX shell word: single-quoted, with `'` written as `'\''`. */
  'shell-word': (v) => {
    const s = scalar(v, 'shell word');
    if (s.includes('\0')) throw new RenderError(RENDER_CODES.ESCAPE, 'a shell word cannot hold a NUL byte');
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
  },
  /** A JSON value (strings quoted, numbers and booleans bare, lists and objects allowed). */
  json: (v) => {
    const s = JSON.stringify(v);
    if (s === undefined) throw new RenderError(RENDER_CODES.ESCAPE, `a ${typeof v} cannot be rendered as JSON`);
    return s;
  },
  /**
   * A double-quoted string as relayd.conf, bgpd.conf, nginx and nftables read it: `\` and `"`
   * backslashed. A line break would end the directive, so it is refused.
   */
  'conf-quoted': (v) => {
    const s = scalar(v, 'quoted configuration');
    if (/[\r\n\0]/.test(s)) throw new RenderError(RENDER_CODES.ESCAPE, 'a quoted configuration value cannot hold a line break or NUL');
    return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  },
};

/** The escaper for a name, or the function itself. */
export function escaperFor(escape: EscaperName | Escaper): Escaper {
  if (typeof escape === 'function') return escape;
  const e = (ESCAPERS as Record<string, Escaper | undefined>)[escape];
  if (!e) throw new RenderError(RENDER_CODES.ESCAPE, `unknown escaper "${String(escape)}" (one of ${ESCAPER_NAMES.join(', ')})`);
  return e;
}
