/**
 * Multi-node scenarios on the in-memory wire with a fake clock: the real engine, codec and core,
 * deterministic and fast.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TransitionEvent } from '../../src/daemon/engine.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { Sim, vhidCfg } from '../helpers/fake-wire.js';

const KEY = '1@eth0';

function cluster(skews: number[], preempt = false): Sim {
  const sim = new Sim();
  skews.forEach((s, i) => sim.add(`n${i + 1}`, i + 1, [vhidCfg(1, s)], { preempt }));
  return sim;
}

/** Let the engines' VIP queues (promises) drain. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

function startAll(sim: Sim): void {
  for (const n of sim.nodes.values()) n.engine.start();
}

/** VIP holders must be exactly the masters. */
function assertVipFollowsState(sim: Sim, key = KEY): void {
  for (const [name, n] of sim.nodes) {
    const st = n.engine.status().find((s) => s.key === key)!;
    const has = st.addresses.every((a) => n.net.vips.has(`${a}@${st.interface}`));
    assert.equal(has, st.state === 'MASTER', `${name}: VIP present=${has} but state ${st.state}`);
  }
}

describe('simulated cluster', () => {
  it('elects exactly one master after start-up: the lowest advskew', async () => {
    const sim = cluster([100, 0, 50]);
    startAll(sim);
    sim.time.advance(10_000);
    await settle();
    assert.deepEqual(sim.masters(KEY), ['n2']);
    assertVipFollowsState(sim);
    assert.equal(sim.node('n2').events.at(-1)?.reason, 'master timed out');
  });

  it('equal-priority start settles on one master (lower source address)', async () => {
    const sim = cluster([0, 0]);
    startAll(sim);
    sim.time.advance(20_000);
    await settle();
    assert.deepEqual(sim.masters(KEY), ['n1']);
    assertVipFollowsState(sim);
  });

  it('backup with lower advskew preempts when preempt is on', () => {
    const sim = new Sim();
    const slow = sim.add('slow', 2, [vhidCfg(1, 100)], { preempt: true });
    slow.engine.start();
    sim.time.advance(5000);
    assert.deepEqual(sim.masters(KEY), ['slow']);
    sim.add('fast', 1, [vhidCfg(1, 0)], { preempt: true }).engine.start();
    sim.time.advance(1500);
    assert.deepEqual(sim.masters(KEY), ['fast']);
    assert.equal(sim.node('fast').events.at(-1)?.reason, 'preempting a slower master');
    assert.equal(sim.node('fast').engine.stats.carps_preempt, 1, 'one transition to master');
    assert.equal(sim.node('slow').engine.stats.carps_preempt, 1);
  });

  it('backup with lower advskew stays BACKUP when preempt is off', () => {
    const sim = new Sim();
    sim.add('slow', 2, [vhidCfg(1, 100)]).engine.start();
    sim.time.advance(5000);
    sim.add('fast', 1, [vhidCfg(1, 0)]).engine.start();
    sim.time.advance(30_000);
    assert.deepEqual(sim.masters(KEY), ['slow']);
  });

  it('fails over in the nominal master-down time after the master dies', () => {
    const sim = cluster([0, 50]);
    startAll(sim);
    sim.time.advance(10_500);
    assert.deepEqual(sim.masters(KEY), ['n1']);
    sim.crash('n1');
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['n2']);
    const n1Last = sim.wire.log.filter((p) => p.node === 'n1' && p.at <= 10_500).at(-1)!.at;
    const n2First = sim.wire.log.find((p) => p.node === 'n2')!.at;
    const nominal = 3000 + (50 * 1000) / 256;
    assert.ok(Math.abs(n2First - n1Last - nominal) < 1, `failover ${n2First - n1Last} ms vs nominal ${nominal}`);
  });

  it('a clean stop sends a bow-out and the backup takes over at once', async () => {
    const sim = cluster([0, 50]);
    startAll(sim);
    sim.time.advance(10_000);
    const stopping = sim.node('n1').engine.stop();
    sim.time.advance(5);
    await stopping;
    assert.deepEqual(sim.masters(KEY), ['n2']);
    assert.equal(sim.node('n2').events.at(-1)?.reason, 'master bowed out');
    const bowout = carpHeader.decode(sim.wire.log.filter((p) => p.node === 'n1').at(-1)!.payload);
    assert.equal(bowout.advbase, 255);
    assert.equal(bowout.advskew, 255);
  });

  it('demotion makes the master yield regardless of preempt, and undoing it lets preempt win back', () => {
    const sim = cluster([0, 50], true);
    startAll(sim);
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['n1']);
    sim.node('n1').engine.demote('carp', 'admin', 50);
    sim.time.advance(1000);
    assert.deepEqual(sim.masters(KEY), ['n2']);
    const last = carpHeader.decode(sim.wire.log.filter((p) => p.node === 'n1').at(-1)!.payload);
    assert.equal(last.demote, 50, 'demotion in the OpenBSD demote byte');
    assert.equal(last.advskew, 50, 'and folded into advskew for ucarp/FreeBSD peers');
    sim.node('n1').engine.demote('carp', 'admin', -50);
    sim.time.advance(2000);
    assert.deepEqual(sim.masters(KEY), ['n1']);
  });

  it('partition makes two masters; healing returns to one', async () => {
    const sim = cluster([0, 50]);
    startAll(sim);
    sim.time.advance(10_000);
    sim.wire.isolated.add('n1');
    sim.time.advance(5000);
    assert.deepEqual(sim.masters(KEY).sort(), ['n1', 'n2']);
    sim.wire.isolated.delete('n1');
    sim.time.advance(3000);
    await settle();
    assert.deepEqual(sim.masters(KEY), ['n1']);
    assertVipFollowsState(sim);
  });

  it('link flapping on the master ends with one master and VIPs matching states', async () => {
    const sim = cluster([0, 50]);
    startAll(sim);
    sim.time.advance(10_000);
    const n1 = sim.node('n1');
    for (let i = 0; i < 20; i++) {
      n1.net.setLink('eth0', i % 2 === 1);
      sim.time.advance(150);
    }
    n1.net.setLink('eth0', true);
    sim.time.advance(15_000);
    await settle();
    assert.equal(sim.masters(KEY).length, 1);
    assertVipFollowsState(sim);
  });

  it('link down demotes the node so its other vhids fail over too', () => {
    const sim = new Sim();
    const both = [vhidCfg(1, 0), vhidCfg(2, 0, { interface: 'eth1', key: '2@eth1' })];
    sim.add('a', 1, both).engine.start();
    sim.add('b', 2, [vhidCfg(1, 50), vhidCfg(2, 50, { interface: 'eth1', key: '2@eth1' })]).engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters('2@eth1'), ['a']);
    sim.node('a').net.setLink('eth0', false);
    sim.time.advance(4000);
    assert.deepEqual(sim.masters('1@eth0'), ['b']);
    assert.deepEqual(sim.masters('2@eth1'), ['b'], 'group demotion moved the healthy interface too');
    sim.node('a').net.setLink('eth0', true);
    sim.time.advance(10_000);
    assert.equal(sim.state('a', '1@eth0'), 'BACKUP');
  });

  it('a wrong password is counted and logged once per peer, and both sides become master', () => {
    const sim = new Sim();
    sim.add('a', 1, [vhidCfg(1, 0)]).engine.start();
    sim.add('b', 2, [vhidCfg(1, 50, { password: 'wrong' })]).engine.start();
    sim.time.advance(20_000);
    assert.deepEqual(sim.masters(KEY).sort(), ['a', 'b']);
    const b = sim.node('b');
    assert.ok(b.engine.stats.carps_badauth >= 10);
    const lines = b.logs.filter((l) => l.includes('bad authentication'));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /bad authentication from 198\.18\.0\.1 vhid 1: check the password and the vhid's address list/);
    assert.ok(!b.logs.some((l) => l.includes('wrong') || l.includes('secret')), 'no secret in logs');
    assert.equal(b.engine.badAuthByPeer.get('198.18.0.1 1@eth0'), b.engine.stats.carps_badauth);
  });

  it('a different VIP list on a peer fails authentication like a wrong password', () => {
    const sim = new Sim();
    sim.add('a', 1, [vhidCfg(1, 0)]).engine.start();
    sim.add('b', 2, [vhidCfg(1, 50, { addresses: ['198.18.0.101/24', '198.18.0.200/24'] })]).engine.start();
    sim.time.advance(10_000);
    assert.ok(sim.node('b').engine.stats.carps_badauth > 0);
    assert.deepEqual(sim.masters(KEY).sort(), ['a', 'b']);
  });

  it('serves 255 vhids on one interface in one engine', async () => {
    const sim = new Sim();
    const vh = (skew: number) => Array.from({ length: 255 }, (_, i) => vhidCfg(i + 1, skew, { addresses: [`198.19.${i}.1/32`] }));
    sim.add('a', 1, vh(0)).engine.start();
    sim.add('b', 2, vh(100)).engine.start();
    sim.time.advance(10_000);
    await settle();
    const a = sim.node('a').engine.status();
    const b = sim.node('b').engine.status();
    assert.equal(a.filter((s) => s.state === 'MASTER').length, 255);
    assert.equal(b.filter((s) => s.state === 'BACKUP').length, 255);
    assert.equal(sim.node('b').engine.stats.carps_badauth, 0);
  });

  it('forced state emits the same transition events as the protocol', () => {
    const sim = cluster([0, 50]);
    startAll(sim);
    sim.time.advance(10_000);
    assert.ok(sim.node('n2').engine.force(KEY, 'MASTER', 'user requested'));
    const ev = sim.node('n2').events.at(-1)!;
    assert.deepEqual([ev.key, ev.from, ev.to, ev.reason], [KEY, 'BACKUP', 'MASTER', 'user requested']);
    assert.ok(ev.seq > 0);
    sim.time.advance(100);
    assert.deepEqual(sim.masters(KEY), ['n1'], 'the better master reasserts and the forced one yields');
    assert.equal(sim.node('n2').engine.force('9@eth0', 'MASTER'), false);
  });
});

