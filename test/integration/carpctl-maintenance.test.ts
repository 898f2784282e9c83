/**
 * `carpctl maintenance on|off` in namespaces: a client pinging the VIP at 100/s loses no reply
 * while the master steps back and its peer takes over, and the setting survives a restart.
 * Needs ping (iputils-ping).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { StatusData } from '../../src/daemon/reports.js';
import { CARPD_JS, labNodes, labVip, writePassfile } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const VIP = labVip(1);
/** 100 pings a second for 8 s. */
const PINGS = 800;

interface Daemon {
  node: LabNode;
  child: ChildProcess;
  sock: string;
  stateDir: string;
  lines: string[];
}

function start(lab: Lab, node: LabNode, advskew: number, passfile: string): Daemon {
  const file = join(lab.dir, `${node.name}.conf`);
  writeFileSync(
    file,
    ['[carpd]', 'log = 5', '[vhid.v1]', 'vhid = 1', 'interface = eth0', `address = ${VIP}/16`, `advskew = ${advskew}`, `passfile = ${passfile}`, ''].join('\n'),
    { mode: 0o600 },
  );
  const sock = join(lab.dir, `${node.name}.sock`);
  const stateDir = join(lab.dir, `${node.name}-state`);
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'run', '-c', file, '--control', sock], { env: { STATE_DIRECTORY: stateDir } });
  const d: Daemon = { node, child, sock, stateDir, lines: [] };
  for (const s of [child.stdout, child.stderr]) createInterface({ input: s! }).on('line', (l) => d.lines.length < 5000 && d.lines.push(l));
  return d;
}

async function ctl(lab: Lab, d: Daemon, ...args: string[]): Promise<string> {
  const r = await lab.exec(d.node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, ...args], { timeoutMs: 10_000 });
  assert.equal(r.exitCode, 0, `carpctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function status(lab: Lab, d: Daemon): Promise<StatusData> {
  return JSON.parse(await ctl(lab, d, 'status', '--json')) as StatusData;
}

async function vips(lab: Lab, node: LabNode): Promise<string[]> {
  const r = await lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!).filter((a) => a !== node.address);
}

test('maintenance on moves the VIP to the peer with 0 of 800 pings lost at 100/s, and stays on across a restart', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdmnt', nodes: labNodes(['n1', 'n2', 'client']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const n1 = start(lab, lab.node('n1'), 0, pass);
    await waitFor(async () => (await vips(lab, n1.node)).includes(VIP), { timeoutMs: 10_000, what: 'n1 to hold the VIP' });
    const n2 = start(lab, lab.node('n2'), 100, pass);
    await waitFor(async () => (await status(lab, n2).catch(() => undefined))?.vhids[0]?.state === 'BACKUP', { timeoutMs: 10_000, what: 'n2 BACKUP' });

    const client = lab.node('client');
    // Warm up the client's ARP entry for the VIP (pointing at n1), as a real client would have it.
    const warm = await lab.exec(client.ns, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', VIP], { timeoutMs: 10_000 });
    assert.equal(warm.exitCode, 0, warm.stdout + warm.stderr);

    const pinging = lab.exec(client.ns, ['ping', '-n', '-q', '-i', '0.01', '-c', String(PINGS), '-W', '1', VIP], { timeoutMs: 30_000 });
    await sleep(2_000);
    const on = await ctl(lab, n1, 'maintenance', 'on');
    assert.match(on.trim(), /^maintenance: on since \S+ \(carpctl\), demote 240$/);
    const result = await pinging;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(result.stdout);
    assert.ok(m, result.stdout + result.stderr);
    assert.equal(Number(m[1]), PINGS);
    assert.equal(
      Number(m[2]),
      PINGS,
      `lost ${PINGS - Number(m[2])} replies during the switchover:\n${result.stdout}\n${n1.lines.join('\n')}\n${n2.lines.join('\n')}`,
    );

    // The switchover happened: n2 is MASTER and holds the VIP, n1 released it after the hold.
    const s2 = await status(lab, n2);
    assert.equal(s2.vhids[0]!.state, 'MASTER');
    assert.equal(s2.vhids[0]!.lastTransition!.reason, 'preempting a more demoted master');
    await waitFor(async () => !(await vips(lab, n1.node)).includes(VIP), { timeoutMs: 5_000, what: 'n1 to release the VIP' });
    assert.ok((await vips(lab, n2.node)).includes(VIP));
    assert.ok(
      n1.lines.some((l) => l.includes('planned handover')),
      n1.lines.join('\n'),
    );

    // Persistent: the intent is on disk; a restarted n1 comes back in maintenance.
    const intent = JSON.parse(readFileSync(join(n1.stateDir, 'maintenance.json'), 'utf8')) as { on: boolean; by: string };
    assert.deepEqual({ on: intent.on, by: intent.by }, { on: true, by: 'carpctl' });
    lab.kill(n1.child, 'SIGTERM');
    assert.equal(await lab.waitExit(n1.child, 8_000), 0);
    assert.ok((JSON.parse(readFileSync(join(n1.stateDir, 'maintenance.json'), 'utf8')) as { on: boolean }).on, 'TERM leaves the intent on disk');
    const again = start(lab, n1.node, 0, pass);
    await waitFor(async () => (await status(lab, again).catch(() => undefined))?.vhids[0]?.state === 'BACKUP', {
      timeoutMs: 10_000,
      what: 'n1 back as BACKUP',
    });
    const s1 = await status(lab, again);
    assert.equal(s1.maintenance?.on, true);
    assert.deepEqual(s1.demotion[0], { group: 'carp', total: 240, by: [{ by: 'maintenance', count: 240 }] });
    assert.match(await ctl(lab, again, 'status'), /^maintenance: on since /m);

    // off: the demotion goes; with preempt off the peer stays MASTER.
    assert.equal((await ctl(lab, again, 'maintenance', 'off')).trim(), 'maintenance: off');
    assert.equal((await status(lab, again)).demotion[0]!.total, 0);
    assert.equal((JSON.parse(readFileSync(join(n1.stateDir, 'maintenance.json'), 'utf8')) as { on: boolean }).on, false);

    for (const d of [again, n2]) lab.kill(d.child, 'SIGTERM');
    for (const d of [again, n2]) await lab.waitExit(d.child, 8_000);
  });
});
