/** Lab harness for tests: the reusable part lives in src/lab/netns.ts; test-only helpers here. */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { waitFor, type Lab } from '../../src/lab/netns.js';

export * from '../../src/lab/netns.js';

/** The compiled adapter probe (dist/test/helpers/transport-probe.js). */
export const PROBE = fileURLToPath(new URL('./transport-probe.js', import.meta.url));

export type JsonLine = Record<string, unknown>;

export interface RunningProbe {
  child: ChildProcess;
  /** Every JSON line printed so far. */
  lines: JsonLine[];
  /** Resolves with the first line matching `pred` (bounded). */
  waitLine(pred: (line: JsonLine) => boolean, timeoutMs?: number): Promise<JsonLine>;
  /** SIGTERM, then wait (bounded) for exit. */
  stop(): Promise<void>;
}

/** Start the probe in `ns`; stdout is parsed into JSON lines. */
export function startProbe(lab: Lab, ns: string, args: string[]): RunningProbe {
  const child = lab.spawn(ns, [process.execPath, PROBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: JsonLine[] = [];
  let stderr = '';
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as JsonLine);
    } catch {
      lines.push({ event: 'garbage', line });
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < 16384) stderr += chunk;
  });
  return {
    child,
    lines,
    waitLine: async (pred, timeoutMs = 5_000) => {
      try {
        return await waitFor(() => lines.find(pred) ?? (child.exitCode !== null ? 'exited' : undefined), {
          timeoutMs,
          intervalMs: 10,
          what: 'probe output',
        }).then((v) => {
          if (v === 'exited') throw new Error('probe exited');
          return v as JsonLine;
        });
      } catch (err) {
        throw new Error(`${(err as Error).message}; probe lines ${JSON.stringify(lines)}; stderr ${stderr}`, { cause: err });
      }
    },
    stop: async () => {
      lab.kill(child, 'SIGTERM');
      await lab.waitExit(child, 3_000);
    },
  };
}

/** Run the probe to completion in `ns` and return its JSON lines and exit code. */
export async function runProbe(
  lab: Lab,
  ns: string,
  args: string[],
  timeoutMs = 10_000,
): Promise<{ exitCode: number | null; lines: JsonLine[]; stderr: string }> {
  const r = await lab.exec(ns, [process.execPath, PROBE, ...args], { timeoutMs });
  const lines = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JsonLine);
  return { exitCode: r.exitCode, lines, stderr: r.stderr };
}

export interface PcapFrame {
  /** Seconds since the epoch, microsecond resolution. */
  ts: number;
  data: Buffer;
}

/** Read a classic pcap file (tcpdump -w), either byte order, microsecond or nanosecond. */
export function readPcap(file: string): { linktype: number; frames: PcapFrame[] } {
  const buf = readFileSync(file);
  if (buf.length < 24) throw new Error(`${file}: not a pcap file`);
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const be = buf.readUInt32BE(0) === 0xa1b2c3d4 || buf.readUInt32BE(0) === 0xa1b23c4d;
  if (!le && !be) throw new Error(`${file}: not a pcap file`);
  const nano = (le ? magic : buf.readUInt32BE(0)) === 0xa1b23c4d;
  const u32 = (off: number): number => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const linktype = u32(20);
  const frames: PcapFrame[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const caplen = u32(off + 8);
    if (off + 16 + caplen > buf.length) break;
    frames.push({ ts: sec + frac / (nano ? 1e9 : 1e6), data: buf.subarray(off + 16, off + 16 + caplen) });
    off += 16 + caplen;
  }
  return { linktype, frames };
}

const mac = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ip4 = (b: Buffer): string => [...b].join('.');

export interface EthFrame {
  dst: string;
  src: string;
  ethertype: number;
  ipv4?: { tos: number; ttl: number; df: boolean; proto: number; src: string; dst: string; payload: Buffer };
  arp?: { op: number; sha: string; spa: string; tha: string; tpa: string };
  ipv6?: { hopLimit: number; next: number; src: Buffer; dst: Buffer; payload: Buffer };
}

/** Decode the Ethernet frames the tests care about (IPv4, ARP, IPv6; no VLAN tags). */
export function parseEthernet(data: Buffer): EthFrame {
  const frame: EthFrame = { dst: mac(data.subarray(0, 6)), src: mac(data.subarray(6, 12)), ethertype: data.readUInt16BE(12) };
  const p = data.subarray(14);
  if (frame.ethertype === 0x0800) {
    const ihl = (p[0]! & 0x0f) * 4;
    frame.ipv4 = {
      tos: p[1]!,
      ttl: p[8]!,
      df: (p[6]! & 0x40) !== 0,
      proto: p[9]!,
      src: ip4(p.subarray(12, 16)),
      dst: ip4(p.subarray(16, 20)),
      payload: p.subarray(ihl, p.readUInt16BE(2)),
    };
  } else if (frame.ethertype === 0x0806) {
    frame.arp = {
      op: p.readUInt16BE(6),
      sha: mac(p.subarray(8, 14)),
      spa: ip4(p.subarray(14, 18)),
      tha: mac(p.subarray(18, 24)),
      tpa: ip4(p.subarray(24, 28)),
    };
  } else if (frame.ethertype === 0x86dd) {
    frame.ipv6 = { next: p[6]!, hopLimit: p[7]!, src: p.subarray(8, 24), dst: p.subarray(24, 40), payload: p.subarray(40, 40 + p.readUInt16BE(4)) };
  }
  return frame;
}

/** `ip -j addr show dev IF` in a namespace: the addresses as `addr/prefix`. */
export async function addressesOf(lab: Lab, ns: string, ifname: string): Promise<string[]> {
  const r = await lab.exec(ns, ['ip', '-j', 'addr', 'show', 'dev', ifname]);
  if (r.exitCode !== 0) throw new Error(`ip addr show: ${r.stderr}`);
  const links = JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>;
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}
