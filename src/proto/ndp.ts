/**
 * Unsolicited IPv6 neighbour advertisements (RFC 4861 §7.2.6), built as whole Ethernet frames for
 * an AF_PACKET socket (`src/adapters/link-layer.ts`), so the checksum over the IPv6 pseudo-header
 * is ours to compute.
 *
 * The form is FreeBSD's: `carp_send_na()` (sys/netinet/ip_carp.c) calls
 * `nd6_na_output(ifp, &in6addr_linklocal_allnodes, vip, ND_NA_FLAG_OVERRIDE, 1, NULL)`, and
 * `nd6_na_output_fib()` (sys/netinet6/nd6_nbr.c) sends from the interface's link-local address
 * (source selection toward ff02::1), hop limit 255, with the target link-layer address option
 * carrying the MAC (tlladdr = 1). Flags: override only, not solicited (the destination is
 * multicast, RFC 4861 §7.2.6), not router. Linux `ndisc_send_unsol_na()` sends the same.
 */
import { isIP } from 'node:net';
import { inCksum } from './checksum.js';

export const ETHERTYPE_IPV6 = 0x86dd;
export const IPPROTO_ICMPV6 = 58;
export const ND_NEIGHBOR_ADVERT = 136;
export const ND_NA_FLAG_OVERRIDE = 0x20;
export const ND_OPT_TARGET_LINKADDR = 2;
/** ff02::1, all nodes on the link. */
export const ALL_NODES = 'ff02::1';
/** 14 Ethernet + 40 IPv6 + 24 NA + 8 target link-layer address option. */
export const NA_FRAME_LEN = 86;
const NA_LEN = 32;

/** An IPv6 address in text form (a `%zone` ignored, an embedded IPv4 tail allowed) as 16 bytes; throws on anything else. */
export function ipv6Bytes(address: string): Buffer {
  let text = address.split('%')[0]!;
  if (isIP(text) !== 6) throw new Error(`not an IPv6 address: ${address}`);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  return buf;
}

/** The Ethernet address of an IPv6 multicast group (RFC 2464 §7): 33:33 and the low 32 bits. */
export function multicastMac(group: Buffer): Buffer {
  return Buffer.from([0x33, 0x33, group[12]!, group[13]!, group[14]!, group[15]!]);
}

/** The ICMPv6 checksum (RFC 8200 §8.1): over the pseudo-header (src, dst, length, next header 58) and the message. */
export function icmp6Checksum(src: Buffer, dst: Buffer, message: Buffer): number {
  const pseudo = Buffer.alloc(40 + message.length);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(message.length, 32);
  pseudo[39] = IPPROTO_ICMPV6;
  message.copy(pseudo, 40);
  return inCksum(pseudo);
}

/**
 * The unsolicited NA for `target` as a whole Ethernet frame: from `srcMac` to 33:33:00:00:00:01,
 * IPv6 from `src` (the interface's link-local address) to ff02::1, hop limit 255, ICMPv6 type 136
 * with the override flag, the target, and a target link-layer address option carrying `srcMac`.
 */
export function unsolicitedNa(srcMac: Buffer, src: string, target: string): Buffer {
  if (srcMac.length !== 6) throw new Error('source MAC must be 6 bytes');
  const s = ipv6Bytes(src);
  const d = ipv6Bytes(ALL_NODES);
  const na = Buffer.alloc(NA_LEN);
  na[0] = ND_NEIGHBOR_ADVERT;
  na[4] = ND_NA_FLAG_OVERRIDE;
  ipv6Bytes(target).copy(na, 8);
  na[24] = ND_OPT_TARGET_LINKADDR;
  na[25] = 1; // length in units of 8 bytes
  srcMac.copy(na, 26);
  na.writeUInt16BE(icmp6Checksum(s, d, na), 2);

  const f = Buffer.alloc(NA_FRAME_LEN);
  multicastMac(d).copy(f, 0);
  srcMac.copy(f, 6);
  f.writeUInt16BE(ETHERTYPE_IPV6, 12);
  f.writeUInt32BE(0x60000000, 14); // version 6, traffic class 0, flow label 0
  f.writeUInt16BE(NA_LEN, 18);
  f[20] = IPPROTO_ICMPV6;
  f[21] = 255; // hop limit: RFC 4861 §7.1.2 receivers drop anything else
  s.copy(f, 22);
  d.copy(f, 38);
  na.copy(f, 54);
  return f;
}
