/**
 * FreeBSD's CARP demotion counter, `net.inet.carp.demotion`, as sysctl(8) prints it
 * (freebsd-src sbin/sysctl/sysctl.c parse() and show_var()):
 *   - `sysctl -n net.inet.carp.demotion`        → `240`
 *   - `sysctl net.inet.carp.demotion`           → `net.inet.carp.demotion: 240`
 *   - `sysctl net.inet.carp.demotion=240`       → `net.inet.carp.demotion: 0 -> 240`
 * Writing N does not set the counter: the handler carp_demote_adj_sysctl() (sys/netinet/ip_carp.c)
 * passes N to carp_demote_adj(), which adds it. The value after `->` is read back after the add.
 */
import { parseIntIn, quote, reject, type Reject } from './text.js';

export const CARP_DEMOTION_OID = 'net.inet.carp.demotion';

export type SysctlValue = { kind: 'value'; name?: string; value: number; previous?: number } | Reject;

const INT = '(-?\\d{1,10})';
const NAMED = new RegExp(`^([a-z0-9_.%]+): ${INT}(?: -> ${INT})?$`);
const BARE = new RegExp(`^${INT}$`);

/** Parses one integer sysctl's output (one line, newline optional). Never throws. */
export function parseSysctlInt(text: string): SysctlValue {
  if (typeof text !== 'string') return reject('not a string');
  if (text.length > 256) return reject('longer than a sysctl line');
  const line = text.replace(/\n$/, '');
  const bare = BARE.exec(line);
  if (bare) {
    const value = parseIntIn(bare[1], -(2 ** 31), 2 ** 31 - 1);
    return value === undefined ? reject(`not an int: ${quote(line)}`) : { kind: 'value', value };
  }
  const m = NAMED.exec(line);
  if (!m) return reject(`not sysctl output: ${quote(line)}`);
  const first = parseIntIn(m[2], -(2 ** 31), 2 ** 31 - 1);
  const second = m[3] === undefined ? undefined : parseIntIn(m[3], -(2 ** 31), 2 ** 31 - 1);
  if (first === undefined || (m[3] !== undefined && second === undefined)) return reject(`not an int: ${quote(line)}`);
  return second === undefined ? { kind: 'value', name: m[1]!, value: first } : { kind: 'value', name: m[1]!, value: second, previous: first };
}
