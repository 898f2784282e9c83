/**
 * FreebsdKernelCarpSource against the simulated kernel: fake devd on a temp unix socket, fake
 * ifconfig and sysctl first on PATH through the real exec adapter, the fake's argv log for what
 * carpd ran.
 */
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { test, type TestContext } from 'node:test';
import { FreebsdKernelCarpSource, type FreebsdKernelOptions } from '../../src/adapters/kernel-freebsd.js';
import type { TransitionEvent } from '../../src/ports/state-source.js';
import { LineSplitter } from '../../src/sources/text.js';
import { FakeKernel } from '../helpers/fake-kernel/fake-kernel.js';
import { devdCarpLine } from '../helpers/fake-kernel/format.js';
import { updateState, type FakeVhid } from '../helpers/fake-kernel/state.js';
import { brief, eventually, fakeEnv, ManualTimers } from '../helpers/kernel-source.js';

const VHIDS: FakeVhid[] = [
  { ifname: 'igb0', vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['198.51.100.1/24', '198.51.100.10/32'] },
  { ifname: 'igb0', vhid: 3, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['2001:db8:100::1/64'] },
  { ifname: 'igb1', vhid: 2, state: 'BACKUP', advbase: 2, advskew: 100, addresses: ['192.0.2.1/24'] },
];

interface Rig {
  k: FakeKernel;
  src: FreebsdKernelCarpSource;
  events: TransitionEvent[];
}

async function rig(t: TestContext, opts: Partial<FreebsdKernelOptions> & { demotion?: number } = {}): Promise<Rig> {
  const k = await FakeKernel.start({ os: 'freebsd', vhids: VHIDS, pollMs: 10, demotion: opts.demotion ?? 0 });
  const src = new FreebsdKernelCarpSource({ devdPath: k.devd!.path, env: fakeEnv(k), backoffMinMs: 20, backoffMaxMs: 200, snapshotIntervalMs: 0, ...opts });
  const events: TransitionEvent[] = [];
  src.on('transition', (ev: TransitionEvent) => events.push(ev));
  t.after(async () => {
    await src.stop();
    await k.stop();
  });
  await src.start();
  await k.devd!.waitForClients(1);
  await src.idle();
  return { k, src, events };
}

/** The sysctl writes carpd made (reads have no `=`). */
function sysctlWrites(k: FakeKernel): string[][] {
  return k.calls().filter((c) => c[0] === 'sysctl' && c.some((a) => a.includes('=')));
}

test('freebsd: start reads ifconfig and announces what the kernel already runs, keyed VHID@IF', async (t) => {
  const { src, events } = await rig(t);
  assert.deepEqual(events.map(brief).sort(), [
    '1@igb0 INIT->MASTER kernel snapshot: found MASTER',
    '2@igb1 INIT->BACKUP kernel snapshot: found BACKUP',
    '3@igb0 INIT->MASTER kernel snapshot: found MASTER',
  ]);
  const st = src.status().find((s) => s.key === '2@igb1')!;
  assert.equal(st.state, 'BACKUP');
  assert.equal(st.advbase, 2);
  assert.equal(st.advskew, 100);
  assert.deepEqual(st.addresses, ['192.0.2.1/24']);
  assert.deepEqual(src.status().find((s) => s.key === '1@igb0')!.addresses, ['198.51.100.1/24', '198.51.100.10/32']);
  assert.deepEqual(src.capabilities, { forceState: true, prePhaseHoldsVip: false, packetCounters: false });
  assert.equal(src.refreshGarp(), 0);
  assert.equal(
    Object.values(src.stats).every((n) => n === 0),
    true,
  );
  assert.equal(src.badAuthByPeer.size, 0);
  await src.netSettled('1@igb0');
});

test('freebsd: a simulated failover emits the devd transitions in order, with their reason and event fields', async (t) => {
  const { k, events } = await rig(t);
  events.length = 0;
  k.setState(1, 'igb0', 'BACKUP');
  k.setState(2, 'igb1', 'MASTER');
  k.setState(3, 'igb0', 'BACKUP');
  await eventually(() => events.length >= 3, 5000, 'three transitions');
  assert.deepEqual(events.map(brief), [
    '1@igb0 MASTER->BACKUP kernel: devd CARP event',
    '2@igb1 BACKUP->MASTER kernel: devd CARP event',
    '3@igb0 MASTER->BACKUP kernel: devd CARP event',
  ]);
  const ev = events[1]!;
  assert.equal(ev.vhid, 2);
  assert.equal(ev.interface, 'igb1');
  assert.ok(!Number.isNaN(Date.parse(ev.time)));
  assert.ok(events[0]!.seq < events[1]!.seq && events[1]!.seq < events[2]!.seq);
});

