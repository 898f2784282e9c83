/**
 * One received protocol-112 IPv4 packet, CARP or VRRPv3: the version nibble of the first payload
 * byte picks the check, as FreeBSD's carp_input() does (sys/netinet/ip_carp.c: 2 →
 * carp_input_c(), 3 → vrrp_input_c()). Everything that is not version 3 goes through the CARP
 * check unchanged (src/proto/advert.ts checkAdvert), so CARP drops are counted as before.
 */
import { checkAdvert, type CheckResult, type TtlExempt } from './advert.js';
import { decodeIpv4 } from './ipv4.js';
import type { AuthContext } from './hmac.js';
import { checkVrrp, VRRP_VERSION, type VrrpCheckResult } from './vrrp.js';

/** What the check needs of a vhid: CARP its HMAC context, VRRP its addresses. */
export type PacketVhid = { version: 2; ctx: AuthContext } | { version: 3; addresses: readonly string[] };

export type PacketResult =
  (Extract<CheckResult, { ok: true }> & { version: 2 }) | (Extract<VrrpCheckResult, { ok: true }> & { version: 3 }) | Extract<CheckResult, { ok: false }>;

/**
 * `lookup` gets the packet's destination too (OpenBSD carppeer matches a vhid per destination);
 * `ttlExempt` as for checkAdvert (FreeBSD unicast vhids check no TTL).
 */
export function checkPacket(ipPacket: Buffer, lookup: (vhid: number, dst: string) => PacketVhid | undefined, ttlExempt?: TtlExempt): PacketResult {
  const ip = decodeIpv4(ipPacket);
  if (ip.ok && ipPacket.length > ip.payloadOffset && ipPacket[ip.payloadOffset]! >> 4 === VRRP_VERSION) {
    const end = Math.min(ipPacket.length, ip.totalLength);
    // A total length past the bytes received is a failed pullup, as for CARP.
    if (ipPacket.length < ip.totalLength) return { ok: false, reason: 'hdrops', src: ip.src };
    const payload = ipPacket.subarray(ip.payloadOffset, Math.max(ip.payloadOffset, end));
    const res = checkVrrp(payload, { family: 4, src: ip.src, dst: ip.dst, ttl: ip.ttl }, (vrid) => {
      const v = lookup(vrid, ip.dst);
      if (!v) return undefined;
      return v.version === 3 ? { version: 3, addresses: v.addresses } : { version: 2, addresses: [] };
    });
    return res.ok ? { ...res, version: 3 } : res;
  }
  const res = checkAdvert(
    ipPacket,
    (vhid, dst) => {
      const v = lookup(vhid, dst);
      return v?.version === 2 ? v.ctx : undefined;
    },
    ttlExempt,
  );
  if (res.ok) return { ...res, version: 2 };
  // A CARP advert for a vhid configured as VRRP: FreeBSD carp_input_c() counts it as badver.
  if (res.reason === 'badvhid' && res.vhid !== undefined && lookup(res.vhid, ip.ok ? ip.dst : '')?.version === 3) return { ...res, reason: 'badver' };
  return res;
}
