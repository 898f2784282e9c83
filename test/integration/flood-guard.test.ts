/**
 * flood_guard = nft for real, in lab namespaces: carpd creates its own table (inet carpd_guard)
 * at start, the kernel drops a small flood of forged CARP before carpd's socket sees it, the
 * table survives a kill -9 and a restart replaces it without error, a SIGHUP reloads it with the
 * vhids, and a clean stop removes it.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CARPD_JS } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { buildFlooder, guardCounters, runFlooder } from '../bench/flood.js';

const TEST = { timeout: 90_000 };
const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');

interface Daemon {
  child: ChildProcess;
  lines: string[];
  sock: string;
}

function runCarpd(lab: Lab, node: LabNode, conf: string, tag: string): Daemon {
  const sock = join(lab.dir, `${node.name}-${tag}.sock`);
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'run', '-c', conf, '--control', sock], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { STATE_DIRECTORY: join(lab.dir, `${node.name}-state`) },
  });
  const lines: string[] = [];
  for (const s of [child.stdout, child.stderr]) {
    s?.setEncoding('utf8').on('data', (c: string) => {
      if (lines.length < 2000) lines.push(...c.split('\n').filter(Boolean));
    });
  }
  return { child, lines, sock };
}

async function table(lab: Lab, ns: string): Promise<string | undefined> {
  const r = await lab.exec(ns, ['nft', 'list', 'table', 'inet', 'carpd_guard']);
  return r.exitCode === 0 ? r.stdout : undefined;
}

async function counters(lab: Lab, node: LabNode, d: Daemon): Promise<Record<string, number> & { badAuthSources: string[] }> {
  const r = await lab.exec(node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, 'stats', '--json']);
  const j = JSON.parse(r.stdout) as { counters: Record<string, number>; badAuth: { src: string }[] };
  return Object.assign(j.counters, { badAuthSources: j.badAuth.map((b) => b.src) });
}

test('flood_guard = nft: carpd’s table drops forged CARP in the kernel, survives kill -9 + restart, goes at exit', TEST, async (t) => {
  await withLab(
    {
      prefix: 'carpdfg',
      nodes: [
        { name: 'b', address: '198.18.0.2/24' },
        { name: 'x', address: '198.18.0.3/24' },
      ],
    },
    async (lab) => {
      const b = lab.node('b');
      const x = lab.node('x');
      const pass = join(lab.dir, 'pass');
      writeFileSync(pass, 'guarded\n', { mode: 0o600 });
      const conf = join(lab.dir, 'b.conf');
      const vhid = (v: number) => ['', `[vhid.v${v}]`, `vhid = ${v}`, 'interface = eth0', `address = 198.18.1.${v}/24`, 'advskew = 100', `passfile = ${pass}`];
      writeFileSync(conf, ['[carpd]', 'log = 2', 'flood_guard = nft', ...vhid(1), ...vhid(7), ''].join('\n'), { mode: 0o600 });
      assert.equal(await table(lab, b.ns), undefined, 'no table before carpd');

      const d1 = runCarpd(lab, b, conf, '1');
      await waitFor(() => d1.lines.find((l) => l.includes('running 2 vhid(s)')), { timeoutMs: 15_000, what: 'carpd start' });
      const listing = await table(lab, b.ns);
      assert.ok(listing, 'the table exists while carpd runs');
      assert.match(listing, /@th,8,8 != \{ 0x1, 0x7 \}/);
      assert.match(listing, /ip saddr != 198\.18\.0\.0\/24 counter/);
      assert.match(listing, /limit rate over 4\/second burst 8 packets/);

      const bin = await buildFlooder(lab, lab.dir);
      if (!bin) {
        t.skip('no gcc to build the sender');
        return;
      }
      // 3000 adverts with TTL 64, 3000 with a bad HMAC from one source, 3000 from sources off the subnet.
      const c0 = await counters(lab, b, d1);
      await runFlooder(lab, x.ns, bin, ['eth0', x.address, 'ttl', '3000', '10', '1'], 10);
      await runFlooder(lab, x.ns, bin, ['eth0', x.address, 'badauth', '3000', '10', '1'], 10);
      await runFlooder(lab, x.ns, bin, ['eth0', '10.0.0.0/24', 'badauth', '3000', '10', '1'], 10);
      const k = await guardCounters(lab, b.ns);
      const c1 = await counters(lab, b, d1);
      // The sender runs flat out; the bridge may lose a few of its packets before b sees them
      // (netdev backlog), so up to 10% are allowed to go missing, none to be counted twice.
      const near = (n: number | undefined) => n !== undefined && n >= 2700 && n <= 3000;
      assert.ok(near(k.badttl), JSON.stringify(k));
      assert.ok(near(k.badsrc), JSON.stringify(k));
      assert.equal(c1.carps_badttl! - c0.carps_badttl!, 0, 'carpd never saw a bad-TTL packet');
      assert.deepEqual(c1.badAuthSources, [x.address], 'nor an off-subnet one');
      // The per-source limit lets a burst and ~4/s through; the rest die in the kernel.
      const seen = c1.carps_badauth! - c0.carps_badauth!;
      assert.ok(seen > 0 && seen <= 100, `carpd saw ${seen} of 3000 forged adverts`);
      assert.ok(near(seen + (k.flood ?? 0)), JSON.stringify({ seen, k }));

      // kill -9: nobody removes the table; the restart replaces it in one transaction.
      lab.kill(d1.child, 'SIGKILL');
      await lab.waitExit(d1.child, 5000);
      assert.ok(await table(lab, b.ns), 'the table outlives a kill -9');
      const d2 = runCarpd(lab, b, conf, '2');
      await waitFor(() => d2.lines.find((l) => l.includes('running 2 vhid(s)')), { timeoutMs: 15_000, what: 'carpd restart' });
      assert.ok(!d2.lines.some((l) => l.includes('flood_guard: cannot')), d2.lines.join('\n'));
      const again = await table(lab, b.ns);
      assert.ok(again);
      assert.equal((again.match(/chain prerouting/g) ?? []).length, 1, 'one table, one chain');
      assert.match(again, /counter packets 0 bytes 0 drop comment "badttl"/, 'a fresh table (counters at zero)');

      // SIGHUP with one more vhid: the table follows the configuration.
      writeFileSync(conf, ['[carpd]', 'log = 2', 'flood_guard = nft', ...vhid(1), ...vhid(7), ...vhid(9), ''].join('\n'), { mode: 0o600 });
      lab.kill(d2.child, 'SIGHUP');
      await waitFor(() => d2.lines.find((l) => l.includes('configuration reloaded')), { timeoutMs: 15_000, what: 'the reload' });
      assert.match((await table(lab, b.ns)) ?? '', /@th,8,8 != \{ 0x1, 0x7, 0x9 \}/);

      lab.kill(d2.child, 'SIGTERM');
      assert.equal(await lab.waitExit(d2.child, 10_000), 0);
      assert.equal(await table(lab, b.ns), undefined, 'a clean stop removes the table');
    },
  );
});
