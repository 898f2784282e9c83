/**
 * The 255-VIP recovery bench (`npm run bench -- --only garp`), also the measurement behind
 * test/integration/garp-scale.test.ts.
 *
 * Two nodes and an observer on a bridge, in namespaces this process makes and removes. Node a is
 * MASTER of N vhids (one VIP each), node b BACKUP. a is killed with SIGKILL; the observer captures
 * ARP and CARP on its own eth0 (a third namespace, kernel timestamps). The figure: from the new
 * master's first advert to the last VIP's first gratuitous ARP from the new master's MAC. Until a
 * VIP's GARP, hosts keep sending its traffic to the dead MAC, so this, not advert-to-advert
 * failover, is the outage a neighbour sees.
 *
 * carpd (one process, frames on an AF_PACKET socket) against ucarp (one process per vhid, each
 * sending its own GARP when it becomes MASTER), alternating trials in the same run.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labConfig, labNodes, labVip, median, spawnCarpd, spawnUcarp, writePassfile } from '../../src/lab/lab.js';
import { createLab, sleep, waitFor, type Lab, type LabNode } from '../../src/lab/netns.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { decodeIpv4 } from '../../src/proto/ipv4.js';
import { ETHERTYPE_ARP, ipPayloadOf, linkPayloadOf, readPcap } from '../../src/proto/pcap.js';

export type GarpKind = 'carpd' | 'ucarp';

export interface Recovery {
  /** Capture time (ms since the epoch) of the new master's first advert. */
  firstAdvertAt: number;
  /** Per VIP: ms from that advert to its first gratuitous ARP from the new master. */
  garpAfterMs: Map<string, number>;
  /** VIPs with no gratuitous ARP from the new master. */
  missing: string[];
  /** The figure: the largest of garpAfterMs. */
  lastGarpMs: number;
  /** Per VIP, how many gratuitous ARPs the new master sent in the capture. */
  garpCount: Map<string, number>;
  /** The capture (kept until the lab is destroyed). */
  file: string;
  /**
   * Per VIP: ms from its own vhid's first advert from the new master to its first GARP, the
   * part carpd's VIP and GARP path costs. The figure above adds the spread of the new master's
   * transitions, which follows the phases of the old master's adverts.
   */
  ownAdvertToGarpMs: Map<string, number>;
  /** ms from the new master's first advert to its last vhid's first advert. */
  transitionSpreadMs: number;
  /**
   * How long the old master's last whole round of adverts (one per vhid) took on the wire, in ms;
   * undefined if the capture holds no whole round. The backup's master-down timers follow it.
   */
  oldRoundMs?: number;
}

/**
 * The extent of the last whole round of adverts from one source: its adverts split into rounds at
 * gaps of more than 300 ms (the interval is 1 s), and the last round holding every vhid measured.
 */
export function lastRoundMs(times: number[], vhids: number): number | undefined {
  const ts = [...times].sort((x, y) => x - y);
  let best: number | undefined;
  let start = 0;
  for (let i = 1; i <= ts.length; i++) {
    if (i === ts.length || ts[i]! - ts[i - 1]! > 300) {
      if (i - start >= vhids) best = ts[i - 1]! - ts[start]!;
      start = i;
    }
  }
  return best;
}

