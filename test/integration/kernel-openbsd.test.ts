/**
 * OpenbsdKernelCarpSource against the simulated kernel: the fake `route -n monitor`, `ifconfig`
 * first on PATH through the real exec and spawn adapters (or a hand-fed monitor where the test
 * needs exact lines or exits), the fake's argv log for what carpd ran.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { OpenbsdKernelCarpSource, type OpenbsdKernelOptions } from '../../src/adapters/kernel-openbsd.js';
import type { SpawnStream, StreamHandlers } from '../../src/adapters/kernel-spawn.js';
import type { TransitionEvent } from '../../src/ports/state-source.js';
import { FakeKernel } from '../helpers/fake-kernel/fake-kernel.js';
import { openbsdIfIndex, routeIfinfo } from '../helpers/fake-kernel/format.js';
import { updateState, type FakeVhid } from '../helpers/fake-kernel/state.js';
import { brief, eventually, fakeEnv, ManualTimers } from '../helpers/kernel-source.js';

const VHIDS: FakeVhid[] = [
  { ifname: 'carp0', carpdev: 'em0', vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['198.51.100.1/24', '2001:db8:100::1/64'] },
  { ifname: 'carp1', carpdev: 'em1', vhid: 2, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['192.0.2.1/24'] },
];

interface Rig {
  k: FakeKernel;
  src: OpenbsdKernelCarpSource;
  events: TransitionEvent[];
}

/** A `route -n monitor` fed by the test. */
class HandMonitor {
  readonly children: { argv: readonly string[]; h: StreamHandlers; stopped: boolean }[] = [];
  readonly spawn: SpawnStream = (argv, _env, h) => {
    const c = { argv, h, stopped: false };
    this.children.push(c);
    return { stop: () => void (c.stopped = true) };
  };
  get last(): { argv: readonly string[]; h: StreamHandlers; stopped: boolean } {
    return this.children[this.children.length - 1]!;
  }
}

async function rig(t: TestContext, opts: Partial<OpenbsdKernelOptions> & { demotion?: number } = {}): Promise<Rig> {
  const k = await FakeKernel.start({ os: 'openbsd', vhids: VHIDS, pollMs: 10, demotion: opts.demotion ?? 0 });
  const src = new OpenbsdKernelCarpSource({ env: fakeEnv(k), backoffMinMs: 20, backoffMaxMs: 200, snapshotIntervalMs: 0, ...opts });
  const events: TransitionEvent[] = [];
  src.on('transition', (ev: TransitionEvent) => events.push(ev));
  t.after(async () => {
    await src.stop();
    await k.stop();
  });
  await src.start();
  await src.idle();
  return { k, src, events };
}

/** The fake route monitor reads the kernel's change counter when it starts: wait until it has. */
async function monitorReady(k: FakeKernel, starts = 1): Promise<void> {
  await eventually(() => k.calls().filter((c) => c[0] === 'route').length >= starts, 10_000, 'route monitor started');
  await new Promise((r) => setTimeout(r, 100));
}

test('openbsd: start reads ifconfig carp, keyed VHID@carpdev with carpN as the name', async (t) => {
  const { k, src, events } = await rig(t);
  assert.deepEqual(events.map(brief).sort(), ['1@em0 INIT->MASTER kernel snapshot: found MASTER', '2@em1 INIT->BACKUP kernel snapshot: found BACKUP']);
  const s = src.status().find((v) => v.key === '1@em0')!;
  assert.equal(s.name, 'carp0');
  assert.equal(s.interface, 'em0');
  assert.deepEqual(s.addresses, ['198.51.100.1/24', '2001:db8:100::1/64']);
  assert.deepEqual(s.groups, ['carp']);
  assert.deepEqual(
    k.calls().filter((c) => c[0] === 'ifconfig'),
    [
      ['ifconfig', 'carp'],
      ['ifconfig', '-g', 'carp'],
    ],
  );
  assert.deepEqual(
    k.calls().find((c) => c[0] === 'route'),
    ['route', '-n', 'monitor'],
  );
});

