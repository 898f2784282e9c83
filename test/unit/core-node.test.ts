/**
 * The pure node: inputs in, effects and named timers out, `now` passed explicitly. No clock, no
 * wire, no promises.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CarpNode, VIP_RETRY_MAX_MS, type NodeConfig, type NodeEffect, type NodeVhid } from '../../src/core/node.js';

function vhid(n: number, over: Partial<NodeVhid> = {}): NodeVhid {
  return {
    key: `${n}@eth0`,
    vhid: n,
    ifname: 'eth0',
    addresses: [`198.18.0.${100 + n}/24`],
    advbase: 1,
    advskew: 0,
    deadRatio: 3,
    srcip: '198.18.0.1',
    groups: ['carp'],
    fingerprint: `v${n}`,
    ...over,
  };
}

function config(vhids: NodeVhid[], over: Partial<NodeConfig> = {}): NodeConfig {
  return { preempt: false, masterDown: 'freebsd', ifdownDemotion: 240, senderrDemotion: 240, handoverHoldMs: 0, demotions: [], vhids, ...over };
}

const types = (fx: NodeEffect[]) =>
  fx.filter((e) => e.type !== 'log').map((e) => (e.type === 'vip' ? `vip ${e.op} ${e.cidr}` : e.type === 'garp' ? `garp ${e.cidr}` : e.type));

/** A node started at t=0 and run to MASTER at t=3000 (nobody else on the wire). */
function master(over: Partial<NodeConfig> = {}, vhids = [vhid(1)]): { node: CarpNode; fx: NodeEffect[] } {
  const node = new CarpNode();
  node.step({ type: 'start', config: config(vhids, over), links: { eth0: true } }, 0);
  assert.equal(node.nextDue(), 3000);
  const fx = node.step({ type: 'tick' }, 3000);
  assert.equal(node.state('1@eth0'), 'MASTER');
  return { node, fx };
}

