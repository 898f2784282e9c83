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
  { ok: true; src: string; dst: string; ttl: number; header: CarpHeader; ctx: AuthContext } | { ok: false; reason: DropReason; src?: string; vhid?: number };

/**
 * Validate one received IPv4 packet (IP header included; the socket delivers protocol 112 only,
 * so the protocol is not looked at). Checks run in the kernels' order (FreeBSD carp_input(),
 * OpenBSD carp_proto_input_if()): TTL, length, checksum, version, vhid, HMAC. Like the kernels,
 * an IP total length too short for the CARP header is `badlen`; bytes missing from the buffer
 * itself (an unreadable IP header, a truncated packet) are `hdrops`, their failed m_pullup().
 * Never throws, whatever the bytes.
 */
export function checkAdvert(ipPacket: Buffer, lookup: (vhid: number) => AuthContext | undefined): CheckResult {
  const ip = decodeIpv4(ipPacket);
  if (!ip.ok) return { ok: false, reason: 'hdrops' };
  const { src, dst, ttl, payloadOffset: off } = ip;
  if (ttl !== CARP_DFLTTL) return { ok: false, reason: 'badttl', src };
  if (ip.totalLength < off + CARP_HEADER_LEN) return { ok: false, reason: 'badlen', src };
  if (ipPacket.length < ip.totalLength) return { ok: false, reason: 'hdrops', src };
  if (inCksum(ipPacket, off, CARP_HEADER_LEN) !== 0) return { ok: false, reason: 'badsum', src };
  const header = carpHeader.decode(ipPacket, off);
  const vhid = header.vhid;
  if (header.version !== CARP_VERSION || header.type !== CARP_ADVERTISEMENT) {
    return { ok: false, reason: 'badver', src, vhid };
  }
  const ctx = lookup(vhid);
  if (!ctx) return { ok: false, reason: 'badvhid', src, vhid };
  if (!verifyAdvert(ctx, header.counter, header.md)) return { ok: false, reason: 'badauth', src, vhid };
  return { ok: true, src, dst, ttl, header, ctx };
}
