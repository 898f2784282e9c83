import { inCksum } from './checksum.js';
import { CARP_ADVERTISEMENT, CARP_AUTHLEN, CARP_DFLTTL, CARP_HEADER_LEN, CARP_VERSION, carpHeader, type CarpHeader } from './carp-header.js';
import { signAdvert, verifyAdvert, type AuthContext } from './hmac.js';
import { decodeIpv4 } from './ipv4.js';
import type { DropReason } from './counters.js';

export interface AdvertFields {
  advbase: number;
  advskew: number;
  demote: number;
  counter: bigint;
}

/** The complete 36-byte CARP advertisement (0x21, authlen 7, signed md, checksum of the 36 bytes). */
export function buildAdvert(ctx: AuthContext, f: AdvertFields): Buffer {
  const buf = carpHeader.encode({
    version: CARP_VERSION,
    type: CARP_ADVERTISEMENT,
    vhid: ctx.vhid,
    advskew: f.advskew,
    authlen: CARP_AUTHLEN,
    demote: f.demote,
    advbase: f.advbase,
    cksum: 0,
    counter: f.counter,
    md: signAdvert(ctx, f.counter),
  });
  // No pseudo-header: CARP sums its own 36 bytes only, over IPv4 and IPv6 alike.
  buf.writeUInt16BE(inCksum(buf, 0, CARP_HEADER_LEN), 6);
  return buf;
}

export type CheckResult =
  | { ok: true; family: 4 | 6; src: string; dst: string; ttl: number; header: CarpHeader; ctx: AuthContext }
  | { ok: false; reason: DropReason; src?: string; vhid?: number };

/**
 * Who is exempt from the TTL / hop-limit 255 check: a vhid in FreeBSD unicast mode (`peer` /
 * `peer6`): FreeBSD ip_carp.c carp_input_c() checks the TTL only when the vhid's destination
 * is multicast (carp.4: "TTL verification is disabled if the peer address is not a multicast
 * address").
 */
export type TtlExempt = (vhid: number) => boolean;

/** Looks up the vhid's context; `dst` lets a caller refuse a vhid per destination (OpenBSD carppeer). */
export type AuthLookup = (vhid: number, dst: string) => AuthContext | undefined;

/**
 * Validate one received IPv4 packet (IP header included; the socket delivers protocol 112 only,
 * so the protocol is not looked at). Checks run in the kernels' order (FreeBSD carp_input(),
 * OpenBSD carp_proto_input_if()): TTL, length, checksum, version, vhid, HMAC. Like the kernels,
 * an IP total length too short for the CARP header is `badlen`; bytes missing from the buffer
 * itself (an unreadable IP header, a truncated packet) are `hdrops`, their failed m_pullup().
 * With `ttlExempt` (an interface that carries a FreeBSD unicast vhid), the TTL check moves after
 * the vhid lookup, where FreeBSD 14 carp_input_c() does it, and is skipped for exempt vhids.
 * Never throws, whatever the bytes.
 */
export function checkAdvert(ipPacket: Buffer, lookup: AuthLookup, ttlExempt?: TtlExempt): CheckResult {
  const ip = decodeIpv4(ipPacket);
  if (!ip.ok) return { ok: false, reason: 'hdrops' };
  const { src, dst, ttl, payloadOffset: off } = ip;
  if (!ttlExempt && ttl !== CARP_DFLTTL) return { ok: false, reason: 'badttl', src };
  if (ip.totalLength < off + CARP_HEADER_LEN) return { ok: false, reason: 'badlen', src };
  if (ipPacket.length < ip.totalLength) return { ok: false, reason: 'hdrops', src };
  return checkCarp(4, ipPacket, off, src, dst, ttl, lookup, ttlExempt);
}

/**
 * What an IPv6 raw socket delivers: the CARP payload without the IPv6 header (Linux raw
 * AF_INET6 sockets strip it), plus what the adapter knows of the header. `hopLimit` is 255 or,
 * from the socket whose filter passes only hop limits other than 255, undefined ("not 255").
 */
export interface Received6 {
  payload: Buffer;
  src: string;
  dst: string;
  hopLimit: number | undefined;
}

/**
 * Validate one received IPv6 advert. Order of FreeBSD carp6_input() + carp_input_c() (length,
 * checksum, version, vhid, hop limit unless exempt, HMAC) when `ttlExempt` is given, else
 * OpenBSD carp6_proto_input_if()'s, which requires hop limit 255 first. The checksum covers the
 * 36 CARP bytes only, no pseudo-header, as over IPv4. Never throws.
 */
export function checkAdvert6(rx: Received6, lookup: AuthLookup, ttlExempt?: TtlExempt): CheckResult {
  const { payload, src, dst } = rx;
  const hop = rx.hopLimit ?? 0;
  if (!ttlExempt && hop !== CARP_DFLTTL) return { ok: false, reason: 'badttl', src };
  if (payload.length < CARP_HEADER_LEN) return { ok: false, reason: 'badlen', src };
  return checkCarp(6, payload, 0, src, dst, hop, lookup, ttlExempt);
}

/** The checks both families share, from the checksum on. */
function checkCarp(family: 4 | 6, buf: Buffer, off: number, src: string, dst: string, ttl: number, lookup: AuthLookup, ttlExempt?: TtlExempt): CheckResult {
  if (inCksum(buf, off, CARP_HEADER_LEN) !== 0) return { ok: false, reason: 'badsum', src };
  const header = carpHeader.decode(buf, off);
  const vhid = header.vhid;
  if (header.version !== CARP_VERSION || header.type !== CARP_ADVERTISEMENT) {
    return { ok: false, reason: 'badver', src, vhid };
  }
  const ctx = lookup(vhid, dst);
  if (!ctx) return { ok: false, reason: 'badvhid', src, vhid };
  if (ttlExempt && ttl !== CARP_DFLTTL && !ttlExempt(vhid)) return { ok: false, reason: 'badttl', src, vhid };
  if (!verifyAdvert(ctx, header.counter, header.md)) return { ok: false, reason: 'badauth', src, vhid };
  return { ok: true, family, src, dst, ttl, header, ctx };
}
