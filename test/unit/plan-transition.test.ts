/** `carpd plan`: the steps it shows are the steps a real transition then takes. */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CarpModel } from '../../src/config/model.js';
import { planCommand } from '../../src/cli/plan.js';
import { startPluginHost } from '../../src/daemon/plugins.js';
import type { HostFs } from '../../src/ports/fs.js';
import { realFs } from '../../src/adapters/host-fs.js';
import type { ExecPort, HostRunOptions } from '../../src/ports/exec.js';
import { formatPlan, planTransition, type PlanStep } from '../../src/host/plan.js';
import { silent, Sim, vhidCfg } from '../helpers/fake-wire.js';
import { config, fakeTimers, FIXTURES, modelOf, ROOT, settle } from '../fixtures/plugins/kit.js';

const tmp = mkdtempSync(join(tmpdir(), 'carpd-plan-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const KEY = '1@eth0';
const OK = join(FIXTURES, 'ok');
const TEMPLATES = join(FIXTURES, 'templates');

function model(): CarpModel {
  const vhids = [vhidCfg(1, 0)];
  return modelOf(
    vhids,
    {
      plugins: [
        config('script', { kind: 'vhid', ref: KEY }, { options: { up: '/usr/local/bin/vip-up', down: '/usr/local/bin/vip-down', xparam: 'lan' } }),
        config('steps', { kind: 'node' }, { options: { table: 'nat' } }),
      ],
    },
    { pluginDir: join(ROOT, 'plugins') },
  );
}

type Seen = Pick<PlanStep, 'phase' | 'plugin' | 'kind' | 'argv' | 'path' | 'changed'>;

/** A real node whose plugin host records commands and writes (under `root`), by hook. */
async function realNode(root: string) {
  const m = model();
  const sim = new Sim();
  const node = sim.add('a', 1, m.vhids, {});
  const seen: Seen[] = [];
  const exec: ExecPort = {
    async run(argv: readonly string[], o: HostRunOptions) {
      if (o.tag) seen.push({ phase: o.tag.hook as PlanStep['phase'], plugin: o.tag.plugin, kind: 'exec', argv: [...argv] });
      return { exitCode: 0, stdout: '', stderr: '', timedOut: false, canceled: false };
    },
  };
  const files = realFs(root);
  const fs: HostFs = {
    read: (path) => files.read(path),
    async write(path, content, wopts, tag) {
      const r = await files.write(path, content, wopts);
      if (tag) seen.push({ phase: tag.hook as PlanStep['phase'], plugin: tag.plugin, kind: 'file', path, changed: r.changed });
      return r;
    },
  };
  const { host, stop } = await startPluginHost(node.engine, m, silent, {
    os: 'linux',
    builtinPluginDir: OK,
    builtinTemplateDir: TEMPLATES,
    exec,
    fs,
    timers: fakeTimers(sim.time),
    inProcess: true,
  });
  const step = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      sim.time.advance(10);
      await settle(3);
      await host.idle();
    }
  };
  return { m, sim, node, host, stop, seen, step };
}

const comparable = (steps: PlanStep[]): Seen[] =>
  steps
    .filter((s) => s.kind !== 'vip')
    .map(
      (s) =>
        ({
          phase: s.phase,
          plugin: s.plugin!,
          kind: s.kind,
          ...(s.argv ? { argv: s.argv } : {}),
          ...(s.path ? { path: s.path, changed: s.changed! } : {}),
        }) as Seen,
    );

