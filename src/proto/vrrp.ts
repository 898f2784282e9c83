/**
 * VRRPv3 (RFC 5798 §5) advertisements, pure: encode, decode, the checksum over the pseudo-header,
 * and the receive checks. VRRPv3 shares protocol 112 and the groups 224.0.0.18 / ff02::12 with
 * CARP; the version nibble of the first byte tells them apart (FreeBSD sys/netinet/ip_carp.c
 * carp_input(): 2 → carp_input_c(), 3 → vrrp_input_c()).
 *
 *   0                   1                   2                   3
 *   |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
 *   |(rsvd) |     Max Adver Int     |          Checksum             |
 *   then Count addresses of the packet's family (4 or 16 bytes each)
 *
 * No authentication, no counter: there is nothing to replay-check.
 */
import { inCksum } from './checksum.js';
import { formatIpv4, parseIpv4 } from './ipv4.js';
import type { DropReason } from './counters.js';

export const VRRP_VERSION = 3;
export const VRRP_TYPE_ADVERTISEMENT = 1;
export const VRRP_HEADER_LEN = 8;
/** The 12-bit Max Adver Int field, in centiseconds (FreeBSD VRRP_MAX_INTERVAL = 0x1000 - 1). */
export const VRRP_MAX_INTERVAL_CS = 0x0fff;
/** Priority of the address owner (RFC 5798 §6.1): never waits, ignores peers' adverts. */
export const VRRP_PRIO_OWNER = 255;
/** Priority 0: "the current Master has stopped participating" (RFC 5798 §5.2.4). */
export const VRRP_PRIO_STOP = 0;
/** FreeBSD carp_alloc() defaults for a `carpver 3` vhid, the same as keepalived's and the RFC's. */
export const VRRP_DEFAULT_PRIORITY = 100;
export const VRRP_DEFAULT_INTERVAL_CS = 100;
export const VRRP_TTL = 255;
export const IPPROTO_VRRP = 112;
export const VRRP_GROUP4 = '224.0.0.18';
export const VRRP_GROUP6 = 'ff02::12';

export type IpFamily = 4 | 6;

export interface VrrpAdvert {
  version: number;
  type: number;
  vrid: number;
  priority: number;
  /** Max Adver Int, centiseconds (the 12 low bits of bytes 4..5). */
  intervalCs: number;
  checksum: number;
  /** The addresses carried, formatted in the packet's family (count taken from byte 3). */
  addresses: string[];
}

/** Both ends of the IP header, for the pseudo-header. */
export interface PseudoHeader {
  family: IpFamily;
  src: string;
  dst: string;
}

/** 16 bytes of an IPv6 address; throws on anything else. `%scope` is dropped. */
export function parseIpv6(text: string): Buffer {
  const addr = text.split('%')[0]!.toLowerCase();
  let s = addr;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = parseIpv4(v4[1]!);
    if (n === undefined) throw new TypeError(`not an IPv6 address: ${JSON.stringify(text)}`);
    tail.push(n >>> 16, n & 0xffff);
    s = s.slice(0, v4.index);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const parts = s.split('::');
  if (parts.length > 2) throw new TypeError(`not an IPv6 address: ${JSON.stringify(text)}`);
  const words = (p: string) => (p === '' ? [] : p.split(':'));
  const head = words(parts[0]!);
  const rest = parts.length === 2 ? words(parts[1]!) : [];
  const groups = [...head, ...rest].map((g) => {
    if (!/^[0-9a-f]{1,4}$/.test(g)) throw new TypeError(`not an IPv6 address: ${JSON.stringify(text)}`);
    return Number.parseInt(g, 16);
  });
  const total = groups.length + tail.length;
  if ((parts.length === 1 && total !== 8) || (parts.length === 2 && total > 7)) throw new TypeError(`not an IPv6 address: ${JSON.stringify(text)}`);
  const fill = 8 - total;
  const all = [...groups.slice(0, head.length), ...Array<number>(parts.length === 2 ? fill : 0).fill(0), ...groups.slice(head.length), ...tail];
  const buf = Buffer.alloc(16);
  all.forEach((w, i) => buf.writeUInt16BE(w, i * 2));
  return buf;
}