describe('phase gate', () => {
  it('holds the VIP step for a pre-phase but never the advert, and never past the budget', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    let release!: () => void;
    a.engine.setPhaseGate((ev) => (ev.to === 'MASTER' ? new Promise<void>((r) => (release = r)) : undefined), 50);
    a.engine.start();
    sim.time.advance(3010);
    assert.equal(sim.state('a', KEY), 'MASTER');
    assert.equal(sim.wire.log.length, 1, 'the advert went out while the pre-phase runs');
    await settle();
    assert.deepEqual(a.net.actions, ['del 198.18.0.101/24 eth0'], 'VIP add held back by the pre-phase');
    assert.deepEqual(a.engine.status()[0]!.state, 'MASTER');
    release();
    await settle();
    assert.deepEqual(a.net.actions, ['del 198.18.0.101/24 eth0', 'add 198.18.0.101/24 eth0', 'garp 198.18.0.101/24 eth0']);

    const sim2 = new Sim();
    const b = sim2.add('b', 2, [vhidCfg(1, 0)]);
    b.engine.setPhaseGate(() => new Promise<void>(() => undefined), 30);
    b.engine.start();
    b.engine.force(KEY, 'MASTER');
    // Both transitions (INIT → BACKUP at start, then the forced MASTER) wait out the budget in turn.
    sim2.time.advance(29);
    await settle();
    assert.deepEqual(b.net.actions, [], 'held while within the budget');
    sim2.time.advance(1);
    await settle();
    assert.deepEqual(b.net.actions, ['del 198.18.0.101/24 eth0'], 'the first budget ran out');
    sim2.time.advance(29);
    await settle();
    assert.deepEqual(b.net.actions, ['del 198.18.0.101/24 eth0'], 'the second budget starts when the first step is done');
    sim2.time.advance(1);
    await settle();
    assert.deepEqual(
      b.net.actions,
      ['del 198.18.0.101/24 eth0', 'add 198.18.0.101/24 eth0', 'garp 198.18.0.101/24 eth0'],
      'a hung pre-phase does not keep the VIP away',
    );
    assert.ok(b.logs.some((l) => l.includes('pre-master phase still running after 30 ms')));
  });
});

