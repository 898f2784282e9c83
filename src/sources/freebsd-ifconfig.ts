/**
 * FreeBSD `ifconfig` (all interfaces, or one) as the state of the kernel's CARP.
 *
 * The lines read, with the function that prints each (freebsd-src, sbin/ifconfig):
 *   - `em0: flags=…<…> metric 0 mtu 1500`            interface header (status_nl() / status())
 *   - `\tinet A netmask 0x… [broadcast B][ vhid N]`  af_inet.c in_status_nl() / in_status()
 *   - `\tinet6 A[%if] prefixlen P …[ vhid N]`        af_inet6.c in6_status_nl() / in6_status()
 *   - `\tcarp: STATE vhid N advbase N advskew N[ key "…"]`  carp.c carp_status(), one per vhid
 *   - `\t      peer A peer6 B`                        carp.c carp_status(), after each carp line (FreeBSD 14+)
 *   - `\tvrrp: STATE vrid N prio P interval I`       carp_status() of FreeBSD 15 for VRRPv3 vhids
 * `-f inet:cidr` / `-f inet6:cidr` write `A/P` instead of the netmask or prefixlen words.
 * An address belongs to the vhid its `vhid N` names; the carp lines come after the addresses,
 * so addresses are matched to vhids at the end of each interface.
 */
import { carpStateOf, cidr, hexMaskToPrefix, IFNAME_RE, parseIntIn, quote, reject, splitLines, type CarpState, type Reject } from './text.js';

export interface FreebsdCarpVhid {
  protocol: 'carp';
  vhid: number;
  state: CarpState;
  advbase: number;
  advskew: number;
  /** CIDR strings of the addresses carrying `vhid N`, in ifconfig's order. */
  addresses: string[];
  /** Unicast peer, or the multicast group 224.0.0.18 (absent before FreeBSD 14). */
  peer?: string;
  peer6?: string;
}

export interface FreebsdVrrpVhid {
  protocol: 'vrrp';
  vhid: number;
  state: CarpState;
  priority: number;
  /** Advertisement interval in centiseconds, as VRRPv3 carries it. */
  interval: number;
  addresses: string[];
}

export type FreebsdVhid = FreebsdCarpVhid | FreebsdVrrpVhid;

export interface FreebsdCarpInterface {
  ifname: string;
  vhids: FreebsdVhid[];
}

/** Only interfaces with at least one vhid are listed. */
export type FreebsdIfconfig = { kind: 'ifconfig'; interfaces: FreebsdCarpInterface[] } | Reject;

const HEADER = /^([^\s:]+): flags=[0-9a-f]+<[^>]*>/;
const CARP = /^\tcarp: (\S+) vhid (\d+) advbase (\d+) advskew (\d+)(?: key "[^"]*")?$/;
const PEER = /^\t {6}peer (\S+) peer6 (\S+)$/;
const VRRP = /^\tvrrp: (\S+) vrid (\d+) prio (\d+) interval (\d+)$/;
const INET = /^\tinet (\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2})| --> \S+)?(?: netmask (0x[0-9a-f]+))?.*?(?: vhid (\d+))?$/;
const INET6 = /^\tinet6 ([0-9A-Fa-f:.]+(?:%[^\s/]+)?)(?:\/(\d{1,3})| --> \S+)?(?: prefixlen (\d{1,3}))?.*?(?: vhid (\d+))?$/;

interface Block {
  ifname: string;
  vhids: FreebsdVhid[];
  /** [vhid, cidr] pairs in order of appearance. */
  addrs: [number, string][];
}

function finish(b: Block): FreebsdCarpInterface | undefined {
  for (const [vhid, a] of b.addrs) b.vhids.find((v) => v.vhid === vhid)?.addresses.push(a);
  return b.vhids.length > 0 ? { ifname: b.ifname, vhids: b.vhids } : undefined;
}

