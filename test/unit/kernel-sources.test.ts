/**
 * The kernel state sources with a scripted exec port (no processes): the kernel's tools answer
 * from an in-memory state printed by the fake kernel's printers, and a test can hold a command
 * to order it against an event. devd is the fake's unix socket server on a temp path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Backoff } from '../../src/adapters/kernel-common.js';
import { FreebsdKernelCarpSource } from '../../src/adapters/kernel-freebsd.js';
import { OpenbsdKernelCarpSource } from '../../src/adapters/kernel-openbsd.js';
import { spawnStream, type SpawnStream, type StreamHandlers } from '../../src/adapters/kernel-spawn.js';
import { parseSysctlInt } from '../../src/sources/freebsd-sysctl.js';
import { fixture } from '../helpers/fake-kernel/fixtures.js';
import { createKernelCarpSource, kernelOsOf } from '../../src/adapters/kernel-carp.js';
import type { RunOptions, RunResult } from '../../src/ports/exec.js';
import type { TransitionEvent } from '../../src/ports/state-source.js';
import { FakeDevd } from '../helpers/fake-kernel/devd-server.js';
import { devdCarpLine, freebsdIfconfig, openbsdIfconfig } from '../helpers/fake-kernel/format.js';
import type { FakeKernelState } from '../helpers/fake-kernel/state.js';
import { brief, eventually, ManualTimers } from '../helpers/kernel-source.js';

function freebsdState(): FakeKernelState {
  return {
    demotion: 0,
    seq: 0,
    changes: [],
    vhids: [
      { ifname: 'igb0', vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['198.51.100.1/24'] },
      { ifname: 'igb1', vhid: 2, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['192.0.2.1/24'] },
    ],
  };
}

const ok = (stdout: string): RunResult => ({ exitCode: 0, stdout, stderr: '', timedOut: false, canceled: false });
const fail = (stderr: string): RunResult => ({ exitCode: 1, stdout: '', stderr, timedOut: false, canceled: false });

/** A scripted kernel: answers ifconfig/sysctl from `st`; `hold` makes the next ifconfig listing wait for release(). */
class ScriptedKernel {
  readonly calls: string[][] = [];
  failNext: ((argv: readonly string[]) => boolean) | undefined;
  private held: { release: () => void } | undefined;
  private holdNext = false;
  constructor(
    public st: FakeKernelState,
    readonly os: 'freebsd' | 'openbsd',
  ) {}

  hold(): void {
    this.holdNext = true;
  }
  release(): void {
    this.held?.release();
    this.held = undefined;
  }

  readonly exec = async (argv: readonly string[], _opts: RunOptions): Promise<RunResult> => {
    this.calls.push([...argv]);
    if (this.failNext?.(argv)) {
      this.failNext = undefined;
      return fail('refused\n');
    }
    const [tool, ...args] = argv;
    if (tool === 'sysctl') {
      const a = args[args.length - 1]!;
      const eq = a.indexOf('=');
      if (eq < 0) return ok(`${this.st.demotion}\n`);
      const before = this.st.demotion;
      this.st.demotion += Number(a.slice(eq + 1));
      return ok(`net.inet.carp.demotion: ${before} -> ${this.st.demotion}\n`);
    }
    if (tool === 'ifconfig' && args[0] === '-g') {
      if (args.length === 2) return ok(`carp: carp demote count ${this.st.demotion}\n`);
      const n = Number(args[3]) * (args[2] === '-carpdemote' ? -1 : 1);
      if (this.st.demotion + n < 0 || this.st.demotion + n > 255) return fail('ifconfig: carp: SIOCSIFGATTR: Invalid argument\n');
      this.st.demotion += n;
      return ok('');
    }
    if (tool === 'ifconfig') {
      // The output is what the kernel said when the command ran; holding delays only its delivery.
      const only = args[0] === undefined || args[0] === 'carp' ? (args[0] === 'carp' ? 'carp' : undefined) : args[0];
      const text = this.os === 'freebsd' ? freebsdIfconfig(this.st, only) : openbsdIfconfig(this.st, only);
      // printif(): nothing matched the name (OpenBSD's carp group is gone with its last member).
      if (text === '' && only !== undefined) return fail(`${only}: no such interface\n`);
      if (this.holdNext) {
        this.holdNext = false;
        await new Promise<void>((r) => (this.held = { release: r }));
      }
      return ok(text);
    }
    return fail(`unknown ${tool}\n`);
  };
}

