/**
 * Gratuitous ARP frames, built byte for byte (no socket here; `src/adapters/link-layer.ts` sends
 * them on an AF_PACKET socket).
 *
 * The form is the kernels': FreeBSD `carp_send_arp()` → `arp_announce_ifaddr()` →
 * `arprequest_internal()` (sys/netinet/if_ether.c) zeroes the ARP header, then sets op REQUEST,
 * sender hardware address = the CARP MAC, sender and target protocol address = the VIP, and sends it
 * to the broadcast address, leaving the target hardware address zero. Linux's own announcement
 * (`inetdev_send_gratuitous_arp()` → `arp_send(ARPOP_REQUEST, …, target_hw = NULL)`, net/ipv4/
 * devinet.c, arp.c) is the same frame. The others differ only in the target hardware address, which
 * no receiver reads for a request whose sender and target are the same: iputils `arping -U` puts the
 * broadcast address there (send_pack() copies HE's sll_addr), ucarp `gratuitous_arp()` (src/garp.c)
 * its own MAC. A request rather than a reply, because every stack updates an existing entry from a
 * request (RFC 5227 §3, and ucarp's comment: "Gratuitous ARPs should use requests for the highest
 * interoperability").
 */

export const ETHERTYPE_ARP = 0x0806;
export const ETHER_BROADCAST = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** 14-byte Ethernet header + 28-byte ARP body; the NIC (or veth) pads it to 60 on the wire. */
export const GARP_FRAME_LEN = 42;

/** A MAC address `aa:bb:cc:dd:ee:ff` (or `-` separated) as 6 bytes; throws on anything else. */
export function macBytes(mac: string): Buffer {
  const parts = mac.trim().split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC address ${JSON.stringify(mac)}`);
  return Buffer.from(parts.map((p) => Number.parseInt(p, 16)));
}

/** An IPv4 address in dotted form as 4 bytes; throws on anything else. */
export function ipv4Bytes(address: string): Buffer {
  const parts = address.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) throw new Error(`bad IPv4 address ${JSON.stringify(address)}`);
  return Buffer.from(parts.map(Number));
}

/**
 * The gratuitous ARP request for `vip` from `srcMac` (the interface's MAC, or the virtual MAC
 * 00:00:5e:00:01:VHID): Ethernet broadcast, op 1, sha = srcMac, spa = tpa = vip, tha = 0.
 */
export function gratuitousArp(srcMac: Buffer, vip: string): Buffer {
  if (srcMac.length !== 6) throw new Error('source MAC must be 6 bytes');
  const ip = ipv4Bytes(vip);
  const f = Buffer.alloc(GARP_FRAME_LEN);
  ETHER_BROADCAST.copy(f, 0);
  srcMac.copy(f, 6);
  f.writeUInt16BE(ETHERTYPE_ARP, 12);
  f.writeUInt16BE(1, 14); // ar_hrd: ARPHRD_ETHER
  f.writeUInt16BE(0x0800, 16); // ar_pro: IPv4
  f[18] = 6; // ar_hln
  f[19] = 4; // ar_pln
  f.writeUInt16BE(1, 20); // ar_op: ARPOP_REQUEST
  srcMac.copy(f, 22); // sha
  ip.copy(f, 28); // spa
  // tha (32..37) stays zero, as FreeBSD's and Linux's kernels leave it.
  ip.copy(f, 38); // tpa
  return f;
}
