import { writeStderr } from '../adapters/logger.js';
import { fileMode, readBytes, readText } from '../adapters/files.js';
import { CARP_HEADER_LEN, IPPROTO_CARP, carpHeader } from '../proto/carp-header.js';
import { makeAuthContext, verifyAdvert, type AuthContext } from '../proto/hmac.js';
import { decodeIpv4, formatIpv4 } from '../proto/ipv4.js';
import { ETHERTYPE_ARP, ipPayloadOf, linkPayloadOf, readPcap, type PcapRecord } from '../proto/pcap.js';

const USAGE = 'usage: carpd inspect [--pass SECRET | --passfile FILE] [--address ADDR]... FILE.pcap';

interface InspectOptions {
  file: string;
  pass?: string;
  passfile?: string;
  addresses: string[];
}

class UsageError extends Error {
  readonly code = 'CARPD_ERR_USAGE';
}

class PassfileError extends Error {
  readonly code = 'CARPD_ERR_PASSFILE';
}

function parseArgs(args: string[]): InspectOptions {
  const opts: InspectOptions = { file: '', addresses: [] };
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0) return arg.slice(eq + 1);
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    if (name === '--pass') opts.pass = value();
    else if (name === '--passfile') opts.passfile = value();
    else if (name === '--address') opts.addresses.push(value());
    else if (name.startsWith('-') && name !== '-') throw new UsageError(`unknown option ${name}`);
    else files.push(arg);
  }
  if (opts.pass !== undefined && opts.passfile !== undefined) {
    throw new UsageError('give --pass or --passfile, not both');
  }
  if (files.length !== 1) throw new UsageError('expected exactly one capture file');
  opts.file = files[0]!;
  return opts;
}

/** First line of a pass file, refused if anyone may read it (the secret is never echoed). */
async function readPassfile(path: string): Promise<string> {
  if ((await fileMode(path)) & 0o004) {
    throw new PassfileError(`refusing world-readable pass file ${path} (chmod o-r ${path})`);
  }
  return readText(path).split(/\r?\n/, 1)[0] ?? '';
}

/**
 * Address sets that may be a vhid's, read from the capture's gratuitous ARP (sender == target):
 * each sender IP alone (ucarp hashes its one VIP and ARPs from the real MAC), the IPs each
 * sender MAC announced (a kernel ARPs all VIPs of a vhid from 00:00:5e:00:01:vhid, which also
 * names the vhid), and all of them together.
 */
class GarpCandidates {
  private readonly byMac = new Map<string, Set<string>>();
  private readonly cache = new Map<number, string[][]>();

  add(rec: PcapRecord): void {
    const link = linkPayloadOf(rec);
    if (!link || link.ethertype !== ETHERTYPE_ARP) return;
    const a = link.payload;
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4, request or reply.
    if (a.length < 28 || a.readUInt16BE(0) !== 1 || a.readUInt16BE(2) !== 0x0800 || a[4] !== 6 || a[5] !== 4) return;
    const op = a.readUInt16BE(6);
    if (op !== 1 && op !== 2) return;
    const sender = formatIpv4(a, 14);
    if (sender !== formatIpv4(a, 24) || sender === '0.0.0.0') return;
    const mac = a.subarray(8, 14).toString('hex');
    const set = this.byMac.get(mac) ?? new Set<string>();
    set.add(sender);
    this.byMac.set(mac, set);
  }

