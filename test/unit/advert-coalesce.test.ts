/**
 * Issue 11 §1: a MASTER's advert timers are kept together (src/core/node.ts tick/keepTogether), so
 * 255 vhids advertise in one burst, and the backup's master-down timers, which follow those
 * adverts, expire together too. Master-down timers are never served early. Pure core, fake time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADVERT_EARLY_MS, CarpNode, type NodeConfig, type NodeEffect, type NodeVhid } from '../../src/core/node.js';

function vhid(n: number, over: Partial<NodeVhid> = {}): NodeVhid {
  return {
    key: `${n}@eth0`,
    vhid: n,
    ifname: 'eth0',
    addresses: [`198.18.${n >> 8}.${n & 255}/16`],
    advbase: 1,
    advskew: 0,
    deadRatio: 3,
    srcip: '198.18.255.1',
    groups: ['carp'],
    fingerprint: `v${n}`,
    ...over,
  };
}

function config(vhids: NodeVhid[]): NodeConfig {
  return { preempt: false, masterDown: 'freebsd', ifdownDemotion: 240, senderrDemotion: 240, handoverHoldMs: 0, demotions: [], vhids };
}

/** Deterministic timer lateness in [0, maxMs): a real timer fires at or after its due time. */
function lateness(seed: number, maxMs: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x / 2 ** 32) * maxMs;
  };
}

interface Run {
  sends: Map<string, number[]>;
  /** Per vhid: when it took over, and when its master-down timer was due then. */
  takeovers: { key: string; at: number; due: number }[];
}

/**
 * Drive the node like the engine does: one timer for nextDue(), firing `late()` after it, until
 * `until`. `extraTicks`: ticks at other times too (a drop summary, a VIP check sharing the timer).
 */
function drive(node: CarpNode, until: number, late: () => number, extraTicks: number[] = [], run: Run = { sends: new Map(), takeovers: [] }): Run {
  const extra = [...extraTicks].sort((a, b) => a - b);
  for (let guard = 0; guard < 200_000; guard++) {
    const due = node.nextDue();
    let at = due === undefined ? Infinity : due + late();
    if (extra.length > 0 && extra[0]! < at) at = extra.shift()!;
    if (at > until) break;
    const downDue = new Map(node.keys().map((k) => [k, node.machine(k)!.timers.masterDown]));
    const fx: NodeEffect[] = node.step({ type: 'tick' }, at);
    for (const e of fx) {
      if (e.type === 'send') {
        let list = run.sends.get(e.key);
        if (!list) run.sends.set(e.key, (list = []));
        list.push(at);
      } else if (e.type === 'transition' && e.to === 'MASTER') run.takeovers.push({ key: e.key, at, due: downDue.get(e.key)! });
    }
  }
  return run;
}

/** 255 BACKUP vhids whose last advert from a peer was heard spread over `spreadMs`, so they take over that far apart. */
function spreadMasters(spreadMs: number, vhids = 255, over: Partial<NodeVhid> = {}): CarpNode {
  const node = new CarpNode();
  const list = Array.from({ length: vhids }, (_, i) => vhid(i + 1, over));
  node.step({ type: 'start', config: config(list), links: { eth0: true } }, 0);
  list.forEach((v, i) => {
    node.step({ type: 'advert', key: v.key, advert: { src: '198.18.255.2', advbase: 1, advskew: 0, demote: 0 } }, 100 + (i * spreadMs) / (vhids - 1));
  });
  return node;
}

