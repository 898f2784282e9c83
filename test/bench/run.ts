/**
 * `npm run bench`: carpd against ucarp, side by side in the same run, in network namespaces.
 *
 * - Failover: time from the dead master's last advert to the new master's first advert, from a
 *   tcpdump capture on the lab's bridge (a third namespace), kernel timestamps. carpd→carpd and
 *   ucarp→ucarp with the same settings (advbase 1, backup advskew 50), alternating trials.
 * - Scale: one carpd serving N vhids (default 255) at advbase 1 against N ucarp processes, master
 *   and backup side each: CPU% of one core (utime+stime from /proc) and RSS, summed per side.
 *
 * - Flood (flood.ts): master, backup and an attacker sending forged adverts, replays and wrong
 *   TTLs at the highest rate it reaches; no transition allowed, the log stays short.
 *
 * - 255-VIP recovery (garp.ts): last gratuitous ARP after the new master's first advert, carpd and ucarp.
 *
 * - IPv6 failover (ipv6.ts): the failover above over IPv6, with IPv4 beside it in the same lab.
 *
 * - Virtual MAC (vmac.ts): a client's outage when the master dies and no gratuitous ARP reaches it.
 *
 * Options: --trials N (default 5), --vhids N (255), --seconds S (30), --only failover|scale|flood|garp|ipv6|vmac,
 * --guard nft|off (flood: carpd's flood_guard, default nft), --scenario TEXT (flood: only those).
 * Everything runs inside namespaces this process makes and removes.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { intOpt, last, parseArgs } from '../../src/cli/args.js';
import { labConfig, labNodes, median, spawnCarpd, spawnUcarp, writePassfile } from '../../src/lab/lab.js';
import { createLab, sleep, waitFor, type Lab, type LabNode } from '../../src/lab/netns.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { decodeIpv4 } from '../../src/proto/ipv4.js';
import { ipPayloadOf, readPcap } from '../../src/proto/pcap.js';
import { floodBench } from './flood.js';
import { garpBench } from './garp.js';
import { ipv6Bench } from './ipv6.js';
import { vmacBench } from './vmac.js';

const CLK_TCK = 100;
const PAGE = 4096;

interface Advert {
  t: number;
  src: string;
  vhid: number;
  advbase: number;
  advskew: number;
}

/** CARP adverts in a capture file, in order, with kernel timestamps (ms). */
function advertsIn(file: string): Advert[] {
  const out: Advert[] = [];
  for (const rec of readPcap(readFileSync(file))) {
    const ip = ipPayloadOf(rec);
    if (!ip) continue;
    const h = decodeIpv4(ip);
    if (!h.ok || h.protocol !== 112 || ip.length < h.payloadOffset + 36) continue;
    const c = carpHeader.decode(ip, h.payloadOffset);
    if (c.version !== 2) continue;
    out.push({ t: rec.ts * 1000, src: h.src, vhid: c.vhid, advbase: c.advbase, advskew: c.advskew });
  }
  return out;
}

type Kind = 'carpd' | 'ucarp';

function start(lab: Lab, kind: Kind, node: LabNode, vhids: number, advskew: number, passfile: string, quiet = true): ChildProcess[] {
  const sink = quiet ? () => undefined : (l: string) => console.log(`  ${node.name}: ${l}`);
  if (kind === 'ucarp') return spawnUcarp(lab, node, vhids, advskew, passfile, sink);
  const conf = join(lab.dir, `${node.name}-${vhids}.conf`);
  writeFileSync(conf, labConfig({ vhids, advskew, passfile }), { mode: 0o600 });
  return [spawnCarpd(lab, node, conf, sink)];
}

async function stopAll(lab: Lab, procs: ChildProcess[]): Promise<void> {
  for (const c of procs) lab.kill(c, 'SIGKILL');
  await Promise.all(procs.map((c) => lab.waitExit(c, 3000)));
}

