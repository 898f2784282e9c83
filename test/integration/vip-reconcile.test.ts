/**
 * The VIP reconcile on a real Linux kernel (issue 10, defect 0), with carpd daemons in network
 * namespaces. The chaos-soak sequence, scaled down to 3 nodes × 6 vhids: every VIP in one /24
 * that is not the nodes' own subnet, so the first VIP a node adds becomes that subnet's primary
 * address; with net.ipv4.conf.eth0.promote_secondaries forced back to 0, deleting it makes the
 * kernel delete every other VIP of the /24 (seen here in `ip monitor address`), and only the
 * reconcile puts them back. Also: an address deleted by hand from a MASTER comes back, and one
 * added by hand on a BACKUP goes.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { StatsData, StatusData } from '../../src/daemon/reports.js';
import { CARPD_JS, spawnCarpd, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../helpers/netns.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const VHIDS = 6;
const vip = (v: number) => `10.250.8.${v}`;
/** vhid 1 belongs to n3, 2 to n1, 3 to n2, 4 to n3, 5 to n1, 6 to n2. */
const owner = (v: number) => ((v + 1) % 3) + 1;
/** 0 for the owner, 50 for the next node, 100 for the third. */
const skew = (n: number, v: number) => (n === owner(v) ? 0 : n === (owner(v) % 3) + 1 ? 50 : 100);
/** How long a MASTER may go without one of its VIPs before the test fails. */
const REPAIR_BOUND_MS = 3_000;

interface Daemon {
  node: LabNode;
  child: ChildProcess;
  sock: string;
  lines: string[];
}

function conf(n: number, passfile: string): string {
  const lines = ['[carpd]', 'preempt = yes', 'log = 5', ''];
  for (let v = 1; v <= VHIDS; v++) {
    lines.push(`[vhid.v${v}]`, `vhid = ${v}`, 'interface = eth0', `address = ${vip(v)}/24`, `advskew = ${skew(n, v)}`, `passfile = ${passfile}`);
    // The node's own vhids form a demotion group, so the test can hold them back on their own.
    if (owner(v) === n) lines.push('group = own');
    lines.push('');
  }
  return lines.join('\n');
}

function start(lab: Lab, name: string, text: string): Daemon {
  const node = lab.node(name);
  const file = join(lab.dir, `${name}.conf`);
  writeFileSync(file, text, { mode: 0o600 });
  const d: Daemon = { node, child: undefined as unknown as ChildProcess, sock: join(lab.dir, `${name}.sock`), lines: [] };
  d.child = spawnCarpd(lab, node, file, (l) => d.lines.length < 10_000 && d.lines.push(l));
  return d;
}

