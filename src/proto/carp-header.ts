/** The 36-byte CARP header (`struct carp_header`, OpenBSD/FreeBSD sys/netinet/ip_carp.h). */
export interface CarpHeader {
  /** High nibble of byte 0; 2 for CARP. */
  version: number;
  /** Low nibble of byte 0; 1 = advertisement. */
  type: number;
  vhid: number;
  advskew: number;
  /** 7 on the wire; nobody checks it. */
  authlen: number;
  /** OpenBSD's group demotion count; 0 from the others. */
  demote: number;
  advbase: number;
  cksum: number;
  /** Two big-endian 32-bit words read as one unsigned 64-bit number. */
  counter: bigint;
  /** HMAC-SHA1, 20 bytes. */
  md: Buffer;
}

export const CARP_HEADER_LEN = 36;
export const CARP_MD_LEN = 20;
export const CARP_VERSION = 2;
export const CARP_ADVERTISEMENT = 1;
export const CARP_AUTHLEN = 7;
export const CARP_DFLTTL = 255;
export const IPPROTO_CARP = 112;

/** Codec for the CARP header in the style of mafintosh/dns-packet; encode writes cksum as given. */
export const carpHeader = {
  encode(h: CarpHeader, buf?: Buffer, offset = 0): Buffer {
    if (h.md.length !== CARP_MD_LEN) throw new RangeError(`carp md must be ${CARP_MD_LEN} bytes`);
    const out = buf ?? Buffer.alloc(CARP_HEADER_LEN + offset);
    if (out.length < offset + CARP_HEADER_LEN) throw new RangeError('buffer too small for a CARP header');
    out[offset] = ((h.version & 0x0f) << 4) | (h.type & 0x0f);
    out[offset + 1] = h.vhid & 0xff;
    out[offset + 2] = h.advskew & 0xff;
    out[offset + 3] = h.authlen & 0xff;
    out[offset + 4] = h.demote & 0xff;
    out[offset + 5] = h.advbase & 0xff;
    out.writeUInt16BE(h.cksum & 0xffff, offset + 6);
    out.writeBigUInt64BE(BigInt.asUintN(64, h.counter), offset + 8);
    h.md.copy(out, offset + 16);
    return out;
  },

  decode(buf: Buffer, offset = 0): CarpHeader {
    if (offset < 0 || buf.length < offset + CARP_HEADER_LEN) {
      throw new RangeError('buffer too short for a CARP header');
    }
    return {
      version: buf[offset]! >> 4,
      type: buf[offset]! & 0x0f,
      vhid: buf[offset + 1]!,
      advskew: buf[offset + 2]!,
      authlen: buf[offset + 3]!,
      demote: buf[offset + 4]!,
      advbase: buf[offset + 5]!,
      cksum: buf.readUInt16BE(offset + 6),
      counter: buf.readBigUInt64BE(offset + 8),
      // A copy, so the header outlives a receive buffer that gets reused.
      md: Buffer.from(buf.subarray(offset + 16, offset + CARP_HEADER_LEN)),
    };
  },

  encodingLength(_h?: CarpHeader): number {
    return CARP_HEADER_LEN;
  },
};