test('openbsd: route monitor RTM_IFINFO lines produce transitions, confirmed with ifconfig carpN', async (t) => {
  const { k, events } = await rig(t);
  await monitorReady(k);
  events.length = 0;
  k.setState(1, 'carp0', 'BACKUP');
  await eventually(() => events.length >= 1, 5000, 'first transition');
  k.setState(2, 'carp1', 'MASTER');
  await eventually(() => events.length >= 2, 5000, 'second transition');
  assert.deepEqual(events.map(brief), [
    '1@em0 MASTER->BACKUP kernel: route monitor carp0 link backup',
    '2@em1 BACKUP->MASTER kernel: route monitor carp1 link master',
  ]);
  assert.equal(events[1]!.interface, 'em1');
  assert.equal(events[1]!.vhid, 2);
  assert.ok(k.calls().some((c) => c.join(' ') === 'ifconfig carp1'));
});

test('openbsd: a link word that ifconfig contradicts is not believed', async (t) => {
  const mon = new HandMonitor();
  const { k, src, events } = await rig(t, { spawn: mon.spawn });
  events.length = 0;
  // carp1 is BACKUP in the kernel; a stray "master" line must not move it.
  mon.last.h.onStdout(routeIfinfo(openbsdIfIndex(k.state(), 'carp1'), 'carp1', 'master', Date.now()));
  await eventually(() => k.calls().some((c) => c.join(' ') === 'ifconfig carp1'), 5000, 'confirmation');
  await src.idle();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events, []);
  // Lines of other interfaces and other messages are skipped without a command.
  const before = k.calls().length;
  mon.last.h.onStdout(
    'got message of size 176 on Sat Nov 28 10:00:00 2026\nRTM_IFINFO: iface status change: len 176, if# 1, name em0, link: active, mtu: 1500, flags:<UP>\n',
  );
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(k.calls().length, before);
});

test('openbsd: when route monitor exits it is restarted with a growing backoff, and a fresh snapshot catches the missed change', async (t) => {
  const mon = new HandMonitor();
  const timers = new ManualTimers();
  const { k, src, events } = await rig(t, { spawn: mon.spawn, timers });
  assert.deepEqual(mon.last.argv, ['route', '-n', 'monitor']);
  events.length = 0;
  mon.last.h.onExit('route exited (code 1)');
  assert.deepEqual(
    [...timers.due.values()].map((d) => d.ms),
    [20],
  );
  // Changed while no monitor ran.
  k.setState(2, 'carp1', 'MASTER');
  assert.equal(timers.fire(20), 1);
  assert.equal(mon.children.length, 2);
  await src.idle();
  assert.deepEqual(events.map(brief), ['2@em1 BACKUP->MASTER kernel snapshot: was BACKUP, now MASTER']);
  mon.last.h.onExit('route exited (code 1)');
  assert.deepEqual(
    [...timers.due.values()].map((d) => d.ms),
    [40],
  );
  await src.stop();
  assert.equal(timers.due.size, 0);
  assert.equal(src.monitorStarts, 2);
});

test('openbsd: stop ends the route monitor it started', async (t) => {
  const mon = new HandMonitor();
  const { src } = await rig(t, { spawn: mon.spawn });
  await src.stop();
  assert.equal(mon.last.stopped, true);
  // An exit after stop does not restart it.
  mon.last.h.onExit('route exited (SIGTERM)');
  assert.equal(mon.children.length, 1);
});

