/**
 * One line of FreeBSD devd's event stream (/var/run/devd.pipe, SOCK_STREAM, or
 * devd.seqpacket.pipe). devd hands every client the kernel's bytes unchanged
 * (sbin/devd/devd.cc event_loop() → notify_clients()), one event per line, for every subsystem.
 *
 * The kernel writes notify events in devctl_notify() (sys/kern/subr_bus.c):
 *   `!system=%s subsystem=%s type=%s[ %s]\n`
 * and CARP calls it from carp_set_state() (sys/netinet/ip_carp.c) as
 *   devctl_notify("CARP", "<vhid>@<carpdev>", carp_states[state], NULL)
 * so a CARP line is `!system=CARP subsystem=1@em0 type=MASTER`. Other first characters are
 * attach `+`, detach `-` and nomatch `?` (devd.cc process_event()).
 */
import { carpStateOf, IFNAME_RE, MAX_LINE, parseIntIn, quote, reject, type CarpState, type Reject } from './text.js';

export type DevdEvent =
  | { kind: 'carp'; vhid: number; ifname: string; state: CarpState }
  /** A well-formed event of another subsystem (or attach/detach/nomatch), which devd serves to every client. */
  | { kind: 'other'; system?: string }
  | Reject;

/**
 * Reads `key=value` pairs the way devd's config::chop_var() does: a key of letters, digits, `_`
 * and `-`; a value up to the next blank, or in double quotes with `\"` inside. Stops at the first
 * word that is not a pair, as devd does.
 */
function readVars(s: string): Map<string, string> {
  const vars = new Map<string, string>();
  const re = /\s*([A-Za-z0-9_-]+)=(?:"((?:\\"|[^"])*)"|(\S*))/y;
  // Bounded: every match consumes at least `k=`, so at most s.length / 2 passes.
  for (let i = 0; i < s.length;) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) break;
    if (!vars.has(m[1]!)) vars.set(m[1]!, m[2] !== undefined ? m[2].replace(/\\"/g, '"') : m[3]!);
    i = re.lastIndex;
  }
  return vars;
}

/** Parses one line (with or without its trailing newline). Never throws. */
export function parseDevdLine(line: string): DevdEvent {
  if (typeof line !== 'string') return reject('not a string');
  if (line.length > MAX_LINE) return reject(`longer than ${MAX_LINE} characters`);
  const l = line.replace(/\r?\n$/, '');
  if (l === '') return reject('empty line');
  const c = l[0];
  if (c === '+' || c === '-' || c === '?') return { kind: 'other' };
  if (c !== '!') return reject(`not a devd event: ${quote(l)}`);
  const vars = readVars(l.slice(1));
  const system = vars.get('system');
  if (system === undefined || !vars.has('subsystem') || !vars.has('type')) return reject(`notify without system, subsystem and type: ${quote(l)}`);
  if (system !== 'CARP') return { kind: 'other', system };
  const sub = /^(\d{1,3})@(.+)$/.exec(vars.get('subsystem')!);
  const vhid = parseIntIn(sub?.[1], 1, 255);
  if (!sub || vhid === undefined || !IFNAME_RE.test(sub[2]!)) return reject(`CARP subsystem is not VHID@IF: ${quote(l)}`);
  const state = carpStateOf(vars.get('type')!);
  if (!state) return reject(`unknown CARP type: ${quote(vars.get('type')!)}`);
  return { kind: 'carp', vhid, ifname: sub[2]!, state };
}
