/**
 * What an attacker on the segment can do with CARP adverts without the password: take a captured
 * advert, change the fields outside the HMAC (advbase, advskew, demote, the IP source), fix the
 * checksum and send it again. Used by test/unit/replay.test.ts and the packet fuzzer.
 */
import { CARP_HEADER_LEN } from '../../src/proto/carp-header.js';
import { inCksum } from '../../src/proto/checksum.js';
import { encodeIpv4Header } from '../../src/proto/ipv4.js';
import type { FakeWire } from './fake-wire.js';

export interface Restamp {
  advbase?: number;
  advskew?: number;
  demote?: number;
}

/** A copy of a 36-byte CARP advert with new unauthenticated fields and a valid checksum; the counter and HMAC are kept. */
export function restamp(payload: Buffer, f: Restamp): Buffer {
  const b = Buffer.from(payload.subarray(0, CARP_HEADER_LEN));
  if (f.advskew !== undefined) b[2] = f.advskew;
  if (f.demote !== undefined) b[4] = f.demote;
  if (f.advbase !== undefined) b[5] = f.advbase;
  b.writeUInt16BE(0, 6);
  b.writeUInt16BE(inCksum(b, 0, CARP_HEADER_LEN), 6);
  return b;
}

/** The whole IP packet a raw socket would deliver: IPv4 header (TTL 255, to 224.0.0.18) and payload. */
export function ipPacket(src: string, payload: Buffer, ttl = 255): Buffer {
  const header = encodeIpv4Header({ src, dst: '224.0.0.18', ttl, tos: 0x10, protocol: 112, payloadLength: payload.length });
  return Buffer.concat([header, payload]);
}

/** Deliver a packet to `node`'s socket on `ifname` now, as if it came off the wire. Returns false if the node has no open socket there. */
export function inject(wire: FakeWire, node: string, pkt: Buffer, ifname = 'eth0'): boolean {
  const port = wire.ports.find((p) => p.node === node && p.ifname === ifname && !p.closed);
  if (!port?.cb) return false;
  port.cb(pkt);
  return true;
}

/** The last advert `node` put on the wire (the 36 CARP bytes), as a capture would hold it. */
export function captured(wire: FakeWire, node: string): Buffer {
  const e = wire.log.filter((x) => x.node === node).at(-1);
  if (!e) throw new Error(`${node} sent nothing`);
  return Buffer.from(e.payload);
}
