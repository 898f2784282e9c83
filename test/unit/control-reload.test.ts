/**
 * What SIGHUP does to a running engine (Engine.reconfigure) and the planned-handover hold, on the
 * fake wire: only the difference is applied, unchanged vhids keep their state and timers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { CarpModel, VhidConfig } from '../../src/config/model.js';
import { Engine, type TransitionEvent } from '../../src/daemon/engine.js';
import { commandLineReloader } from '../../src/daemon/run.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { FakeNet, seeded, Sim, vhidCfg, type SimNode } from '../helpers/fake-wire.js';

const K1 = '1@eth0';
const K2 = '2@eth0';

function model(vhids: VhidConfig[], global: Partial<CarpModel['global']> = {}): CarpModel {
  return { global: { allow: true, preempt: false, log: 7, ...global }, vhids };
}

/** Adverts a node put on the wire for `vhid`, with their times. */
function adverts(sim: Sim, node: string, vhid: number): { at: number; advskew: number; advbase: number }[] {
  return sim.wire.log
    .filter((p) => p.node === node)
    .map((p) => ({ at: p.at, h: carpHeader.decode(p.payload) }))
    .filter((x) => x.h.vhid === vhid)
    .map((x) => ({ at: x.at, advskew: x.h.advskew, advbase: x.h.advbase }));
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

function pair(): { sim: Sim; a: SimNode; b: SimNode } {
  const sim = new Sim();
  const a = sim.add('a', 1, [vhidCfg(1, 0)]);
  const b = sim.add('b', 2, [vhidCfg(1, 100)]);
  a.engine.start();
  b.engine.start();
  sim.time.advance(5_000);
  assert.deepEqual(sim.masters(K1), ['a']);
  return { sim, a, b };
}

describe('reconfigure (SIGHUP)', () => {
  it('adds a vhid and leaves the unchanged one alone: no transition, adverts on the same beat', async () => {
    const { sim, a } = pair();
    const before = a.events.length;
    sim.time.advance(500); // mid-interval
    const res = a.engine.reconfigure(model([vhidCfg(1, 0, { source: 'moved.conf:12' }), vhidCfg(2, 0)]));
    assert.deepEqual(res, { added: [K2], removed: [], changed: [], unchanged: [K1] });
    sim.time.advance(5_000);
    await settle();
    const mine = a.events.slice(before);
    assert.deepEqual(
      mine.filter((e) => e.key === K1),
      [],
      'vhid 1 had no transition',
    );
    assert.deepEqual(
      mine.filter((e) => e.key === K2).map((e) => `${e.from}->${e.to}`),
      ['INIT->BACKUP', 'BACKUP->MASTER'],
    );
    const beats = adverts(sim, 'a', 1).map((x) => x.at);
    for (let i = 1; i < beats.length; i++) assert.equal(beats[i]! - beats[i - 1]!, 1000, `vhid 1 advert interval at ${beats[i]}`);
    assert.ok(a.net.vips.has('198.18.0.102/24@eth0'), 'the new vhid holds its VIP');
  });

  it('a removed vhid bows out and releases its VIP; the peer takes over at once', async () => {
    const { sim, a, b } = pair();
    const res = a.engine.reconfigure(model([]));
    assert.deepEqual(res.removed, [K1]);
    sim.time.advance(50);
    await settle();
    assert.deepEqual(a.events.at(-1) && [a.events.at(-1)!.from, a.events.at(-1)!.to], ['MASTER', 'INIT']);
    assert.equal(a.net.vips.size, 0);
    assert.equal(b.events.at(-1)?.reason, 'master bowed out');
    assert.deepEqual(sim.masters(K1), ['b']);
    assert.deepEqual(a.engine.status(), []);
    sim.time.advance(10_000);
    assert.equal(
      adverts(sim, 'a', 1)
        .filter((x) => x.advbase !== 255)
        .at(-1)!.at < 5_100,
      true,
      'a no longer advertises vhid 1',
    );
  });

  it('a changed advskew is applied in place; changed addresses move on the MASTER without a transition', async () => {
    const { sim, a } = pair();
    await settle();
    a.net.actions.length = 0;
    const before = a.events.length;
    const res = a.engine.reconfigure(model([vhidCfg(1, 20, { addresses: ['198.18.0.101/24', '198.18.0.201/24'] })]));
    assert.deepEqual(res.changed, [K1]);
    sim.time.advance(3_000);
    await settle();
    assert.equal(a.events.length, before, 'no transition');
    assert.deepEqual(sim.masters(K1), ['a']);
    assert.equal(adverts(sim, 'a', 1).at(-1)!.advskew, 20);
    assert.deepEqual(a.net.actions.slice(0, 2), ['add 198.18.0.201/24 eth0', 'garp 198.18.0.201/24 eth0']);
    a.engine.reconfigure(model([vhidCfg(1, 20, { addresses: ['198.18.0.201/24'] })]));
    await settle();
    assert.ok(!a.net.vips.has('198.18.0.101/24@eth0') && a.net.vips.has('198.18.0.201/24@eth0'), [...a.net.vips].join(' '));
  });

  it('a new preempt setting reaches the unchanged vhids: a better backup takes over on the next advert', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 100)]);
    a.engine.start();
    sim.time.advance(5_000);
    const b = sim.add('b', 2, [vhidCfg(1, 0)]);
    b.engine.start();
    sim.time.advance(5_000);
    assert.deepEqual(sim.masters(K1), ['a']);
    const res = b.engine.reconfigure(model([vhidCfg(1, 0)], { preempt: true }));
    assert.deepEqual(res.unchanged, [K1]);
    sim.time.advance(1_500);
    assert.deepEqual(sim.masters(K1), ['b']);
    assert.equal(b.events.at(-1)?.reason, 'preempting a slower master');
  });

  it('a changed standing demotion (net.inet.carp.demotion) takes effect: the master advertises it at once', () => {
    const { sim, a } = pair();
    a.engine.reconfigure(model([vhidCfg(1, 0)], { demotion: 30 }));
    sim.time.advance(10);
    assert.equal(a.engine.ledger.held('carp', 'config'), 30);
    assert.deepEqual(sim.masters(K1), ['b'], 'the less demoted peer took over');
    a.engine.reconfigure(model([vhidCfg(1, 0)]));
    assert.equal(a.engine.ledger.total('carp'), 0);
  });

  it('before start it only swaps the model', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    assert.deepEqual(a.engine.reconfigure(model([vhidCfg(3, 0)])).added, ['3@eth0']);
    a.engine.start();
    assert.deepEqual(
      a.engine.status().map((s) => s.key),
      ['3@eth0'],
    );
  });
});