describe('advert timers kept together', () => {
  it('255 vhids that became MASTER 76 ms apart advertise within the early window after a few intervals, and stay so', () => {
    const node = spreadMasters(76);
    const run = drive(node, 60_000, lateness(1, 1));
    assert.equal(run.takeovers.length, 255);
    const takeoverSpread = Math.max(...run.takeovers.map((t) => t.at)) - Math.min(...run.takeovers.map((t) => t.at));
    assert.ok(takeoverSpread > 70, `the takeovers are spread (${takeoverSpread} ms)`);
    // The sends of round r (the r-th advert of every vhid): their spread must shrink to the window.
    const rounds = Math.min(...[...run.sends.values()].map((l) => l.length));
    assert.ok(rounds >= 50, `${rounds} rounds`);
    const spreadOf = (r: number) => {
      const ts = [...run.sends.values()].map((l) => l[r]!);
      return Math.max(...ts) - Math.min(...ts);
    };
    // Closed up within 10 intervals (76 ms at ADVERT_EARLY_MS a round), then for ever.
    for (let r = 10; r < rounds; r++) assert.ok(spreadOf(r) <= ADVERT_EARLY_MS, `round ${r}: spread ${spreadOf(r).toFixed(2)} ms`);
    // No advert leaves more than twice the early window before its interval (served early by up
    // to the window, re-armed early by up to the window), and none late beyond the timer's lateness.
    for (const [key, ts] of run.sends) {
      for (let i = 1; i < ts.length; i++) {
        const gap = ts[i]! - ts[i - 1]!;
        assert.ok(gap >= 1000 - 2 * ADVERT_EARLY_MS - 1e-9 && gap <= 1001, `${key}: advert ${i} ${gap.toFixed(2)} ms after the one before`);
      }
    }
  });

  it('a backup fed the converged burst takes all 255 vhids over in one tick after a failover', () => {
    // Old master: 255 vhids spread 60 ms, run until its adverts are together.
    const a = drive(spreadMasters(60), 20_000, lateness(2, 1));
    const last = [...a.sends.values()].map((l) => l.at(-1)!);
    // The backup hears each vhid's last advert at that time (plus a transit of 0.1 ms), then none.
    const b = new CarpNode();
    const list = Array.from({ length: 255 }, (_, i) => vhid(i + 1, { advskew: 100 }));
    b.step({ type: 'start', config: config(list), links: { eth0: true } }, last[0]! - 3000);
    const order = list.map((v, i) => ({ v, at: last[i]! + 0.1 })).sort((x, y) => x.at - y.at);
    for (const { v, at } of order) b.step({ type: 'advert', key: v.key, advert: { src: '198.18.255.2', advbase: 1, advskew: 0, demote: 0 } }, at);
    const run = drive(b, last[0]! + 5000, lateness(3, 1));
    assert.equal(run.takeovers.length, 255);
    const ats = run.takeovers.map((t) => t.at);
    assert.ok(Math.max(...ats) - Math.min(...ats) <= ADVERT_EARLY_MS + 1, `takeovers spread ${(Math.max(...ats) - Math.min(...ats)).toFixed(2)} ms`);
  });

  it('no master-down timer is ever served before it is due, whatever ticks come in between', () => {
    const node = spreadMasters(5, 64);
    // Ticks every 0.25 ms around the takeovers (3100 .. 3106), as other timers sharing the one real timer would cause.
    const extra = Array.from({ length: 40 }, (_, i) => 3099 + i * 0.25);
    const run = drive(node, 10_000, lateness(4, 0.5), extra);
    assert.equal(run.takeovers.length, 64);
    for (const t of run.takeovers) assert.ok(t.at >= t.due, `${t.key} took over at ${t.at}, due ${t.due}`);
  });

  it('VRRPv3 masters are kept together as well, with the window capped at a twentieth of the interval', () => {
    const node = new CarpNode();
    const list = Array.from({ length: 50 }, (_, i) => vhid(i + 1, { version: 3, priority: 100, intervalCs: 10 }));
    node.step({ type: 'start', config: config(list), links: { eth0: true } }, 0);
    list.forEach((v, i) => {
      node.step(
        { type: 'advert', key: v.key, advert: { src: '198.18.255.2', advbase: 0, advskew: 0, demote: 0, vrrp: { priority: 100, intervalCs: 10 } } },
        50 + i * 0.4,
      );
    });
    const run = drive(node, 20_000, lateness(5, 0.2));
    assert.equal(run.takeovers.length, 50);
    const rounds = Math.min(...[...run.sends.values()].map((l) => l.length));
    const ts = [...run.sends.values()].map((l) => l[rounds - 1]!);
    assert.ok(Math.max(...ts) - Math.min(...ts) <= 5, `last round spread ${Math.max(...ts) - Math.min(...ts)} ms`);
    for (const [key, l] of run.sends) for (let i = 1; i < l.length; i++) assert.ok(l[i]! - l[i - 1]! >= 100 - 2 * 5 - 1e-9, `${key}: ${l[i]! - l[i - 1]!} ms`);
  });
});
