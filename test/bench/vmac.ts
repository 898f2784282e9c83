/**
 * The vmac bench: what a client sees of a failover when the vhid has a virtual MAC and the new
 * master's gratuitous ARPs never reach it. Two carpd nodes (`vmac = yes`, advbase 1, backup advskew
 * 100) and an observer on a bridge, in namespaces this process makes and removes. The observer
 * pings the VIP every 10 ms; the master is killed (-9) and its link downed; the new master's
 * GARPs (spa = tpa = VIP) are dropped at the egress of its macvlan and parent by an nft netdev
 * table. Reported per trial: the outage, the longest gap between two echo replies (ping -D, the
 * observer's clock), whether the observer's neighbour entry for the VIP kept the vMAC, and how
 * many GARPs the filter took (so they were sent, and did not help). Nominal: master-down
 * 3 × advbase + 100/256 s ≈ 3.39 s after the last advert heard, which left up to 1 s before the
 * kill, plus the VIP add: 2.4–3.4 s.
 *
 * From run.ts (one line, in the full run), or alone: `node dist/test/bench/vmac.js [--trials N]`.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { labNodes, median, spawnCarpd, writePassfile } from '../../src/lab/lab.js';
import { createLab, waitFor, type Lab } from '../../src/lab/netns.js';

const VIP = '198.18.1.1';
const VMAC = '00:00:5e:00:01:01';
/** Bounds: a trial that has not recovered by then fails. */
const RECOVER_MS = 15_000;

function conf(advskew: number, passfile: string): string {
  return [
    '[carpd]',
    'log = 5',
    '',
    '[vhid.web]',
    'vhid = 1',
    'interface = eth0',
    `address = ${VIP}/16`,
    `advskew = ${advskew}`,
    `passfile = ${passfile}`,
    'vmac = yes',
    '',
  ].join('\n');
}

function start(lab: Lab, name: string, text: string): { child: ChildProcess; lines: string[] } {
  const file = join(lab.dir, `${name}.conf`);
  writeFileSync(file, text, { mode: 0o600 });
  const lines: string[] = [];
  const child = spawnCarpd(lab, lab.node(name), file, (l) => lines.length < 10_000 && lines.push(l));
  return { child, lines };
}

const NOGARP = (dev: string) =>
  `  chain e_${dev} {\n    type filter hook egress device "${dev}" priority 0;\n    arp saddr ip ${VIP} arp daddr ip ${VIP} counter drop\n  }\n`;

async function trial(lab: Lab, passfile: string): Promise<{ outageMs: number; sameMac: boolean; garpsDropped: number }> {
  const [a, b, obs] = [lab.node('a'), lab.node('b'), lab.node('obs')];
  const da = start(lab, 'a', conf(0, passfile));
  await waitFor(() => da.lines.some((l) => l.includes('-> MASTER')), { timeoutMs: 15_000, what: 'a MASTER' });
  const db = start(lab, 'b', conf(100, passfile));
  try {
    await waitFor(() => db.lines.some((l) => l.includes('-> BACKUP')), { timeoutMs: 15_000, what: 'b BACKUP' });
    const nft = await lab.exec(b.ns, ['nft', '-f', '-'], {
      input: `table netdev nogarp\ndelete table netdev nogarp\ntable netdev nogarp {\n${NOGARP('carpv1')}${NOGARP('eth0')}}\n`,
    });
    if (nft.exitCode !== 0) throw new Error(`nft: ${nft.stderr}`);
    await lab.exec(obs.ns, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    const replies: number[] = [];
    const ping = lab.spawn(obs.ns, ['ping', '-D', '-n', '-i', '0.01', '-W', '1', VIP], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: ping.stdout! }).on('line', (l) => {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l);
      if (m && replies.length < 100_000) replies.push(Number(m[1]) * 1000);
    });
    try {
      await waitFor(() => replies.length >= 50, { timeoutMs: 5_000, what: 'echo replies before the kill' });
      const t0 = Date.now();
      lab.kill(da.child, 'SIGKILL');
      await lab.linkDown(a);
      await waitFor(() => db.lines.some((l) => l.includes('-> MASTER')), { timeoutMs: RECOVER_MS, what: 'b MASTER' });
      const tm = Date.now();
      await waitFor(() => replies.some((r) => r > tm + 300), { timeoutMs: RECOVER_MS, what: 'echo replies after the takeover' });
      // The outage: the longest silence between two replies from just before the kill on (a
      // reply already in flight at t0 must not count as the recovery).
      const window = replies.filter((r) => r > t0 - 500);
      let outage = 0;
      for (let i = 1; i < window.length; i++) outage = Math.max(outage, window[i]! - window[i - 1]!);
      const neigh = await lab.exec(obs.ns, ['ip', '-j', 'neigh', 'show', 'to', VIP, 'dev', 'eth0']);
      const mac = (JSON.parse(neigh.stdout || '[]') as { lladdr?: string }[])[0]?.lladdr;
      const counters = await lab.exec(b.ns, ['nft', 'list', 'table', 'netdev', 'nogarp']);
      const garpsDropped = [...counters.stdout.matchAll(/counter packets (\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
      return { outageMs: outage, sameMac: mac === VMAC, garpsDropped };
    } finally {
      lab.kill(ping, 'SIGINT');
      await lab.waitExit(ping, 3_000);
    }
  } finally {
    lab.kill(db.child, 'SIGTERM');
    await lab.waitExit(db.child, 10_000);
    lab.kill(da.child, 'SIGKILL');
    await lab.waitExit(da.child, 3_000);
    await lab.exec(b.ns, ['nft', 'delete', 'table', 'netdev', 'nogarp']);
    // a was killed: its macvlan (with the VIP) is left; the next start reuses it and takes the VIP.
    await lab.linkUp(a);
    await lab.exec(a.ns, ['ip', 'link', 'del', 'dev', 'carpv1']);
  }
}

/** Runs the trials and prints the section; false when a trial failed. */
export async function vmacBench(opts: { trials?: number } = {}): Promise<boolean> {
  const trials = opts.trials ?? 5;
  const lab = await createLab({ prefix: 'carpdbvmac', nodes: labNodes(['a', 'b', 'obs']) });
  const outages: number[] = [];
  let ok = true;
  try {
    const passfile = writePassfile(lab.dir);
    for (let i = 0; i < trials; i++) {
      try {
        const r = await trial(lab, passfile);
        outages.push(r.outageMs);
        console.log(
          `  vmac trial ${i + 1}: outage ${r.outageMs.toFixed(0)} ms, neighbour MAC kept: ${r.sameMac ? 'yes' : 'NO'}, GARPs dropped: ${r.garpsDropped}`,
        );
        if (!r.sameMac || r.garpsDropped === 0) ok = false;
      } catch (err) {
        ok = false;
        console.log(`  vmac trial ${i + 1}: failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  } finally {
    await lab.destroy();
  }
  if (outages.length > 0) {
    console.log(`\n## Virtual MAC failover, no GARP reaching the client (advbase 1, backup advskew 100; nominal master-down 3.391 s)\n`);
    console.log('| trials | outage median | min | max |');
    console.log('|---|---|---|---|');
    const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
    console.log(`| ${outages.length} | ${s(median(outages))} | ${s(Math.min(...outages))} | ${s(Math.max(...outages))} |`);
  }
  return ok;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--trials');
  const trials = i > 0 ? Math.max(1, Math.min(50, Number(process.argv[i + 1]) || 5)) : 5;
  vmacBench({ trials }).then(
    (ok) => {
      if (!ok) process.exitCode = 1;
    },
    (err: unknown) => {
      console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exitCode = 1;
    },
  );
}
