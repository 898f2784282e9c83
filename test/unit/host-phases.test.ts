/**
 * The plugin host on real engines over the fake wire and clock: phases around the VIP step,
 * dependency order, scopes, coalescing under flapping, failure policies, boot and health.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CarpModel, FailurePolicy, Follow, HealthConfig, VhidConfig } from '../../src/config/model.js';
import { HealthChecks } from '../../src/daemon/health-checks.js';
import { attachHost } from '../../src/daemon/plugins.js';
import { realFs } from '../../src/adapters/host-fs.js';
import { PluginHost, type HealthRecord, type RunRecord } from '../../src/host/host.js';
import type { HookRecord } from '../../src/host/log.js';
import { sleep, type HostTimers } from '../../src/ports/timers.js';
import type { CarpState, PluginContext, PluginDeclaration } from '../../src/host/types.js';
import { Templates } from '../../src/adapters/templates.js';
import { silent, Sim, vhidCfg, type SimNode } from '../helpers/fake-wire.js';
import { config, fakeTimers, loaded, ManualScheduler, modelOf, recordingExec, settle, type RecordingExec } from '../fixtures/plugins/kit.js';
import { hostDefaults } from '../helpers/host-defaults.js';

const KEY = '1@eth0';
const lan: Follow = { kind: 'vhid', ref: KEY };
const HOLD = 1e9;
const tmp = mkdtempSync(join(tmpdir(), 'carpd-phases-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Rig {
  sim: Sim;
  node: SimNode;
  host: PluginHost;
  model: CarpModel;
  exec: RecordingExec;
  timers: HostTimers;
  scheduler: ManualScheduler;
  hooks: HookRecord[];
  runs: RunRecord[];
  stop(): Promise<void>;
}

interface RigOptions {
  vhids?: VhidConfig[];
  global?: Partial<CarpModel['global']>;
  health?: HealthConfig[];
  exec?: RecordingExec;
  sim?: Sim;
  name?: string;
  index?: number;
  setupRetryMs?: number;
  logSize?: number;
  root?: string;
}

type PluginSpec = [PluginDeclaration, Follow?, { onFailure?: FailurePolicy; timeoutMs?: number; options?: Record<string, string> }?];

/** One simulated node with a plugin host attached the way startPluginHost attaches it. */
function rig(specs: PluginSpec[], o: RigOptions = {}): Rig {
  const sim = o.sim ?? new Sim();
  const vhids = o.vhids ?? [vhidCfg(1, 0)];
  const node = sim.add(o.name ?? 'a', o.index ?? 1, vhids, { preempt: true, ...o.global });
  const model = modelOf(vhids, o.health ? { health: o.health } : {}, { preempt: true, ...o.global });
  const timers = fakeTimers(sim.time);
  const exec = o.exec ?? recordingExec();
  const scheduler = new ManualScheduler();
  const plugins = specs.map(([d, follow, over]) => loaded(d, config(d.name, follow ?? lan, over ?? {}), model));
  const host = new PluginHost({
    ...hostDefaults(),
    model,
    plugins,
    engine: node.engine,
    logger: silent,
    templates: new Templates({}, 'linux'),
    os: 'linux',
    exec,
    timers,
    scheduler,
    retryDelayMs: 0,
    ...(o.setupRetryMs ? { setupRetryMs: o.setupRetryMs } : {}),
    ...(o.logSize ? { logSize: o.logSize } : {}),
    ...(o.root ? { fs: realFs(o.root) } : {}),
  });
  const hooks: HookRecord[] = [];
  const runs: RunRecord[] = [];
  host.on('hook', (h: HookRecord) => hooks.push(h));
  host.on('run', (r: RunRecord) => runs.push(r));
  const attached = attachHost(node.engine, host, 50);
  // `[health.NAME]` checks run beside the host, in the daemon, as startPluginHost runs them.
  const checks = new HealthChecks({ checks: o.health ?? [], source: node.engine, exec, scheduler, logger: silent, logLevel: () => model.global.log });
  checks.start();
  const stop = async () => {
    checks.stop();
    await attached.stop();
  };
  return { sim, node, host, model, exec, timers, scheduler, hooks, runs, stop };
}

/** Advances simulated time in steps, letting the host's promises run in between. */
async function run(sim: Sim, ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    sim.time.advance(Math.min(step, ms - t));
    await settle(4);
  }
}

