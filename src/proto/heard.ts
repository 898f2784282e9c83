/** A CARP advert as an observer reports it (`carpd monitor`, the lab's observer). */
import { CARP_HEADER_LEN, carpHeader } from './carp-header.js';
import { decodeIpv4 } from './ipv4.js';

export interface HeardAdvert {
  /** Wall-clock ms (Date.now() resolution plus hrtime fraction). */
  t: number;
  src: string;
  ttl: number;
  vhid: number;
  advbase: number;
  advskew: number;
  demote: number;
}

/** Decode one received packet for display; undefined when it is not a CARP v2 advert. */
export function decodeHeard(pkt: Buffer, t: number): HeardAdvert | undefined {
  const ip = decodeIpv4(pkt);
  if (!ip.ok || pkt.length < ip.payloadOffset + CARP_HEADER_LEN) return undefined;
  const h = carpHeader.decode(pkt, ip.payloadOffset);
  if (h.version !== 2) return undefined;
  return { t, src: ip.src, ttl: ip.ttl, vhid: h.vhid, advbase: h.advbase, advskew: h.advskew, demote: h.demote };
}
