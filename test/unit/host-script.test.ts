/** The built-in `script` plugin: ucarp's and keepalived's calling conventions, golden argv. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { RunOptions } from '../../src/ports/exec.js';
import type { Follow, VhidConfig } from '../../src/config/model.js';
import type { ExecPort } from '../../src/ports/exec.js';
import { groupExec } from '../../src/adapters/exec.js';
import { PluginHost } from '../../src/host/host.js';
import { loadPlugins } from '../../src/host/loader.js';
import type { HookRecord, TransitionEvent } from '../../src/host/log.js';
import type { CarpState } from '../../src/host/types.js';
import { Templates } from '../../src/adapters/templates.js';
import { silent, vhidCfg } from '../helpers/fake-wire.js';
import { config, modelOf, ROOT } from '../fixtures/plugins/kit.js';
import { hostDefaults, loaderPorts } from '../helpers/host-defaults.js';

const tmp = mkdtempSync(join(tmpdir(), 'carpd-script-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Call {
  argv: string[];
  env: Record<string, string>;
}

function recorder(failTest = false): ExecPort & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    async run(argv: readonly string[], opts: RunOptions) {
      calls.push({ argv: [...argv], env: { ...opts.env } });
      return { exitCode: failTest && argv[0] === 'test' ? 1 : 0, stdout: '', stderr: '', timedOut: false, canceled: false };
    },
  };
}

async function scriptHost(options: Record<string, string>, o: { follow?: Follow; vhids?: VhidConfig[]; exec?: ExecPort } = {}) {
  const vhids = o.vhids ?? [vhidCfg(1, 100, { name: 'carp0' })];
  const model = modelOf(vhids, { plugins: [config('script', o.follow ?? { kind: 'vhid', ref: '1@eth0' }, { options })] });
  const templates = new Templates({}, 'linux');
  const plugins = await loadPlugins(model, { ...loaderPorts, dirs: { builtin: join(ROOT, 'plugins') }, os: 'linux', templates });
  const demotions: string[] = [];
  const exec = o.exec ?? recorder();
  const host = new PluginHost({
    ...hostDefaults(),
    model,
    plugins,
    engine: { status: () => [], setDemotion: (g, by, n) => (demotions.push(`${g} ${by} ${n}`), n) },
    logger: silent,
    templates,
    os: 'linux',
    exec,
  });
  const hooks: HookRecord[] = [];
  host.on('hook', (h: HookRecord) => hooks.push(h));
  host.start();
  await host.idle();
  let seq = 0;
  const go = async (key: string, from: CarpState, to: CarpState, reason = 'test') => {
    const [vhid, ifname] = key.split('@');
    const ev: TransitionEvent = { seq: ++seq, time: '2026-01-01T00:00:00.000Z', vhid: Number(vhid), interface: ifname!, key, from, to, reason };
    void host.handle(ev);
    await host.idle();
  };
  return { host, exec, hooks, demotions, go };
}

const argvs = (e: ExecPort) => (e as ReturnType<typeof recorder>).calls.map((c) => c.argv.join(' '));

describe('script plugin', () => {
  it('ucarp style: setup checks the scripts; up on MASTER, down on BACKUP and when a MASTER leaves', async () => {
    const s = await scriptHost({ up: '/usr/local/bin/vip-up', down: '/usr/local/bin/vip-down', xparam: 'lan' });
    await s.go('1@eth0', 'INIT', 'BACKUP');
    await s.go('1@eth0', 'BACKUP', 'MASTER');
    await s.go('1@eth0', 'MASTER', 'INIT', 'shutdown');
    assert.deepEqual(argvs(s.exec), [
      'test -x /usr/local/bin/vip-up',
      'test -x /usr/local/bin/vip-down',
      '/usr/local/bin/vip-down eth0 198.18.0.101 lan',
      '/usr/local/bin/vip-up eth0 198.18.0.101 lan',
      '/usr/local/bin/vip-down eth0 198.18.0.101 lan',
    ]);
    assert.deepEqual(s.demotions, ['carp boot:plugins 240', 'carp boot:plugins 0']);
    await s.host.stop();
  });

  it('ucarp -n skips the first down script; -z off skips it at shutdown; INIT from BACKUP runs nothing', async () => {
    const s = await scriptHost({ up: '/u', down: '/d', neutral: 'yes', shutdown: 'no' });
    await s.go('1@eth0', 'INIT', 'BACKUP');
    await s.go('1@eth0', 'BACKUP', 'MASTER');
    await s.go('1@eth0', 'MASTER', 'INIT', 'shutdown');
    await s.go('1@eth0', 'INIT', 'BACKUP');
    await s.go('1@eth0', 'BACKUP', 'INIT', 'hardware interface down');
    assert.deepEqual(
      argvs(s.exec).filter((a) => !a.startsWith('test')),
      ['/u eth0 198.18.0.101'],
      'up only',
    );
    await s.host.stop();
  });

  it('keepalived style: notify INSTANCE name STATE prio; FAULT for INIT, STOP at shutdown', async () => {
    const s = await scriptHost({ style: 'keepalived', notify: '/etc/keepalived/notify.sh' });
    await s.go('1@eth0', 'INIT', 'BACKUP');
    await s.go('1@eth0', 'BACKUP', 'MASTER');
    await s.go('1@eth0', 'MASTER', 'INIT', 'hardware interface down');
    await s.go('1@eth0', 'INIT', 'BACKUP');
    await s.go('1@eth0', 'BACKUP', 'INIT', 'shutdown');
    assert.deepEqual(argvs(s.exec), [
      'test -x /etc/keepalived/notify.sh',
      '/etc/keepalived/notify.sh INSTANCE carp0 FAULT 155',
      '/etc/keepalived/notify.sh INSTANCE carp0 BACKUP 155',
      '/etc/keepalived/notify.sh INSTANCE carp0 MASTER 155',
      '/etc/keepalived/notify.sh INSTANCE carp0 FAULT 155',
      '/etc/keepalived/notify.sh INSTANCE carp0 BACKUP 155',
      '/etc/keepalived/notify.sh INSTANCE carp0 STOP 155',
    ]);
    await s.host.stop();
  });

  it('a node scope: ucarp runs once per vhid, keepalived once as GROUP; the environment says what happened', async () => {
    const vhids = [vhidCfg(1, 0), vhidCfg(2, 0, { interface: 'eth1', addresses: ['10.0.0.1/24'] })];
    const u = await scriptHost({ up: '/u', xparam: 'x' }, { follow: { kind: 'node' }, vhids });
    await u.go('1@eth0', 'BACKUP', 'MASTER');
    await u.go('2@eth1', 'BACKUP', 'MASTER');
    // 1@eth0 alone made the node BACKUP (no up script); both MASTER made it MASTER.
    const calls = (u.exec as ReturnType<typeof recorder>).calls.filter((c) => c.argv[0] === '/u');
    assert.deepEqual(
      calls.map((c) => c.argv.join(' ')),
      ['/u eth0 198.18.0.101 x', '/u eth1 10.0.0.1 x'],
    );
    assert.deepEqual(calls[1]!.env, {
      CARPD_STATE: 'MASTER',
      CARPD_FROM: 'BACKUP',
      CARPD_REASON: 'test',
      CARPD_SEQ: '2',
      CARPD_SCOPE: 'node',
      CARPD_KEY: '2@eth1',
      CARPD_VHID: '2',
      CARPD_INTERFACE: 'eth1',
    });
    await u.host.stop();
    const k = await scriptHost({ style: 'keepalived', notify: '/n' }, { follow: { kind: 'node' }, vhids });
    await k.go('1@eth0', 'BACKUP', 'MASTER');
    await k.go('2@eth1', 'BACKUP', 'MASTER');
    assert.deepEqual(argvs(k.exec).slice(-1), ['/n GROUP carp MASTER']);
    await k.host.stop();
  });

  it('when = pre runs it before the VIP step', async () => {
    const s = await scriptHost({ up: '/u', when: 'pre' });
    await s.go('1@eth0', 'BACKUP', 'MASTER');
    assert.deepEqual(
      s.hooks.filter((h) => h.seq > 0).map((h) => `${h.hook} ${h.result}`),
      ['pre-master ok', 'master ok'],
    );
    assert.equal(argvs(s.exec).at(-1), '/u eth0 198.18.0.101');
    await s.host.stop();
  });

  it('a script that is not executable fails setup, and the node stays demoted', async () => {
    const s = await scriptHost({ up: '/nonexistent/up' }, { exec: recorder(true) });
    assert.equal(s.host.status()[0]!.ready, false);
    assert.deepEqual(s.demotions, ['carp boot:plugins 240']);
    assert.equal(s.hooks[0]!.error?.code, 'CARPD_ERR_HOOK_FAILED');
    await s.host.stop();
    assert.deepEqual(s.demotions, ['carp boot:plugins 240', 'carp boot:plugins 0'], 'released at stop');
  });

  it('runs a real executable with its arguments and a scrubbed environment', async () => {
    const out = join(tmp, 'out');
    const script = join(tmp, 'up.sh');
    writeFileSync(script, `#!/bin/sh\necho "$@" "$CARPD_STATE" "\${HOME:-nohome}" > ${out}\n`);
    chmodSync(script, 0o755);
    const s = await scriptHost({ up: script, xparam: 'x y' }, { exec: groupExec });
    await s.go('1@eth0', 'BACKUP', 'MASTER');
    assert.equal(readFileSync(out, 'utf8'), 'eth0 198.18.0.101 x y MASTER nohome\n');
    await s.host.stop();
  });
});
