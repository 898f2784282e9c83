import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { PluginConfig } from '../../src/config/model.js';
import { startPluginHost } from '../../src/daemon/plugins.js';
import { PluginsInvalidError } from '../../src/host/errors.js';
import { discoverPlugins, loadPlugins, orderPlugins, preparePlugin, type LoadedPlugin } from '../../src/host/loader.js';
import type { OsName } from '../../src/render/os.js';
import { Templates } from '../../src/adapters/templates.js';
import { silent, Sim, vhidCfg } from '../helpers/fake-wire.js';
import { config, FIXTURES, modelOf, ROOT } from '../fixtures/plugins/kit.js';
import { loaderPorts } from '../helpers/host-defaults.js';

const OK = join(FIXTURES, 'ok');
const BAD = join(FIXTURES, 'bad');
const lan = { kind: 'vhid', ref: '1@eth0' } as const;
const vhids = [vhidCfg(1, 0), vhidCfg(2, 0, { groups: ['wan'] })];

async function load(plugins: PluginConfig[], dirs: { builtin?: string; operator?: string } = { builtin: OK }, os: OsName = 'linux'): Promise<LoadedPlugin[]> {
  return loadPlugins(modelOf(vhids, { plugins }), { ...loaderPorts, dirs, os, templates: new Templates({ builtin: join(FIXTURES, 'templates') }, os) });
}

async function codes(plugins: PluginConfig[], dirs?: { builtin?: string; operator?: string }, os?: OsName): Promise<string[]> {
  try {
    await load(plugins, dirs, os);
  } catch (e) {
    assert.ok(e instanceof PluginsInvalidError, String(e));
    return e.errors.map((x) => `${x.plugin} ${x.code}`).sort();
  }
  assert.fail('expected start-up to refuse');
}

