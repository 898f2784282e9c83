/**
 * Plugins cannot hurt the protocol: they run in a child process of `carpd run`.
 *
 * - A `master` hook that spins the CPU for 5 s delays no advert: a capture on the observer
 *   (kernel timestamps) shows the master's adverts every advbase throughout, and the peer stays
 *   BACKUP.
 * - A plugin that throws from a timer kills only the child: carpd keeps advertising, restarts the
 *   child, holds the `plugins` demotion until the plugins are set up again, and says so in
 *   `carpctl status` and `carpctl events`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StatusData } from '../../src/daemon/reports.js';
import { labNodes, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab } from '../../src/lab/netns.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { decodeIpv4 } from '../../src/proto/ipv4.js';
import { ipPayloadOf, readPcap } from '../../src/proto/pcap.js';
import { ctl, nodeConf, nodeDir, startCarpd, stopCarpd, waitState } from './plugin-lab.js';

const ADVBASE_MS = 1000;

/** Kernel timestamps (ms) of the CARP adverts from `src` in a capture. */
function advertTimes(file: string, src: string): number[] {
  const out: number[] = [];
  for (const rec of readPcap(readFileSync(file))) {
    const ip = ipPayloadOf(rec);
    if (!ip) continue;
    const h = decodeIpv4(ip);
    if (!h.ok || h.protocol !== 112 || h.src !== src || ip.length < h.payloadOffset + 36) continue;
    if (carpHeader.decode(ip, h.payloadOffset).version !== 2) continue;
    out.push(rec.ts * 1000);
  }
  return out;
}

/** An operator plugin folder under `dir` with `plugin.js`. */
function plugin(dir: string, name: string, source: string): string {
  const pdir = join(dir, 'plugins', name);
  mkdirSync(pdir, { recursive: true });
  writeFileSync(join(pdir, 'plugin.js'), source);
  return join(dir, 'plugins');
}

async function status(lab: Lab, d: Parameters<typeof ctl>[1]): Promise<StatusData | undefined> {
  const r = await ctl(lab, d, 'status', '--json');
  return r.code === 0 ? (JSON.parse(r.out) as StatusData) : undefined;
}

const held = (s: StatusData | undefined, by: string) => s?.demotion.find((g) => g.group === 'carp')?.by.find((b) => b.by === by)?.count ?? 0;

test('a master hook that spins for 5 s delays no advert, and the peer stays BACKUP', { timeout: 60_000 }, async (t) => {
  await withLab({ prefix: 'carpdspin', nodes: labNodes(['n1', 'n2', 'obs']) }, async (lab) => {
    const passfile = writePassfile(lab.dir);
    const n1 = lab.node('n1');
    const dir1 = nodeDir(lab, n1);
    const spins = join(dir1, 'spins');
    const pluginDir = plugin(
      dir1,
      'spin',
      `import { appendFileSync } from 'node:fs';
export default { name: 'spin', apiVersion: 1, hooks: { master() {
  const t = Date.now();
  while (Date.now() - t < 5000) {}
  appendFileSync(${JSON.stringify(spins)}, t + ' ' + Date.now() + '\\n');
} } };\n`,
    );
    const capture = await lab.capture(lab.node('obs').ns, 'eth0', 'ip proto 112');
    const conf = (advskew: number, sections: string[]) =>
      nodeConf({ advskew, passfile, sections }).replace('[carpd]\n', `[carpd]\nplugin_dir = ${pluginDir}\n`);
    const a = startCarpd(lab, n1, conf(0, ['[plugin.spin]', 'follow = lan', 'timeout = 30s']));
    await waitState(lab, a, 'MASTER');
    // The peer comes up while the master's hook spins: were the adverts late, it would take over.
    const b = startCarpd(lab, lab.node('n2'), conf(50, []));
    await waitFor(() => existsSync(spins), { timeoutMs: 15_000, intervalMs: 100, what: `the spin to end; n1 log:\n${a.lines.join('\n')}` });
    await new Promise((r) => setTimeout(r, 1500));
    await capture.stop();
    const [start, end] = readFileSync(spins, 'utf8').trim().split('\n')[0]!.split(' ').map(Number) as [number, number];
    assert.ok(end - start >= 5000);
    const times = advertTimes(capture.file, n1.address).filter((t) => t >= start - ADVBASE_MS && t <= end + ADVBASE_MS);
    assert.ok(times.length >= 5, `adverts during the spin: ${times.length}`);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    const worst = Math.max(...gaps);
    t.diagnostic(`${times.length} adverts during the spin; largest gap ${worst.toFixed(1)} ms`);
    // In one process the spin would leave a 5 s gap; scheduling noise on a shared 2-CPU machine is
    // tens of ms. 150 ms keeps the claim (adverts on time, far inside the 3 s master-down) without
    // failing on a busy machine.
    assert.ok(
      worst <= ADVBASE_MS + 150,
      `the largest gap between adverts during the spin was ${worst.toFixed(1)} ms (gaps ${gaps.map((g) => g.toFixed(0)).join(', ')})`,
    );
    assert.equal((await status(lab, b))?.vhids[0]?.state, 'BACKUP', 'the peer stayed BACKUP');
    assert.equal((await status(lab, a))?.vhids[0]?.state, 'MASTER');
    assert.ok(!b.lines.some((l) => l.includes('-> MASTER')), `n2 never became MASTER:\n${b.lines.join('\n')}`);
    await stopCarpd(lab, b);
    await stopCarpd(lab, a);
  });
});

