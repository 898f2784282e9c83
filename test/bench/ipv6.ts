/**
 * IPv6 failover bench (issue 11 §2): carpd over IPv6, with the IPv4 figure measured beside it in
 * the same run and lab (ucarp has no IPv6). As the IPv4 failover bench in run.ts: two carpd
 * nodes on the lab bridge (a advskew 0, b advskew 50), a capture on the bridge, `a` killed with
 * SIGKILL; the figure is the dead master's last advert → the new master's first, from the
 * capture's kernel timestamps.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labNodes, median, spawnCarpd, writePassfile } from '../../src/lab/lab.js';
import { createLab, sleep, waitFor, type Lab, type LabNode } from '../../src/lab/netns.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { decodeIpv4 } from '../../src/proto/ipv4.js';
import { decodeIpv6 } from '../../src/proto/ipv6.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, linkPayloadOf, readPcap } from '../../src/proto/pcap.js';

type Family = 4 | 6;
const VIP: Record<Family, string> = { 4: '198.18.1.1/24', 6: '2001:db8:1::1/64' };

/** CARP adverts of one family in a capture, with kernel timestamps (ms) and source address. */
function adverts(file: string, family: Family): Array<{ t: number; src: string }> {
  const out: Array<{ t: number; src: string }> = [];
  for (const rec of readPcap(readFileSync(file))) {
    const link = linkPayloadOf(rec);
    if (!link) continue;
    if (family === 4 && link.ethertype === ETHERTYPE_IPV4) {
      const h = decodeIpv4(link.payload);
      if (h.ok && h.protocol === 112 && carpHeader.decode(link.payload, h.payloadOffset).version === 2) out.push({ t: rec.ts * 1000, src: h.src });
    } else if (family === 6 && link.ethertype === ETHERTYPE_IPV6) {
      const h = decodeIpv6(link.payload);
      if (h.ok && h.nextHeader === 112 && link.payload.length >= 76 && carpHeader.decode(link.payload, 40).version === 2)
        out.push({ t: rec.ts * 1000, src: h.src });
    }
  }
  return out;
}

function config(family: Family, advskew: number, passfile: string): string {
  return [
    '[carpd]',
    'log = 5',
    '',
    '[vhid.v1]',
    'vhid = 1',
    'interface = eth0',
    `address = ${VIP[family]}`,
    'advbase = 1',
    `advskew = ${advskew}`,
    `passfile = ${passfile}`,
    '',
  ].join('\n');
}

async function addressOf(lab: Lab, node: LabNode, family: Family): Promise<string> {
  if (family === 4) return node.address;
  const ll = await waitFor(
    async () => {
      const r = await lab.exec(node.ns, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link', '-tentative']);
      return /inet6 (fe80::[0-9a-f:]+)\//.exec(r.stdout)?.[1];
    },
    { timeoutMs: 8_000, intervalMs: 100, what: `${node.name}'s link-local` },
  );
  return ll;
}

async function trial(lab: Lab, family: Family, passfile: string): Promise<number> {
  const [a, b] = [lab.node('a'), lab.node('b')];
  for (const n of [a, b]) await lab.exec(n.ns, ['ip', 'addr', 'flush', 'dev', 'eth0', 'to', VIP[family]]);
  const [srcA, srcB] = [await addressOf(lab, a, family), await addressOf(lab, b, family)];
  const cap = await lab.capture(lab.switchNs!, lab.bridge!, family === 6 ? 'ip6 proto 112' : 'ip proto 112');
  const logs: string[] = [];
  const start = (n: LabNode, advskew: number): ChildProcess => {
    const conf = join(lab.dir, `${n.name}-v${family}.conf`);
    writeFileSync(conf, config(family, advskew, passfile), { mode: 0o600 });
    return spawnCarpd(lab, n, conf, (l) => logs.length < 200 && logs.push(`${n.name}: ${l}`));
  };
  const pa = start(a, 0);
  await sleep(300);
  const pb = start(b, 50);
  await sleep(6_000);
  const killedAt = Date.now();
  lab.kill(pa, 'SIGKILL');
  await lab.waitExit(pa, 3_000);
  await sleep(6_000);
  lab.kill(pb, 'SIGKILL');
  await lab.waitExit(pb, 3_000);
  await cap.stop();
  const ads = adverts(cap.file, family);
  const lastA = ads.filter((x) => x.src === srcA && x.t <= killedAt + 100).at(-1);
  const firstB = ads.find((x) => x.src === srcB && lastA && x.t > lastA.t);
  if (!lastA || !firstB)
    throw new Error(`IPv${family} trial: no failover in the capture (a ${srcA}, b ${srcB}, killed at ${killedAt}): ${JSON.stringify(ads)}\n${logs.join('\n')}`);
  if (ads.some((x) => x.src === srcB && x.t < lastA.t)) throw new Error(`IPv${family} trial: b advertised before a died`);
  return firstB.t - lastA.t;
}

/** Runs `trials` IPv4 and IPv6 failovers, alternating, and prints one table. */
export async function ipv6Bench(opts: { trials: number }): Promise<void> {
  const lab = await createLab({ prefix: 'carpdbench6', nodes: labNodes(['a', 'b']) });
  try {
    const passfile = writePassfile(lab.dir);
    const res: Record<Family, number[]> = { 4: [], 6: [] };
    for (let i = 0; i < opts.trials; i++) {
      for (const family of [6, 4] as Family[]) {
        const ms = await trial(lab, family, passfile);
        res[family].push(ms);
        console.log(`  failover trial ${i + 1} carpd IPv${family}: ${(ms / 1000).toFixed(3)} s`);
      }
    }
    const nominal = 3000 + (50 * 1000) / 256;
    const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
    console.log(`\n## IPv6 failover (advbase 1, backup advskew 50; nominal ${fmt(nominal)}; kill -9, last advert of the dead master → first of the new)\n`);
    console.log('| | trials | median | min | max | median − nominal |');
    console.log('|---|---|---|---|---|---|');
    for (const family of [6, 4] as Family[]) {
      const xs = res[family];
      const med = median(xs);
      console.log(`| carpd IPv${family} | ${xs.length} | ${fmt(med)} | ${fmt(Math.min(...xs))} | ${fmt(Math.max(...xs))} | ${(med - nominal).toFixed(1)} ms |`);
    }
  } finally {
    await lab.destroy();
  }
}
