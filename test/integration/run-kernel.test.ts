/**
 * `carpd run` with `engine = kernel` against the simulated kernel (no namespaces): the daemon
 * follows the fake devd (FreeBSD) or the fake `route -n monitor` (OpenBSD), a `script` plugin
 * runs its up/down commands on a simulated failover, carpctl reports the kernel's vhids, and
 * carpd's demotion reaches the kernel through the fake sysctl/ifconfig (their argv log).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { CARPD_JS } from '../../src/lab/lab.js';
import { FAKE_KERNEL_BIN, FakeKernel } from '../helpers/fake-kernel/fake-kernel.js';
import type { FakeOs, FakeVhid } from '../helpers/fake-kernel/state.js';
import { eventually } from '../helpers/kernel-source.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const TEST = { timeout: 60_000 };

interface Rig {
  k: FakeKernel;
  dir: string;
  sock: string;
  child: ChildProcess;
  lines: string[];
  /** The plugin's commands, one `up|down ARGS` line each. */
  recorded(): string[];
  ctl(...args: string[]): { status: number | null; stdout: string; stderr: string };
}

/** Wrappers that give the fake tools their state, since carpd runs commands with a scrubbed environment. */
function toolDir(dir: string, k: FakeKernel): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const env = [
    `export FAKE_KERNEL_STATE='${k.statePath}'`,
    `export FAKE_KERNEL_OS='${k.os}'`,
    `export FAKE_KERNEL_ARGV_LOG='${k.argvLog}'`,
    'export FAKE_KERNEL_POLL_MS=10',
    'export FAKE_KERNEL_MONITOR_MS=60000',
    `export PATH='${dirname(process.execPath)}':"$PATH"`,
  ].join('\n');
  for (const tool of ['ifconfig', 'sysctl', 'route']) {
    const p = join(bin, tool);
    writeFileSync(p, `#!/bin/sh\n${env}\nexec '${join(FAKE_KERNEL_BIN, tool)}' "$@"\n`);
    chmodSync(p, 0o755);
  }
  return bin;
}

async function rig(t: TestContext, os: FakeOs, vhids: FakeVhid[], follow: string): Promise<Rig> {
  const k = await FakeKernel.start({ os, vhids, pollMs: 10, maxLifetimeMs: 55_000 });
  const dir = mkdtempSync(join(tmpdir(), 'carpd-run-kernel-'));
  const rec = join(dir, 'recorded.log');
  for (const which of ['up', 'down']) {
    const p = join(dir, `${which}.sh`);
    writeFileSync(p, `#!/bin/sh\necho "${which} $*" >> '${rec}'\n`);
    chmodSync(p, 0o755);
  }
  const conf = join(dir, 'carpd.conf');
  writeFileSync(
    conf,
    [
      '[carpd]',
      'engine = kernel',
      `kernel_os = ${os}`,
      ...(k.devd ? [`devd_socket = ${k.devd.path}`] : []),
      `state_dir = ${join(dir, 'state')}`,
      'log = 5',
      '',
      '[plugin.script]',
      `follow = ${follow}`,
      `up = ${join(dir, 'up.sh')}`,
      `down = ${join(dir, 'down.sh')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const sock = join(dir, 'carpd.sock');
  const child = spawn(process.execPath, [CARPD_JS, 'run', '-c', conf, '--control', sock, '--run-dir', dir], {
    env: { ...process.env, CARPD_KERNEL_PATH: `${toolDir(dir, k)}:/usr/bin:/bin` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const s of [child.stdout, child.stderr]) createInterface({ input: s! }).on('line', (l) => lines.length < 2000 && lines.push(l));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    await k.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const r: Rig = {
    k,
    dir,
    sock,
    child,
    lines,
    recorded: () => {
      try {
        return readFileSync(rec, 'utf8').split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
    ctl: (...args) => {
      const x = spawnSync(process.execPath, [CARPCTL_JS, '-s', sock, ...args], { encoding: 'utf8', timeout: 10_000 });
      return { status: x.status, stdout: x.stdout, stderr: x.stderr };
    },
  };
  try {
    await eventually(() => lines.some((l) => l.includes('carpd: following kernel')), 15_000, 'carpd following the kernel');
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- carpd output ---\n${lines.slice(-60).join('\n')}`;
    throw err;
  }
  return r;
}

/** SIGTERM, and a clean exit within a bound. */
async function stop(r: Rig): Promise<number | null> {
  const exited = new Promise<number | null>((res) => r.child.once('exit', (code) => res(code)));
  r.child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 10_000).unref());
  const code = await Promise.race([exited, timeout]);
  assert.notEqual(code, 'timeout', 'carpd exits within 10 s of SIGTERM');
  return code as number | null;
}

function demotionWrites(k: FakeKernel): string[] {
  return k
    .calls()
    .filter(
      (c) =>
        (c[0] === 'sysctl' && c.some((a) => a.startsWith('net.inet.carp.demotion='))) ||
        (c[0] === 'ifconfig' && (c.includes('carpdemote') || c.includes('-carpdemote'))),
    )
    .map((c) => c.join(' '));
}

const FREEBSD: FakeVhid[] = [
  { ifname: 'igb0', vhid: 1, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['198.51.100.1/24'] },
  { ifname: 'igb1', vhid: 2, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['192.0.2.1/24'] },
];

