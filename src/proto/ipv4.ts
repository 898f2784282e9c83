import { inCksum } from './checksum.js';

/** The fixed 20 bytes of an IPv4 header; options are not represented. */
export interface Ipv4Header {
  tos: number;
  totalLength: number;
  id: number;
  /** The 3 flag bits (0b010 = DF). */
  flags: number;
  fragOffset: number;
  ttl: number;
  protocol: number;
  cksum: number;
  src: string;
  dst: string;
}

export const IPV4_HEADER_LEN = 20;
const IP_DF = 0b010;

/** Parse a dotted quad into an unsigned 32-bit number; undefined unless exactly a.b.c.d. */
export function parseIpv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/** Format 4 bytes at buf[offset] as a dotted quad. */
export function formatIpv4(buf: Buffer, offset = 0): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

function writeIpv4(s: string, buf: Buffer, offset: number): void {
  const n = parseIpv4(s);
  if (n === undefined) throw new TypeError(`not an IPv4 address: ${JSON.stringify(s)}`);
  buf.writeUInt32BE(n, offset);
}

/** Codec for the fixed IPv4 header; encode writes cksum as given, decode skips no options. */
export const ipv4Header = {
  encode(h: Ipv4Header, buf?: Buffer, offset = 0): Buffer {
    const out = buf ?? Buffer.alloc(IPV4_HEADER_LEN + offset);
    if (out.length < offset + IPV4_HEADER_LEN) throw new RangeError('buffer too small for an IPv4 header');
    out[offset] = 0x45;
    out[offset + 1] = h.tos & 0xff;
    out.writeUInt16BE(h.totalLength & 0xffff, offset + 2);
    out.writeUInt16BE(h.id & 0xffff, offset + 4);
    out.writeUInt16BE(((h.flags & 0x7) << 13) | (h.fragOffset & 0x1fff), offset + 6);
    out[offset + 8] = h.ttl & 0xff;
    out[offset + 9] = h.protocol & 0xff;
    out.writeUInt16BE(h.cksum & 0xffff, offset + 10);
    writeIpv4(h.src, out, offset + 12);
    writeIpv4(h.dst, out, offset + 16);
    return out;
  },

  decode(buf: Buffer, offset = 0): Ipv4Header {
    if (offset < 0 || buf.length < offset + IPV4_HEADER_LEN) {
      throw new RangeError('buffer too short for an IPv4 header');
    }
    const frag = buf.readUInt16BE(offset + 6);
    return {
      tos: buf[offset + 1]!,
      totalLength: buf.readUInt16BE(offset + 2),
      id: buf.readUInt16BE(offset + 4),
      flags: frag >> 13,
      fragOffset: frag & 0x1fff,
      ttl: buf[offset + 8]!,
      protocol: buf[offset + 9]!,
      cksum: buf.readUInt16BE(offset + 10),
      src: formatIpv4(buf, offset + 12),
      dst: formatIpv4(buf, offset + 16),
    };
  },

  encodingLength(_h?: Ipv4Header): number {
    return IPV4_HEADER_LEN;
  },
};

export type Ipv4Decoded =
  | {
      ok: true;
      /** Header length in 32-bit words, as in the header. */
      ihl: number;
      totalLength: number;
      ttl: number;
      protocol: number;
      src: string;
      dst: string;
      /** ihl * 4: where the payload starts. */
      payloadOffset: number;
    }
  | { ok: false };

/**
 * Decode a received IPv4 header. ok:false only when the header itself is unreadable (short
 * buffer, version not 4, ihl < 5 or past the buffer); length and checksum policy is the caller's.
 */
export function decodeIpv4(buf: Buffer): Ipv4Decoded {
  if (buf.length < IPV4_HEADER_LEN) return { ok: false };
  const vihl = buf[0]!;
  const ihl = vihl & 0x0f;
  if (vihl >> 4 !== 4 || ihl < 5 || buf.length < ihl * 4) return { ok: false };
  return {
    ok: true,
    ihl,
    totalLength: buf.readUInt16BE(2),
    ttl: buf[8]!,
    protocol: buf[9]!,
    src: formatIpv4(buf, 12),
    dst: formatIpv4(buf, 16),
    payloadOffset: ihl * 4,
  };
}

export interface Ipv4HeaderFields {
  src: string;
  dst: string;
  ttl: number;
  tos: number;
  protocol: number;
  payloadLength: number;
  id?: number;
}

/** A 20-byte IPv4 header with DF set and a correct header checksum (for synthesized packets). */
export function encodeIpv4Header(f: Ipv4HeaderFields): Buffer {
  const buf = ipv4Header.encode({
    tos: f.tos,
    totalLength: IPV4_HEADER_LEN + f.payloadLength,
    id: f.id ?? 0,
    flags: IP_DF,
    fragOffset: 0,
    ttl: f.ttl,
    protocol: f.protocol,
    cksum: 0,
    src: f.src,
    dst: f.dst,
  });
  buf.writeUInt16BE(inCksum(buf, 0, IPV4_HEADER_LEN), 10);
  return buf;
}
