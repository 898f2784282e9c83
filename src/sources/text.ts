/**
 * What every kernel-output parser shares: the named reject, the bounds on input, and the line
 * splitter for streams (devd's socket, `route -n monitor`). Pure: no I/O. The parsers never throw;
 * anything they cannot read becomes `{ kind: 'invalid', reason }`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { CarpState } from '../core/machine.js';

export type { CarpState };

/** Why an input was refused. `reason` is for logs; it quotes at most a short prefix of the input. */
export interface Reject {
  kind: 'invalid';
  reason: string;
}

/** devd reads the kernel with an 8 KiB buffer (DEVCTL_MAXBUF, sbin/devd/devd.cc event_loop()); no line we read is longer. */
export const MAX_LINE = 8192;
/** `ifconfig -a` of a large firewall stays far below this; more is not ifconfig output. */
export const MAX_TEXT = 4 * 1024 * 1024;
/** Likewise for the number of lines. */
export const MAX_LINES = 100_000;

export function reject(reason: string): Reject {
  return { kind: 'invalid', reason };
}

/** A short, printable quote of untrusted input for a reason string. */
export function quote(s: string): string {
  const head = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  return JSON.stringify(head);
}

/** Splits a whole document into lines (without the newlines), or refuses it when out of bounds. */
export function splitLines(text: string): string[] | Reject {
  if (typeof text !== 'string') return reject('not a string');
  if (text.length > MAX_TEXT) return reject(`longer than ${MAX_TEXT} characters`);
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length > MAX_LINES) return reject(`more than ${MAX_LINES} lines`);
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.length > MAX_LINE) return reject(`line ${i + 1} is longer than ${MAX_LINE} characters`);
  }
  return lines;
}

/**
 * Cuts a stream into lines. A line that grows past `maxLine` before its newline is dropped whole
 * (counted in `dropped`), so a peer that never sends a newline cannot grow the buffer.
 */
export class LineSplitter {
  private buf = '';
  private skipping = false;
  dropped = 0;

  constructor(private readonly maxLine = MAX_LINE) {}

  push(chunk: string): string[] {
    const out: string[] = [];
    let start = 0;
    // Bounded: each pass moves `start` past one newline of the chunk.
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      const len = this.buf.length + nl - start;
      if (this.skipping || len > this.maxLine) {
        if (!this.skipping) this.dropped++;
      } else {
        out.push(this.buf + chunk.slice(start, nl));
      }
      this.skipping = false;
      this.buf = '';
      start = nl + 1;
    }
    if (this.skipping) return out;
    if (this.buf.length + chunk.length - start > this.maxLine) {
      this.dropped++;
      this.skipping = true;
      this.buf = '';
    } else {
      this.buf += chunk.slice(start);
    }
    return out;
  }

  /** The unterminated tail, e.g. when the peer closed. */
  flush(): string | undefined {
    const tail = this.skipping || this.buf === '' ? undefined : this.buf;
    this.buf = '';
    this.skipping = false;
    return tail;
  }
}

/** A decimal integer of at most `maxDigits` digits within [min, max], or undefined. */
export function parseIntIn(s: string | undefined, min: number, max: number, maxDigits = 10): number | undefined {
  if (s === undefined || !/^-?\d+$/.test(s) || s.replace('-', '').length > maxDigits) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
}

/** The state names of CARP_STATES (netinet/ip_carp.h on both BSDs). */
export function carpStateOf(s: string): CarpState | undefined {
  return s === 'INIT' || s === 'BACKUP' || s === 'MASTER' ? s : undefined;
}

/** Prefix length of a contiguous IPv4 netmask written as 0x%x (ifconfig's default), or undefined. */
export function hexMaskToPrefix(hex: string): number | undefined {
  if (!/^0x[0-9a-fA-F]{1,8}$/.test(hex)) return undefined;
  const m = Number.parseInt(hex.slice(2), 16) >>> 0;
  const inv = ~m >>> 0;
  // Contiguous means the inverted mask is 2^k - 1.
  if ((inv & (inv + 1)) !== 0) return undefined;
  return Math.clz32(inv);
}

/** `addr/prefix` for an IPv4 or IPv6 address (scope `%if` dropped), or undefined. */
export function cidr(addr: string, prefix: number): string | undefined {
  const a = addr.replace(/%[^%]*$/, '');
  if (isIPv4(a) && prefix >= 0 && prefix <= 32) return `${a}/${prefix}`;
  if (isIPv6(a) && prefix >= 0 && prefix <= 128) return `${a}/${prefix}`;
  return undefined;
}

/** Interface names: IFNAMSIZ is 16 with the NUL on both BSDs and Linux. */
export const IFNAME_RE = /^[A-Za-z][A-Za-z0-9_.:-]{0,14}$/;