describe('planned handover (make before break)', () => {
  /** Sim.add with a hold. */
  function addHeld(sim: Sim, name: string, index: number, vhids: VhidConfig[], holdMs: number): SimNode {
    const addr = `198.18.0.${index}`;
    const net = new FakeNet({ eth0: addr });
    const logs: string[] = [];
    const engine = new Engine(model(vhids), {
      transport: sim.wire.transport(name, () => addr),
      net,
      clock: sim.time.clock(),
      logger: { log: (_l, m) => logs.push(m) },
      random: seeded(index),
      handoverHoldMs: holdMs,
    });
    const node: SimNode = { name, engine, net, events: [], logs };
    engine.on('transition', (e: TransitionEvent) => node.events.push(e));
    sim.nodes.set(name, node);
    return node;
  }

  it('a demoted master yielding to a peer keeps the VIP for the hold, then releases it', async () => {
    const sim = new Sim();
    const a = addHeld(sim, 'a', 1, [vhidCfg(1, 0)], 150);
    const b = sim.add('b', 2, [vhidCfg(1, 100)]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(5_000);
    await settle();
    a.engine.demote('carp', 'maintenance', 240);
    sim.time.advance(50);
    await settle();
    assert.deepEqual(sim.masters(K1), ['b']);
    assert.equal(a.events.at(-1)?.reason, 'less demoted advertisement received');
    assert.ok(a.net.vips.has('198.18.0.101/24@eth0'), 'still held right after yielding');
    assert.ok(b.net.vips.has('198.18.0.101/24@eth0'), 'the new master has it');
    sim.time.advance(99);
    await settle();
    assert.ok(a.net.vips.has('198.18.0.101/24@eth0'), 'held until the hold ends');
    sim.time.advance(2);
    await settle();
    assert.ok(!a.net.vips.has('198.18.0.101/24@eth0'), 'released after the hold');
    assert.ok(
      a.logs.some((l) => l.includes('planned handover')),
      a.logs.join('\n'),
    );
  });

  it('becoming MASTER again during the hold keeps the VIP; a master preempted by a better peer holds it too', async () => {
    const sim = new Sim();
    const a = addHeld(sim, 'a', 1, [vhidCfg(1, 0)], 10_000);
    const b = sim.add('b', 2, [vhidCfg(1, 100)]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(5_000);
    await settle();
    a.engine.demote('carp', 'admin', 240);
    sim.time.advance(50);
    await settle();
    assert.deepEqual(sim.masters(K1), ['b']);
    a.net.actions.length = 0;
    a.engine.demote('carp', 'admin', -240);
    a.engine.force(K1, 'MASTER', 'user requested');
    sim.time.advance(10);
    await settle();
    assert.equal(a.engine.status()[0]!.state, 'MASTER');
    assert.ok(!a.net.actions.some((x) => x.startsWith('del')), `no release: ${a.net.actions.join(', ')}`);
    assert.ok(a.net.vips.has('198.18.0.101/24@eth0'));

    // Undemoted, preempted by a peer that advertises better (an admin lowered its advskew, FreeBSD
    // pfsync.sh pfsync_pbr): also planned, so the VIP is held until the new master has announced it.
    const sim2 = new Sim();
    const c = addHeld(sim2, 'c', 1, [vhidCfg(1, 100)], 10_000);
    c.engine.start();
    sim2.time.advance(5_000);
    const d = sim2.add('d', 2, [vhidCfg(1, 0)], { preempt: true });
    d.engine.start();
    sim2.time.advance(2_000);
    await settle();
    assert.deepEqual(sim2.masters(K1), ['d']);
    assert.equal(c.net.vips.size, 1, 'held through the handover');
    sim2.time.advance(10_000);
    await settle();
    assert.equal(c.net.vips.size, 0, 'released when the hold ends');
  });

  it('stop() cuts a hold short: the VIP is removed and stop resolves', async () => {
    const sim = new Sim();
    const a = addHeld(sim, 'a', 1, [vhidCfg(1, 0)], 60_000);
    const b = sim.add('b', 2, [vhidCfg(1, 100)]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(5_000);
    a.engine.demote('carp', 'admin', 100);
    sim.time.advance(50);
    await settle();
    assert.ok(a.net.vips.size === 1);
    const t0 = Date.now();
    await a.engine.stop();
    assert.ok(Date.now() - t0 < 2_000);
    assert.equal(a.net.vips.size, 0);
  });
});

describe('commandLineReloader', () => {
  it('re-reads the -c files of `carpd run` and keeps the --log-level override', () => {
    const dir = mkdtempSync(join(tmpdir(), 'carpd-reload-'));
    try {
      const conf = join(dir, 'carpd.conf');
      writeFileSync(conf, '[carpd]\nlog = 2\n\n[vhid.a]\nvhid = 7\ninterface = eth0\naddress = 10.0.0.7/24\npass = s3cret\n', { mode: 0o600 });
      const reload = commandLineReloader(['run', '-c', conf, '--control', '/x.sock', '--log-level', '6']);
      assert.ok(reload);
      const r = reload();
      assert.deepEqual(
        r.diagnostics.filter((d) => d.severity === 'error'),
        [],
      );
      assert.deepEqual(
        r.model.vhids.map((v) => v.key),
        ['7@eth0'],
      );
      assert.equal(r.model.global.log, 6);
      writeFileSync(conf, '[vhid.a]\nvhid = 300\n', { mode: 0o600 });
      assert.ok(
        reload().diagnostics.some((d) => d.severity === 'error'),
        'a broken file shows as errors, not a throw',
      );
      assert.equal(commandLineReloader(['ucarp', '-i', 'eth0']), undefined);
      assert.equal(commandLineReloader(['run']), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
