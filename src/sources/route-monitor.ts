/**
 * OpenBSD `route -n monitor` output, read for the RTM_IFINFO messages of carp interfaces: the
 * kernel announces a carp state change only as a link state change of carpN
 * (sys/netinet/ip_carp.c carp_set_state() → if_link_state_change()), as ifstated(8) follows it.
 *
 * route(8) prints (openbsd/src sbin/route/route.c):
 *   monitor():      `got message of size %d on <ctime>`
 *   print_rtmsg():  `RTM_IFINFO: iface status change: len %u, if# %u, name %s, link: %s, mtu: %u, flags:<…>`
 * where the link word comes from get_linkstate() and LINK_STATE_DESCRIPTIONS (net/if.h):
 * for IFT_CARP, LINK_STATE_DOWN is "backup", UP/HALF/FULL_DUPLEX are "master"; INVALID (carp INIT)
 * falls through to the generic "invalid". Other message types print other shapes; they are
 * recognised and skipped.
 */
import { IFNAME_RE, LineSplitter, MAX_LINE, MAX_TEXT, parseIntIn, quote, reject, type CarpState, type Reject } from './text.js';

export interface IfinfoEvent {
  kind: 'ifinfo';
  ifIndex: number;
  /** Absent when route(8) could not name the index (the interface was already gone). */
  ifname?: string;
  /** get_linkstate()'s word: `master`, `backup`, `invalid`, `active`, `no carrier`, `[#5]`, … */
  linkState: string;
  /** The carp state the link word stands for; absent for words carp never produces. */
  carpState?: CarpState;
  mtu: number;
  flags: string[];
}

export type RouteMonitorLine = IfinfoEvent | { kind: 'other' } | Reject;

const IFINFO = /^RTM_IFINFO: iface status change: len \d+, if# (\d+), (?:name (\S+), )?link: (.+?), mtu: (\d+), flags:(?:<([A-Z0-9_,]*)>)?$/;
/** Shapes print_rtmsg(), pmsg_common() and pmsg_addrs() write for the messages that are not RTM_IFINFO. */
const OTHER = [
  /^got message of size -?\d+ on /,
  /^RTM_[A-Z0-9]+: /,
  /^\[rtm_type \d+ out of range\]/,
  /^(?:flags|fmask|xflags):/,
  /^locks: /,
  /^use: /,
  /^sockaddrs: /,
  /^proposals: /,
  /^ /,
  /^\s*$/,
];

/** Maps get_linkstate()'s word for an IFT_CARP interface to the carp state behind it. */
export function carpStateOfLink(link: string): CarpState | undefined {
  if (link === 'master') return 'MASTER';
  if (link === 'backup') return 'BACKUP';
  if (link === 'invalid') return 'INIT';
  return undefined;
}

/** Parses one line (newline optional). Never throws. */
export function parseRouteMonitorLine(line: string): RouteMonitorLine {
  if (typeof line !== 'string') return reject('not a string');
  if (line.length > MAX_LINE) return reject(`longer than ${MAX_LINE} characters`);
  const l = line.replace(/\n$/, '');
  const m = IFINFO.exec(l);
  if (m) {
    const ifIndex = parseIntIn(m[1], 1, 2 ** 32 - 1);
    const mtu = parseIntIn(m[4], 0, 2 ** 32 - 1);
    if (ifIndex === undefined || mtu === undefined) return reject(`malformed RTM_IFINFO: ${quote(l)}`);
    if (m[2] !== undefined && !IFNAME_RE.test(m[2])) return reject(`bad interface name in RTM_IFINFO: ${quote(m[2])}`);
    const ev: IfinfoEvent = { kind: 'ifinfo', ifIndex, linkState: m[3]!, mtu, flags: m[5] ? m[5].split(',') : [] };
    if (m[2] !== undefined) ev.ifname = m[2];
    const carpState = carpStateOfLink(m[3]!);
    if (carpState) ev.carpState = carpState;
    return ev;
  }
  if (l.startsWith('RTM_IFINFO:')) return reject(`malformed RTM_IFINFO: ${quote(l)}`);
  return OTHER.some((re) => re.test(l)) ? { kind: 'other' } : reject(`not route monitor output: ${quote(l)}`);
}

/**
 * Reads `route -n monitor` output chunk by chunk and keeps the RTM_IFINFO events, counting the
 * lines it could not read. Lines split across chunks are joined.
 */
export class RouteMonitorReader {
  private readonly splitter = new LineSplitter();
  invalid = 0;

  push(chunk: string): IfinfoEvent[] {
    const events: IfinfoEvent[] = [];
    for (const line of this.splitter.push(chunk)) {
      const r = parseRouteMonitorLine(line);
      if (r.kind === 'ifinfo') events.push(r);
      else if (r.kind === 'invalid') this.invalid++;
    }
    return events;
  }

  /** Lines dropped for being longer than MAX_LINE. */
  get dropped(): number {
    return this.splitter.dropped;
  }
}

/** The RTM_IFINFO events of a whole captured output. */
export function parseRouteMonitor(text: string): { kind: 'monitor'; events: IfinfoEvent[]; invalid: number } | Reject {
  if (typeof text !== 'string') return reject('not a string');
  if (text.length > MAX_TEXT) return reject(`longer than ${MAX_TEXT} characters`);
  const reader = new RouteMonitorReader();
  const events = reader.push(text.endsWith('\n') ? text : `${text}\n`);
  return { kind: 'monitor', events, invalid: reader.invalid + reader.dropped };
}
