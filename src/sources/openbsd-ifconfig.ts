/**
 * OpenBSD `ifconfig` (all interfaces, `ifconfig carp`, or one carpN) as the state of the kernel's
 * CARP. On OpenBSD each carpN interface is one virtual host (or several, with carpnodes) on a
 * carpdev, and its addresses are the VIPs.
 *
 * The lines read, with the function that prints each (openbsd/src, sbin/ifconfig/ifconfig.c):
 *   - `carp0: flags=…<…> mtu 1500`                                   status()
 *   - `\tcarp: STATE carpdev DEV vhid N advbase N advskew N[ carppeer A]`  carp_status(), one vhid
 *   - `\tcarp: carpdev DEV advbase N balancing MODE[ carppeer A]`       carp_status(), carpnodes …
 *   - `\t\tstate STATE vhid N advskew N`                                 … then one line per vhid
 *   - `\tgroups: carp …`                                                 getifgroups()
 *   - `\tstatus: master|backup|invalid`                                  status() → get_linkstate():
 *     carp has no media, so the link state is printed through LINK_STATE_DESCRIPTIONS (net/if.h):
 *     IFT_CARP up → "master", down → "backup"; INIT leaves it LINK_STATE_INVALID → "invalid"
 *     (carp_set_state() in sys/netinet/ip_carp.c)
 *   - `\tinet A netmask 0x… broadcast B`, `\tinet6 A%carpN prefixlen P …`   in_status(), in6_status()
 * `ifconfig -g carp` prints `carp: carp demote count N` (printgroupattribs()).
 */
import { carpStateOf, cidr, hexMaskToPrefix, IFNAME_RE, parseIntIn, quote, reject, splitLines, type CarpState, type Reject } from './text.js';

export interface OpenbsdVhid {
  vhid: number;
  state: CarpState;
  advskew: number;
}

export interface OpenbsdCarpInterface {
  ifname: string;
  /** Absent when ifconfig printed `none`. */
  carpdev?: string;
  advbase: number;
  vhids: OpenbsdVhid[];
  /** carpnodes' balancing mode (`none`, `ip`, `ip-stealth`, `ip-unicast`), present with several vhids. */
  balancing?: string;
  carppeer?: string;
  /** The `status:` word: `master`, `backup`, `invalid` for carp. */
  linkStatus?: string;
  groups: string[];
  /** CIDR strings; link-local IPv6 included, as ifconfig lists it. */
  addresses: string[];
}

/** Only interfaces with a `carp:` line are listed. */
export type OpenbsdIfconfig = { kind: 'ifconfig'; interfaces: OpenbsdCarpInterface[] } | Reject;

const HEADER = /^([^\s:]+): flags=[0-9a-f]+(?:<[^>]*>)?/;
const SINGLE = /^\tcarp: (\S+) carpdev (\S+) vhid (\d+) advbase (\d+) advskew (\d+)(?: carppeer (\S+))?$/;
const MULTI = /^\tcarp: carpdev (\S+) advbase (\d+) balancing (\S+)(?: carppeer (\S+))?$/;
const NODE = /^\t\tstate (\S+) vhid (\d+) advskew (\d+)$/;
const INET = /^\tinet (\d{1,3}(?:\.\d{1,3}){3})(?: --> \S+)? netmask (0x[0-9a-f]+)/;
const INET6 = /^\tinet6 ([0-9A-Fa-f:.]+(?:%\S+)?)(?: --> \S+)? prefixlen (\d{1,3})/;

