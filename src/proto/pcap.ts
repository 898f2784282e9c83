/** One captured frame of a classic libpcap file. */
export interface PcapRecord {
  /** Capture time in seconds since the epoch (float). */
  ts: number;
  /** The same time as an exact decimal ("1700000000.123456"), 6 or 9 digits as the file has. */
  tsText: string;
  linktype: number;
  /** The captured bytes (incl_len of them; fewer than on the wire if the snaplen cut it). */
  data: Buffer;
}

/** A file that is not classic pcap; records cut short at the end are skipped instead. */
export class PcapFormatError extends Error {
  readonly code = 'CARPD_ERR_PCAP_FORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'PcapFormatError';
  }
}

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;
/** LINKTYPE_RAW and the two DLT_RAW values that BSDs write into files. */
export const LINKTYPES_RAW_IP: readonly number[] = [101, 12, 14];

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;

const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
const MAGIC_USEC = 0xa1b2c3d4;
const MAGIC_NSEC = 0xa1b23c4d;
const MAGIC_PCAPNG = 0x0a0d0d0a;

/**
 * Read a classic pcap file held in memory: either byte order, µs or ns timestamps. Throws
 * PcapFormatError at once for a bad global header; a truncated last record ends the iteration.
 */
export function readPcap(buf: Buffer): Iterable<PcapRecord> {
  if (buf.length < GLOBAL_HEADER_LEN) throw new PcapFormatError('file too short for a pcap header');
  const be = buf.readUInt32BE(0);
  const le = buf.readUInt32LE(0);
  if (be === MAGIC_PCAPNG) throw new PcapFormatError('pcapng is not supported; convert with: editcap -F pcap IN OUT');
  const nanos = be === MAGIC_NSEC || le === MAGIC_NSEC;
  if (!nanos && be !== MAGIC_USEC && le !== MAGIC_USEC) throw new PcapFormatError('not a pcap file (bad magic)');
  const littleEndian = le === MAGIC_USEC || le === MAGIC_NSEC;
  const u32 = (off: number): number => (littleEndian ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  // The upper bits of the link-type word carry FCS information, not the type.
  const linktype = u32(20) & 0xffff;
  const digits = nanos ? 9 : 6;
  return {
    *[Symbol.iterator](): Generator<PcapRecord> {
      let off = GLOBAL_HEADER_LEN;
      while (off + RECORD_HEADER_LEN <= buf.length) {
        const sec = u32(off);
        const frac = u32(off + 4);
        const inclLen = u32(off + 8);
        const start = off + RECORD_HEADER_LEN;
        if (start + inclLen > buf.length) return;
        off = start + inclLen;
        yield {
          ts: sec + frac / (nanos ? 1e9 : 1e6),
          tsText: `${sec}.${String(frac).padStart(digits, '0')}`,
          linktype,
          data: buf.subarray(start, off),
        };
      }
    },
  };
}

/** What the link layer carries: its ethertype and the payload. */
export interface LinkPayload {
  ethertype: number;
  payload: Buffer;
}

/** Strip the link-layer header (Ethernet with one 802.1Q tag, Linux SLL and SLL2, raw IP). */
export function linkPayloadOf(rec: PcapRecord): LinkPayload | undefined {
  const d = rec.data;
  switch (rec.linktype) {
    case LINKTYPE_ETHERNET: {
      if (d.length < 14) return undefined;
      let ethertype = d.readUInt16BE(12);
      let off = 14;
      if (ethertype === ETHERTYPE_VLAN || ethertype === ETHERTYPE_QINQ) {
        if (d.length < 18) return undefined;
        ethertype = d.readUInt16BE(16);
        off = 18;
      }
      return { ethertype, payload: d.subarray(off) };
    }
    case LINKTYPE_LINUX_SLL: {
      // packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
      if (d.length < 16) return undefined;
      return { ethertype: d.readUInt16BE(14), payload: d.subarray(16) };
    }
    case LINKTYPE_LINUX_SLL2: {
      // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) address length(1) address(8)
      if (d.length < 20) return undefined;
      return { ethertype: d.readUInt16BE(0), payload: d.subarray(20) };
    }
    default: {
      if (!LINKTYPES_RAW_IP.includes(rec.linktype) || d.length < 1) return undefined;
      const version = d[0]! >> 4;
      if (version === 4) return { ethertype: ETHERTYPE_IPV4, payload: d };
      if (version === 6) return { ethertype: ETHERTYPE_IPV6, payload: d };
      return undefined;
    }
  }
}

/** The IPv4 packet in a record (IP header included, link padding cut off), or undefined. */
export function ipPayloadOf(rec: PcapRecord): Buffer | undefined {
  const link = linkPayloadOf(rec);
  if (!link || link.ethertype !== ETHERTYPE_IPV4) return undefined;
  const p = link.payload;
  if (p.length < 20 || p[0]! >> 4 !== 4) return undefined;
  const totalLength = p.readUInt16BE(2);
  // Ethernet pads short frames to 60 bytes; the IP total length says where the packet ends.
  return totalLength >= 20 && totalLength < p.length ? p.subarray(0, totalLength) : p;
}