/** A plugin that logs every hook with whether the VIP is on the interface. */
function logging(name: string, log: string[], node: () => SimNode, after: string[] = []): PluginDeclaration {
  const h = (hook: string) => (ctx: PluginContext) => void log.push(`${hook} ${name} ${ctx.event.target} vip=${node().net.vips.size}`);
  return {
    name,
    apiVersion: 1,
    after,
    hooks: { render: h('render'), 'pre-master': h('pre-master'), master: h('master'), 'pre-backup': h('pre-backup'), backup: h('backup') },
  };
}

describe('phases and order', () => {
  it('going MASTER: render, pre-master, VIP, master in dependency order; going BACKUP: the reverse, VIP released after pre-backup', async () => {
    const log: string[] = [];
    const n = () => r.node;
    // Declared out of order on purpose: the host orders them (b after a, c after b).
    const r: Rig = rig([[logging('c', log, n, ['b'])], [logging('a', log, n)], [logging('b', log, n, ['a'])]]);
    r.node.engine.start();
    await run(r.sim, 100);
    log.length = 0;
    // The boot demotion (lifted at once: no setup hooks) lengthened the first master-down time.
    await run(r.sim, 4100);
    assert.equal(r.sim.state('a', KEY), 'MASTER');
    assert.deepEqual(log, [
      'render a MASTER vip=0',
      'render b MASTER vip=0',
      'render c MASTER vip=0',
      'pre-master a MASTER vip=0',
      'pre-master b MASTER vip=0',
      'pre-master c MASTER vip=0',
      'master a MASTER vip=1',
      'master b MASTER vip=1',
      'master c MASTER vip=1',
    ]);
    log.length = 0;
    r.node.engine.force(KEY, 'BACKUP', 'user requested', HOLD);
    await run(r.sim, 100);
    assert.deepEqual(log, [
      'render c BACKUP vip=1',
      'render b BACKUP vip=1',
      'render a BACKUP vip=1',
      'pre-backup c BACKUP vip=1',
      'pre-backup b BACKUP vip=1',
      'pre-backup a BACKUP vip=1',
      'backup c BACKUP vip=0',
      'backup b BACKUP vip=0',
      'backup a BACKUP vip=0',
    ]);
    await r.stop();
  });

  it('the advert never waits for a slow pre-master; the VIP waits at most the budget', async () => {
    let release!: () => void;
    const slow: PluginDeclaration = { name: 'slow', apiVersion: 1, hooks: { 'pre-master': () => new Promise<void>((ok) => (release = ok)) } };
    const r = rig([[slow]]);
    r.node.engine.start();
    await run(r.sim, 100);
    const sent = r.sim.wire.sent;
    r.node.engine.force(KEY, 'MASTER');
    assert.equal(r.sim.wire.sent, sent + 1, 'advert sent at once');
    await settle(4);
    assert.equal(r.node.net.vips.size, 0, 'VIP held for the pre-phase');
    await run(r.sim, 80);
    assert.equal(r.node.net.vips.size, 1, 'VIP added after the 50 ms budget anyway');
    release();
    await run(r.sim, 100);
    await r.stop();
  });

  it('INIT (link down, shutdown) runs pre-backup then init, or backup when the plugin has no init', async () => {
    const log: string[] = [];
    const withInit: PluginDeclaration = {
      name: 'x',
      apiVersion: 1,
      hooks: { 'pre-backup': (c) => void log.push(`pre-backup x ${c.event.target}`), init: (c) => void log.push(`init x ${c.event.target}`) },
    };
    const noInit: PluginDeclaration = { name: 'y', apiVersion: 1, hooks: { backup: (c) => void log.push(`backup y ${c.event.target} ${c.event.reason}`) } };
    const r = rig([[withInit], [noInit]]);
    r.node.engine.start();
    await run(r.sim, 100);
    r.node.engine.force(KEY, 'MASTER');
    await run(r.sim, 100);
    log.length = 0;
    r.node.net.setLink('eth0', false);
    await run(r.sim, 100);
    assert.deepEqual(log, ['pre-backup x INIT', 'backup y INIT hardware interface down', 'init x INIT']);
    await r.stop();
  });
});