describe('carpd plan', () => {
  for (const to of ['MASTER', 'BACKUP'] as const) {
    it(`shows exactly what a real transition to ${to} then does, in order, files included`, async () => {
      const realRoot = mkdtempSync(join(tmp, 'real-'));
      const planRoot = mkdtempSync(join(tmp, 'plan-'));
      const real = await realNode(realRoot);
      real.node.engine.start();
      await real.step(100);
      if (to === 'BACKUP') {
        real.node.engine.force(KEY, 'MASTER');
        await real.step(100);
      }
      // The plan starts from the same files the real node has now.
      cpSync(realRoot, planRoot, { recursive: true });
      const plan = await planTransition(real.m, { key: KEY, to, os: 'linux', root: planRoot, builtinPluginDir: OK, builtinTemplateDir: TEMPLATES });
      real.seen.length = 0;
      real.node.engine.force(KEY, to, 'admin', to === 'BACKUP' ? 1e9 : undefined);
      await real.step(100);

      // Scopes run independently (script follows the vhid, steps the node), so the real run may
      // interleave them; each plugin's own steps come in exactly the planned order.
      const planned = comparable(plan.steps);
      for (const plugin of ['script', 'steps']) {
        assert.deepEqual(
          real.seen.filter((s) => s.plugin === plugin),
          planned.filter((s) => s.plugin === plugin),
          plugin,
        );
      }
      assert.equal(real.seen.length, planned.length);
      assert.ok(real.seen.length >= 4, 'the comparison covers commands and a file');
      assert.equal(readFileSync(join(planRoot, 'etc/steps/rules.conf'), 'utf8'), readFileSync(join(realRoot, 'etc/steps/rules.conf'), 'utf8'));
      const phases = plan.steps.map((s) => s.phase);
      const vip = phases.indexOf('vip');
      assert.ok(
        vip > phases.lastIndexOf(to === 'MASTER' ? 'pre-master' : 'pre-backup') && vip < phases.indexOf(to === 'MASTER' ? 'master' : 'backup'),
        phases.join(' '),
      );
      assert.deepEqual(plan.scopes, [`vhid:${KEY}`, 'node']);
      await real.stop();
    });
  }

  it('executes nothing and writes nothing without --root; shows the diff', async () => {
    const m = model();
    const plan = await planTransition(m, { key: KEY, to: 'MASTER', os: 'linux', builtinPluginDir: OK, builtinTemplateDir: TEMPLATES });
    assert.equal(existsSync('/etc/steps/rules.conf'), false);
    const file = plan.steps.find((s) => s.kind === 'file')!;
    assert.equal(file.path, '/etc/steps/rules.conf');
    assert.equal(file.changed, true);
    assert.match(
      file.diff!,
      /^--- \/dev\/null\n\+\+\+ \/etc\/steps\/rules.conf\n@@ -0,0 \+1,3 @@\n\+table ip nat \{\n\+ {2}dnat to "198.18.0.101" # on "eth0"\n\+\}\n$/,
    );
    const text = formatPlan(plan).join('\n');
    assert.match(text, /^plan: 1@eth0 BACKUP -> MASTER on linux; scopes: vhid:1@eth0, node$/m);
    assert.match(text, /^ {2}\d+ {2}vip +core +add 198\.18\.0\.101\/24 on eth0; gratuitous ARP$/m);
    assert.match(text, /^ {2}\d+ {2}master +script +exec \/usr\/local\/bin\/vip-up eth0 198\.18\.0\.101 lan$/m);
  });

  it('shows a failing hook as an error step', async () => {
    const m = model();
    m.plugins = [config('files', { kind: 'vhid', ref: KEY }, { options: { site: 'a\nb' } })];
    const plan = await planTransition(m, { key: KEY, to: 'MASTER', os: 'linux', builtinPluginDir: OK, builtinTemplateDir: TEMPLATES });
    assert.deepEqual(
      plan.steps.filter((s) => s.kind === 'error').map((s) => [s.phase, s.plugin, s.error!.code]),
      [['render', 'files', 'CARPD_ERR_HOOK_FAILED']],
    );
  });
});

describe('carpd plan command', () => {
  const conf = join(tmp, 'carpd.conf');
  writeFileSync(
    conf,
    `[carpd]\nplugin_dir = ${OK}\ntemplate_dir = ${TEMPLATES}\n\n[vhid.lan]\nvhid = 1\ninterface = eth0\naddress = 192.168.1.254/24\npass = secret\n\n` +
      `[plugin.script]\nfollow = lan\nup = /usr/local/bin/vip-up\ndown = /usr/local/bin/vip-down\n\n[plugin.steps]\nfollow = node\n`,
  );
  chmodSync(conf, 0o600);

  async function cli(args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await planCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out, err };
  }

  it('prints every step in order', async () => {
    const r = await cli(['-c', conf, '--vhid', '1@eth0', '--to', 'MASTER']);
    assert.deepEqual(r.err, []);
    assert.equal(r.code, 0);
    const lines = r.out.filter((l) => /^ {2}\d/.test(l)).map((l) => l.trim().split(/\s+/).slice(1, 4).join(' '));
    assert.deepEqual(
      lines,
      ['render steps file', 'pre-master steps exec', 'vip core add', 'master script exec', 'master steps exec', 'master steps exec'],
      'phase by phase; within one, plugins in dependency order (here: by name)',
    );
  });

  it('--json gives the same steps as data; --root renders the files there', async () => {
    const root = mkdtempSync(join(tmp, 'cli-root-'));
    const r = await cli(['-c', conf, '--vhid', '1@eth0', '--to', 'backup', '--json', '--root', root, '--os', 'openbsd']);
    assert.equal(r.code, 0);
    const plan = JSON.parse(r.out.join('\n')) as { to: string; os: string; steps: PlanStep[] };
    assert.equal(plan.to, 'BACKUP');
    assert.equal(plan.os, 'openbsd');
    assert.deepEqual(
      plan.steps.map((s) => `${s.phase} ${s.plugin ?? 'core'} ${s.argv?.join(' ') ?? s.path ?? s.text}`),
      [
        'render steps /etc/steps/rules.conf',
        'pre-backup steps service steps stop',
        'vip core remove 192.168.1.254/24 from eth0',
        'backup steps nft delete table ip carpd',
        'backup script /usr/local/bin/vip-down eth0 192.168.1.254',
      ],
      'going down: reverse order',
    );
    assert.match(readFileSync(join(root, 'etc/steps/rules.conf'), 'utf8'), /# backup: no rules/);
  });

  it('refuses bad usage (2), an unknown vhid (1), and invalid plugins (1, with codes)', async () => {
    assert.equal((await cli(['-c', conf, '--vhid', '1@eth0'])).code, 2);
    assert.equal((await cli(['-c', conf, '--vhid', '1@eth0', '--to', 'MASTER', '--os', 'windows'])).code, 2);
    const unknown = await cli(['-c', conf, '--vhid', '7@eth9', '--to', 'MASTER']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err.join('\n'), /no vhid 7@eth9/);
    const bad = join(tmp, 'bad.conf');
    writeFileSync(bad, readFileSync(conf, 'utf8') + '\n[plugin.nonesuch]\nfollow = node\n');
    chmodSync(bad, 0o600);
    const r = await cli(['-c', bad, '--vhid', '1@eth0', '--to', 'MASTER']);
    assert.equal(r.code, 1);
    assert.match(r.err.join('\n'), /plugin nonesuch: is not installed .*\[CARPD_ERR_PLUGIN_UNKNOWN\]/);
  });
});
