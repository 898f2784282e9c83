import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DemotionLedger } from '../../src/core/demotion.js';
import { effectiveAdvskew, VhidMachine, type Effect, type MachineConfig } from '../../src/core/machine.js';

function machine(over: Partial<MachineConfig> = {}): VhidMachine {
  return new VhidMachine({ key: '1@eth0', vhid: 1, advbase: 1, advskew: 50, preempt: false, masterDown: 'freebsd', deadRatio: 3, srcip: '10.0.0.2', ...over });
}

const types = (fx: Effect[]) => fx.map((f) => (f.type === 'vip' ? `vip-${f.op}` : f.type));
const ad = (advbase: number, advskew: number, demote = 0, src = '10.0.0.1') => ({ type: 'advert' as const, advert: { src, advbase, advskew, demote } });

describe('VhidMachine', () => {
  it('starts in INIT and goes BACKUP with a FreeBSD master-down timer of 3*advbase + advskew/256', () => {
    const m = machine();
    assert.equal(m.state, 'INIT');
    const fx = m.step({ type: 'start', linkUp: true }, 1000);
    assert.equal(m.state, 'BACKUP');
    assert.deepEqual(types(fx), ['transition', 'vip-del'], 'a VIP left by an earlier instance is released');
    assert.equal(m.timers.masterDown, 1000 + 3000 + (50 * 1000) / 256);
  });

  it('uses the OpenBSD formula 3*(advbase + advskew/256) when asked', () => {
    const m = machine({ masterDown: 'openbsd' });
    m.step({ type: 'start', linkUp: true }, 0);
    assert.equal(m.timers.masterDown, 3 * (1000 + (50 * 1000) / 256));
  });

  it('stays INIT while the link is down at start', () => {
    const m = machine();
    assert.deepEqual(m.step({ type: 'start', linkUp: false }, 0), []);
    assert.equal(m.state, 'INIT');
    assert.equal(m.nextDue(), undefined);
  });

  it('becomes MASTER on master-down expiry: advert, VIP add, GARP, in that order', () => {
    const m = machine();
    m.step({ type: 'start', linkUp: true }, 0);
    assert.deepEqual(m.step({ type: 'timeout' }, 3000), [], 'not due yet');
    const fx = m.step({ type: 'timeout' }, 3196);
    assert.deepEqual(types(fx), ['transition', 'send', 'vip-add', 'garp']);
    assert.equal(m.state, 'MASTER');
    assert.deepEqual(fx[1], { type: 'send', advbase: 1, advskew: 50, demote: 0 });
    assert.equal(m.timers.advertise, 3196 + 1000 + (50 * 1000) / 256);
  });

  it('repeats the gratuitous ARP after the second advert as MASTER', () => {
    const m = machine();
    m.step({ type: 'start', linkUp: true }, 0);
    let now = 3196;
    m.step({ type: 'timeout' }, now);
    const seen: string[][] = [];
    for (let i = 0; i < 4; i++) {
      now = m.nextDue()!;
      seen.push(types(m.step({ type: 'timeout' }, now)));
    }
    assert.deepEqual(seen, [['send'], ['send', 'garp'], ['send'], ['send']]);
  });

  it('backup restarts its master-down timer on every advert', () => {
    const m = machine();
    m.step({ type: 'start', linkUp: true }, 0);
    m.step(ad(1, 0), 2500);
    assert.equal(m.timers.masterDown, 2500 + 3000 + (50 * 1000) / 256);
    assert.equal(m.state, 'BACKUP');
  });

  it('backup with lower advskew preempts when preempt is on', () => {
    const m = machine({ advskew: 0, preempt: true });
    m.step({ type: 'start', linkUp: true }, 0);
    const fx = m.step(ad(1, 100), 500);
    assert.equal(m.state, 'MASTER');
    assert.equal((fx[0] as { reason: string }).reason, 'preempting a slower master');
  });

  it('backup with lower advskew does not preempt when preempt is off', () => {
    const m = machine({ advskew: 0, preempt: false });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step(ad(1, 100), 500);
    assert.equal(m.state, 'BACKUP');
  });

  it('takes over at once from a master that advertises slower than our master-down time (bow-out)', () => {
    const m = machine();
    m.step({ type: 'start', linkUp: true }, 0);
    const fx = m.step(ad(255, 255), 100);
    assert.equal(m.state, 'MASTER');
    assert.equal((fx[0] as { reason: string }).reason, 'master bowed out');
    const slow = machine();
    slow.step({ type: 'start', linkUp: true }, 0);
    slow.step(ad(4, 0), 100);
    assert.equal(slow.state, 'MASTER');
  });

  it('takes over from a more demoted master regardless of preempt (OpenBSD)', () => {
    const m = machine({ advskew: 100, preempt: false });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step(ad(1, 0, 1), 100);
    assert.equal(m.state, 'MASTER');
  });

  it('does not preempt a less demoted master even when faster', () => {
    const m = machine({ advskew: 0, preempt: true });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'demotion', demotion: 10 }, 0);
    m.step(ad(1, 100, 0), 100);
    assert.equal(m.state, 'BACKUP');
  });

  it('master yields to a more frequent advert and removes its VIP', () => {
    const m = machine({ advskew: 100 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 'test' }, 0);
    const fx = m.step(ad(1, 0), 10);
    assert.deepEqual(types(fx), ['transition', 'vip-del']);
    assert.equal(m.state, 'BACKUP');
    assert.equal(m.timers.advertise, undefined);
  });

  it('master reasserts (advert + GARP) against a slower master', () => {
    const m = machine({ advskew: 0 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 'test' }, 0);
    const fx = m.step(ad(1, 100), 10);
    assert.equal(m.state, 'MASTER');
    assert.deepEqual(types(fx), ['send', 'garp']);
  });

  it('master reasserts at most once an advertisement interval, however many slower adverts arrive', () => {
    const m = machine({ advskew: 0 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 'test' }, 0);
    const all: Effect[] = [];
    for (let i = 0; i < 1000; i++) all.push(...m.step(ad(1, 100, 0, `10.0.${i >> 8}.${i & 255}`), 10 + i));
    assert.equal(m.state, 'MASTER');
    assert.deepEqual(types(all), ['send', 'garp'], '1000 slower adverts in one second: one reassertion');
    assert.deepEqual(types(m.step(ad(1, 100), 1010)), ['send', 'garp'], 'the next interval reasserts again');
  });

  it('master yields to a less demoted peer even when slower', () => {
    const m = machine({ advskew: 0 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 'test' }, 0);
    m.step({ type: 'demotion', demotion: 5 }, 0);
    m.step(ad(1, 200, 0), 10);
    assert.equal(m.state, 'BACKUP');
  });

  it('equal priority: the lower source address keeps MASTER', () => {
    const high = machine({ advskew: 0, srcip: '10.0.0.9' });
    high.step({ type: 'start', linkUp: true }, 0);
    high.step({ type: 'force', state: 'MASTER', reason: 't' }, 0);
    high.step(ad(1, 0, 0, '10.0.0.3'), 5);
    assert.equal(high.state, 'BACKUP');
    const low = machine({ advskew: 0, srcip: '10.0.0.3' });
    low.step({ type: 'start', linkUp: true }, 0);
    low.step({ type: 'force', state: 'MASTER', reason: 't' }, 0);
    low.step(ad(1, 0, 0, '10.0.0.9'), 5);
    assert.equal(low.state, 'MASTER');
  });

  it('a demotion change makes a master advertise at once with the demotion folded into advskew', () => {
    const m = machine({ advskew: 10 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 't' }, 0);
    const fx = m.step({ type: 'demotion', demotion: 20 }, 100);
    assert.deepEqual(fx, [{ type: 'send', advbase: 1, advskew: 30, demote: 20 }]);
    assert.deepEqual(m.step({ type: 'demotion', demotion: 20 }, 200), [], 'no change, no advert');
  });

  it('folds demotion into advskew capped at 240 and never makes a node look better', () => {
    assert.equal(effectiveAdvskew(100, 0), 100);
    assert.equal(effectiveAdvskew(100, 50), 150);
    assert.equal(effectiveAdvskew(100, 240), 240);
    assert.equal(effectiveAdvskew(250, 10), 250);
    assert.equal(effectiveAdvskew(250, 0), 250);
  });

  it('link down goes INIT and drops the VIP; link up goes BACKUP', () => {
    const m = machine();
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 't' }, 0);
    assert.deepEqual(types(m.step({ type: 'link', up: false }, 10)), ['transition', 'vip-del']);
    assert.equal(m.state, 'INIT');
    assert.equal(m.nextDue(), undefined);
    assert.deepEqual(m.step(ad(1, 0), 20), [], 'INIT ignores adverts');
    m.step({ type: 'link', up: true }, 30);
    assert.equal(m.state, 'BACKUP');
  });

  it('shutdown sends a bow-out advert (255/255) and releases the VIP', () => {
    const m = machine();
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 't' }, 0);
    const fx = m.step({ type: 'shutdown' }, 10);
    assert.deepEqual(fx[0], { type: 'send', advbase: 255, advskew: 255, demote: 0 });
    assert.deepEqual(types(fx), ['send', 'transition', 'vip-del']);
    assert.equal(m.state, 'INIT');
  });

  it('forced BACKUP from MASTER bows out and holds off one master-down time', () => {
    const m = machine({ advskew: 0 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 't' }, 0);
    const fx = m.step({ type: 'force', state: 'BACKUP', reason: 'user requested' }, 100);
    assert.deepEqual(fx[0], { type: 'send', advbase: 255, advskew: 255, demote: 0 });
    assert.deepEqual(types(fx), ['send', 'transition', 'vip-del']);
    assert.equal(m.timers.masterDown, 100 + 2 * 3000);
  });

  it('a slow master times out at once only when slower than 3 × advbase plus our own skew', () => {
    const m = machine({ advskew: 200 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step(ad(3, 100), 100);
    assert.equal(m.state, 'BACKUP', '3.39 s is not slower than our 3.78 s');
    m.step(ad(3, 220), 200);
    assert.equal(m.state, 'MASTER', '3.86 s is');
  });

  it('forced BACKUP holds off and does not preempt back', () => {
    const m = machine({ advskew: 0, preempt: true });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'force', state: 'MASTER', reason: 't' }, 0);
    m.step({ type: 'force', state: 'BACKUP', reason: 'user requested', holdMs: 3000 }, 100);
    assert.equal(m.timers.masterDown, 100 + 3000 + 3000);
    m.step(ad(1, 100), 200);
    assert.equal(m.state, 'BACKUP', 'preemption suppressed after a forced BACKUP');
  });
});

describe('DemotionLedger', () => {
  it('undoes exactly what each demoter added', () => {
    const l = new DemotionLedger();
    l.adjust('carp', 'admin', 5);
    l.adjust('carp', 'plugin:httpd', 10);
    assert.equal(l.total('carp'), 15);
    l.adjust('carp', 'admin', -20);
    assert.equal(l.total('carp'), 10, 'admin cannot undo the plugin’s demotion');
    l.release('plugin:httpd');
    assert.equal(l.total('carp'), 0);
  });

  it('sums groups for a vhid and caps at 255', () => {
    const l = new DemotionLedger();
    l.adjust('carp', 'a', 200);
    l.adjust('lan', 'b', 100);
    assert.equal(l.forGroups(['carp']), 200);
    assert.equal(l.forGroups(['carp', 'lan']), 255);
    assert.equal(l.forGroups(['carp', 'carp']), 200, 'a group counts once');
    assert.deepEqual(l.entries(), [
      { group: 'carp', by: 'a', count: 200 },
      { group: 'lan', by: 'b', count: 100 },
    ]);
    l.clear();
    assert.equal(l.forGroups(['carp', 'lan']), 0);
  });
});