test(
  'carpd run, engine = kernel on FreeBSD: follows devd through a failover, runs the plugin, demotes through sysctl, survives a devd restart',
  TEST,
  async (t) => {
    const r = await rig(t, 'freebsd', FREEBSD, '1@igb0');
    try {
      const st = r.ctl('status');
      assert.equal(st.status, 0, st.stderr);
      assert.match(st.stdout, /^igb0: carp: BACKUP vhid 1 advbase 1 advskew 100$/m);
      assert.match(st.stdout, /^igb1: carp: BACKUP vhid 2 advbase 1 advskew 100$/m);
      assert.match(st.stdout, /^engine: kernel \(freebsd\)$/m);

      // The script plugin runs ucarp's rules: the down script for the BACKUP found at start.
      await eventually(() => r.recorded().length >= 1, 15_000, 'the down script at start');
      r.k.failover('MASTER');
      await eventually(() => r.recorded().length >= 2, 15_000, 'the up script');
      r.k.setState(1, 'igb0', 'BACKUP');
      await eventually(() => r.recorded().length >= 3, 15_000, 'the down script');
      assert.deepEqual(r.recorded(), ['down igb0 198.51.100.1', 'up igb0 198.51.100.1', 'down igb0 198.51.100.1']);
      assert.match(r.ctl('status').stdout, /^igb1: carp: MASTER vhid 2/m);

      // The plugin host's set-up hold (boot:plugins) came and went before; what follows is carpctl's.
      const before = demotionWrites(r.k).length;
      assert.equal(r.ctl('demote', '+50').status, 0);
      await eventually(() => demotionWrites(r.k).length >= before + 1, 10_000, 'the demotion write');
      assert.equal(r.ctl('demote', 'reset').status, 0);
      await eventually(() => demotionWrites(r.k).length >= before + 2, 10_000, 'the demotion undone');
      assert.deepEqual(demotionWrites(r.k).slice(before), ['sysctl net.inet.carp.demotion=50', 'sysctl net.inet.carp.demotion=-50']);
      // The fake records the argv as the command starts and applies it as it runs: wait for it.
      await eventually(() => r.k.state().demotion === 0, 10_000, 'the kernel demotion back at 0');

      // devd restarts: carpd reconnects and the next failover still reaches the plugin.
      await r.k.devd!.stop();
      await r.k.devd!.start();
      await r.k.devd!.waitForClients(1);
      r.k.setState(1, 'igb0', 'MASTER');
      await eventually(() => r.recorded().length >= 4, 15_000, 'the up script after the devd restart');
      assert.equal(r.recorded()[3], 'up igb0 198.51.100.1');
      assert.equal(r.child.exitCode, null, 'carpd still running');
      assert.equal(await stop(r), 0);
    } catch (err) {
      if (err instanceof Error) err.message += `\n--- carpd output ---\n${r.lines.slice(-60).join('\n')}`;
      throw err;
    }
  },
);

test('carpd run, engine = kernel on FreeBSD: carpctl state forces through ifconfig, maintenance demotes and undoes it', TEST, async (t) => {
  const r = await rig(t, 'freebsd', FREEBSD, '1@igb0');
  try {
    const st = r.ctl('state', '2@igb1', 'MASTER');
    assert.equal(st.status, 0, st.stderr);
    await eventually(() => r.k.calls().some((c) => c.join(' ') === 'ifconfig igb1 vhid 2 state master'), 10_000, 'ifconfig state master');
    await eventually(() => r.recorded().length >= 1, 15_000, 'plugins set up');
    const before = demotionWrites(r.k).length;
    assert.equal(r.ctl('maintenance', 'on').status, 0);
    await eventually(() => demotionWrites(r.k).length >= before + 1, 10_000, 'maintenance demotion');
    assert.equal(r.ctl('maintenance', 'off').status, 0);
    await eventually(() => demotionWrites(r.k).length >= before + 2, 10_000, 'maintenance undone');
    const [on, off] = demotionWrites(r.k).slice(before);
    assert.match(on!, /^sysctl net\.inet\.carp\.demotion=\d+$/);
    assert.equal(off, on!.replace('=', '=-'));
    assert.equal(await stop(r), 0);
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- carpd output ---\n${r.lines.slice(-60).join('\n')}`;
    throw err;
  }
});

const OPENBSD: FakeVhid[] = [{ ifname: 'carp0', carpdev: 'em0', vhid: 1, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['198.51.100.1/24'] }];

test('carpd run, engine = kernel on OpenBSD: follows route monitor, runs the plugin, demotes through ifconfig -g carp carpdemote', TEST, async (t) => {
  const r = await rig(t, 'openbsd', OPENBSD, '1@em0');
  try {
    assert.match(r.ctl('status').stdout, /^engine: kernel \(openbsd\)$/m);
    await eventually(() => r.recorded().length >= 1, 15_000, 'the down script at start');
    r.k.setState(1, 'carp0', 'MASTER');
    await eventually(() => r.recorded().length >= 2, 15_000, 'the up script');
    assert.deepEqual(r.recorded(), ['down em0 198.51.100.1', 'up em0 198.51.100.1']);
    const before = demotionWrites(r.k).length;
    assert.equal(r.ctl('demote', '+20').status, 0);
    // Writes compute their delta when they run: wait, or +20 and reset would net to nothing.
    await eventually(() => demotionWrites(r.k).length >= before + 1, 10_000, 'the demotion');
    assert.equal(r.ctl('demote', 'reset').status, 0);
    await eventually(() => demotionWrites(r.k).length >= before + 2, 10_000, 'the demotion and its undoing');
    assert.deepEqual(demotionWrites(r.k).slice(before), ['ifconfig -g carp carpdemote 20', 'ifconfig -g carp -carpdemote 20']);
    assert.equal(await stop(r), 0);
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- carpd output ---\n${r.lines.slice(-60).join('\n')}`;
    throw err;
  }
});