test('openbsd: a real route monitor that exits is restarted and keeps reporting', async (t) => {
  const k = await FakeKernel.start({ os: 'openbsd', vhids: VHIDS, pollMs: 10 });
  const src = new OpenbsdKernelCarpSource({
    env: { ...fakeEnv(k), FAKE_KERNEL_MONITOR_MS: '400' },
    backoffMinMs: 20,
    backoffMaxMs: 100,
    snapshotIntervalMs: 0,
  });
  const events: TransitionEvent[] = [];
  src.on('transition', (ev: TransitionEvent) => events.push(ev));
  t.after(async () => {
    await src.stop();
    await k.stop();
  });
  await src.start();
  await eventually(() => src.monitorStarts >= 2, 10_000, 'restart');
  await monitorReady(k, 2);
  events.length = 0;
  k.setState(1, 'carp0', 'BACKUP');
  await eventually(() => events.length >= 1, 5000, 'transition after restart');
  assert.equal(events[0]!.to, 'BACKUP');
  assert.equal(events[0]!.key, '1@em0');
});

test('openbsd: demotion runs ifconfig -g carp [-]carpdemote N in steps of at most 128, and stop undoes exactly carpd share', async (t) => {
  const mon = new HandMonitor();
  const { k, src } = await rig(t, { spawn: mon.spawn, demotion: 3 });
  assert.equal(src.setDemotion('carp', 'maintenance', 240), 240);
  await src.idle();
  assert.equal(src.demote('carp', 'health:web', 10), 250);
  await src.idle();
  assert.equal(k.state().demotion, 3 + 250);
  assert.equal(src.status()[0]!.demote, 253);
  assert.equal(src.demote('carp', 'health:web', -10), 240);
  await src.idle();
  await src.stop();
  assert.deepEqual(
    k.calls().filter((c) => c[0] === 'ifconfig' && c[1] === '-g' && c.length > 3),
    [
      ['ifconfig', '-g', 'carp', 'carpdemote', '128'],
      ['ifconfig', '-g', 'carp', 'carpdemote', '112'],
      ['ifconfig', '-g', 'carp', 'carpdemote', '10'],
      ['ifconfig', '-g', 'carp', '-carpdemote', '10'],
      ['ifconfig', '-g', 'carp', '-carpdemote', '128'],
      ['ifconfig', '-g', 'carp', '-carpdemote', '112'],
    ],
  );
  assert.equal(k.state().demotion, 3);
  assert.equal(src.appliedDemotion('carp'), 0);
});

test('openbsd: force runs ifconfig carpN state master|backup, and an unknown key is refused', async (t) => {
  const mon = new HandMonitor();
  const { k, src, events } = await rig(t, { spawn: mon.spawn });
  events.length = 0;
  assert.equal(src.force('2@em1', 'MASTER'), true);
  assert.equal(src.force('7@em1', 'MASTER'), false);
  await src.idle();
  assert.deepEqual(
    k.calls().filter((c) => c[0] === 'ifconfig' && c.includes('state')),
    [['ifconfig', 'carp1', 'state', 'master']],
  );
  // The hand-fed monitor sent nothing: the snapshot after the command reports it.
  assert.deepEqual(events.map(brief), ['2@em1 BACKUP->MASTER kernel snapshot: was BACKUP, now MASTER']);
  src.force('1@em0', 'BACKUP');
  await src.idle();
  assert.deepEqual(k.calls().filter((c) => c[0] === 'ifconfig' && c.includes('state'))[1], ['ifconfig', 'carp0', 'state', 'backup']);
});

test('openbsd: a missed change is corrected by the periodic snapshot', async (t) => {
  const mon = new HandMonitor();
  const timers = new ManualTimers();
  const { k, src, events } = await rig(t, { spawn: mon.spawn, timers, snapshotIntervalMs: 10_000 });
  events.length = 0;
  updateState(k.statePath, (st) => {
    st.vhids.find((v) => v.vhid === 1)!.state = 'BACKUP';
  });
  assert.equal(timers.fire(10_000), 1);
  await src.idle();
  assert.deepEqual(events.map(brief), ['1@em0 MASTER->BACKUP kernel snapshot: was MASTER, now BACKUP']);
});