/** RFC 5952 text of 16 bytes at buf[offset] (longest zero run of two or more groups as `::`). */
export function formatIpv6(buf: Buffer, offset = 0): string {
  const w = Array.from({ length: 8 }, (_, i) => buf.readUInt16BE(offset + i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** The family of an address (CIDR suffix allowed). */
export function familyOf(addr: string): IpFamily {
  return addr.includes(':') ? 6 : 4;
}

function addressBytes(addr: string, family: IpFamily): Buffer {
  const a = addr.split('/')[0]!;
  if (family === 6) return parseIpv6(a);
  const n = parseIpv4(a);
  if (n === undefined) throw new TypeError(`not an IPv4 address: ${JSON.stringify(addr)}`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/**
 * The pseudo-header of RFC 5798 §5.2.8: RFC 768's for IPv4 (src, dst, zero, protocol 112, VRRP
 * length), RFC 8200 §8.1's for IPv6 (src, dst, 32-bit length, three zeros, next header 112).
 */
export function pseudoHeader(p: PseudoHeader, length: number): Buffer {
  if (p.family === 4) {
    const b = Buffer.alloc(12);
    addressBytes(p.src, 4).copy(b, 0);
    addressBytes(p.dst, 4).copy(b, 4);
    b[9] = IPPROTO_VRRP;
    b.writeUInt16BE(length, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  addressBytes(p.src, 6).copy(b, 0);
  addressBytes(p.dst, 6).copy(b, 16);
  b.writeUInt32BE(length, 32);
  b[39] = IPPROTO_VRRP;
  return b;
}

/**
 * The checksum of a VRRP payload (checksum field included as it stands): 0 when it verifies.
 * With `pseudo`, over the pseudo-header and the payload (RFC 5798, FreeBSD vrrp_checksum_verify(),
 * keepalived's default); without, over the payload alone (VRRPv2's rule, which keepalived's
 * `v3_checksum_as_v2` emits for IPv4 to match vendors that left the pseudo-header out).
 */
export function vrrpChecksum(payload: Buffer, pseudo?: PseudoHeader): number {
  if (!pseudo) return inCksum(payload);
  const ph = pseudoHeader(pseudo, payload.length);
  // Both parts are of even length (12 or 40), so summing their concatenation is the same sum.
  return inCksum(Buffer.concat([ph, payload]));
}

export interface VrrpFields {
  vrid: number;
  priority: number;
  intervalCs: number;
  /** Every VIP of the vhid; those of `family` are carried, in this order (FreeBSD vrrp_send_ad_locked()). */
  addresses: string[];
}

/**
 * A complete VRRPv3 advert for one family, checksummed with the pseudo-header of `pseudo` (or,
 * for IPv4 only and when asked, without it: `asV2`).
 */
export function buildVrrp(f: VrrpFields, pseudo: PseudoHeader, asV2 = false): Buffer {
  if (!Number.isInteger(f.vrid) || f.vrid < 1 || f.vrid > 255) throw new RangeError(`vrid ${f.vrid} not in 1..255`);
  if (!Number.isInteger(f.priority) || f.priority < 0 || f.priority > 255) throw new RangeError(`priority ${f.priority} not in 0..255`);
  if (!Number.isInteger(f.intervalCs) || f.intervalCs < 1 || f.intervalCs > VRRP_MAX_INTERVAL_CS) {
    throw new RangeError(`interval ${f.intervalCs} cs not in 1..${VRRP_MAX_INTERVAL_CS}`);
  }
  const addrs = f.addresses.filter((a) => familyOf(a) === pseudo.family).map((a) => addressBytes(a, pseudo.family));
  if (addrs.length > 255) throw new RangeError('more than 255 addresses in one advert');
  const buf = Buffer.concat([Buffer.alloc(VRRP_HEADER_LEN), ...addrs]);
  buf[0] = (VRRP_VERSION << 4) | VRRP_TYPE_ADVERTISEMENT;
  buf[1] = f.vrid;
  buf[2] = f.priority;
  buf[3] = addrs.length;
  buf.writeUInt16BE(f.intervalCs & VRRP_MAX_INTERVAL_CS, 4);
  buf.writeUInt16BE(vrrpChecksum(buf, asV2 && pseudo.family === 4 ? undefined : pseudo), 6);
  return buf;
}

/** Decode the header and the addresses the payload holds (undefined when shorter than 8 bytes). */
export function decodeVrrp(payload: Buffer, family: IpFamily): VrrpAdvert | undefined {
  if (payload.length < VRRP_HEADER_LEN) return undefined;
  const count = payload[3]!;
  const size = family === 4 ? 4 : 16;
  const addresses: string[] = [];
  for (let i = 0; i < count && VRRP_HEADER_LEN + (i + 1) * size <= payload.length; i++) {
    const off = VRRP_HEADER_LEN + i * size;
    addresses.push(family === 4 ? formatIpv4(payload, off) : formatIpv6(payload, off));
  }
  return {
    version: payload[0]! >> 4,
    type: payload[0]! & 0x0f,
    vrid: payload[1]!,
    priority: payload[2]!,
    intervalCs: payload.readUInt16BE(4) & VRRP_MAX_INTERVAL_CS,
    checksum: payload.readUInt16BE(6),
    addresses,
  };
}

/** What the receive check needs of a vhid: its version, and for VRRP its addresses. */
export type VhidLookup = (vrid: number) => { version: 2 | 3; addresses: readonly string[] } | undefined;

export type VrrpCheckResult =
  | {
      ok: true;
      src: string;
      dst: string;
      ttl: number;
      advert: VrrpAdvert;
      /** Which checksum form verified: RFC 5798's (`pseudo`) or VRRPv2's (`v2`, IPv4 only). */
      checksumForm: 'pseudo' | 'v2';
      /**
       * False when the advert's address list differs from ours. Accepted anyway, as keepalived
       * does (vrrp_check_packet(): `++addr_list_err`, no return) and FreeBSD does ("XXX TODO Check
       * IP address payload" in vrrp_input_c()); the shell counts it (carps_badaddrs) and logs it.
       */
      addressesMatch: boolean;
    }
  | { ok: false; reason: DropReason; src?: string; vhid?: number };

export interface VrrpEnvelope extends PseudoHeader {
  /** TTL or hop limit as received. */
  ttl: number;
}

/**
 * The receive checks of one VRRP payload, in FreeBSD's order (carp_input(), vrrp_input_c()):
 * the 8-byte header (`badlen`), a known vrid (`badvhid`), the vhid's version (`badver`, also a
 * type other than advertisement), TTL / hop limit 255 (`badttl`: VRRP always, whatever the peer
 * setting), the length the address count says (`badlen`, keepalived's packet_len_err), the
 * checksum (`badsum`; on IPv4 either form), then the address list (counted, not dropped).
 */
export function checkVrrp(payload: Buffer, env: VrrpEnvelope, lookup: VhidLookup): VrrpCheckResult {
  const { src, dst, ttl, family } = env;
  if (payload.length < VRRP_HEADER_LEN) return { ok: false, reason: 'badlen', src };
  const vrid = payload[1]!;
  const vhid = lookup(vrid);
  if (!vhid) return { ok: false, reason: 'badvhid', src, vhid: vrid };
  if (vhid.version !== VRRP_VERSION || payload[0]! >> 4 !== VRRP_VERSION || (payload[0]! & 0x0f) !== VRRP_TYPE_ADVERTISEMENT) {
    return { ok: false, reason: 'badver', src, vhid: vrid };
  }
  if (ttl !== VRRP_TTL) return { ok: false, reason: 'badttl', src, vhid: vrid };
  const size = family === 4 ? 4 : 16;
  if (payload.length < VRRP_HEADER_LEN + payload[3]! * size) return { ok: false, reason: 'badlen', src, vhid: vrid };
  let checksumForm: 'pseudo' | 'v2';
  if (vrrpChecksum(payload, env) === 0) checksumForm = 'pseudo';
  else if (family === 4 && vrrpChecksum(payload) === 0) checksumForm = 'v2';
  else return { ok: false, reason: 'badsum', src, vhid: vrid };
  const advert = decodeVrrp(payload, family)!;
  const ours = vhid.addresses.filter((a) => familyOf(a) === family).map((a) => addressBytes(a, family).toString('hex'));
  const theirs = new Set(advert.addresses.map((a) => addressBytes(a, family).toString('hex')));
  const addressesMatch = ours.length === theirs.size && advert.addresses.length === ours.length && ours.every((a) => theirs.has(a));
  return { ok: true, src, dst, ttl, advert, checksumForm, addressesMatch };
}