/** Parses the whole output. Never throws; garbage (no interface header, a malformed carp line) is refused. */
export function parseFreebsdIfconfig(text: string): FreebsdIfconfig {
  const lines = splitLines(text);
  if (!Array.isArray(lines)) return lines;
  const out: FreebsdCarpInterface[] = [];
  let cur: Block | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const where = `line ${i + 1}`;
    const h = HEADER.exec(line);
    if (h) {
      if (!IFNAME_RE.test(h[1]!)) return reject(`${where}: bad interface name ${quote(h[1]!)}`);
      if (cur) {
        const done = finish(cur);
        if (done) out.push(done);
      }
      cur = { ifname: h[1]!, vhids: [], addrs: [] };
      continue;
    }
    if (line === '') continue;
    if (!cur || (line[0] !== '\t' && line[0] !== ' ')) return reject(`${where}: not ifconfig output: ${quote(line)}`);
    if (line.startsWith('\tcarp:')) {
      const m = CARP.exec(line);
      const state = m ? carpStateOf(m[1]!) : undefined;
      const vhid = parseIntIn(m?.[2], 1, 255);
      const advbase = parseIntIn(m?.[3], 0, 255);
      const advskew = parseIntIn(m?.[4], 0, 255);
      if (!m || !state || vhid === undefined || advbase === undefined || advskew === undefined) return reject(`${where}: malformed carp line ${quote(line)}`);
      if (cur.vhids.some((v) => v.vhid === vhid)) return reject(`${where}: vhid ${vhid} twice on ${cur.ifname}`);
      cur.vhids.push({ protocol: 'carp', vhid, state, advbase, advskew, addresses: [] });
      continue;
    }
    if (line.startsWith('\tvrrp:')) {
      const m = VRRP.exec(line);
      const state = m ? carpStateOf(m[1]!) : undefined;
      const vhid = parseIntIn(m?.[2], 1, 255);
      const priority = parseIntIn(m?.[3], 0, 255);
      const interval = parseIntIn(m?.[4], 0, 4095);
      if (!m || !state || vhid === undefined || priority === undefined || interval === undefined) return reject(`${where}: malformed vrrp line ${quote(line)}`);
      if (cur.vhids.some((v) => v.vhid === vhid)) return reject(`${where}: vhid ${vhid} twice on ${cur.ifname}`);
      cur.vhids.push({ protocol: 'vrrp', vhid, state, priority, interval, addresses: [] });
      continue;
    }
    const p = PEER.exec(line);
    if (p) {
      const last = cur.vhids[cur.vhids.length - 1];
      if (!last || last.protocol !== 'carp') return reject(`${where}: peer line without a carp line`);
      last.peer = p[1]!;
      last.peer6 = p[2]!;
      continue;
    }
    const a4 = line.startsWith('\tinet ') ? INET.exec(line) : null;
    if (a4?.[4] !== undefined) {
      const prefix = a4[2] !== undefined ? parseIntIn(a4[2], 0, 32) : a4[3] !== undefined ? hexMaskToPrefix(a4[3]) : 32;
      const c = prefix === undefined ? undefined : cidr(a4[1]!, prefix);
      const vhid = parseIntIn(a4[4], 1, 255);
      if (c === undefined || vhid === undefined) return reject(`${where}: malformed inet line ${quote(line)}`);
      cur.addrs.push([vhid, c]);
      continue;
    }
    const a6 = line.startsWith('\tinet6 ') ? INET6.exec(line) : null;
    if (a6?.[4] !== undefined) {
      const plen = a6[2] ?? a6[3];
      const prefix = plen !== undefined ? parseIntIn(plen, 0, 128) : 128;
      const c = prefix === undefined ? undefined : cidr(a6[1]!, prefix);
      const vhid = parseIntIn(a6[4], 1, 255);
      if (c === undefined || vhid === undefined) return reject(`${where}: malformed inet6 line ${quote(line)}`);
      cur.addrs.push([vhid, c]);
    }
    // Every other indented line (options, ether, media, status, nd6, groups, …) says nothing about CARP.
  }
  if (!cur) return reject('no interface header');
  const done = finish(cur);
  if (done) out.push(done);
  return { kind: 'ifconfig', interfaces: out };
}