async function ctl(lab: Lab, d: Daemon, ...args: string[]): Promise<string> {
  const r = await lab.exec(d.node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, ...args], { timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new Error(`carpctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function status(lab: Lab, d: Daemon): Promise<StatusData | undefined> {
  return ctl(lab, d, 'status', '--json')
    .then((o) => JSON.parse(o) as StatusData)
    .catch(() => undefined);
}

async function masters(lab: Lab, d: Daemon): Promise<number[]> {
  return ((await status(lab, d))?.vhids ?? [])
    .filter((v) => v.state === 'MASTER')
    .map((v) => v.vhid)
    .sort((a, b) => a - b);
}

interface Addr {
  local: string;
  prefixlen: number;
  secondary?: boolean;
}

async function addrs(lab: Lab, node: LabNode): Promise<Addr[]> {
  const r = await lab.exec(node.ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']);
  if (r.exitCode !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { addr_info: Addr[] }[]).flatMap((l) => l.addr_info);
}

/** The VIPs of this node's MASTER vhids that the kernel does not have; undefined while status is unreadable. */
async function missingVips(lab: Lab, d: Daemon): Promise<string[] | undefined> {
  const st = await status(lab, d);
  if (!st) return undefined;
  const have = new Set((await addrs(lab, d.node)).map((a) => `${a.local}/${a.prefixlen}`));
  return st.vhids.filter((v) => v.state === 'MASTER').flatMap((v) => v.addresses.filter((a) => !have.has(a)));
}

/** VIPs on the node for vhids it is not MASTER of. */
async function strayVips(lab: Lab, d: Daemon): Promise<string[]> {
  const st = await status(lab, d);
  const have = new Set((await addrs(lab, d.node)).map((a) => `${a.local}/${a.prefixlen}`));
  return (st?.vhids ?? []).filter((v) => v.state !== 'MASTER').flatMap((v) => v.addresses.filter((a) => have.has(a)));
}

/** `ip -ts -o monitor address` in a namespace; lines with their time of arrival here. */
function monitor(lab: Lab, node: LabNode): { lines: { at: number; line: string }[]; child: ChildProcess } {
  const child = lab.spawn(node.ns, ['ip', '-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: { at: number; line: string }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.length < 10_000 && lines.push({ at: performance.now(), line }));
  return { lines, child };
}

async function stats(lab: Lab, d: Daemon): Promise<StatsData> {
  return JSON.parse(await ctl(lab, d, 'stats', '--json')) as StatsData;
}

test('the chaos-soak sequence on a real kernel: the VIPs a deleted primary took are re-added', { timeout: 120_000 }, async () => {
  await withLab({ prefix: 'carpdvip', nodes: ['n1', 'n2', 'n3'] }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const n1 = start(lab, 'n1', conf(1, pass));
    const n2 = start(lab, 'n2', conf(2, pass));
    let n3 = start(lab, 'n3', conf(3, pass));
    const owned = (n: number) => Array.from({ length: VHIDS }, (_, i) => i + 1).filter((v) => owner(v) === n);
    for (const [d, n] of [
      [n1, 1],
      [n2, 2],
      [n3, 3],
    ] as const) {
      await waitFor(async () => JSON.stringify(await masters(lab, d)) === JSON.stringify(owned(n)), {
        timeoutMs: 15_000,
        what: `${d.node.name} MASTER of its own vhids`,
      });
    }

    // carpd set promote_secondaries at start and said so; someone sets it back to 0.
    const sysctl = ['sysctl', '-n', 'net.ipv4.conf.eth0.promote_secondaries'];
    assert.equal((await lab.exec(n1.node.ns, sysctl)).stdout.trim(), '1');
    assert.ok(
      n1.lines.some((l) => l.includes('set net.ipv4.conf.eth0.promote_secondaries = 1 (was 0)')),
      n1.lines.join('\n'),
    );
    assert.equal((await lab.exec(n1.node.ns, ['sysctl', '-qw', 'net.ipv4.conf.eth0.promote_secondaries=0'])).exitCode, 0);
    await waitFor(() => n1.lines.some((l) => l.includes('net.ipv4.conf.eth0.promote_secondaries is 0 again')), {
      timeoutMs: 8_000,
      what: 'n1 to notice promote_secondaries back at 0',
    });

    // Node 1's link goes down while node 3 is killed -9: node 2 takes everything.
    await lab.linkDown(n1.node);
    lab.kill(n3.child, 'SIGKILL');
    await lab.waitExit(n3.child, 3_000);
    await waitFor(async () => (await masters(lab, n2)).length === VHIDS, { timeoutMs: 15_000, what: 'n2 MASTER of every vhid' });

    // Node 1 comes back and takes n3's vhids (1, 4) first: its own are held back by a demotion of
    // their group, so the first VIP it adds, the primary of 10.250.8.0/24, is one of n3's.
    await ctl(lab, n1, 'demote', 'own', '+100');
    await lab.linkUp(n1.node);
    await waitFor(async () => JSON.stringify(await masters(lab, n1)) === '[1,4]', { timeoutMs: 10_000, what: 'n1 MASTER of vhids 1 and 4' });
    await ctl(lab, n1, 'demote', 'own', 'reset');
    await waitFor(async () => JSON.stringify(await masters(lab, n1)) === '[1,2,4,5]', { timeoutMs: 10_000, what: 'n1 MASTER of 1, 2, 4, 5' });
    await waitFor(async () => (await missingVips(lab, n1))?.length === 0, { timeoutMs: 5_000, what: 'n1 holding its VIPs' });
    const before = await addrs(lab, n1.node);
    const primary = before.find((a) => a.local.startsWith('10.250.8.') && !a.secondary);
    assert.ok(primary && [vip(1), vip(4)].includes(primary.local), `one of n3's VIPs is the primary on n1: ${JSON.stringify(before)}`);
    assert.deepEqual(
      before.filter((a) => a.secondary).map((a) => a.local),
      before.filter((a) => a.local.startsWith('10.250.8.') && a !== primary).map((a) => a.local),
      'every other VIP is its secondary',
    );

    // Node 3 restarts and takes 1 and 4 back; n1 deletes them, the primary first or second.
    const mon = monitor(lab, n1.node);
    const restoredBefore = (await stats(lab, n1)).vhids.reduce((n, v) => n + (v.vipRestored ?? 0), 0);
    n3 = start(lab, 'n3', conf(3, pass));
    await waitFor(async () => JSON.stringify(await masters(lab, n3)) === '[1,4]', { timeoutMs: 15_000, what: 'the restarted n3 MASTER of 1 and 4' });
    await waitFor(async () => JSON.stringify(await masters(lab, n1)) === '[2,5]', { timeoutMs: 5_000, what: 'n1 left with 2 and 5' });

    // The kernel deleted n1's own VIPs with the primary: carpd never deletes a MASTER's VIP.
    const cascade = await waitFor(() => mon.lines.find((l) => /^Deleted .* inet 10\.250\.8\.[25]\/24 .*secondary/.test(l.line)), {
      timeoutMs: 5_000,
      what: 'the kernel to delete a secondary VIP of n1 with its primary',
    });
    const vanished = /inet (10\.250\.8\.[25])\/24/.exec(cascade.line)![1]!;
    // …and the reconcile put it back, bounded.
    const back = await waitFor(() => mon.lines.find((l) => l.at >= cascade.at && !l.line.startsWith('Deleted') && l.line.includes(`inet ${vanished}/24`)), {
      timeoutMs: REPAIR_BOUND_MS,
      what: `${vanished} to come back on n1`,
    });
    const repairMs = back.at - cascade.at;
    for (const d of [n1, n2, n3]) {
      await waitFor(async () => (await missingVips(lab, d))?.length === 0, { timeoutMs: REPAIR_BOUND_MS, what: `every MASTER VIP on ${d.node.name}` });
      assert.deepEqual(await strayVips(lab, d), [], `${d.node.name} holds no VIP of a vhid it is not MASTER of`);
    }
    assert.ok(
      n1.lines.some((l) => /carp: [25]@eth0: VIP 10\.250\.8\.[25]\/24 vanished from eth0 while MASTER \(found by an address event\); re-added/.test(l)),
      n1.lines.filter((l) => l.includes('VIP')).join('\n'),
    );
    const restored = (await stats(lab, n1)).vhids.reduce((n, v) => n + (v.vipRestored ?? 0), 0);
    assert.ok(restored > restoredBefore, `counter ${restoredBefore} -> ${restored}`);
    assert.match(await ctl(lab, n1, 'stats', '--prometheus'), /^carpd_vhid_vip_restored_total\{key="[25]@eth0",vhid="[25]",interface="eth0"\} [1-9]/m);
    assert.match(await ctl(lab, n1, 'status'), /VIP re-added \d+ times? after it vanished from the interface while MASTER/);
    console.log(`# cascade on n1 took ${vanished} at monitor line "${cascade.line.slice(0, 60)}…"; re-added after ${repairMs.toFixed(0)} ms`);
    lab.kill(mon.child, 'SIGTERM');
    await lab.waitExit(mon.child, 3_000);
  });
});