describe('plugin loader', () => {
  it('loads configured plugins in dependency order, ties broken by name', async () => {
    const ps = await load(['gamma', 'steps', 'beta', 'alpha'].map((n) => config(n, lan)));
    assert.deepEqual(
      ps.map((p) => p.name),
      ['alpha', 'beta', 'steps', 'gamma'],
    );
    assert.equal(ps[0]!.origin, 'builtin');
    assert.equal(ps[0]!.timeoutMs, 10_000);
    assert.deepEqual(ps[0]!.policy, { kind: 'ignore' });
  });

  it('an unconfigured plugin named in `after` only has to exist', async () => {
    const ps = await load([config('gamma', lan)]);
    assert.deepEqual(
      ps.map((p) => p.name),
      ['gamma'],
    );
  });

  it('reports every problem at once, each with its code', async () => {
    const names = ['wrong-name', 'unknown-hook', 'missing-dep', 'bsd-only', 'throws', 'cycle-a', 'cycle-b', 'not-object', 'nowhere'];
    assert.deepEqual(
      await codes(
        names.map((n) => config(n, lan)),
        { builtin: BAD },
      ),
      [
        'bsd-only CARPD_ERR_PLUGIN_OS',
        'cycle-a CARPD_ERR_PLUGIN_CYCLE',
        'missing-dep CARPD_ERR_PLUGIN_API',
        'missing-dep CARPD_ERR_PLUGIN_DECLARATION',
        'missing-dep CARPD_ERR_PLUGIN_DEPENDENCY',
        'not-object CARPD_ERR_PLUGIN_LOAD',
        'nowhere CARPD_ERR_PLUGIN_UNKNOWN',
        'throws CARPD_ERR_PLUGIN_LOAD',
        'unknown-hook CARPD_ERR_PLUGIN_HOOK',
        'unknown-hook CARPD_ERR_PLUGIN_HOOK',
        'wrong-name CARPD_ERR_PLUGIN_NAME',
      ],
    );
  });

  it('names the cycle and the unsupported OS in words an operator can act on', async () => {
    await assert.rejects(load([config('cycle-a', lan), config('cycle-b', lan), config('bsd-only', lan)], { builtin: BAD }), (e: Error) => {
      assert.match(e.message, /cycle-a → cycle-b → cycle-a/);
      assert.match(e.message, /bsd-only: does not run on linux \(it supports freebsd, openbsd\)/);
      return true;
    });
    assert.equal((await load([config('bsd-only', lan)], { builtin: BAD }, 'openbsd')).length, 1);
  });

  it('a plugin in both the built-in and the operator directory is refused', async () => {
    assert.deepEqual(
      discoverPlugins({ builtin: OK, operator: join(FIXTURES, 'dup') }, (dir) => loaderPorts.listFolders(dir)).errors.map((e) => e.code),
      ['CARPD_ERR_PLUGIN_DUPLICATE'],
    );
    assert.deepEqual(await codes([config('alpha', lan)], { builtin: OK, operator: join(FIXTURES, 'missing-dir') }), ['* CARPD_ERR_PLUGIN_LOAD']);
  });

  it('checks options against the declaration: unknown, required, values and pattern; applies defaults', async () => {
    const node = { kind: 'node' } as const;
    assert.deepEqual(await codes([config('delta', node, { options: { prot: '80' } })]), ['delta CARPD_ERR_PLUGIN_OPTION', 'delta CARPD_ERR_PLUGIN_OPTION']);
    assert.deepEqual(await codes([config('delta', node, { options: { port: 'x80', mode: 'warp' } })]), [
      'delta CARPD_ERR_PLUGIN_OPTION',
      'delta CARPD_ERR_PLUGIN_OPTION',
    ]);
    const [d] = await load([config('delta', node, { options: { port: '80', health_interval: '5s', health_rise: '3' } })]);
    assert.deepEqual(d!.options, { mode: 'fast', port: '80' }, "health_* is the host's, not the plugin's");
    assert.deepEqual(d!.health, { intervalMs: 5000, rise: 3, fall: 1 });
    assert.deepEqual(await codes([config('delta', node, { options: { port: '80', health_schedule: 'not cron' } })]), ['delta CARPD_ERR_PLUGIN_HEALTH']);
    const [c] = await load([config('delta', node, { options: { port: '80', health_schedule: '*/5 * * * * *' } })]);
    assert.deepEqual(c!.health, { schedule: '*/5 * * * * *', rise: 1, fall: 1 });
    assert.deepEqual(await codes([config('alpha', lan, { options: { health_interval: '5' } })]), ['alpha CARPD_ERR_PLUGIN_OPTION']);
  });

  it('resolves what a plugin follows, and refuses a scope it does not take', async () => {
    const [a, b, c] = await load([config('alpha', lan), config('beta', { kind: 'group', group: 'wan' }), config('steps', { kind: 'node' })]);
    assert.deepEqual([a!.scope.key, a!.scope.vhids], ['vhid:1@eth0', ['1@eth0']]);
    assert.deepEqual([b!.scope.key, b!.scope.vhids, b!.scope.group], ['group:wan', ['2@eth0'], 'wan']);
    assert.deepEqual([c!.scope.key, c!.scope.vhids, c!.scope.group], ['node', ['1@eth0', '2@eth0'], 'carp']);
    assert.deepEqual(await codes([config('alpha', { kind: 'vhid', ref: '9@eth0' }), config('beta', { kind: 'group', group: 'dmz' })]), [
      'alpha CARPD_ERR_PLUGIN_FOLLOW',
      'beta CARPD_ERR_PLUGIN_FOLLOW',
    ]);
    assert.deepEqual(await codes([config('delta', lan, { options: { port: '1' } })]), ['delta CARPD_ERR_PLUGIN_FOLLOW']);
  });

  it('finds declared templates (in the plugin folder too) per OS, and refuses a missing one', async () => {
    assert.equal((await load([config('files', lan)])).length, 1);
    assert.equal((await load([config('steps', lan)], { builtin: OK }, 'freebsd')).length, 1);
    const t = new Templates({}, 'linux');
    const r = preparePlugin({ name: 'x', apiVersion: 1, templates: ['nope.conf'], hooks: {} }, config('x', lan), {
      ...loaderPorts,
      model: modelOf(vhids),
      os: 'linux',
      templates: t,
      known: new Set(['x']),
    });
    assert.deepEqual(
      r.errors.map((e) => e.code),
      ['CARPD_ERR_PLUGIN_TEMPLATE'],
    );
  });

  it('checks the declaration itself: unknown fields, name, configured name', () => {
    const t = new Templates({}, 'linux');
    const prep = (decl: unknown, name = 'x') =>
      preparePlugin(decl, config(name, lan), { ...loaderPorts, model: modelOf(vhids), os: 'linux', templates: t, known: new Set([name]) }).errors.map(
        (e) => e.code,
      );
    assert.deepEqual(prep({ name: 'x', apiVersion: 1, hooks: {}, hook: {} }), ['CARPD_ERR_PLUGIN_DECLARATION']);
    assert.deepEqual(prep({ name: 'Bad_Name', apiVersion: 1, hooks: {} }, 'Bad_Name'), ['CARPD_ERR_PLUGIN_NAME']);
    assert.deepEqual(prep({ name: 'y', apiVersion: 1, hooks: {} }), ['CARPD_ERR_PLUGIN_NAME']);
    assert.deepEqual(prep({ name: 'x', apiVersion: 1, hooks: {}, after: ['x'] }), ['CARPD_ERR_PLUGIN_CYCLE']);
    assert.deepEqual(prep({ name: 'x', apiVersion: 1, hooks: { teardown: () => 1, checkHealth: () => true } }), []);
  });

  it('orderPlugins puts dependencies first and breaks ties by name', () => {
    const mk = (name: string, after: string[] = []) => ({ name, decl: { name, apiVersion: 1, after, hooks: {} } }) as unknown as LoadedPlugin;
    const { ordered, errors } = orderPlugins([mk('nat'), mk('bgpd', ['httpd', 'nat']), mk('httpd', ['nat', 'pfsync']), mk('pfsync'), mk('script')]);
    assert.deepEqual(errors, []);
    assert.deepEqual(
      ordered.map((p) => p.name),
      ['nat', 'pfsync', 'httpd', 'bgpd', 'script'],
    );
  });

  it('the built-in script plugin loads, and refuses a bad option at start-up', async () => {
    const dirs = { builtin: join(ROOT, 'plugins') };
    const [s] = await load([config('script', lan, { options: { up: '/usr/local/bin/up', xparam: 'x' } })], dirs);
    assert.deepEqual(s!.options, { style: 'ucarp', up: '/usr/local/bin/up', xparam: 'x', neutral: 'no', shutdown: 'yes', when: 'post' });
    assert.deepEqual(await codes([config('script', lan, { options: { up: 'relative/path', style: 'vrrp' } })], dirs), [
      'script CARPD_ERR_PLUGIN_OPTION',
      'script CARPD_ERR_PLUGIN_OPTION',
    ]);
  });

  it('startPluginHost refuses to start with every plugin and health problem listed; on success it attaches and detaches', async () => {
    const sim = new Sim();
    const node = sim.add('a', 1, vhids);
    const bad = modelOf(vhids, {
      plugins: [config('nowhere', lan)],
      health: [{ name: 'gw', command: ['true'], schedule: 'every tuesday', rise: 1, fall: 1, demote: 10, group: 'carp', source: 't:2' }],
    });
    await assert.rejects(
      startPluginHost(node.engine, bad, silent, { os: 'linux', builtinPluginDir: OK, builtinTemplateDir: join(FIXTURES, 'templates') }),
      (e: Error) => {
        assert.ok(e instanceof PluginsInvalidError);
        assert.deepEqual(e.errors.map((x) => x.code).sort(), ['CARPD_ERR_PLUGIN_HEALTH', 'CARPD_ERR_PLUGIN_UNKNOWN']);
        return true;
      },
    );
    assert.equal(node.engine.listenerCount('transition'), 1, "nothing attached but the Sim's own listener");
    const good = modelOf(vhids, { plugins: [config('alpha', lan)] });
    const { host, stop } = await startPluginHost(node.engine, good, silent, {
      os: 'linux',
      builtinPluginDir: OK,
      builtinTemplateDir: join(FIXTURES, 'templates'),
      inProcess: true,
    });
    assert.equal(node.engine.listenerCount('transition'), 2);
    assert.deepEqual(
      host.status().map((p) => p.name),
      ['alpha'],
    );
    await stop();
    assert.equal(node.engine.listenerCount('transition'), 1);
  });
});