describe('scopes', () => {
  it('a node-scoped plugin is MASTER only when every vhid is MASTER; a vhid-scoped one follows its vhid', async () => {
    const targets: string[] = [];
    const rec = (name: string): PluginDeclaration => ({
      name,
      apiVersion: 1,
      hooks: { master: () => void targets.push(`${name} MASTER`), backup: (c) => void targets.push(`${name} ${c.event.target}`) },
    });
    const vhids = [vhidCfg(1, 0), vhidCfg(2, 0, { interface: 'eth1', groups: ['wan'] })];
    const r = rig(
      [
        [rec('node-wide'), { kind: 'node' }],
        [rec('wan-only'), { kind: 'group', group: 'wan' }],
        [rec('lan-only'), lan],
      ],
      { vhids },
    );
    r.node.engine.start();
    await run(r.sim, 100);
    targets.length = 0;
    r.node.engine.force(KEY, 'MASTER');
    await run(r.sim, 100);
    assert.deepEqual(targets, ['lan-only MASTER'], 'the node is not MASTER while 2@eth1 is BACKUP');
    r.node.engine.force('2@eth1', 'MASTER');
    await run(r.sim, 100);
    assert.deepEqual(targets.sort(), ['lan-only MASTER', 'node-wide MASTER', 'wan-only MASTER']);
    targets.length = 0;
    r.node.engine.force(KEY, 'BACKUP', 'user requested', HOLD);
    await run(r.sim, 100);
    assert.deepEqual(targets.sort(), ['lan-only BACKUP', 'node-wide BACKUP']);
    await r.stop();
  });
});

describe('coalescing', () => {
  /** A service whose start and stop take `ms` of simulated time; it records what it completed. */
  function service(ms: () => number, done: string[], timers: () => HostTimers): PluginDeclaration {
    const act = (what: string) => async (ctx: PluginContext) => {
      await sleep(timers(), ms());
      done.push(`${what} ${ctx.event.seq}`);
    };
    return { name: 'svc', apiVersion: 1, hooks: { master: act('start'), backup: act('stop') } };
  }

  async function flap(r: Rig, count: number, gapMs: number): Promise<CarpState> {
    let last: CarpState = 'BACKUP';
    for (let i = 0; i < count; i++) {
      last = i % 2 === 0 ? 'MASTER' : 'BACKUP';
      r.node.engine.force(KEY, last, 'flap', last === 'BACKUP' ? HOLD : undefined);
      await run(r.sim, gapMs, gapMs);
    }
    return last;
  }

  it('100 transitions in 1 s while a run is in flight: at most 2 runs, ending in the final state', async () => {
    const done: string[] = [];
    const r: Rig = rig([
      [
        service(
          () => 1500,
          done,
          () => r.timers,
        ),
      ],
    ]);
    r.node.engine.start();
    await run(r.sim, 2000, 50);
    assert.deepEqual(done.length, 1, 'the boot run stopped the service');
    const before = r.runs.length;
    const events = r.node.events.length;
    const final = await flap(r, 100, 10);
    assert.equal(r.node.events.length - events, 100, '100 transitions');
    await run(r.sim, 5000, 50);
    await r.host.idle();
    const runs = r.runs.slice(before);
    assert.ok(runs.length <= 2, `${runs.length} runs`);
    assert.equal(runs.at(-1)!.target, final);
    assert.equal(r.sim.state('a', KEY), final);
    assert.match(done.at(-1)!, final === 'MASTER' ? /^start/ : /^stop/);
    await r.stop();
  });

  it('a steady flap of quick hooks collapses, and after the burst at most 2 runs finish it in the final state', async () => {
    const done: string[] = [];
    const r: Rig = rig([
      [
        service(
          () => 35,
          done,
          () => r.timers,
        ),
      ],
    ]);
    r.node.engine.start();
    await run(r.sim, 200);
    const before = r.runs.length;
    const final = await flap(r, 100, 10);
    const atEnd = r.runs.length;
    await run(r.sim, 1000);
    await r.host.idle();
    const total = r.runs.length - before;
    assert.ok(r.runs.length - atEnd <= 2, `${r.runs.length - atEnd} runs after the burst`);
    assert.ok(total < 50, `${total} runs for 100 transitions`);
    assert.equal(r.runs.at(-1)!.target, final);
    assert.equal(r.runs.at(-1)!.seq, r.node.events.at(-1)!.seq, 'the last run is for the last transition');
    await r.stop();
  });
});

