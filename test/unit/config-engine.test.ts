import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import { checkCommand } from '../../src/cli/check.js';
import { Code } from '../../src/config/errors.js';
import { ControlCode } from '../../src/daemon/control-protocol.js';
import { CANNOT, engineLabel, limitations, unsupported } from '../../src/daemon/engine-caps.js';
import { followedModel } from '../../src/daemon/run.js';
import type { StateSourceCapabilities } from '../../src/ports/state-source.js';
import { capture, configFiles } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-config-engine-');

/** Runs with CARPD_KERNEL_OS set as a BSD would have it, restored after the test. */
function onBsd(t: TestContext, os: string | undefined): void {
  const before = process.env.CARPD_KERNEL_OS;
  if (os === undefined) delete process.env.CARPD_KERNEL_OS;
  else process.env.CARPD_KERNEL_OS = os;
  t.after(() => {
    if (before === undefined) delete process.env.CARPD_KERNEL_OS;
    else process.env.CARPD_KERNEL_OS = before;
  });
}

const VHID = `[vhid.lan]
vhid = 1
interface = em0
address = 192.0.2.1/24
pass = s3cret
`;

test('the engine keys parse into model.global', (t) => {
  onBsd(t, undefined);
  const d = tempDir(t);
  const kernel = d.write('k.conf', `[carpd]\nengine = kernel\nkernel_os = freebsd\ndevd_socket = /tmp/devd.pipe\n`);
  const r = loadConfigFiles([kernel]);
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.model.global.engine, 'kernel');
  assert.equal(r.model.global.kernelOs, 'freebsd');
  assert.equal(r.model.global.devdSocket, '/tmp/devd.pipe');
  const ka = d.write(
    'ka.conf',
    `[carpd]\nengine = keepalived\nkeepalived_fifo = /run/x.fifo\nkeepalived_pidfile = /run/k.pid\nkeepalived_track_file = /run/x.demote\nkeepalived_dump_dir = /run/ka\n`,
  );
  const g = loadConfigFiles([ka]).model.global;
  assert.deepEqual(
    [g.engine, g.keepalivedFifo, g.keepalivedPidfile, g.keepalivedTrackFile, g.keepalivedDumpDir],
    ['keepalived', '/run/x.fifo', '/run/k.pid', '/run/x.demote', '/run/ka'],
  );
});

test('a bad engine or kernel_os is a value error at its line', (t) => {
  onBsd(t, undefined);
  const f = tempDir(t).write('c.conf', `[carpd]\nengine = vrrpd\nkernel_os = linux\n`);
  const r = loadConfigFiles([f]);
  assert.deepEqual(
    r.diagnostics.map((x) => [x.line, x.code]),
    [
      [2, Code.CONFIG_VALUE],
      [3, Code.CONFIG_VALUE],
    ],
  );
});

test("on Linux a config without engine runs carpd's own engine, with no diagnostic", async (t) => {
  onBsd(t, 'linux');
  const f = tempDir(t).write('c.conf', `[carpd]\n${VHID}`);
  assert.deepEqual(await capture(checkCommand, ['-c', f]), { code: 0, out: ['configuration OK'], err: [] });
});

test('check on a FreeBSD rc.conf with carp_load="YES" and no engine tells the admin to set engine = kernel, at that line', async (t) => {
  onBsd(t, 'freebsd');
  const f = tempDir(t).write('rc.conf', `hostname="fw1"\ncarp_load="YES"\nifconfig_em0_alias0="inet vhid 1 pass s3cret alias 192.0.2.1/32"\n`);
  const r = await capture(checkCommand, ['-c', f]);
  assert.equal(r.code, 1);
  const line = r.err.find((l) => l.startsWith(`${f}:2: `));
  assert.ok(line, r.err.join('\n'));
  assert.match(line, /engine = kernel/);
  assert.match(line, /protocol 112/);
  assert.equal(loadConfigFiles([f]).diagnostics.find((d) => d.severity === 'error')?.code, Code.ENGINE);
});