test('a plugin that throws from a timer does not stop carpd: the child is restarted and the node demoted until set up again', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdboom', nodes: labNodes(['n1', 'obs']) }, async (lab) => {
    const passfile = writePassfile(lab.dir);
    const n1 = lab.node('n1');
    const dir = nodeDir(lab, n1);
    const thrown = join(dir, 'thrown');
    const release = join(dir, 'release');
    // First setup: schedule a throw (the child crashes). The restarted child's setup waits for
    // the test's go (bounded by the hook timeout), so the demotion can be seen while it waits.
    const pluginDir = plugin(
      dir,
      'boom',
      `import { existsSync, writeFileSync } from 'node:fs';
export default { name: 'boom', apiVersion: 1, hooks: {
  async setup() {
    if (!existsSync(${JSON.stringify(thrown)})) {
      writeFileSync(${JSON.stringify(thrown)}, '');
      setTimeout(() => { throw new Error('x'); }, 10);
      return;
    }
    for (let i = 0; i < 200 && !existsSync(${JSON.stringify(release)}); i++) await new Promise((r) => setTimeout(r, 50));
  },
} };\n`,
    );
    const conf = nodeConf({ advskew: 0, passfile, sections: ['[plugin.boom]', 'follow = lan', 'timeout = 20s'] }).replace(
      '[carpd]\n',
      `[carpd]\nplugin_dir = ${pluginDir}\n`,
    );
    const a = startCarpd(lab, n1, conf);
    const log = () => a.lines.join('\n');
    await waitFor(async () => held(await status(lab, a), 'plugins') === 128, {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `carpctl status to show the plugins demotion; log:\n${log()}`,
    });
    assert.equal(a.child.exitCode, null, 'carpd is still running');
    await waitState(lab, a, 'MASTER');
    // Still advertising: the advert counter moves.
    const sent = async () => {
      const r = await ctl(lab, a, 'stats', '--json');
      const j = JSON.parse(r.out) as { vhids?: { advertsSent: number }[] };
      return j.vhids?.[0]?.advertsSent ?? -1;
    };
    const before = await sent();
    await waitFor(async () => (await sent()) >= before + 2, { timeoutMs: 5_000, intervalMs: 200, what: `adverts after the crash; log:\n${log()}` });
    writeFileSync(release, '');
    await waitFor(async () => held(await status(lab, a), 'plugins') === 0, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: `the demotion to be lifted; log:\n${log()}`,
    });
    const s = await status(lab, a);
    assert.equal(held(s, 'boot:plugins'), 0);
    const ev = await ctl(lab, a, 'events', '--json', '-n', '1000');
    const admin = ev.out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; action?: string; detail?: string })
      .filter((e) => e.type === 'admin' && e.action === 'plugin-host')
      .map((e) => e.detail!.split(':')[0]);
    // The first child's `ready` comes before the daemon's event log listens; its setup passed before the throw.
    assert.deepEqual(admin.slice(admin.indexOf('exit')), ['exit', 'restart', 'ready', 'setup-done'], ev.out);
    assert.ok(
      a.lines.some((l) => l.includes('uncaught exception') && l.includes('Error: x')),
      `the crash is in carpd's log:\n${log()}`,
    );
    assert.equal(await stopCarpd(lab, a), 0, 'a clean exit at the end');
  });
});
