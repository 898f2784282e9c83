/**
 * The simulated kernel against the parsers: what the fake ifconfig, sysctl, route and devd print
 * is what src/sources reads back, as the same state, and the admin actions change that state the
 * way the kernels do.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { parseDevdLine, type DevdEvent } from '../../src/sources/devd.js';
import { parseFreebsdIfconfig } from '../../src/sources/freebsd-ifconfig.js';
import { parseSysctlInt } from '../../src/sources/freebsd-sysctl.js';
import { parseOpenbsdGroupDemotion, parseOpenbsdIfconfig } from '../../src/sources/openbsd-ifconfig.js';
import { RouteMonitorReader, type IfinfoEvent } from '../../src/sources/route-monitor.js';
import { LineSplitter } from '../../src/sources/text.js';
import { FakeKernel } from '../helpers/fake-kernel/fake-kernel.js';
import { fixture } from '../helpers/fake-kernel/fixtures.js';
import { routeIfinfo } from '../helpers/fake-kernel/format.js';
import type { FakeVhid } from '../helpers/fake-kernel/state.js';

const run = promisify(execFile);

const FREEBSD_VHIDS: FakeVhid[] = [
  { ifname: 'igb0', vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['198.51.100.1/24', '198.51.100.10/32'] },
  { ifname: 'igb0', vhid: 3, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['2001:db8:100::1/64'] },
  { ifname: 'igb1', vhid: 2, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['192.0.2.1/24', '2001:db8:200::1/64'] },
];

const OPENBSD_VHIDS: FakeVhid[] = [
  { ifname: 'carp0', carpdev: 'em0', vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['198.51.100.1/24', '2001:db8:100::1/64'] },
  { ifname: 'carp1', carpdev: 'em1', vhid: 2, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['192.0.2.1/24'] },
];

async function kernel(t: TestContext, os: 'freebsd' | 'openbsd', vhids: FakeVhid[]): Promise<FakeKernel> {
  const k = await FakeKernel.start({ os, vhids, pollMs: 10 });
  t.after(() => k.stop());
  return k;
}

async function tool(k: FakeKernel, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(args[0]!, args.slice(1), { env: k.env, timeout: 10_000 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

/** Polls `check` until it returns a value, at most `timeoutMs`. */
async function eventually<T>(check: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`nothing after ${timeoutMs} ms`);
}

/** A devd client as carpd will be one: connect, split lines, parse. */
function devdClient(path: string): { events: DevdEvent[]; sock: Socket } {
  const events: DevdEvent[] = [];
  const split = new LineSplitter();
  const sock = createConnection(path);
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => events.push(...split.push(d).map(parseDevdLine)));
  sock.on('error', () => undefined);
  return { events, sock };
}

test('the fake FreeBSD ifconfig prints what parseFreebsdIfconfig reads back as the same vhids', async (t) => {
  const k = await kernel(t, 'freebsd', FREEBSD_VHIDS);
  const r = parseFreebsdIfconfig((await tool(k, ['ifconfig'])).stdout);
  assert.ok(r.kind === 'ifconfig', JSON.stringify(r));
  const got = r.interfaces.flatMap((i) =>
    i.vhids.map((v) => ({
      ifname: i.ifname,
      vhid: v.vhid,
      state: v.state,
      advbase: v.protocol === 'carp' ? v.advbase : -1,
      advskew: v.protocol === 'carp' ? v.advskew : -1,
      addresses: v.addresses,
    })),
  );
  assert.deepEqual(got, FREEBSD_VHIDS);
  const one = parseFreebsdIfconfig((await tool(k, ['ifconfig', 'igb1'])).stdout);
  assert.ok(one.kind === 'ifconfig');
  assert.deepEqual(
    one.interfaces.map((i) => i.ifname),
    ['igb1'],
  );
  const missing = await tool(k, ['ifconfig', 'igb9']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /igb9 does not exist/);
});