/** Remove any VIP the previous trial's killed master left behind (ucarp never removes it on kill -9). */
async function flushVips(lab: Lab, nodes: LabNode[]): Promise<void> {
  for (const n of nodes) {
    const r = await lab.exec(n.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    for (const m of r.stdout.matchAll(/inet (198\.18\.1\.\d+\/\d+)/g)) await lab.exec(n.ns, ['ip', 'addr', 'del', m[1]!, 'dev', 'eth0']);
  }
}

async function failoverTrial(lab: Lab, kind: Kind, passfile: string): Promise<number> {
  const a = lab.node('a');
  const b = lab.node('b');
  await flushVips(lab, [a, b]);
  const cap = await lab.capture(lab.switchNs!, lab.bridge!, 'ip proto 112');
  const pa = start(lab, kind, a, 1, 0, passfile);
  await sleep(300);
  const pb = start(lab, kind, b, 1, 50, passfile);
  // Let a become master and b settle as backup.
  await sleep(6000);
  const killedAt = Date.now();
  await stopAll(lab, pa);
  await sleep(6000);
  await stopAll(lab, pb);
  await cap.stop();
  const ads = advertsIn(cap.file);
  const lastA = ads.filter((x) => x.src === a.address && x.t <= killedAt + 100).at(-1);
  const firstB = ads.find((x) => x.src === b.address && lastA && x.t > lastA.t);
  if (!lastA || !firstB) throw new Error(`${kind} trial: no failover seen in the capture (${ads.length} adverts)`);
  const earlierB = ads.filter((x) => x.src === b.address && x.t < lastA.t).length;
  if (earlierB > 0) throw new Error(`${kind} trial: b advertised before a died (${earlierB}): not a clean failover`);
  return firstB.t - lastA.t;
}

interface Usage {
  cpuPct: number;
  rssMb: number;
  procs: number;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime, stime
}

function rssBytes(pid: number): number {
  const f = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
  return Number(f[1]) * PAGE;
}

/**
 * The real daemon processes under `procs` (each is `ip netns exec … X`, which execs X, so the pid
 * is the daemon's own). Measures CPU over `seconds` and RSS at the end, summed.
 */
async function measure(procs: ChildProcess[], seconds: number): Promise<Usage> {
  const pids = procs.map((c) => c.pid!).filter((p) => p > 0);
  const t0 = performance.now();
  const c0 = pids.map(cpuTicks);
  await sleep(seconds * 1000);
  const c1 = pids.map(cpuTicks);
  const wall = (performance.now() - t0) / 1000;
  const ticks = c1.reduce((s, v, i) => s + v - c0[i]!, 0);
  const rss = pids.reduce((s, p) => s + rssBytes(p), 0);
  return { cpuPct: (100 * ticks) / CLK_TCK / wall, rssMb: rss / 1024 / 1024, procs: pids.length };
}

async function scaleRun(lab: Lab, kind: Kind, vhids: number, seconds: number, passfile: string): Promise<{ master: Usage; backup: Usage; pps: number }> {
  const m = lab.node('a');
  const b = lab.node('b');
  await flushVips(lab, [m, b]);
  const pm = start(lab, kind, m, vhids, 0, passfile);
  await sleep(500);
  const pb = start(lab, kind, b, vhids, 100, passfile);
  try {
    // Settle: every vhid has a master (3 s master-down + start-up of many processes).
    await waitFor(
      async () => {
        const r = await lab.exec(m.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
        return (r.stdout.match(/198\.18\.1\./g) ?? []).length >= vhids;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `${kind}: ${vhids} VIPs on the master` },
    ).catch(() => undefined);
    // Steady state: past the start-up burst (two gratuitous ARPs per VIP, one process each).
    await sleep(SETTLE_MS);
    // Packets per second from the backup's interface counters: a capture at this rate drops
    // packets on a busy 2-core machine, the kernel's counters don't.
    const rx0 = await rxPackets(lab, b);
    const t0 = performance.now();
    const [master, backup] = await Promise.all([measure(pm, seconds), measure(pb, seconds)]);
    const pps = ((await rxPackets(lab, b)) - rx0) / ((performance.now() - t0) / 1000);
    return { master, backup, pps };
  } finally {
    await stopAll(lab, [...pm, ...pb]);
  }
}

const SETTLE_MS = 25_000;

async function rxPackets(lab: Lab, node: LabNode): Promise<number> {
  const r = await lab.exec(node.ns, ['cat', '/sys/class/net/eth0/statistics/rx_packets']);
  return Number(r.stdout.trim());
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

async function main(): Promise<void> {
  const p = parseArgs(process.argv.slice(2), ['--trials', '--vhids', '--seconds', '--only', '--guard', '--scenario'], []);
  const trials = intOpt(p, '--trials', 1, 50, 5);
  const vhids = intOpt(p, '--vhids', 1, 255, 255);
  const seconds = intOpt(p, '--seconds', 5, 600, 30);
  const only = last(p, '--only');
  const date = new Date().toISOString().slice(0, 10);
  console.log(`carpd bench, ${date}, node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
  if (only === 'ipv6') return ipv6Bench({ trials });
  if (only === 'vmac') {
    if (!(await vmacBench({ trials }))) process.exitCode = 1;
    return;
  }
  if (only === undefined || only === 'garp') {
    if (!(await garpBench({ trials, vhids }))) process.exitCode = 1;
    if (only === 'garp') return;
  }
  if (only === 'flood') {
    const guard = last(p, '--guard') === 'off' ? 'off' : 'nft';
    const scenario = last(p, '--scenario');
    if (!(await floodBench({ seconds, guard, ...(scenario ? { scenario } : {}) }))) process.exitCode = 1;
    return;
  }

  const lab = await createLab({ prefix: 'carpdbench', nodes: labNodes(['a', 'b']) });
  try {
    const passfile = writePassfile(lab.dir);
    if (only !== 'scale') {
      const nominal = 3000 + (50 * 1000) / 256;
      const res: Record<Kind, number[]> = { carpd: [], ucarp: [] };
      for (let i = 0; i < trials; i++) {
        for (const kind of ['carpd', 'ucarp'] as Kind[]) {
          const ms = await failoverTrial(lab, kind, passfile);
          res[kind].push(ms);
          console.log(`  failover trial ${i + 1} ${kind}: ${fmt(ms)}`);
        }
      }
      console.log(`\n## Failover (advbase 1, backup advskew 50; nominal 3 × advbase + advskew/256 = ${fmt(nominal)})\n`);
      console.log('| | trials | median | min | max | median − nominal |');
      console.log('|---|---|---|---|---|---|');
      for (const kind of ['carpd', 'ucarp'] as Kind[]) {
        const xs = res[kind];
        const med = median(xs);
        console.log(`| ${kind} | ${xs.length} | ${fmt(med)} | ${fmt(Math.min(...xs))} | ${fmt(Math.max(...xs))} | ${(med - nominal).toFixed(1)} ms |`);
      }
      console.log(`\ncarpd/ucarp median failover ratio: ${(median(res.carpd) / median(res.ucarp)).toFixed(3)}`);
    }
    if (only !== 'failover') {
      const out: Record<Kind, Awaited<ReturnType<typeof scaleRun>>> = {
        carpd: await scaleRun(lab, 'carpd', vhids, seconds, passfile),
        ucarp: await scaleRun(lab, 'ucarp', vhids, seconds, passfile),
      };
      console.log(`\n## Scale (${vhids} vhids, advbase 1, ${seconds} s; CPU as % of one core, summed over processes)\n`);
      console.log('| | side | processes | CPU % | RSS MB | packets/s received by the backup |');
      console.log('|---|---|---|---|---|---|');
      for (const kind of ['carpd', 'ucarp'] as Kind[]) {
        for (const side of ['master', 'backup'] as const) {
          const u = out[kind][side];
          console.log(`| ${kind} | ${side} | ${u.procs} | ${u.cpuPct.toFixed(2)} | ${u.rssMb.toFixed(1)} | ${out[kind].pps.toFixed(1)} |`);
        }
      }
      const r = (k: 'cpuPct' | 'rssMb') => ((out.carpd.master[k] + out.carpd.backup[k]) / (out.ucarp.master[k] + out.ucarp.backup[k])).toFixed(3);
      console.log(`\ncarpd/ucarp ratios (both sides): CPU ${r('cpuPct')}, RSS ${r('rssMb')}`);
    }
  } finally {
    await lab.destroy();
  }
  if (only === undefined && !(await floodBench({ seconds, guard: 'nft' }))) process.exitCode = 1;
  if (only === undefined && !(await vmacBench({ trials }))) process.exitCode = 1;
  if (only === undefined) await ipv6Bench({ trials });
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