describe('order of effects', () => {
  it("a transition listener runs after the new master's advert has left", () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    const sentAtTransition: number[] = [];
    a.engine.on('transition', (ev: TransitionEvent) => {
      if (ev.to === 'MASTER') sentAtTransition.push(sim.wire.log.filter((p) => p.node === 'a').length);
    });
    a.engine.start();
    sim.time.advance(3010);
    assert.deepEqual(sentAtTransition, [1], 'the first advert was on the wire when the listener ran');
  });
});

describe('configured demotion', () => {
  it('global.demotion (net.inet.carp.demotion) is a standing demotion in the carp group', () => {
    const sim = new Sim();
    sim.add('a', 1, [vhidCfg(1, 0)], { demotion: 20 }).engine.start();
    sim.add('b', 2, [vhidCfg(1, 50)]).engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['b'], 'the demoted node does not win');
    assert.deepEqual(sim.node('a').engine.ledger.entries(), [{ group: 'carp', by: 'config', count: 20 }]);
  });
});

describe('review findings', () => {
  it('two equal backups that take over in the same instant settle on one master (no lock-step loop drop)', async () => {
    const sim = new Sim();
    sim.add('a', 1, [vhidCfg(1, 0)]).engine.start();
    sim.add('b', 2, [vhidCfg(1, 100)]).engine.start();
    sim.add('c', 3, [vhidCfg(1, 100)]).engine.start();
    sim.time.advance(10_500);
    assert.deepEqual(sim.masters(KEY), ['a']);
    sim.crash('a');
    sim.time.advance(10_000);
    await settle();
    assert.deepEqual(sim.masters(KEY), ['b'], 'the lower source address keeps MASTER');
    assertVipFollowsState(sim);
  });

  it('[group.NAME] members and its demote reach the engine: demoting the group moves its vhids', () => {
    const sim = new Sim();
    const groups = [{ name: 'uplink', members: ['2@eth0'], source: 'test:1' }];
    sim.add('a', 1, [vhidCfg(1, 0), vhidCfg(2, 0)], {}, { groups }).engine.start();
    sim.add('b', 2, [vhidCfg(1, 50), vhidCfg(2, 50)], {}, { groups }).engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters('2@eth0'), ['a']);
    sim.node('a').engine.demote('uplink', 'health:x', 50);
    sim.time.advance(2000);
    assert.deepEqual(sim.masters('2@eth0'), ['b'], 'the group member failed over');
    assert.deepEqual(sim.masters(KEY), ['a'], 'a vhid outside the group did not');
  });

  it('[group.NAME] demote is a standing demotion of its members', () => {
    const sim = new Sim();
    const groups = [{ name: 'uplink', members: ['1@eth0'], demote: 30, source: 'test:1' }];
    sim.add('a', 1, [vhidCfg(1, 0)], {}, { groups }).engine.start();
    sim.add('b', 2, [vhidCfg(1, 50)]).engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['b']);
    assert.deepEqual(sim.node('a').engine.ledger.entries(), [{ group: 'uplink', by: 'config', count: 30 }]);
  });

  it('a transition listener that throws does not stop the advert or the VIP step', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    a.engine.on('transition', () => {
      throw new Error('listener bug');
    });
    a.engine.start();
    sim.time.advance(3500);
    await settle();
    assert.equal(sim.state('a', KEY), 'MASTER');
    assert.ok(sim.wire.log.length >= 1);
    assert.ok(a.net.vips.has('198.18.0.101/24@eth0'));
    assert.ok(a.logs.some((l) => l.includes('transition listener failed: listener bug')));
  });
});