test('forcing a FreeBSD vhid with ifconfig changes the state, and devd announces it to every client', async (t) => {
  const k = await kernel(t, 'freebsd', FREEBSD_VHIDS);
  const a = devdClient(k.devd!.path);
  const b = devdClient(k.devd!.path);
  t.after(() => {
    a.sock.destroy();
    b.sock.destroy();
  });
  await k.devd!.waitForClients(2);
  assert.equal((await tool(k, ['ifconfig', 'igb0', 'vhid', '1', 'state', 'backup'])).code, 0);
  const want = { kind: 'carp', vhid: 1, ifname: 'igb0', state: 'BACKUP' };
  await eventually(() => (a.events.length > 0 && b.events.length > 0 ? true : undefined));
  assert.deepEqual(a.events, [want]);
  assert.deepEqual(b.events, [want]);
  const r = parseFreebsdIfconfig((await tool(k, ['ifconfig', 'igb0'])).stdout);
  assert.ok(r.kind === 'ifconfig');
  assert.equal(r.interfaces[0]!.vhids.find((v) => v.vhid === 1)!.state, 'BACKUP');
  // A requested INIT is ignored by carp_ioctl(); an unknown vhid is an error.
  assert.equal((await tool(k, ['ifconfig', 'igb0', 'vhid', '3', 'state', 'init'])).code, 0);
  assert.equal(k.state().vhids.find((v) => v.vhid === 3)!.state, 'MASTER');
  assert.equal((await tool(k, ['ifconfig', 'igb0', 'vhid', '7', 'state', 'master'])).code, 1);
  assert.equal((await tool(k, ['ifconfig', 'igb0', 'vhid', '1', 'state', 'leader'])).code, 1);
  // A vhid in INIT (its carpdev down) cannot be forced.
  k.setState(2, 'igb1', 'INIT');
  assert.equal((await tool(k, ['ifconfig', 'igb1', 'vhid', '2', 'state', 'master'])).code, 0);
  assert.equal(k.state().vhids.find((v) => v.vhid === 2)!.state, 'INIT');
  assert.deepEqual(k.calls().slice(-5, -1), [
    ['ifconfig', 'igb0'],
    ['ifconfig', 'igb0', 'vhid', '3', 'state', 'init'],
    ['ifconfig', 'igb0', 'vhid', '7', 'state', 'master'],
    ['ifconfig', 'igb0', 'vhid', '1', 'state', 'leader'],
  ]);
});

test('setState and failover reach devd clients as the lines parseDevdLine reads', async (t) => {
  const k = await kernel(t, 'freebsd', FREEBSD_VHIDS);
  const c = devdClient(k.devd!.path);
  t.after(() => c.sock.destroy());
  await k.devd!.waitForClients(1);
  assert.equal(k.setState(2, 'igb1', 'MASTER'), true);
  assert.equal(k.setState(2, 'igb1', 'MASTER'), false, 'no change, no event');
  k.failover('BACKUP');
  await eventually(() => (c.events.length >= 3 ? true : undefined));
  assert.deepEqual(
    c.events.map((e) => (e.kind === 'carp' ? `${e.vhid}@${e.ifname} ${e.state}` : e.kind)),
    ['2@igb1 MASTER', '1@igb0 BACKUP', '3@igb0 BACKUP', '2@igb1 BACKUP'],
  );
});

test('the devd server can be stopped and started again, and a reconnected client hears the next event', async (t) => {
  const k = await kernel(t, 'freebsd', FREEBSD_VHIDS);
  const first = devdClient(k.devd!.path);
  let closed = false;
  first.sock.on('close', () => (closed = true));
  await k.devd!.waitForClients(1);
  await k.devd!.stop();
  await eventually(() => (closed ? true : undefined));
  const refused = createConnection(k.devd!.path);
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => refused.on('error', resolve));
  assert.match(String(err.code), /ENOENT|ECONNREFUSED/);
  await k.devd!.start();
  const again = devdClient(k.devd!.path);
  t.after(() => again.sock.destroy());
  await k.devd!.waitForClients(1);
  k.setState(1, 'igb0', 'BACKUP');
  await eventually(() => (again.events.length > 0 ? true : undefined));
  assert.deepEqual(again.events, [{ kind: 'carp', vhid: 1, ifname: 'igb0', state: 'BACKUP' }]);
  assert.deepEqual(first.events, []);
});