describe('failure policies and health', () => {
  it("demote N makes the node yield to its peer until the plugin's health check passes again", async () => {
    let broken = true;
    const web: PluginDeclaration = {
      name: 'web',
      apiVersion: 1,
      hooks: {
        master: (ctx) => ctx.exec(broken ? ['false'] : ['true']),
        checkHealth: () => !broken,
      },
    };
    const exec = recordingExec((argv) => ({ exitCode: argv[0] === 'false' ? 1 : 0 }));
    const a = rig([[web, lan, { onFailure: { kind: 'demote', by: 50 } }]], { exec });
    const b = a.sim.add('b', 2, [vhidCfg(1, 100)], { preempt: true });
    a.node.engine.start();
    b.engine.start();
    await run(a.sim, 4000, 20);
    assert.deepEqual(a.sim.masters(KEY), ['b'], 'a became MASTER, its web plugin failed, and it yielded');
    assert.deepEqual(a.node.engine.ledger.entries(), [{ group: 'carp', by: 'plugin:web', count: 50 }]);
    assert.equal(a.host.status()[0]!.demoted, 50);
    a.scheduler.tick();
    await run(a.sim, 100);
    assert.deepEqual(a.sim.masters(KEY), ['b'], 'still failing: still demoted');
    broken = false;
    const health: HealthRecord[] = [];
    a.host.on('health', (h: HealthRecord) => health.push(h));
    a.scheduler.tick();
    await run(a.sim, 3000, 20);
    assert.deepEqual(health, [{ name: 'plugin:web', ok: true, healthy: true, flipped: 'up' }]);
    assert.deepEqual(a.node.engine.ledger.entries(), []);
    assert.deepEqual(a.sim.masters(KEY), ['a'], 'recovered: a preempts back');
    assert.equal(a.hooks.filter((h) => h.hook === 'master').at(-1)!.result, 'ok');
    await a.stop();
  });

  it('without a health check, the next fully successful run lifts the demotion', async () => {
    let fail = true;
    const p: PluginDeclaration = {
      name: 'p',
      apiVersion: 1,
      hooks: {
        master: () => {
          if (fail) throw new Error('no');
        },
      },
    };
    const r = rig([[p, lan, { onFailure: { kind: 'demote', by: 20 } }]]);
    r.node.engine.start();
    await run(r.sim, 100);
    r.node.engine.force(KEY, 'MASTER');
    await run(r.sim, 100);
    assert.deepEqual(r.node.engine.ledger.entries(), [{ group: 'carp', by: 'plugin:p', count: 20 }]);
    fail = false;
    r.node.engine.force(KEY, 'BACKUP', 'user requested', HOLD);
    await run(r.sim, 100);
    assert.deepEqual(r.node.engine.ledger.entries(), []);
    await r.stop();
  });

  it('retry N tries a failing hook N more times, then gives up without demoting', async () => {
    let calls = 0;
    const flaky: PluginDeclaration = {
      name: 'flaky',
      apiVersion: 1,
      hooks: {
        master: () => {
          if (++calls < 3) throw new Error('busy');
        },
      },
    };
    const always: PluginDeclaration = {
      name: 'always',
      apiVersion: 1,
      hooks: {
        master: () => {
          throw new Error('down');
        },
      },
    };
    const r = rig([
      [flaky, lan, { onFailure: { kind: 'retry', times: 2 } }],
      [always, lan, { onFailure: { kind: 'retry', times: 1 } }],
    ]);
    r.node.engine.start();
    await run(r.sim, 100);
    r.node.engine.force(KEY, 'MASTER');
    await run(r.sim, 100);
    assert.deepEqual(
      r.hooks.filter((h) => h.hook === 'master').map((h) => `${h.plugin} ${h.attempt} ${h.result}`),
      ['always 1 error', 'always 2 error', 'flaky 1 error', 'flaky 2 error', 'flaky 3 ok'],
    );
    assert.deepEqual(r.node.engine.ledger.entries(), []);
    await r.stop();
  });

  it('[health.NAME] commands demote after `fall` failures and recover after `rise` passes', async () => {
    const answers = [1, 1, 0, 1, 0, 0];
    const exec = recordingExec(() => ({ exitCode: answers.shift() ?? 0 }));
    const check: HealthConfig = {
      name: 'gw',
      command: ['ping', '-c', '1', '192.0.2.1'],
      intervalMs: 1000,
      rise: 2,
      fall: 2,
      demote: 100,
      group: 'carp',
      source: 't:1',
    };
    const r = rig([], { health: [check], exec });
    r.node.engine.start();
    const held: number[] = [];
    for (let i = 0; i < 6; i++) {
      r.scheduler.tick();
      await settle(4);
      held.push(r.node.engine.ledger.held('carp', 'health:gw'));
    }
    assert.deepEqual(held, [0, 100, 100, 100, 100, 0]);
    assert.deepEqual(r.exec.calls[0], ['ping', '-c', '1', '192.0.2.1']);
    assert.equal(r.scheduler.jobs[0]!.every, 1000);
    await r.stop();
    assert.equal(r.scheduler.jobs[0]!.stopped, true);
  });
});