test('freebsd: the phase gate is called on every transition, and a gate that never settles holds nothing', async (t) => {
  const { k, src, events } = await rig(t);
  const gated: string[] = [];
  src.setPhaseGate((ev) => {
    gated.push(ev.key);
    return new Promise<void>(() => undefined);
  });
  events.length = 0;
  k.setState(2, 'igb1', 'MASTER');
  k.setState(2, 'igb1', 'BACKUP');
  await eventually(() => events.length >= 2, 5000, 'two transitions');
  assert.deepEqual(gated, ['2@igb1', '2@igb1']);
});

test('freebsd: when devd restarts, the source reconnects and a fresh snapshot catches what happened meanwhile', async (t) => {
  const { k, src, events } = await rig(t);
  events.length = 0;
  await k.devd!.stop();
  // Announced to nobody: devd is down.
  k.setState(2, 'igb1', 'MASTER');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(events.length, 0);
  await k.devd!.start();
  await k.devd!.waitForClients(1);
  await eventually(() => events.length >= 1, 5000, 'transition after reconnect');
  assert.equal(src.connects, 2);
  assert.deepEqual(events.map(brief), ['2@igb1 BACKUP->MASTER kernel snapshot: was BACKUP, now MASTER']);
  // And the new connection carries events again.
  k.setState(1, 'igb0', 'BACKUP');
  await eventually(() => events.length >= 2, 5000, 'event on the new connection');
  assert.equal(brief(events[1]!), '1@igb0 MASTER->BACKUP kernel: devd CARP event');
});

