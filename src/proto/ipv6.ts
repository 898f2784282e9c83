/**
 * IPv6 for CARP: address parsing and formatting, the fixed 40-byte header (for synthesized
 * packets and captures), and the few address tests the receive path needs. Pure.
 */
import { parseIpv6 } from './hmac.js';

export { parseIpv6 };

export const IPV6_HEADER_LEN = 40;
/** ff02::12, the CARP/VRRP group (FreeBSD ip_carp.c CARP6_GROUP is ff02::12 with the scope embedded). */
export const CARP_GROUP_V6 = 'ff02::12';
export const IPPROTO_CARP = 112;

/** The RFC 5952 text form of 16 bytes at buf[offset] (longest run of zero groups as ::). */
export function formatIpv6(buf: Buffer, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(offset + 2 * i));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The canonical text of an IPv6 address given as text (zone and prefix dropped); undefined if not IPv6. */
export function canonicalIpv6(s: string): string | undefined {
  const bytes = parseIpv6(s.replace(/\/\d{1,3}$/, '').replace(/%[^%/]*$/, ''));
  return bytes ? formatIpv6(bytes) : undefined;
}

/** fe80::/10 */
export function isLinkLocal6(s: string): boolean {
  const b = parseIpv6(s.replace(/%[^%/]*$/, ''));
  return b !== undefined && b[0] === 0xfe && (b[1]! & 0xc0) === 0x80;
}

/** ff00::/8 */
export function isMulticast6(s: string): boolean {
  const b = parseIpv6(s.replace(/%[^%/]*$/, ''));
  return b !== undefined && b[0] === 0xff;
}

/**
 * IPv4 class D, 224.0.0.0/4, tested on the first octet of the text. FreeBSD PR 284872: the
 * kernel applied IN_MULTICAST() to an address in network byte order, so on little-endian hosts
 * a unicast peer whose *last* octet is 224..239 (198.51.100.224) was taken for multicast.
 */
export function isMulticast4(s: string): boolean {
  const m = /^(\d{1,3})\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.exec(s);
  if (!m) return false;
  const first = Number(m[1]);
  return first >= 224 && first <= 239;
}

/** Whether `s` is a multicast address of either family (a peer that is "not unicast"). */
export function isMulticastAddress(s: string): boolean {
  return s.includes(':') ? isMulticast6(s) : isMulticast4(s);
}

/**
 * Order two IPv6 addresses by their bytes: negative, 0 or positive like a comparator; undefined
 * when either is not IPv6. The equal-priority tie-break (src/core/machine.ts) uses it.
 */
export function compareIpv6(a: string, b: string): number | undefined {
  const x = parseIpv6(a.replace(/%[^%/]*$/, ''));
  const y = parseIpv6(b.replace(/%[^%/]*$/, ''));
  if (!x || !y) return undefined;
  return Buffer.compare(x, y);
}

export interface Ipv6HeaderFields {
  src: string;
  dst: string;
  hopLimit: number;
  nextHeader: number;
  payloadLength: number;
  trafficClass?: number;
}

/** A 40-byte IPv6 header (no extension headers), as a capture would show it. */
export function encodeIpv6Header(f: Ipv6HeaderFields): Buffer {
  const src = parseIpv6(f.src.replace(/%[^%/]*$/, ''));
  const dst = parseIpv6(f.dst.replace(/%[^%/]*$/, ''));
  if (!src || !dst) throw new TypeError(`not an IPv6 address: ${JSON.stringify(src ? f.dst : f.src)}`);
  const buf = Buffer.alloc(IPV6_HEADER_LEN);
  buf.writeUInt32BE(((6 << 28) | ((f.trafficClass ?? 0) << 20)) >>> 0, 0);
  buf.writeUInt16BE(f.payloadLength & 0xffff, 4);
  buf[6] = f.nextHeader & 0xff;
  buf[7] = f.hopLimit & 0xff;
  src.copy(buf, 8);
  dst.copy(buf, 24);
  return buf;
}

export type Ipv6Decoded =
  { ok: true; payloadLength: number; nextHeader: number; hopLimit: number; src: string; dst: string; payloadOffset: number } | { ok: false };

/** Decode a fixed IPv6 header; ok:false only when it is unreadable (short buffer, version not 6). */
export function decodeIpv6(buf: Buffer): Ipv6Decoded {
  if (buf.length < IPV6_HEADER_LEN || buf[0]! >> 4 !== 6) return { ok: false };
  return {
    ok: true,
    payloadLength: buf.readUInt16BE(4),
    nextHeader: buf[6]!,
    hopLimit: buf[7]!,
    src: formatIpv6(buf, 8),
    dst: formatIpv6(buf, 24),
    payloadOffset: IPV6_HEADER_LEN,
  };
}