describe('boot, context and log', () => {
  it('the node holds a boot demotion until every setup has succeeded; a plugin runs only once set up', async () => {
    let setups = 0;
    const log: string[] = [];
    const late: PluginDeclaration = {
      name: 'late',
      apiVersion: 1,
      hooks: {
        setup: () => {
          if (++setups === 1) throw new Error('not yet');
        },
        master: () => void log.push('late master'),
        backup: (c) => void log.push(`late ${c.event.target}`),
      },
    };
    const early: PluginDeclaration = { name: 'early', apiVersion: 1, hooks: { master: () => void log.push('early master') } };
    const r = rig([[late], [early]], { setupRetryMs: 5000 });
    assert.equal(r.node.engine.ledger.held('carp', 'boot:plugins'), 240, 'held before the engine starts');
    r.node.engine.start();
    await run(r.sim, 4100, 20);
    assert.equal(r.sim.state('a', KEY), 'MASTER', 'alone, it still takes over (demotion only matters against a peer)');
    assert.deepEqual(log, ['early master'], 'the plugin whose setup failed is skipped');
    assert.equal(r.node.engine.ledger.held('carp', 'boot:plugins'), 240);
    assert.equal(r.host.status().find((p) => p.name === 'late')!.ready, false);
    await run(r.sim, 2000, 20);
    assert.equal(setups, 2);
    assert.equal(r.node.engine.ledger.held('carp', 'boot:plugins'), 0, 'lifted once every setup succeeded');
    assert.ok(log.includes('late master'), 'set up late, it is brought to the current state');
    assert.equal(await r.host.whenBooted(), true);
    await r.stop();
  });

  it('ctx.changed says whether this run wrote a different file; ctx.demote is undone at stop; teardown runs in reverse', async () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const order: string[] = [];
    const writer: PluginDeclaration = {
      name: 'writer',
      apiVersion: 1,
      hooks: {
        render: async (ctx) => {
          if (ctx.event.target === 'MASTER') await ctx.write('/etc/svc.conf', `vips ${ctx.event.scope.vhids[0]!.addresses.join(' ')}\n`);
        },
        master: async (ctx) => {
          if (ctx.changed) await ctx.exec(['svc', 'reload']);
          ctx.demote(7);
        },
        teardown: () => void order.push('writer'),
      },
    };
    const first: PluginDeclaration = { name: 'first', apiVersion: 1, hooks: { teardown: () => void order.push('first') } };
    const r = rig([[writer], [first]], { root });
    // Real file I/O takes real time: wait for the host after each step.
    r.node.engine.start();
    await run(r.sim, 100);
    await r.host.idle();
    r.node.engine.force(KEY, 'MASTER');
    await run(r.sim, 100);
    await r.host.idle();
    r.node.engine.force(KEY, 'BACKUP', 'x', HOLD);
    await run(r.sim, 100);
    await r.host.idle();
    r.node.engine.force(KEY, 'MASTER');
    await run(r.sim, 100);
    await r.host.idle();
    assert.deepEqual(r.exec.calls, [['svc', 'reload']], 'reloaded the first time only: the second MASTER wrote the same file');
    assert.equal(readFileSync(join(root, 'etc/svc.conf'), 'utf8'), 'vips 198.18.0.101/24\n');
    assert.equal(r.node.engine.ledger.held('carp', 'plugin:writer:self'), 7);
    await r.stop();
    assert.deepEqual(r.node.engine.ledger.entries(), []);
    assert.deepEqual(order, ['writer', 'first'], 'teardown in reverse order (first < writer by name)');
  });

  it('keeps the last N transitions, each with its hook runs: start, duration and result', async () => {
    const p: PluginDeclaration = { name: 'p', apiVersion: 1, hooks: { 'pre-master': () => undefined, master: () => undefined, backup: () => undefined } };
    const r = rig([[p]], { logSize: 3 });
    r.node.engine.start();
    await run(r.sim, 100);
    for (const s of ['MASTER', 'BACKUP', 'MASTER'] as const) {
      r.node.engine.force(KEY, s, 'admin', s === 'BACKUP' ? HOLD : undefined);
      await run(r.sim, 100);
    }
    const log = r.host.transitions();
    assert.equal(log.length, 3);
    assert.deepEqual(
      log.map((t) => `${t.seq} ${t.from}->${t.to}`),
      ['2 BACKUP->MASTER', '3 MASTER->BACKUP', '4 BACKUP->MASTER'],
    );
    assert.deepEqual(
      log[0]!.hooks.map((h) => `${h.hook} ${h.result}`),
      ['pre-master ok', 'master ok'],
    );
    const h = log[0]!.hooks[0]!;
    assert.equal(h.key, KEY);
    assert.equal(h.scope, `vhid:${KEY}`);
    assert.match(h.startedAt, /^2026-/);
    assert.equal(typeof h.durationMs, 'number');
    await r.stop();
  });
});