test('freebsd: a missed event is corrected by the periodic snapshot, not believed', async (t) => {
  const timers = new ManualTimers();
  const { k, src, events } = await rig(t, { timers, snapshotIntervalMs: 10_000 });
  events.length = 0;
  // Changed in the kernel with no devd line (no change record: nothing is forwarded).
  updateState(k.statePath, (st) => {
    st.vhids.find((v) => v.vhid === 2)!.state = 'MASTER';
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(events.length, 0);
  assert.equal(timers.fire(10_000), 1);
  await src.idle();
  assert.deepEqual(events.map(brief), ['2@igb1 BACKUP->MASTER kernel snapshot: was BACKUP, now MASTER']);
  assert.equal(src.status().find((s) => s.key === '2@igb1')!.state, 'MASTER');
  // The snapshot re-armed itself.
  assert.equal([...timers.due.values()].filter((d) => d.ms === 10_000).length, 1);
});

test('freebsd: a devd event for a vhid the last snapshot did not know triggers a snapshot', async (t) => {
  const { k, src, events } = await rig(t);
  events.length = 0;
  updateState(k.statePath, (st) => {
    st.vhids.push({ ifname: 'igb1', vhid: 5, state: 'MASTER', advbase: 1, advskew: 50, addresses: ['192.0.2.5/32'] });
  });
  k.devd!.emit(devdCarpLine(5, 'igb1', 'MASTER'));
  await eventually(() => events.length >= 1, 5000, 'new vhid');
  assert.deepEqual(events.map(brief), ['5@igb1 INIT->MASTER kernel snapshot: found MASTER']);
  assert.deepEqual(src.status().find((s) => s.key === '5@igb1')!.addresses, ['192.0.2.5/32']);
});

test('freebsd: demotion writes exactly the delta of carpd share, and stop leaves the kernel value where it was', async (t) => {
  const { k, src } = await rig(t, { demotion: 7 });
  assert.equal(src.demote('carp', 'health:web', 10), 10);
  await src.idle();
  assert.equal(src.setDemotion('carp', 'maintenance', 240), 250);
  await src.idle();
  assert.equal(k.state().demotion, 7 + 250);
  assert.equal(src.demote('carp', 'health:web', -10), 240);
  assert.equal(src.setDemotion('carp', 'maintenance', 240), 240); // no change, no write
  await src.idle();
  assert.equal(src.status()[0]!.demote, 7 + 240);
  assert.deepEqual(src.ledger.entries(), [{ group: 'carp', by: 'maintenance', count: 240 }]);
  await src.stop();
  assert.deepEqual(sysctlWrites(k), [
    ['sysctl', 'net.inet.carp.demotion=10'],
    ['sysctl', 'net.inet.carp.demotion=240'],
    ['sysctl', 'net.inet.carp.demotion=-10'],
    ['sysctl', 'net.inet.carp.demotion=-240'],
  ]);
  assert.equal(k.state().demotion, 7);
});

test('freebsd: demotion changes made back to back are written as one delta, computed when the write runs', async (t) => {
  const { k, src } = await rig(t, { demotion: 3 });
  src.demote('carp', 'a', 5);
  src.demote('carp', 'b', 20);
  src.demote('carp', 'a', -5);
  await src.idle();
  // The first write runs after the three calls: it writes their sum, the other two find nothing to do.
  assert.deepEqual(sysctlWrites(k), [['sysctl', 'net.inet.carp.demotion=20']]);
  assert.equal(k.state().demotion, 3 + 20);
  assert.equal(src.appliedDemotion, 20);
});

test('freebsd: force runs ifconfig IF vhid N state master|backup, and an unknown key is refused', async (t) => {
  const { k, src, events } = await rig(t);
  events.length = 0;
  assert.equal(src.force('2@igb1', 'MASTER'), true);
  assert.equal(src.force('9@igb1', 'MASTER'), false);
  await src.idle();
  await eventually(() => events.length >= 1, 5000, 'forced transition');
  assert.equal(events[0]!.key, '2@igb1');
  assert.equal(events[0]!.to, 'MASTER');
  assert.deepEqual(
    k.calls().filter((c) => c[0] === 'ifconfig' && c.length > 1),
    [['ifconfig', 'igb1', 'vhid', '2', 'state', 'master']],
  );
  src.force('1@igb0', 'BACKUP');
  await src.idle();
  assert.deepEqual(k.calls().filter((c) => c[0] === 'ifconfig' && c.length > 1)[1], ['ifconfig', 'igb0', 'vhid', '1', 'state', 'backup']);
});

test('freebsd (pfSense/OPNsense layout): other devd clients keep getting every line, and non-CARP lines are ignored', async (t) => {
  const { k, src, events } = await rig(t);
  // pfSense's own hooks are just another client of the same socket.
  const other = createConnection(k.devd!.path);
  other.setEncoding('utf8');
  const got: string[] = [];
  const split = new LineSplitter();
  other.on('data', (c: string) => got.push(...split.push(c)));
  t.after(() => other.destroy());
  await k.devd!.waitForClients(2);
  events.length = 0;
  const sentBefore = k.devd!.sent.length;
  k.devd!.emit('!system=IFNET subsystem=igb1 type=LINK_UP');
  k.devd!.emit('+uhub1 at bus=0 sernum="" on usbus1');
  k.setState(2, 'igb1', 'MASTER');
  k.devd!.emit('!system=DEVFS subsystem=CDEV type=CREATE cdev="ugen0.2"');
  await eventually(() => got.length >= 4 && events.length >= 1, 5000, 'both clients');
  assert.deepEqual(
    got,
    k.devd!.sent.slice(sentBefore).map((l) => l.replace(/\n$/, '')),
  );
  assert.deepEqual(events.map(brief), ['2@igb1 BACKUP->MASTER kernel: devd CARP event']);
  assert.equal(src.status().length, 3);
});

test('freebsd: stop closes the devd connection and no reconnect follows', async (t) => {
  const { k, src } = await rig(t);
  await src.stop();
  await eventually(() => k.devd!.clientCount === 0, 5000, 'client gone');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(k.devd!.clientCount, 0);
  assert.equal(src.connects, 1);
});

test('freebsd: with the real timers the periodic snapshot corrects a missed event by itself', async (t) => {
  const { k, src, events } = await rig(t, { snapshotIntervalMs: 150 });
  events.length = 0;
  updateState(k.statePath, (st) => {
    st.vhids.find((v) => v.vhid === 3)!.state = 'BACKUP';
  });
  await eventually(() => events.length >= 1, 5000, 'periodic correction');
  assert.deepEqual(events.map(brief), ['3@igb0 MASTER->BACKUP kernel snapshot: was MASTER, now BACKUP']);
  await src.stop();
  // Stopped: no further ifconfig runs.
  const n = k.calls().length;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(k.calls().length, n);
});