async function freebsd(t: TestContext, sk: ScriptedKernel, timers = new ManualTimers()) {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-kernel-unit-'));
  const devd = new FakeDevd(join(dir, 'devd.pipe'));
  await devd.start();
  const src = new FreebsdKernelCarpSource({ devdPath: devd.path, exec: sk.exec, timers, snapshotIntervalMs: 0 });
  const events: TransitionEvent[] = [];
  src.on('transition', (ev: TransitionEvent) => events.push(ev));
  t.after(async () => {
    await src.stop();
    await devd.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await src.start();
  await devd.waitForClients(1);
  await src.idle();
  return { src, devd, events, timers };
}

test('backoff doubles from its minimum, stops at its maximum and starts over after reset', () => {
  const b = new Backoff(250, 2000);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [250, 500, 1000, 2000, 2000]);
  for (let i = 0; i < 100; i++) b.next();
  assert.equal(b.next(), 2000);
  b.reset();
  assert.equal(b.next(), 250);
});

test('a devd event that arrives while a snapshot runs is not undone by that snapshot', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  const { src, devd, events } = await freebsd(t, sk);
  events.length = 0;
  sk.hold();
  const snap = src.snapshotNow();
  await eventually(() => sk.calls.filter((c) => c[0] === 'ifconfig').length >= 2, 2000, 'snapshot started');
  // The kernel moves after ifconfig printed: the event is newer than the held output.
  sk.st.vhids[1]!.state = 'MASTER';
  devd.emit(devdCarpLine(2, 'igb1', 'MASTER'));
  await eventually(() => events.length >= 1, 2000, 'devd event');
  sk.release();
  await snap;
  await src.idle();
  assert.deepEqual(events.map(brief), ['2@igb1 BACKUP->MASTER kernel: devd CARP event']);
  assert.equal(src.status().find((s) => s.key === '2@igb1')!.state, 'MASTER');
});

test('a failed or unreadable ifconfig changes nothing (no vhid is taken for gone)', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  const { src, events } = await freebsd(t, sk);
  events.length = 0;
  sk.failNext = (argv) => argv[0] === 'ifconfig';
  await src.snapshotNow();
  assert.deepEqual(events, []);
  assert.equal(src.status().length, 2);
});

test('a vhid removed from the kernel goes to INIT and leaves the status', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  const { src, events } = await freebsd(t, sk);
  events.length = 0;
  sk.st.vhids.splice(0, 1);
  await src.snapshotNow();
  assert.deepEqual(events.map(brief), ['1@igb0 MASTER->INIT kernel snapshot: vhid gone']);
  assert.deepEqual(
    src.status().map((s) => s.key),
    ['2@igb1'],
  );
});

test('a transition listener that throws does not keep the others from hearing it', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  const { src, devd, events } = await freebsd(t, sk);
  src.on('transition', () => {
    throw new Error('listener bug');
  });
  const later: string[] = [];
  src.on('transition', (ev: TransitionEvent) => later.push(ev.key));
  events.length = 0;
  devd.emit(devdCarpLine(1, 'igb0', 'BACKUP'));
  devd.emit(devdCarpLine(1, 'igb0', 'MASTER'));
  await eventually(() => later.length >= 2, 2000, 'both events');
  assert.equal(events.length, 2);
});

test('a devd event repeating the known state emits nothing, and malformed lines are skipped', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  const { devd, events } = await freebsd(t, sk);
  events.length = 0;
  devd.emit(devdCarpLine(1, 'igb0', 'MASTER'));
  devd.emit('!system=CARP subsystem=999@igb0 type=MASTER');
  devd.emit('!system=CARP subsystem=1@igb0 type=BOGUS');
  devd.emit('garbage');
  devd.emit(devdCarpLine(2, 'igb1', 'MASTER'));
  await eventually(() => events.length >= 1, 2000, 'the one real change');
  assert.deepEqual(events.map(brief), ['2@igb1 BACKUP->MASTER kernel: devd CARP event']);
});