  forVhid(vhid: number): string[][] {
    const cached = this.cache.get(vhid);
    if (cached) return cached;
    const sets: string[][] = [];
    const virtualMac = `00005e0001${vhid.toString(16).padStart(2, '0')}`;
    const own = this.byMac.get(virtualMac);
    if (own) sets.push([...own]);
    const all = new Set<string>();
    for (const ips of this.byMac.values()) {
      for (const ip of ips) all.add(ip);
      sets.push([...ips]);
    }
    for (const ip of all) sets.push([ip]);
    sets.push([...all]);
    const seen = new Set<string>();
    const unique = sets.filter((s) => {
      const key = [...s].sort().join(',');
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    this.cache.set(vhid, unique);
    return unique;
  }
}

/** Per vhid, the contexts to verify with; the one that verified last is tried first. */
class Authenticator {
  private readonly contexts = new Map<number, AuthContext[]>();

  constructor(
    private readonly pass: string,
    private readonly addresses: string[],
    private readonly garps: GarpCandidates,
  ) {}

  verify(vhid: number, counter: bigint, md: Buffer): boolean {
    let ctxs = this.contexts.get(vhid);
    if (!ctxs) {
      const sets = this.addresses.length > 0 ? [this.addresses] : this.garps.forVhid(vhid);
      ctxs = sets.map((s) => makeAuthContext(this.pass, vhid, s));
      this.contexts.set(vhid, ctxs);
    }
    const i = ctxs.findIndex((c) => verifyAdvert(c, counter, md));
    if (i > 0) ctxs.unshift(...ctxs.splice(i, 1));
    return i >= 0;
  }
}

/**
 * One JSON line per CARP advert (IPv4, protocol 112, 36+ bytes, version 2). VRRPv3 adverts
 * (version 3) share the protocol and group, so they are printed too, with the fields they have
 * (`vhid` is their vrid, `priority`, `maxadvint` in centiseconds) and auth "unchecked": VRRPv3
 * has no authentication. Anything else with protocol 112 (VRRPv2, junk) is skipped.
 */
function describe(rec: PcapRecord, auth: Authenticator | undefined): string | undefined {
  const pkt = ipPayloadOf(rec);
  if (!pkt) return undefined;
  const ip = decodeIpv4(pkt);
  if (!ip.ok || ip.protocol !== IPPROTO_CARP) return undefined;
  const payload = pkt.subarray(ip.payloadOffset, Math.max(ip.payloadOffset, ip.totalLength));
  const version = payload.length > 0 ? payload[0]! >> 4 : 0;
  const base = { src: ip.src, dst: ip.dst, ttl: ip.ttl };
  let fields: object;
  if (version === 2 && payload.length >= CARP_HEADER_LEN) {
    const h = carpHeader.decode(payload);
    fields = {
      ...base,
      version: h.version,
      type: h.type,
      vhid: h.vhid,
      advbase: h.advbase,
      advskew: h.advskew,
      demote: h.demote,
      counter: h.counter.toString(),
      auth: auth ? (auth.verify(h.vhid, h.counter, h.md) ? 'ok' : 'bad') : 'unchecked',
    };
  } else if (version === 3 && payload.length >= 8) {
    fields = {
      ...base,
      version,
      type: payload[0]! & 0x0f,
      vhid: payload[1]!,
      priority: payload[2]!,
      maxadvint: payload.readUInt16BE(4) & 0x0fff,
      auth: 'unchecked',
    };
  } else {
    return undefined;
  }
  // The time goes in as the file's exact decimal rather than a rounded double.
  return `{"time":${rec.tsText},${JSON.stringify(fields).slice(1)}`;
}

/**
 * `carpd inspect`: print the CARP (and VRRPv3) adverts of a pcap file as JSON lines. With a
 * password, auth is ok/bad against the `--address` list; without one, against the address sets
 * the capture's gratuitous ARPs suggest (a capture carries no address list). Returns 0, or 1
 * after a message on stderr.
 */
export async function inspectCommand(args: string[], out: (line: string) => void): Promise<number> {
  try {
    const opts = parseArgs(args);
    const pass = opts.passfile !== undefined ? await readPassfile(opts.passfile) : opts.pass;
    const records = readPcap(await readBytes(opts.file));
    const garps = new GarpCandidates();
    if (pass !== undefined && opts.addresses.length === 0) {
      for (const rec of records) garps.add(rec);
    }
    // Validate --address before any output.
    if (pass !== undefined && opts.addresses.length > 0) makeAuthContext(pass, 0, opts.addresses);
    const auth = pass !== undefined ? new Authenticator(pass, opts.addresses, garps) : undefined;
    for (const rec of records) {
      const line = describe(rec, auth);
      if (line !== undefined) out(line);
    }
    return 0;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    writeStderr(`carpd inspect: ${msg}\n${err instanceof UsageError ? `${USAGE}\n` : ''}`);
    return 1;
  }
}