/** Parses the whole output. Never throws; garbage is refused. */
export function parseOpenbsdIfconfig(text: string): OpenbsdIfconfig {
  const lines = splitLines(text);
  if (!Array.isArray(lines)) return lines;
  const out: OpenbsdCarpInterface[] = [];
  let ifname: string | undefined;
  let cur: OpenbsdCarpInterface | undefined;
  /** Lines before the carp line still belong to the interface; they are kept until it shows. */
  let pending: { groups: string[]; linkStatus?: string; addresses: string[] } = { groups: [], addresses: [] };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const where = `line ${i + 1}`;
    const h = HEADER.exec(line);
    if (h) {
      if (!IFNAME_RE.test(h[1]!)) return reject(`${where}: bad interface name ${quote(h[1]!)}`);
      ifname = h[1]!;
      cur = undefined;
      pending = { groups: [], addresses: [] };
      continue;
    }
    if (line === '') continue;
    if (ifname === undefined || line[0] !== '\t') return reject(`${where}: not ifconfig output: ${quote(line)}`);
    const target = cur ?? pending;
    if (line.startsWith('\tcarp:')) {
      if (cur) return reject(`${where}: second carp line on ${ifname}`);
      const s = SINGLE.exec(line);
      if (s) {
        const state = carpStateOf(s[1]!);
        const vhid = parseIntIn(s[3], 1, 255);
        const advbase = parseIntIn(s[4], 0, 255);
        const advskew = parseIntIn(s[5], 0, 255);
        if (!state || vhid === undefined || advbase === undefined || advskew === undefined) return reject(`${where}: malformed carp line ${quote(line)}`);
        cur = { ifname, advbase, vhids: [{ vhid, state, advskew }], ...pending };
        if (s[2] !== 'none') cur.carpdev = s[2]!;
        if (s[6] !== undefined) cur.carppeer = s[6];
      } else {
        const m = MULTI.exec(line);
        const advbase = parseIntIn(m?.[2], 0, 255);
        if (!m || advbase === undefined) return reject(`${where}: malformed carp line ${quote(line)}`);
        cur = { ifname, advbase, vhids: [], balancing: m[3]!, ...pending };
        if (m[1] !== 'none') cur.carpdev = m[1]!;
        if (m[4] !== undefined) cur.carppeer = m[4];
      }
      out.push(cur);
      continue;
    }
    if (line.startsWith('\t\tstate ')) {
      const n = NODE.exec(line);
      const state = n ? carpStateOf(n[1]!) : undefined;
      const vhid = parseIntIn(n?.[2], 1, 255);
      const advskew = parseIntIn(n?.[3], 0, 255);
      if (!cur || cur.balancing === undefined || !state || vhid === undefined || advskew === undefined)
        return reject(`${where}: malformed carpnode line ${quote(line)}`);
      if (cur.vhids.some((v) => v.vhid === vhid)) return reject(`${where}: vhid ${vhid} twice on ${ifname}`);
      cur.vhids.push({ vhid, state, advskew });
      continue;
    }
    if (line.startsWith('\tgroups:')) {
      target.groups = line
        .slice('\tgroups:'.length)
        .split(' ')
        .filter((g) => g !== '');
      continue;
    }
    if (line.startsWith('\tstatus: ')) {
      target.linkStatus = line.slice('\tstatus: '.length);
      continue;
    }
    const a4 = INET.exec(line);
    if (a4) {
      const prefix = hexMaskToPrefix(a4[2]!);
      const c = prefix === undefined ? undefined : cidr(a4[1]!, prefix);
      if (c === undefined) return reject(`${where}: malformed inet line ${quote(line)}`);
      target.addresses.push(c);
      continue;
    }
    const a6 = INET6.exec(line);
    if (a6) {
      const prefix = parseIntIn(a6[2], 0, 128);
      const c = prefix === undefined ? undefined : cidr(a6[1]!, prefix);
      if (c === undefined) return reject(`${where}: malformed inet6 line ${quote(line)}`);
      target.addresses.push(c);
    }
    // Every other line (lladdr, index, description, media, pfsync, …) says nothing about CARP.
  }
  if (ifname === undefined) return reject('no interface header');
  for (const c of out) if (c.vhids.length === 0) return reject(`${c.ifname}: carp line without vhids`);
  return { kind: 'ifconfig', interfaces: out };
}

export type GroupDemotion = { kind: 'demotion'; group: string; demote: number } | Reject;

/** `ifconfig -g carp` → `carp: carp demote count 0` (printgroupattribs()). */
export function parseOpenbsdGroupDemotion(text: string): GroupDemotion {
  if (typeof text !== 'string') return reject('not a string');
  if (text.length > 256) return reject('longer than one line');
  const m = /^([A-Za-z_][A-Za-z0-9_]{0,14}): carp demote count (\d{1,3})\n?$/.exec(text);
  const demote = parseIntIn(m?.[2], 0, 255);
  if (!m || demote === undefined) return reject(`not ifconfig -g output: ${quote(text)}`);
  return { kind: 'demotion', group: m[1]!, demote };
}