describe('socket lifecycle', () => {
  it('link up reopens the interface socket, and the node keeps hearing its peer', () => {
    const sim = cluster([0, 50]);
    startAll(sim);
    sim.time.advance(10_000);
    const n2 = sim.node('n2');
    n2.net.setLink('eth0', false);
    sim.time.advance(500);
    n2.net.setLink('eth0', true);
    sim.time.advance(10_000);
    const ports = sim.wire.ports.filter((p) => p.node === 'n2' && p.ifname === 'eth0');
    assert.equal(ports.length, 2, 'a new socket after link up');
    assert.deepEqual(
      ports.map((p) => p.closed),
      [true, false],
    );
    assert.deepEqual(sim.masters(KEY), ['n1'], 'n2 hears n1 on the new socket and stays BACKUP');
  });
});

describe('VIP failures', () => {
  it('a MASTER whose VIP add fails demotes itself, the peer takes over, and it does not flap back', async () => {
    const sim = cluster([0, 50], true);
    sim.node('n1').net.failAdds = 100;
    startAll(sim);
    sim.time.advance(3100);
    await settle();
    assert.equal(sim.node('n1').engine.ledger.held('carp', 'vip:1@eth0'), 240, 'demoted while the VIP is missing');
    sim.time.advance(10_000);
    await settle();
    assert.deepEqual(sim.masters(KEY), ['n2'], 'the peer holds the VIP instead');
    assert.equal(sim.node('n1').engine.ledger.held('carp', 'vip:1@eth0'), 240, 'still demoted as BACKUP: no flapping back');
    assert.ok(sim.node('n1').logs.some((l) => l.includes('add 198.18.0.101/24 failed') && l.includes('demoting until it works')));
  });

  it('a failed VIP add is retried while MASTER, and success lifts the demotion', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    a.net.failAdds = 1;
    a.engine.start();
    sim.time.advance(3100);
    await settle();
    assert.equal(a.engine.ledger.held('carp', 'vip:1@eth0'), 240);
    sim.time.advance(990);
    await settle();
    assert.ok(!a.net.vips.has('198.18.0.101/24@eth0'), 'no retry before 1 s');
    sim.time.advance(20); // the first retry is 1 s after the failure
    await settle();
    assert.ok(a.net.vips.has('198.18.0.101/24@eth0'));
    assert.equal(a.engine.ledger.held('carp', 'vip:1@eth0'), 0);
    assert.equal(sim.state('a', KEY), 'MASTER');
  });
});