/** Gratuitous ARP (sender = target = the VIP) and CARP adverts in a capture, measured against `newMaster`. */
export function recoveryFromCapture(file: string, newMaster: { address: string; mac: string }, vips: string[], oldMaster?: string): Recovery {
  const oldTimes: number[] = [];
  // vips[i] belongs to vhid i + 1 (labVip numbering).
  const vhidFirst = new Map<number, number>();
  const mac = newMaster.mac.toLowerCase().replaceAll(':', '');
  let firstAdvertAt: number | undefined;
  const garps: { t: number; vip: string }[] = [];
  for (const rec of readPcap(readFileSync(file))) {
    const t = rec.ts * 1000;
    const link = linkPayloadOf(rec);
    if (link?.ethertype === ETHERTYPE_ARP) {
      const p = link.payload;
      if (p.length < 28 || p.readUInt16BE(6) !== 1) continue;
      const spa = [...p.subarray(14, 18)].join('.');
      const tpa = [...p.subarray(24, 28)].join('.');
      if (spa === tpa && p.subarray(8, 14).toString('hex') === mac) garps.push({ t, vip: spa });
      continue;
    }
    const ip = ipPayloadOf(rec);
    if (!ip) continue;
    const h = decodeIpv4(ip);
    if (h.ok && h.protocol === 112 && oldMaster !== undefined && h.src === oldMaster) oldTimes.push(t);
    if (!h.ok || h.protocol !== 112 || h.src !== newMaster.address || ip.length < h.payloadOffset + 36) continue;
    const c = carpHeader.decode(ip, h.payloadOffset);
    if (c.version !== 2) continue;
    firstAdvertAt ??= t;
    if (!vhidFirst.has(c.vhid)) vhidFirst.set(c.vhid, t);
  }
  if (firstAdvertAt === undefined) throw new Error(`no advert from the new master ${newMaster.address} in ${file}`);
  const garpAfterMs = new Map<string, number>();
  const garpCount = new Map<string, number>();
  const wanted = new Set(vips);
  for (const g of garps) {
    if (!wanted.has(g.vip)) continue;
    garpCount.set(g.vip, (garpCount.get(g.vip) ?? 0) + 1);
    if (!garpAfterMs.has(g.vip)) garpAfterMs.set(g.vip, g.t - firstAdvertAt);
  }
  const missing = vips.filter((v) => !garpAfterMs.has(v));
  const ownAdvertToGarpMs = new Map<string, number>();
  vips.forEach((v, i) => {
    const adv = vhidFirst.get(i + 1);
    const g = garpAfterMs.get(v);
    if (adv !== undefined && g !== undefined) ownAdvertToGarpMs.set(v, g + firstAdvertAt - adv);
  });
  const transitionSpreadMs = Math.max(...vhidFirst.values()) - firstAdvertAt;
  const oldRoundMs = oldTimes.length ? lastRoundMs(oldTimes, vips.length) : undefined;
  return {
    firstAdvertAt,
    garpAfterMs,
    missing,
    lastGarpMs: Math.max(...garpAfterMs.values()),
    garpCount,
    file,
    ownAdvertToGarpMs,
    transitionSpreadMs,
    ...(oldRoundMs !== undefined ? { oldRoundMs } : {}),
  };
}