test('sysctl net.inet.carp.demotion=N adds N, and the outputs read back as the counter', async (t) => {
  const k = await kernel(t, 'freebsd', FREEBSD_VHIDS);
  assert.deepEqual(parseSysctlInt((await tool(k, ['sysctl', 'net.inet.carp.demotion=50'])).stdout), {
    kind: 'value',
    name: 'net.inet.carp.demotion',
    value: 50,
    previous: 0,
  });
  assert.deepEqual(parseSysctlInt((await tool(k, ['sysctl', 'net.inet.carp.demotion=50'])).stdout), {
    kind: 'value',
    name: 'net.inet.carp.demotion',
    value: 100,
    previous: 50,
  });
  assert.deepEqual(parseSysctlInt((await tool(k, ['sysctl', 'net.inet.carp.demotion=-30'])).stdout), {
    kind: 'value',
    name: 'net.inet.carp.demotion',
    value: 70,
    previous: 100,
  });
  assert.deepEqual(parseSysctlInt((await tool(k, ['sysctl', '-n', 'net.inet.carp.demotion'])).stdout), { kind: 'value', value: 70 });
  assert.deepEqual(parseSysctlInt((await tool(k, ['sysctl', 'net.inet.carp.demotion'])).stdout), { kind: 'value', name: 'net.inet.carp.demotion', value: 70 });
  const bad = await tool(k, ['sysctl', 'net.inet.carp.demotion=ten']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid integer 'ten'/);
  assert.equal((await tool(k, ['sysctl', 'net.inet.carp.nosuch'])).code, 1);
  assert.equal(k.state().demotion, 70);
  assert.deepEqual(k.calls()[0], ['sysctl', 'net.inet.carp.demotion=50']);
});

test('concurrent fake tool runs lose no update of the shared state', async (t) => {
  const k = await kernel(t, 'freebsd', FREEBSD_VHIDS);
  const runs = await Promise.all(Array.from({ length: 12 }, () => tool(k, ['sysctl', 'net.inet.carp.demotion=1'])));
  assert.deepEqual(
    runs.map((r) => r.code),
    Array.from({ length: 12 }, () => 0),
  );
  assert.equal(k.state().demotion, 12);
  assert.equal(k.calls().length, 12);
});

test('the fake OpenBSD ifconfig prints what parseOpenbsdIfconfig reads back as the same carp interfaces', async (t) => {
  const k = await kernel(t, 'openbsd', OPENBSD_VHIDS);
  for (const args of [['ifconfig'], ['ifconfig', 'carp']]) {
    const r = parseOpenbsdIfconfig((await tool(k, args)).stdout);
    assert.ok(r.kind === 'ifconfig', JSON.stringify(r));
    assert.deepEqual(
      r.interfaces.map((i) => ({
        ifname: i.ifname,
        carpdev: i.carpdev,
        vhid: i.vhids[0]!.vhid,
        state: i.vhids[0]!.state,
        advbase: i.advbase,
        advskew: i.vhids[0]!.advskew,
        addresses: i.addresses,
      })),
      OPENBSD_VHIDS,
    );
    assert.deepEqual(
      r.interfaces.map((i) => i.linkStatus),
      ['master', 'backup'],
    );
  }
});

test('OpenBSD carpdemote adds to the carp group count within 0..255, and ifconfig -g reads it back', async (t) => {
  const k = await kernel(t, 'openbsd', OPENBSD_VHIDS);
  assert.equal((await tool(k, ['ifconfig', '-g', 'carp', 'carpdemote', '50'])).code, 0);
  assert.equal((await tool(k, ['ifconfig', '-g', 'carp', 'carpdemote'])).code, 0);
  assert.equal((await tool(k, ['ifconfig', '-g', 'carp', '-carpdemote', '11'])).code, 0);
  assert.deepEqual(parseOpenbsdGroupDemotion((await tool(k, ['ifconfig', '-g', 'carp'])).stdout), { kind: 'demotion', group: 'carp', demote: 40 });
  const under = await tool(k, ['ifconfig', '-g', 'carp', '-carpdemote', '41']);
  assert.equal(under.code, 1);
  assert.match(under.stderr, /SIOCSIFGATTR: Invalid argument/);
  assert.equal((await tool(k, ['ifconfig', '-g', 'carp', 'carpdemote', '129'])).code, 1);
  assert.equal(k.state().demotion, 40);
});