describe('send errors', () => {
  it('three failed adverts in a row demote the node (FreeBSD senderr); three good ones undo it', async () => {
    const sim = cluster([0, 50]);
    startAll(sim);
    sim.time.advance(10_000);
    const n1 = sim.node('n1');
    sim.wire.failing.add('n1');
    for (let i = 0; i < 3; i++) {
      sim.time.advance(1000);
      await settle();
    }
    assert.equal(n1.engine.ledger.held('carp', 'senderr:eth0'), 240);
    assert.ok(n1.logs.some((l) => l.includes('3 adverts in a row could not be sent; demoting')));
    sim.wire.failing.delete('n1');
    // n2 took over meanwhile (n1 went silent); n1 yields and, as a BACKUP, keeps the demotion
    // until its link comes back or it advertises cleanly again.
    sim.time.advance(5000);
    await settle();
    assert.deepEqual(sim.masters(KEY), ['n2']);
    n1.net.setLink('eth0', false);
    n1.net.setLink('eth0', true);
    assert.equal(n1.engine.ledger.held('carp', 'senderr:eth0'), 0, 'link up clears it');

    const solo = new Sim();
    const a = solo.add('a', 1, [vhidCfg(1, 0)]);
    a.engine.start();
    solo.time.advance(3500);
    solo.wire.failing.add('a');
    for (let i = 0; i < 3; i++) {
      solo.time.advance(1000);
      await settle();
    }
    assert.equal(a.engine.ledger.held('carp', 'senderr:eth0'), 240);
    solo.wire.failing.delete('a');
    // Demoted, it advertises every 1 + 240/256 s: three good adverts take about 6 s.
    for (let i = 0; i < 8; i++) {
      solo.time.advance(1000);
      await settle();
    }
    assert.equal(a.engine.ledger.held('carp', 'senderr:eth0'), 0, 'three good adverts undo it');
    assert.ok(a.logs.some((l) => l.includes('adverts go out again; demotion undone')));
  });
});