describe('pure node', () => {
  it('going MASTER: the advert comes first, then the transition, then the VIP and the gratuitous ARP', () => {
    const { fx } = master();
    assert.deepEqual(types(fx), ['send', 'transition', 'vip add 198.18.0.101/24', 'garp 198.18.0.101/24']);
  });

  it('a pre-phase holds the VIP step behind a barrier whose budget is a named timer, never the advert', () => {
    const node = new CarpNode();
    node.step({ type: 'phase-gate', on: true, budgetMs: 500 }, 0);
    const start = node.step({ type: 'start', config: config([vhid(1)]), links: { eth0: true } }, 0);
    assert.deepEqual(types(start), ['transition', 'phase'], 'INIT → BACKUP: the release waits for the pre-phase too');
    const seq0 = (start[1] as { seq: number }).seq;
    assert.deepEqual(types(node.step({ type: 'phase-done', key: '1@eth0', seq: seq0 }, 1)), ['vip del 198.18.0.101/24']);
    const fx = node.step({ type: 'tick' }, 3001);
    assert.deepEqual(types(fx), ['send', 'transition', 'phase']);
    assert.deepEqual(node.timers(), [{ timer: 'budget', key: '1@eth0', seq: seq0 + 1, dueAt: 3501 }]);
    assert.deepEqual(types(node.step({ type: 'tick' }, 3498)), [], 'not before the budget');
    const late = node.step({ type: 'tick' }, 3501);
    assert.deepEqual(types(late), ['vip add 198.18.0.101/24', 'garp 198.18.0.101/24']);
    assert.ok(late.some((e) => e.type === 'log' && e.message.includes('pre-master phase still running after 500 ms')));
    assert.deepEqual(node.timers(), []);
  });

  it('a pre-phase that finishes releases the VIP step at once and disarms its budget', () => {
    const node = new CarpNode();
    node.step({ type: 'phase-gate', on: true, budgetMs: 500 }, 0);
    const start = node.step({ type: 'start', config: config([vhid(1)]), links: { eth0: true } }, 0);
    node.step({ type: 'phase-done', key: '1@eth0', seq: (start[1] as { seq: number }).seq }, 0);
    const fx = node.step({ type: 'tick' }, 3000);
    const seq = (fx.find((e) => e.type === 'phase') as { seq: number }).seq;
    assert.deepEqual(types(node.step({ type: 'phase-done', key: '1@eth0', seq }, 3020)), ['vip add 198.18.0.101/24', 'garp 198.18.0.101/24']);
    assert.deepEqual(node.timers(), []);
  });

  it('a failed VIP add demotes the node and is retried with doubling backoff, capped, only while MASTER', () => {
    const { node } = master();
    let now = 3000;
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      node.step({ type: 'vip-result', key: '1@eth0', cidr: '198.18.0.101/24', ok: false, error: 'ip: timed out' }, now);
      const [t] = node.timers().filter((x) => x.timer === 'retry');
      assert.ok(t, `retry ${i} armed`);
      delays.push(t.dueAt - now);
      now = t.dueAt;
      assert.deepEqual(
        types(node.step({ type: 'tick' }, now)).filter((x) => x.startsWith('vip')),
        ['vip add 198.18.0.101/24'],
      );
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, VIP_RETRY_MAX_MS, VIP_RETRY_MAX_MS]);
    assert.equal(node.ledger.held('carp', 'vip:1@eth0'), 240);
    node.step({ type: 'vip-result', key: '1@eth0', cidr: '198.18.0.101/24', ok: true }, now);
    assert.equal(node.ledger.held('carp', 'vip:1@eth0'), 0, 'the add that works lifts the demotion');
    assert.deepEqual(node.timers(), []);
  });

  it('leaving MASTER stops VIP retries but keeps the demotion', () => {
    const { node } = master();
    node.step({ type: 'vip-result', key: '1@eth0', cidr: '198.18.0.101/24', ok: false }, 3000);
    node.step({ type: 'force', key: '1@eth0', state: 'BACKUP', reason: 'user requested' }, 3100);
    assert.deepEqual(
      node.timers().filter((t) => t.timer === 'retry'),
      [],
    );
    assert.equal(node.ledger.held('carp', 'vip:1@eth0'), 240);
  });

  it('a demoted master yielding to an advert holds the VIP for the hold timer, then releases it', () => {
    const { node } = master({ handoverHoldMs: 2000 });
    node.step({ type: 'set-demotion', group: 'carp', by: 'maintenance', count: 240 }, 4000);
    const fx = node.step({ type: 'advert', key: '1@eth0', advert: { src: '198.18.0.2', advbase: 1, advskew: 100, demote: 0 } }, 4010);
    assert.deepEqual(types(fx), ['transition'], 'no release yet');
    assert.deepEqual(node.timers(), [{ timer: 'hold', key: '1@eth0', dueAt: 6010 }]);
    assert.deepEqual(
      types(node.step({ type: 'tick' }, 6010)).filter((x) => x.startsWith('vip')),
      ['vip del 198.18.0.101/24'],
    );
  });

  it('a master preempted by a strictly better advert (advskew lowered on the backup) holds the VIP too', () => {
    // FreeBSD pfsync.sh pfsync_pbr: the backup's advskew goes from 100 to 0 under a master at 50.
    const node = new CarpNode();
    node.step({ type: 'start', config: config([vhid(1, { advskew: 50 })], { handoverHoldMs: 2000, preempt: true }), links: { eth0: true } }, 0);
    node.step({ type: 'tick' }, node.nextDue()!);
    assert.equal(node.state('1@eth0'), 'MASTER');
    const fx = node.step({ type: 'advert', key: '1@eth0', advert: { src: '198.18.0.2', advbase: 1, advskew: 0, demote: 0 } }, 4000);
    assert.equal(node.state('1@eth0'), 'BACKUP');
    assert.deepEqual(types(fx), ['transition'], 'no release yet');
    assert.deepEqual(node.timers(), [{ timer: 'hold', key: '1@eth0', dueAt: 6000 }]);
    assert.deepEqual(
      types(node.step({ type: 'tick' }, 6000)).filter((x) => x.startsWith('vip')),
      ['vip del 198.18.0.101/24'],
    );
  });

  it('an undemoted master yielding releases at once; shutdown cuts a hold short', () => {
    const { node } = master({ handoverHoldMs: 2000, preempt: true });
    const fx = node.step({ type: 'advert', key: '1@eth0', advert: { src: '198.18.0.0', advbase: 1, advskew: 0, demote: 0 } }, 4000);
    assert.ok(types(fx).includes('transition'));
    assert.ok(types(fx).includes('vip del 198.18.0.101/24'), 'equal advskew, lower source address: yields and releases');

    const held = master({ handoverHoldMs: 2000 }).node;
    held.step({ type: 'demote', group: 'carp', by: 'admin', delta: 10 }, 4000);
    held.step({ type: 'advert', key: '1@eth0', advert: { src: '198.18.0.2', advbase: 1, advskew: 100, demote: 0 } }, 4010);
    assert.deepEqual(types(held.step({ type: 'shutdown' }, 4020)), ['transition', 'vip del 198.18.0.101/24'], 'BACKUP → INIT, and the held VIP goes');
    assert.equal(held.nextDue(), undefined);
    assert.deepEqual(held.ledger.entries(), [], 'shutdown undoes every demotion');
  });

  it('three failed sends demote by senderr_demotion, three good ones undo it, link up clears it', () => {
    const { node } = master({ senderrDemotion: 100 });
    for (let i = 0; i < 2; i++) node.step({ type: 'send-result', ifname: 'eth0', ok: false }, 3000);
    assert.equal(node.ledger.held('carp', 'senderr:eth0'), 0);
    const fx = node.step({ type: 'send-result', ifname: 'eth0', ok: false }, 3000);
    assert.equal(node.ledger.held('carp', 'senderr:eth0'), 100);
    assert.ok(types(fx).includes('send'), 'a master advertises its new demotion at once');
    for (let i = 0; i < 3; i++) node.step({ type: 'send-result', ifname: 'eth0', ok: true }, 3000);
    assert.equal(node.ledger.held('carp', 'senderr:eth0'), 0);
    for (let i = 0; i < 3; i++) node.step({ type: 'send-result', ifname: 'eth0', ok: false }, 3000);
    node.step({ type: 'link', ifname: 'eth0', up: false }, 3100);
    assert.equal(node.ledger.held('carp', 'link:eth0'), 240);
    node.step({ type: 'link', ifname: 'eth0', up: true }, 3200);
    assert.deepEqual(node.ledger.entries(), []);
  });

  it('reconfigure: removed vhids bow out and release, changed ones update in place, new ones start', () => {
    const { node } = master({}, [vhid(1), vhid(2, { advskew: 10 })]);
    const fx = node.step(
      { type: 'reconfigure', config: config([vhid(1, { addresses: ['198.18.0.201/24'], fingerprint: 'v1b' }), vhid(3)]), links: { eth0: true } },
      3100,
    );
    const res = fx.find((e) => e.type === 'reconfigured');
    assert.deepEqual(res && res.type === 'reconfigured' && res.result, { added: ['3@eth0'], removed: ['2@eth0'], changed: ['1@eth0'], unchanged: [] });
    const vips = types(fx).filter((x) => x.startsWith('vip') || x.startsWith('garp'));
    assert.deepEqual(
      vips,
      ['vip del 198.18.0.101/24', 'vip add 198.18.0.201/24', 'garp 198.18.0.201/24', 'vip del 198.18.0.103/24'],
      'vhid 2 was BACKUP (nothing to release); the new vhid 3 starts by clearing its VIP',
    );
    assert.deepEqual(node.keys(), ['1@eth0', '3@eth0']);
  });

  it('master-down timers due together are served in one tick, and not a millisecond early', () => {
    const node = new CarpNode();
    node.step({ type: 'start', config: config([vhid(1), vhid(2, { advskew: 0 })]), links: { eth0: true } }, 0);
    node.step({ type: 'start', config: config([]), links: {} }, 1);
    // Before, a master-down timer due within TIMER_BATCH_MS was served early: both took over at 2999.
    assert.equal(node.step({ type: 'tick' }, 2999).filter((e) => e.type === 'transition').length, 0);
    const fx = node.step({ type: 'tick' }, 3000);
    assert.equal(fx.filter((e) => e.type === 'transition').length, 2);
  });
});