test('route -n monitor streams an RTM_IFINFO per carp change that the reader turns into carp states', async (t) => {
  const k = await kernel(t, 'openbsd', OPENBSD_VHIDS);
  const child = spawn('route', ['-n', 'monitor'], {
    env: { ...k.env, FAKE_KERNEL_POLL_MS: '10', FAKE_KERNEL_MONITOR_MS: '20000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill();
  });
  const reader = new RouteMonitorReader();
  const events: IfinfoEvent[] = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => events.push(...reader.push(d)));
  // The monitor only reports changes after it started: wait until its first poll has run.
  await eventually(() => (k.calls().some((c) => c[0] === 'route') ? true : undefined));
  await new Promise((r) => setTimeout(r, 100));
  k.setState(1, 'carp0', 'BACKUP');
  assert.equal((await tool(k, ['ifconfig', 'carp1', 'state', 'master'])).code, 0);
  await eventually(() => (events.length >= 2 ? true : undefined));
  assert.deepEqual(
    events.map((e) => `${e.ifname}#${e.ifIndex} ${e.linkState} ${e.carpState}`),
    ['carp0#3 backup BACKUP', 'carp1#4 master MASTER'],
  );
  assert.equal(reader.invalid, 0);
  const r = parseOpenbsdIfconfig((await tool(k, ['ifconfig', 'carp1'])).stdout);
  assert.ok(r.kind === 'ifconfig');
  assert.equal(r.interfaces[0]!.vhids[0]!.state, 'MASTER');
  assert.equal(r.interfaces[0]!.linkStatus, 'master');
  child.kill();
  await new Promise((resolve) => child.once('exit', resolve));
});

/** A line with its variable parts (dates, addresses, names, numbers, states) replaced, to compare shapes. */
function shape(line: string): string {
  return line
    .replace(/[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}/g, 'D')
    .replace(/\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b/g, 'M')
    .replace(/[0-9a-fA-F]*:[0-9a-fA-F:]*:[0-9a-fA-F]*(?:%\w+)?/g, 'A')
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g, 'A')
    .replace(/\b(?:igb|em|carp|lo|pfsync)\d+\b/g, 'I')
    .replace(/0x[0-9a-f]+/g, 'X')
    .replace(/\d+/g, 'N')
    .replace(/\b(?:MASTER|BACKUP|INIT)\b/g, 'S')
    .replace(/\b(?:master|backup|invalid)\b/g, 's');
}

function shapes(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l !== '')
      .map(shape),
  );
}

function assertShapesRecorded(printed: string, fixtureName: string): void {
  const recorded = shapes(fixture(fixtureName));
  const unknown = [...shapes(printed)].filter((s) => !recorded.has(s));
  assert.deepEqual(unknown, [], `lines of shapes not in ${fixtureName}`);
}

test('every line the fake tools and devd print has the shape of a line in the recorded fixtures', async (t) => {
  const fb = await kernel(t, 'freebsd', FREEBSD_VHIDS);
  assertShapesRecorded((await tool(fb, ['ifconfig'])).stdout, 'freebsd-ifconfig-carp.txt');
  assertShapesRecorded((await tool(fb, ['sysctl', 'net.inet.carp.demotion=240'])).stdout, 'freebsd-sysctl-demotion-set.txt');
  assertShapesRecorded((await tool(fb, ['sysctl', 'net.inet.carp.demotion'])).stdout, 'freebsd-sysctl-demotion.txt');
  assertShapesRecorded((await tool(fb, ['sysctl', '-n', 'net.inet.carp.demotion'])).stdout, 'freebsd-sysctl-demotion-n.txt');
  fb.failover('BACKUP');
  assert.ok(fb.devd!.sent.length > 0);
  assertShapesRecorded(fb.devd!.sent.join(''), 'freebsd-devd-carp.txt');
  const ob = await kernel(t, 'openbsd', [
    ...OPENBSD_VHIDS,
    { ifname: 'carp2', carpdev: 'em1', vhid: 9, state: 'INIT', advbase: 1, advskew: 0, addresses: ['192.0.2.9/24'] },
  ]);
  assertShapesRecorded((await tool(ob, ['ifconfig'])).stdout, 'openbsd-ifconfig-carp.txt');
  assertShapesRecorded((await tool(ob, ['ifconfig', '-g', 'carp'])).stdout, 'openbsd-ifconfig-g-carp.txt');
  assertShapesRecorded(routeIfinfo(3, 'carp0', 'backup', Date.UTC(2026, 10, 28, 9, 14, 2)), 'openbsd-route-monitor.txt');
});