test('a refused sysctl write is retried with the next change, so the kernel ends at carpd share', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  const { src } = await freebsd(t, sk);
  sk.failNext = (argv) => argv[0] === 'sysctl' && argv[1]!.includes('=');
  src.demote('carp', 'a', 10);
  await src.idle();
  assert.equal(sk.st.demotion, 0);
  assert.equal(src.appliedDemotion, 0);
  src.demote('carp', 'a', 5);
  await src.idle();
  assert.equal(sk.st.demotion, 15);
  await src.stop();
  assert.equal(sk.st.demotion, 0);
  assert.deepEqual(
    sk.calls.filter((c) => c[0] === 'sysctl' && c[1]!.includes('=')).map((c) => c[1]),
    ['net.inet.carp.demotion=10', 'net.inet.carp.demotion=15', 'net.inet.carp.demotion=-15'],
  );
});

test('freebsd: devd absent at start is retried on the backoff timer while ifconfig still gives the state', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  const dir = mkdtempSync(join(tmpdir(), 'carpd-kernel-unit-'));
  const timers = new ManualTimers();
  const src = new FreebsdKernelCarpSource({ devdPath: join(dir, 'devd.pipe'), exec: sk.exec, timers, snapshotIntervalMs: 0, backoffMinMs: 100 });
  t.after(async () => {
    await src.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await src.start();
  assert.equal(src.status().length, 2);
  await eventually(() => [...timers.due.values()].some((d) => d.ms === 100), 2000, 'reconnect armed');
  const devd = new FakeDevd(join(dir, 'devd.pipe'));
  await devd.start();
  t.after(() => devd.stop());
  timers.fire(100);
  await devd.waitForClients(1);
  await eventually(() => src.connects === 1, 2000, 'connected');
});

function openbsdState(): FakeKernelState {
  return {
    demotion: 0,
    seq: 0,
    changes: [],
    vhids: [
      { ifname: 'carp0', carpdev: 'em0', vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['198.51.100.1/24', 'fe80::200:5eff:fe00:101/64'] },
    ],
  };
}

const quietMonitor: SpawnStream = () => ({ stop: () => undefined });

test('openbsd: link-local addresses are not VIPs, and a demotion the kernel refuses is not counted as applied', async (t) => {
  const sk = new ScriptedKernel(openbsdState(), 'openbsd');
  sk.st.demotion = 250;
  const src = new OpenbsdKernelCarpSource({ exec: sk.exec, spawn: quietMonitor, timers: new ManualTimers(), snapshotIntervalMs: 0 });
  t.after(() => src.stop());
  await src.start();
  assert.deepEqual(src.status()[0]!.addresses, ['198.51.100.1/24']);
  assert.equal(src.status()[0]!.demote, 250);
  // 250 + 10 > 255: SIOCSIFGATTR refuses it.
  src.demote('carp', 'x', 10);
  await src.idle();
  assert.equal(src.appliedDemotion('carp'), 0);
  assert.equal(sk.st.demotion, 250);
  src.demote('carp', 'x', -5);
  await src.idle();
  assert.equal(sk.st.demotion, 255);
  assert.equal(src.appliedDemotion('carp'), 5);
  await src.stop();
  assert.equal(sk.st.demotion, 250);
});

test('freebsd: a demotion set before start is written at start, and none after stop', async (t) => {
  const sk = new ScriptedKernel(freebsdState(), 'freebsd');
  sk.st.demotion = 4;
  const src = new FreebsdKernelCarpSource({ devdPath: '/nonexistent/devd.pipe', exec: sk.exec, timers: new ManualTimers(), snapshotIntervalMs: 0 });
  t.after(() => src.stop());
  assert.equal(src.setDemotion('carp', 'config', 20), 20);
  assert.equal(sk.calls.length, 0);
  await src.start();
  await src.idle();
  assert.equal(sk.st.demotion, 24);
  await src.stop();
  assert.equal(sk.st.demotion, 4);
  src.demote('carp', 'late', 50);
  await src.idle();
  assert.equal(sk.st.demotion, 4);
  assert.deepEqual(
    sk.calls.filter((c) => c[0] === 'sysctl' && c[1]!.includes('=')).map((c) => c[1]),
    ['net.inet.carp.demotion=20', 'net.inet.carp.demotion=-20'],
  );
});

test('spawnStream streams a child output and reports its exit once; a missing command is reported, not thrown', async () => {
  const out: string[] = [];
  const exits: string[] = [];
  spawnStream([process.execPath, '-e', 'process.stdout.write("RTM line\\n")'], undefined, {
    onStdout: (c) => out.push(c),
    onExit: (d) => exits.push(d),
  });
  await eventually(() => exits.length === 1, 5000, 'child exit');
  assert.equal(out.join(''), 'RTM line\n');
  assert.match(exits[0]!, /exited \(code 0\)/);
  const missing: string[] = [];
  const child = spawnStream(['/nonexistent/route', '-n', 'monitor'], undefined, { onStdout: () => undefined, onExit: (d) => missing.push(d) });
  await eventually(() => missing.length === 1, 5000, 'spawn failure');
  assert.match(missing[0]!, /cannot run \/nonexistent\/route: ENOENT/);
  child.stop();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(missing.length, 1);
});

test('createKernelCarpSource picks the source by OS', () => {
  assert.ok(createKernelCarpSource('freebsd') instanceof FreebsdKernelCarpSource);
  assert.ok(createKernelCarpSource('openbsd') instanceof OpenbsdKernelCarpSource);
  assert.equal(kernelOsOf('freebsd'), 'freebsd');
  assert.equal(kernelOsOf('linux'), undefined);
  assert.equal(createKernelCarpSource('openbsd').kind, 'kernel');
});

test('openbsd: when the last carp interface is destroyed, its vhids go to INIT and leave the status', async (t) => {
  const sk = new ScriptedKernel(openbsdState(), 'openbsd');
  const src = new OpenbsdKernelCarpSource({ exec: sk.exec, spawn: quietMonitor, timers: new ManualTimers(), snapshotIntervalMs: 0 });
  const events: TransitionEvent[] = [];
  src.on('transition', (ev) => events.push(ev));
  t.after(() => src.stop());
  await src.start();
  sk.st.vhids = [];
  await src.snapshotNow();
  assert.deepEqual(events.map(brief), ['1@em0 INIT->MASTER kernel snapshot: found MASTER', '1@em0 MASTER->INIT kernel snapshot: vhid gone']);
  assert.deepEqual(src.status(), []);
  // Any other failure of ifconfig changes nothing.
  sk.st = openbsdState();
  await src.snapshotNow();
  sk.failNext = (argv) => argv[0] === 'ifconfig';
  await src.snapshotNow();
  assert.equal(src.status().length, 1);
});

/** An exec port answering with the recorded outputs of test/fixtures/kernel. */
function recorded(calls: string[][], ifconfigText: string, extra: (argv: readonly string[]) => RunResult | undefined = () => undefined) {
  return async (argv: readonly string[]): Promise<RunResult> => {
    calls.push([...argv]);
    const x = extra(argv);
    if (x) return x;
    if (argv[0] === 'sysctl') return ok(fixture('freebsd-sysctl-demotion-n.txt'));
    if (argv[0] === 'ifconfig' && argv[1] === '-g') return ok(fixture('openbsd-ifconfig-g-carp.txt'));
    if (argv[0] === 'ifconfig' && argv.length <= 2) return ok(ifconfigText);
    return ok('');
  };
}

test('freebsd: the recorded ifconfig of a pfSense-like box gives every vhid, INIT ones listed without a transition', async (t) => {
  const calls: string[][] = [];
  const src = new FreebsdKernelCarpSource({
    devdPath: '/nonexistent/devd.pipe',
    exec: recorded(calls, fixture('freebsd-ifconfig-carp.txt')),
    timers: new ManualTimers(),
    snapshotIntervalMs: 0,
  });
  const events: TransitionEvent[] = [];
  src.on('transition', (ev) => events.push(ev));
  t.after(() => src.stop());
  await src.start();
  assert.deepEqual(
    src.status().map((s) => `${s.key} ${s.state} ${s.advbase}/${s.advskew} ${s.addresses.join(',')}`),
    [
      '1@igb0 MASTER 1/0 198.51.100.1/24,198.51.100.10/32',
      '3@igb0 MASTER 1/0 2001:db8:100::1/64',
      '2@igb1 BACKUP 1/100 192.0.2.1/24',
      '4@igb1 INIT 2/50 192.0.2.4/24,2001:db8:200::1/64',
    ],
  );
  assert.deepEqual(
    events.map((e) => e.key),
    ['1@igb0', '3@igb0', '2@igb1'],
  );
  const d = parseSysctlInt(fixture('freebsd-sysctl-demotion-n.txt'));
  assert.equal(src.status()[0]!.demote, d.kind === 'value' ? Math.min(255, d.value) : -1);
});

test('openbsd: the recorded ifconfig with carpnodes gives one key per vhid on its carpdev; an RTM_IFINFO of carp1 confirms both of its vhids', async (t) => {
  const calls: string[][] = [];
  let text = fixture('openbsd-ifconfig-carp.txt');
  const mon = { h: undefined as StreamHandlers | undefined };
  const spawn: SpawnStream = (_argv, _env, h) => {
    mon.h = h;
    return { stop: () => undefined };
  };
  const exec = recorded(calls, '', (argv) => (argv[0] === 'ifconfig' && argv.length <= 2 && argv[1] !== '-g' ? ok(text) : undefined));
  const src = new OpenbsdKernelCarpSource({ exec, spawn, timers: new ManualTimers(), snapshotIntervalMs: 0 });
  const events: TransitionEvent[] = [];
  src.on('transition', (ev) => events.push(ev));
  t.after(() => src.stop());
  await src.start();
  assert.deepEqual(
    src.status().map((s) => `${s.key} ${s.name ?? ''} ${s.state} ${s.advskew}`),
    ['1@em0 carp0 MASTER 0', '3@em1 carp1 MASTER 0', '4@em1 carp1 BACKUP 100', '2@em1 carp2 BACKUP 100', '9@em1 carp3 INIT 0'],
  );
  events.length = 0;
  // carp1's vhid 4 takes over too; the link word stays "master", so only ifconfig tells.
  text = text.replace('\t\tstate BACKUP vhid 4 advskew 100', '\t\tstate MASTER vhid 4 advskew 100');
  mon.h!.onStdout(
    'got message of size 176 on Sat Nov 28 10:00:00 2026\nRTM_IFINFO: iface status change: len 176, if# 7, name carp1, link: master, mtu: 1500, flags:<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>\n',
  );
  await eventually(() => events.length >= 1, 2000, 'carpnode transition');
  await src.idle();
  assert.deepEqual(events.map(brief), ['4@em1 BACKUP->MASTER kernel: route monitor carp1 link master']);
  assert.ok(calls.some((c) => c.join(' ') === 'ifconfig carp1'));
  // Forcing one vhid of carp1 names the carp interface: the kernel moves all of its vhids.
  assert.equal(src.force('3@em1', 'BACKUP'), true);
  await src.idle();
  assert.deepEqual(
    calls.find((c) => c.includes('state')),
    ['ifconfig', 'carp1', 'state', 'backup'],
  );
});

test('openbsd: a burst of RTM_IFINFO lines for one carp interface costs one confirming ifconfig per run', async (t) => {
  const calls: string[][] = [];
  const mon = { h: undefined as StreamHandlers | undefined };
  const spawn: SpawnStream = (_argv, _env, h) => {
    mon.h = h;
    return { stop: () => undefined };
  };
  const src = new OpenbsdKernelCarpSource({
    exec: recorded(calls, fixture('openbsd-ifconfig-carp.txt')),
    spawn,
    timers: new ManualTimers(),
    snapshotIntervalMs: 0,
  });
  t.after(() => src.stop());
  await src.start();
  const line = 'RTM_IFINFO: iface status change: len 176, if# 9, name carp2, link: backup, mtu: 1500, flags:<UP>\n';
  mon.h!.onStdout(line.repeat(50));
  await src.idle();
  await new Promise((r) => setTimeout(r, 20));
  const confirms = calls.filter((c) => c.join(' ') === 'ifconfig carp2').length;
  assert.ok(confirms >= 1 && confirms <= 2, `${confirms} confirmations`);
});