/** The IPv4 VIPs a node holds on eth0. */
export async function vipsOn(lab: Lab, node: LabNode): Promise<string[]> {
  const r = await lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return [...r.stdout.matchAll(/inet (198\.18\.1\.\d+)\//g)].map((m) => m[1]!);
}

async function flushVips(lab: Lab, nodes: LabNode[]): Promise<void> {
  for (const n of nodes) {
    const vips = await vipsOn(lab, n);
    if (vips.length) await lab.exec(n.ns, ['ip', '-batch', '-'], { input: vips.map((v) => `addr del ${v}/16 dev eth0`).join('\n') + '\n' });
  }
}

function startKind(lab: Lab, o: TrialOptions, node: LabNode, advskew: number, lines: string[]): ChildProcess[] {
  const sink = (l: string) => void (lines.length < 20_000 && lines.push(`${node.name}: ${l}`));
  if (o.kind === 'ucarp') return spawnUcarp(lab, node, o.vhids, advskew, o.passfile, sink);
  const conf = join(lab.dir, `${node.name}-garp-${o.vhids}.conf`);
  writeFileSync(conf, o.config ? o.config(advskew) : labConfig({ vhids: o.vhids, advskew, passfile: o.passfile }), { mode: 0o600 });
  return [spawnCarpd(lab, node, conf, sink)];
}

async function stopAll(lab: Lab, procs: ChildProcess[]): Promise<void> {
  for (const c of procs) lab.kill(c, 'SIGKILL');
  await Promise.all(procs.map((c) => lab.waitExit(c, 3000)));
}

export interface TrialOptions {
  kind: GarpKind;
  vhids: number;
  passfile: string;
  /** Runs once a is MASTER of every vhid and b is BACKUP, before the capture and the kill. */
  beforeKill?: () => Promise<void>;
  /** Runs once b holds every VIP and the capture has stopped, before b is stopped. */
  afterFailover?: () => Promise<void>;
  /** How long to keep capturing after b holds every VIP (the repeat GARP after the 2nd advert). Default 3000 ms. */
  tailMs?: number;
  /** Log lines of both nodes, for a failure message. */
  lines?: string[];
  /** carpd.conf for a node with this advskew (default: labConfig, one VIP 198.18.1.V/16 per vhid). */
  config?: (advskew: number) => string;
  /** tcpdump filter on the observer. Default `arp or ip proto 112`. */
  captureFilter?: string;
}

/** One recovery trial on a lab with nodes a, b and obs (labNodes(['a', 'b', 'obs'])). */
export async function garpTrial(lab: Lab, o: TrialOptions): Promise<Recovery> {
  const a = lab.node('a');
  const b = lab.node('b');
  const obs = lab.node('obs');
  const lines = o.lines ?? [];
  const vips = Array.from({ length: o.vhids }, (_, i) => labVip(i + 1));
  await flushVips(lab, [a, b]);
  const pa = startKind(lab, o, a, 0, lines);
  let pb: ChildProcess[] = [];
  try {
    await waitFor(async () => (await vipsOn(lab, a)).length === o.vhids, { timeoutMs: 30_000, intervalMs: 200, what: `a MASTER of ${o.vhids} vhids` });
    pb = startKind(lab, o, b, 100, lines);
    // Let b hear a and settle as BACKUP of every vhid (ucarp: 255 processes starting).
    await sleep(o.kind === 'ucarp' ? 6_000 : 4_000);
    if ((await vipsOn(lab, b)).length !== 0) throw new Error('b holds VIPs before the kill');
    await o.beforeKill?.();
    // A short snaplen and a 16 MB buffer: with --immediate-mode libpcap's ring has a slot per
    // snaplen-sized frame, about eight at the default 262144 bytes and 2 MB, and a tcpdump starved
    // of CPU lost most of a 255-frame burst (seen here: 65 of 166 GARPs captured, none dropped on
    // any interface). getopt permutes, so the options may follow the filter argument.
    const cap = await lab.capture(obs.ns, 'eth0', ['-s', '256', '-B', '16384', o.captureFilter ?? 'arp or ip proto 112']);
    try {
      // Over one advert interval, so the capture holds a whole round of the old master's adverts.
      await sleep(1_300);
      await stopAll(lab, pa);
      await waitFor(async () => (await vipsOn(lab, b)).length === o.vhids, { timeoutMs: 20_000, intervalMs: 100, what: `b MASTER of ${o.vhids} vhids` });
      await sleep(o.tailMs ?? 3_000);
    } finally {
      await cap.stop();
    }
    await o.afterFailover?.();
    return recoveryFromCapture(cap.file, b, vips, a.address);
  } finally {
    await stopAll(lab, [...pa, ...pb]);
  }
}

const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;

/** The bench section: `trials` alternating carpd and ucarp trials at `vhids` vhids. Returns false if a trial missed a VIP. */
export async function garpBench(opts: { trials: number; vhids: number }): Promise<boolean> {
  const lab = await createLab({ prefix: 'carpdgarpb', nodes: labNodes(['a', 'b', 'obs']) });
  const res: Record<GarpKind, number[]> = { carpd: [], ucarp: [] };
  const own: Record<GarpKind, number[]> = { carpd: [], ucarp: [] };
  const spread: Record<GarpKind, number[]> = { carpd: [], ucarp: [] };
  const oldRound: Record<GarpKind, number[]> = { carpd: [], ucarp: [] };
  let ok = true;
  try {
    const passfile = writePassfile(lab.dir);
    for (let i = 0; i < opts.trials; i++) {
      for (const kind of ['carpd', 'ucarp'] as GarpKind[]) {
        const r = await garpTrial(lab, { kind, vhids: opts.vhids, passfile });
        if (r.missing.length) {
          ok = false;
          console.log(`  ${kind} trial ${i + 1}: no GARP for ${r.missing.length} VIP(s): ${r.missing.slice(0, 5).join(', ')}`);
        }
        res[kind].push(r.lastGarpMs);
        own[kind].push(Math.max(...r.ownAdvertToGarpMs.values()));
        spread[kind].push(r.transitionSpreadMs);
        if (r.oldRoundMs !== undefined) oldRound[kind].push(r.oldRoundMs);
        const firsts = [...r.garpAfterMs.values()].sort((x, y) => x - y);
        console.log(
          `  ${kind} trial ${i + 1}: last GARP ${fmt(r.lastGarpMs)} after the first advert (median VIP ${fmt(median(firsts))}, first ${fmt(firsts[0]!)}); transitions spread over ${fmt(r.transitionSpreadMs)}; worst own-advert→GARP ${fmt(Math.max(...r.ownAdvertToGarpMs.values()))}; old master's last round of adverts ${r.oldRoundMs === undefined ? 'not captured whole' : fmt(r.oldRoundMs)}`,
        );
      }
    }
  } finally {
    await lab.destroy();
  }
  console.log(`\n## ${opts.vhids}-VIP recovery (last gratuitous ARP after the new master's first advert; capture on a third namespace)\n`);
  console.log(
    "| | trials | median | min | max | median spread of the new master's transitions | median worst own-advert→GARP | median old master's round of adverts |",
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const kind of ['carpd', 'ucarp'] as GarpKind[]) {
    const xs = res[kind];
    console.log(
      `| ${kind} | ${xs.length} | ${fmt(median(xs))} | ${fmt(Math.min(...xs))} | ${fmt(Math.max(...xs))} | ${fmt(median(spread[kind]))} | ${fmt(median(own[kind]))} | ${oldRound[kind].length ? fmt(median(oldRound[kind])) : '–'} |`,
    );
  }
  console.log(`\ncarpd/ucarp median last-GARP ratio: ${(median(res.carpd) / median(res.ucarp)).toFixed(4)}`);
  return ok;
}
