/**
 * The plugin host behind messages (what the child process runs): it loads the plugins from
 * `init`, answers each transition's pre-phase, starts post-phases only once the daemon reports
 * the VIP step done, relays demotions and hook records, and drops malformed messages.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CarpModel } from '../../src/config/model.js';
import { HostService } from '../../src/host/host-service.js';
import type { FromChild } from '../../src/host/messages.js';
import type { TransitionEvent } from '../../src/ports/state-source.js';
import { recordingExec, settle } from '../fixtures/plugins/kit.js';
import { hostDefaults } from '../helpers/host-defaults.js';

const KEY = '1@eth0';
const tmp = mkdtempSync(join(tmpdir(), 'carpd-host-service-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const pluginDir = join(tmp, 'plugins');
mkdirSync(join(pluginDir, 'rec'), { recursive: true });
writeFileSync(
  join(pluginDir, 'rec', 'plugin.js'),
  `export default { name: 'rec', apiVersion: 1, hooks: {
  'pre-master': (ctx) => ctx.exec(['pre', String(ctx.event.seq)]),
  master: async (ctx) => { await ctx.exec(['post', String(ctx.event.seq)]); ctx.demote(9); },
} };\n`,
);

function model(plugins = [{ name: 'rec', follow: { kind: 'vhid' as const, ref: KEY }, options: {}, source: 't:2' }]): CarpModel {
  return {
    global: { allow: true, preempt: false, log: 7, pluginDir },
    vhids: [{ key: KEY, vhid: 1, interface: 'eth0', addresses: ['192.0.2.1/24'], advbase: 1, advskew: 0, password: '', source: 't:1' }],
    plugins,
  };
}

const ev = (seq: number, from: TransitionEvent['from'], to: TransitionEvent['to']): TransitionEvent => ({
  seq,
  time: '2026-01-01T00:00:00.000Z',
  vhid: 1,
  interface: 'eth0',
  key: KEY,
  from,
  to,
  reason: 'test',
});

async function until(what: string, pred: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(pred(), what);
}

describe('host service (the child side)', () => {
  it('answers the pre-phase, runs the post-phase only after vip-settled, and relays demotions and hook records', async () => {
    const out: FromChild[] = [];
    const exec = recordingExec();
    const svc = new HostService((m) => out.push(m), { ...hostDefaults(), exec });
    // Messages before init are kept until the host exists.
    svc.receive({ type: 'transition', ev: ev(1, 'INIT', 'BACKUP'), states: [] });
    svc.receive({ type: 'vip-settled', seq: 1, key: KEY });
    svc.receive({ type: 'init', model: model(), states: [{ key: KEY, state: 'INIT' }], os: 'linux', options: { retryDelayMs: 0 } });
    await until('ready', () => out.some((m) => m.type === 'ready'));
    assert.deepEqual(
      out.find((m) => m.type === 'ready'),
      { type: 'ready', plugins: ['rec'], gated: [KEY] },
    );
    await until('setup done', () => out.some((m) => m.type === 'setup-done'));
    svc.receive({ type: 'transition', ev: ev(2, 'BACKUP', 'MASTER'), states: [] });
    await until('pre-phase done', () => out.some((m) => m.type === 'pre-phase-done' && m.seq === 2));
    await settle(10);
    assert.deepEqual(exec.calls, [['pre', '2']], 'no master hook before the VIP step is done');
    svc.receive({ type: 'vip-settled', seq: 2, key: KEY });
    await until('master hook', () => exec.calls.length === 2);
    assert.deepEqual(exec.calls[1], ['post', '2']);
    await until('demotion relayed', () => out.some((m) => m.type === 'demote' && m.by === 'plugin:rec:self'));
    assert.deepEqual(
      out.filter((m) => m.type === 'demote'),
      [
        { type: 'demote', group: 'carp', by: 'boot:plugins', count: 240 },
        { type: 'demote', group: 'carp', by: 'boot:plugins', count: 0 },
        { type: 'demote', group: 'carp', by: 'plugin:rec:self', count: 9 },
      ],
    );
    const hooks = out
      .filter((m): m is Extract<FromChild, { type: 'hook' }> => m.type === 'hook')
      .map((m) => `${m.record.hook} ${m.record.seq} ${m.record.result}`);
    assert.deepEqual(hooks, ['pre-master 2 ok', 'master 2 ok']);
    svc.receive({ type: 'ping', n: 4 });
    assert.deepEqual(out.at(-1), { type: 'pong', n: 4 });
    svc.receive({ type: 'stop' });
    await svc.done;
    assert.deepEqual(out.at(-1), { type: 'stopped' });
    assert.ok(
      out.some((m) => m.type === 'demote' && m.by === 'plugin:rec:self' && m.count === 0),
      'its demotions undone at stop',
    );
  });

  it('reports load problems instead of starting, and drops malformed messages', async () => {
    const out: FromChild[] = [];
    const svc = new HostService((m) => out.push(m), hostDefaults());
    svc.receive({ type: 'transition', ev: { seq: 'x' }, states: [] });
    svc.receive(null);
    assert.equal(out.filter((m) => m.type === 'log').length, 2);
    svc.receive({
      type: 'init',
      model: model([{ name: 'nowhere', follow: { kind: 'vhid', ref: KEY }, options: {}, source: 't:9' }]),
      states: [],
      os: 'linux',
      options: {},
    });
    await svc.done;
    const failed = out.find((m) => m.type === 'load-failed');
    assert.ok(failed && failed.type === 'load-failed');
    assert.deepEqual(
      failed.errors.map((e) => e.code),
      ['CARPD_ERR_PLUGIN_UNKNOWN'],
    );
  });
});
