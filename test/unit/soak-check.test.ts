/**
 * The soak's checker (test/soak/check.ts) and its seeded schedule (prng.ts, faults.ts drawRound):
 * every invariant the soak reports is caught on a hand-made observation, a correct cluster gives
 * none, and one seed always draws the same faults.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluate, type CheckSpec, type NodeObservation, type VhidView } from '../soak/check.js';
import { drawRound } from '../soak/faults.js';
import { Prng, seedFrom } from '../soak/prng.js';

const VIP = (v: number) => `198.18.1.${v}`;
const spec = (preempt = true): CheckSpec => ({ vhids: [1, 2, 3], vip: VIP, preferred: (v) => `n${(v % 3) + 1}`, preempt });

/** n(v%3+1) is MASTER of v and holds its VIP; the others are BACKUP. */
function healthy(): NodeObservation[] {
  return ['n1', 'n2', 'n3'].map((name, i) => {
    const vhids = new Map<number, VhidView>();
    const addresses = new Set([`198.18.0.${i + 1}`]);
    for (const v of [1, 2, 3]) {
      const master = v % 3 === i;
      vhids.set(v, { state: master ? 'MASTER' : 'BACKUP', demote: 0 });
      if (master) addresses.add(VIP(v));
    }
    return { name, running: true, vhids, addresses };
  });
}

const kinds = (vs: ReturnType<typeof evaluate>) => vs.map((v) => `${v.kind} ${v.vhid ?? '-'} ${v.node ?? '-'}`).sort();

test('a converged cluster has no violation', () => {
  assert.deepEqual(evaluate(spec(), healthy()), []);
});

test('a MASTER whose VIP Linux deleted with its subnet primary: master-without-vip and no-holder, naming vhid and node', () => {
  const obs = healthy();
  obs[1]!.addresses!.delete(VIP(1)); // n2 is MASTER of vhid 1
  const vs = evaluate(spec(), obs);
  assert.deepEqual(kinds(vs), ['master-without-vip 1 n2', 'no-holder 1 -']);
  assert.match(vs[0]!.detail, /^vhid 1: .*VIP 198\.18\.1\.1 on no node; n1=BACKUP n2=MASTER n3=BACKUP$/);
});

test("a restarted node still holding its killed predecessor's VIP: vip-not-master and multi-holder", () => {
  const obs = healthy();
  obs[0]!.addresses!.add(VIP(2)); // n1 is BACKUP of vhid 2; n3 is its MASTER
  assert.deepEqual(kinds(evaluate(spec(), obs)), ['multi-holder 2 -', 'vip-not-master 2 n1']);
});

test('two MASTERs, a node stuck in INIT', () => {
  const obs = healthy();
  obs[0]!.vhids!.set(1, { state: 'MASTER', demote: 0 });
  obs[2]!.vhids!.set(3, { state: 'INIT', demote: 0 });
  assert.deepEqual(kinds(evaluate(spec(), obs)), ['master-without-vip 1 n1', 'multi-master 1 -', 'not-backup 3 n3']);
});

test('a carpd that does not answer, and a dead one whose VIPs are still in its namespace', () => {
  const obs = healthy();
  delete obs[0]!.vhids;
  obs[0]!.statusError = 'ECONNREFUSED';
  obs[1]!.running = false; // n2 held vhid 1's VIP when it died
  // n1's states are unknown: no claim about them (not "no MASTER" for vhid 3 it holds, not
  // "holds a VIP but is ?"); n2 is dead but its kernel still holds vhid 1's VIP.
  assert.deepEqual(kinds(evaluate(spec(), obs)), ['not-running - n2', 'unreachable - n1', 'vip-not-master 1 n2']);
  const vs = evaluate(spec(), obs);
  assert.match(vs.find((v) => v.kind === 'vip-not-master')!.detail, /n2 holds the VIP but is DEAD; VIP 198\.18\.1\.1 on n2; n1=\? n2=DEAD n3=BACKUP$/);
});

test('preempt: the preferred node must be MASTER unless someone is demoted; off, anyone may be', () => {
  const obs = healthy();
  // vhid 3 (preferred n1) moved to n2, VIP and all.
  obs[0]!.vhids!.set(3, { state: 'BACKUP', demote: 0 });
  obs[0]!.addresses!.delete(VIP(3));
  obs[1]!.vhids!.set(3, { state: 'MASTER', demote: 0 });
  obs[1]!.addresses!.add(VIP(3));
  assert.deepEqual(kinds(evaluate(spec(), obs)), ['preempt 3 n1']);
  assert.deepEqual(evaluate(spec(false), obs), []);
  obs[0]!.vhids!.set(3, { state: 'BACKUP', demote: 240 });
  assert.deepEqual(evaluate(spec(), obs), []);
});

test('one seed draws the same schedule; another seed a different one', () => {
  const draw = (seed: string) => {
    const rng = new Prng(seedFrom(seed));
    return Array.from({ length: 50 }, () => drawRound(rng, ['n1', 'n2', 'n3']));
  };
  assert.deepEqual(draw('slice-2'), draw('slice-2'));
  assert.notDeepEqual(draw('slice-2'), draw('slice-3'));
  assert.equal(seedFrom('12345'), 12345);
});

test('every drawn round: one or two faults that do not step on each other, held 2..6 s', () => {
  const rng = new Prng(seedFrom('rounds'));
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const r = drawRound(rng, ['n1', 'n2', 'n3']);
    assert.ok(r.faults.length >= 1 && r.faults.length <= 2);
    assert.ok(r.holdMs >= 2000 && r.holdMs <= 6000);
    const [a, b] = r.faults;
    for (const f of r.faults) {
      seen.add(f.kind);
      if (f.kind === 'partition') assert.ok(f.peer && f.peer !== f.node);
    }
    if (a && b) {
      assert.ok(!(a.kind === b.kind && a.node === b.node), JSON.stringify(r));
      assert.ok(!(a.node === b.node && new Set([a.kind, b.kind]).has('kill') && new Set([a.kind, b.kind]).has('hup')), JSON.stringify(r));
    }
  }
  assert.deepEqual([...seen].sort(), ['flap', 'hup', 'kill', 'loss', 'partition']);
});