test('check on a loader.conf with if_carp_load="YES" and no engine names engine = kernel', async (t) => {
  onBsd(t, 'freebsd');
  const f = tempDir(t).write('loader.conf', `if_carp_load="YES"\n`);
  const r = await capture(checkCommand, ['-c', f]);
  assert.equal(r.code, 1);
  assert.ok(
    r.err.some((l) => l.startsWith(`${f}:1: `) && l.includes('engine = kernel')),
    r.err.join('\n'),
  );
});

test('on OpenBSD a config without engine is an error that names both choices', async (t) => {
  onBsd(t, 'openbsd');
  const f = tempDir(t).write('c.conf', `[carpd]\n${VHID}`);
  const r = await capture(checkCommand, ['-c', f]);
  assert.equal(r.code, 1);
  assert.match(r.err.join('\n'), /no engine is set, and on openbsd there is no default: set engine = kernel .* or engine = carpd/);
});

test('with engine = kernel the kernel-carp warnings go, and plugins may follow vhids only the kernel knows', async (t) => {
  onBsd(t, 'freebsd');
  const d = tempDir(t);
  const f = d.write('rc.conf', `carp_load="YES"\ncarpd_engine="kernel"\n`);
  const c = d.write('carpd.conf', `[plugin.script]\nfollow = 3@igb0\nup = /bin/true\n`);
  const r = loadConfigFiles([f, c]);
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.model.global.engine, 'kernel');
});

test('engine = kernel on Linux without kernel_os is an error naming kernel_os', (t) => {
  onBsd(t, 'linux');
  const f = tempDir(t).write('c.conf', `[carpd]\nengine = kernel\n`);
  const r = loadConfigFiles([f]);
  assert.deepEqual(
    r.diagnostics.map((x) => [x.line, x.code]),
    [[2, Code.ENGINE]],
  );
  assert.match(r.diagnostics[0]!.message, /kernel_os/);
});

test('--engine overrides the files and is what the BSD check accepts', (t) => {
  onBsd(t, 'freebsd');
  const f = tempDir(t).write('c.conf', `[carpd]\n`);
  const r = loadConfigFiles([f], { engine: 'kernel' });
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.model.global.engine, 'kernel');
});

test('what an engine cannot do is said from one table: carpctl state on keepalived names the engine and the capability', () => {
  const ka = { kind: 'keepalived' as const, capabilities: { forceState: false, prePhaseHoldsVip: false, packetCounters: false } };
  const err = unsupported(ka, 'forceState');
  assert.equal(err.code, ControlCode.UNSUPPORTED);
  assert.equal(err.message, `engine keepalived ${CANNOT.forceState}`);
  assert.equal(limitations(ka).length, 3);
  const kernel = { kind: 'kernel' as const, os: 'freebsd', capabilities: { forceState: true, prePhaseHoldsVip: false, packetCounters: false } };
  assert.equal(engineLabel(kernel), 'kernel (freebsd)');
  assert.deepEqual(limitations(kernel), [`kernel (freebsd) ${CANNOT.prePhaseHoldsVip}`, `kernel (freebsd) ${CANNOT.packetCounters}`]);
  const all: StateSourceCapabilities = { forceState: true, prePhaseHoldsVip: true, packetCounters: true };
  assert.deepEqual(limitations({ kind: 'carpd', capabilities: all }), []);
});

test("a followed engine's vhids become the plugin host's model, without secrets", () => {
  const m = followedModel(
    { global: { allow: true, preempt: false, log: 2, engine: 'kernel' }, vhids: [] },
    {
      status: () => [
        {
          key: '1@igb0',
          vhid: 1,
          interface: 'igb0',
          state: 'MASTER',
          advbase: 1,
          advskew: 0,
          wireAdvskew: 0,
          demote: 0,
          addresses: ['192.0.2.1/24'],
          groups: ['carp', 'wan'],
          lastReason: '',
          upMs: 0,
        },
      ],
    },
    'kernel (freebsd)',
  );
  assert.deepEqual(m.vhids, [
    {
      key: '1@igb0',
      vhid: 1,
      interface: 'igb0',
      addresses: ['192.0.2.1/24'],
      advbase: 1,
      advskew: 0,
      password: '',
      source: 'kernel (freebsd)',
      groups: ['wan'],
    },
  ]);
});