test('an address deleted by hand from a MASTER comes back; one added by hand on a BACKUP goes', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdvip', nodes: ['m', 'b'] }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const one = (advskew: number) =>
      [
        '[carpd]',
        'log = 5',
        '[vhid.v1]',
        'vhid = 1',
        'interface = eth0',
        `address = ${vip(1)}/24`,
        `address = ${vip(2)}/24`,
        `advskew = ${advskew}`,
        `passfile = ${pass}`,
        '',
      ].join('\n');
    const m = start(lab, 'm', one(0));
    await waitFor(async () => JSON.stringify(await masters(lab, m)) === '[1]', { timeoutMs: 10_000, what: 'm MASTER' });
    const b = start(lab, 'b', one(100));
    await waitFor(async () => (await status(lab, b))?.vhids[0]?.state === 'BACKUP', { timeoutMs: 10_000, what: 'b BACKUP' });
    await waitFor(async () => (await missingVips(lab, m))?.length === 0, { timeoutMs: 5_000, what: 'm holding its VIPs' });

    const mon = monitor(lab, m.node);
    await new Promise((r) => setTimeout(r, 300)); // ip monitor subscribed
    assert.equal((await lab.exec(m.node.ns, ['ip', 'addr', 'del', `${vip(2)}/24`, 'dev', 'eth0'])).exitCode, 0);
    await waitFor(async () => (await missingVips(lab, m))?.length === 0, { timeoutMs: REPAIR_BOUND_MS, what: `${vip(2)} back on m` });
    const del = mon.lines.find((l) => l.line.startsWith('Deleted') && l.line.includes(`inet ${vip(2)}/24`));
    const add = mon.lines.find((l) => del && l.at >= del.at && !l.line.startsWith('Deleted') && l.line.includes(`inet ${vip(2)}/24`));
    assert.ok(del && add, mon.lines.map((l) => l.line).join('\n'));
    const backMs = add.at - del.at;
    lab.kill(mon.child, 'SIGTERM');
    await lab.waitExit(mon.child, 3_000);
    assert.ok(
      m.lines.some((l) => l.includes(`carp: 1@eth0: VIP ${vip(2)}/24 vanished from eth0 while MASTER (found by an address event); re-added`)),
      m.lines.join('\n'),
    );
    assert.equal((await stats(lab, m)).vhids[0]?.vipRestored, 1);

    // A copy of the VIP added by hand on the BACKUP: two hosts would answer ARP for it.
    const t1 = performance.now();
    assert.equal((await lab.exec(b.node.ns, ['ip', 'addr', 'add', `${vip(1)}/24`, 'dev', 'eth0'])).exitCode, 0);
    await waitFor(async () => (await strayVips(lab, b)).length === 0, { timeoutMs: REPAIR_BOUND_MS, what: `${vip(1)} to leave the BACKUP` });
    const goneMs = performance.now() - t1;
    assert.ok(
      b.lines.some((l) => l.includes(`carp: 1@eth0: VIP ${vip(1)}/24 still on eth0 while BACKUP (found by an address event); removed`)),
      b.lines.join('\n'),
    );
    assert.equal((await stats(lab, b)).vhids[0]?.vipRemoved, 1);
    assert.deepEqual(await missingVips(lab, m), [], 'the MASTER kept its VIPs');
    console.log(
      `# hand-deleted VIP back on the MASTER ${backMs.toFixed(0)} ms after its deletion (ip monitor); hand-added VIP gone from the BACKUP within ${goneMs.toFixed(0)} ms (polled)`,
    );
  });
});
