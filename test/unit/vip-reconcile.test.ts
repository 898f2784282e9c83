/**
 * The VIP reconcile (issue 10, defect 0): a MASTER keeps its VIPs against the kernel's address
 * list. FakeNet follows Linux's primary/secondary rule, so deleting a VIP that became its subnet's
 * primary takes the other VIPs of that subnet with it while promote_secondaries is 0, as on a
 * real kernel. Fake wire and fake clock: deterministic, no real-time waits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressKey, CarpNode, type NodeConfig, type NodeEffect } from '../../src/core/node.js';
import { interfaceAddresses, monitorIfname } from '../../src/adapters/linux-net.js';
import { renderMetrics } from '../../src/daemon/metrics.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { formatStats, formatStatus, statsReport, statusReport } from '../../src/daemon/reports.js';
import { Sim, vhidCfg, type SimNode } from '../helpers/fake-wire.js';

/** Let the engines' VIP queues and address checks (promises) drain. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

/** Advance fake time in steps, letting promises run between them (bounded). */
async function run(sim: Sim, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    sim.time.advance(Math.min(step, ms - t));
    await settle();
  }
}

const VHIDS = 6;
const vip = (v: number) => `10.250.8.${v}/24`;
/** vhid 1 belongs to n3, 2 to n1, 3 to n2, 4 to n3, …: each node owns two. */
const owner = (v: number) => ((v + 1) % 3) + 1;

/** advskew of node `n` (1..3) for vhid `v`: 0 for its owner, 50 for the next node, 100 for the third. */
function skew(n: number, v: number): number {
  const o = owner(v);
  return n === o ? 0 : n === (o % 3) + 1 ? 50 : 100;
}

function addNode(sim: Sim, name: string, n: number): SimNode {
  // The VIPs share one /24 that is not the node's own subnet (198.18.0.0/24): the first VIP added
  // becomes that subnet's primary address.
  const vhids = Array.from({ length: VHIDS }, (_, i) => vhidCfg(i + 1, skew(n, i + 1), { addresses: [vip(i + 1)] }));
  return sim.add(name, n, vhids, { preempt: true, log: 7 });
}

function keysOf(sim: Sim, name: string, state: string): string[] {
  return sim
    .node(name)
    .engine.status()
    .filter((s) => s.state === state)
    .map((s) => s.key);
}

/** Every VIP of every MASTER of `name` is on its interface. Returns the missing ones. */
function missing(node: SimNode): string[] {
  const out: string[] = [];
  for (const s of node.engine.status()) {
    if (s.state !== 'MASTER') continue;
    for (const a of s.addresses) if (!node.net.vips.has(`${a}@${s.interface}`)) out.push(`${s.key} ${a}`);
  }
  return out;
}

/**
 * Advance until `node`'s next advert for one of `first` is due before any for `before` (bounded),
 * from the adverts it put on the wire and their period (advbase + advskew/256).
 */
async function untilNextAdvertOf(sim: Sim, node: string, first: number[], before: number[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const next = new Map<number, number>();
    for (const e of sim.wire.log) {
      if (e.node !== node) continue;
      const h = carpHeader.decode(e.payload);
      next.set(h.vhid, e.at + (h.advbase * 1000 + (h.advskew * 1000) / 256));
    }
    const soonest = (vs: number[]) => Math.min(...vs.map((v) => next.get(v) ?? Infinity));
    if (soonest(first) < soonest(before)) return;
    await run(sim, Math.max(1, soonest(before) - sim.time.now + 1), 1_000);
  }
  throw new Error(`${node}: never an advert for ${first.join(', ')} before ${before.join(', ')}`);
}

function restored(node: SimNode): number {
  let n = 0;
  for (const s of node.engine.status()) n += (node.engine.vhidStats(s.key) as { vipRestored?: number } | undefined)?.vipRestored ?? 0;
  return n;
}

describe('VIP reconcile against the kernel (FakeNet with Linux promote_secondaries semantics)', () => {
  it('the chaos-soak sequence: node 1 takes vhid 1 first, loses it to the restarted node 3, and re-adds the VIPs the primary took with it', async () => {
    const sim = new Sim();
    const n1 = addNode(sim, 'n1', 1);
    addNode(sim, 'n2', 2);
    addNode(sim, 'n3', 3);
    for (const n of sim.nodes.values()) n.engine.start();
    await run(sim, 8_000);
    for (let v = 1; v <= VHIDS; v++) assert.deepEqual(sim.masters(`${v}@eth0`), [`n${owner(v)}`], `vhid ${v} with its owner`);

    // Node 1's link goes down while node 3 is killed -9: node 2 holds every vhid.
    n1.net.setLink('eth0', false);
    sim.crash('n3');
    await run(sim, 8_000);
    for (let v = 1; v <= VHIDS; v++) assert.deepEqual(sim.masters(`${v}@eth0`), ['n2'], `vhid ${v} on n2`);
    assert.equal(n1.net.vips.size, 0, 'n1 released its VIPs when its link went');

    // Someone (a sysctl.d file, an admin) has set promote_secondaries back to 0 since carpd set it
    // at start (the next test): the reconcile alone must save what the kernel deletes.
    n1.net.promote.set('eth0', 0);

    // Node 1's link comes back just before n2's next advert is one of n3's vhids (1 or 4): n1
    // preempts that one first (skew 50 against n2's 100), so its VIP becomes the primary of
    // 10.250.8.0/24, then its own (2, 5) as their adverts come.
    await untilNextAdvertOf(sim, 'n2', [1, 4], [2, 5]);
    n1.net.setLink('eth0', true);
    await run(sim, 8_000);
    assert.deepEqual(keysOf(sim, 'n1', 'MASTER').sort(), ['1@eth0', '2@eth0', '4@eth0', '5@eth0']);
    const primary = [vip(1), vip(4)].find((c) => n1.net.isPrimary('eth0', c));
    assert.ok(primary, `one of n3's VIPs is the primary of 10.250.8.0/24 on n1: ${n1.net.kernel.get('eth0')?.join(' ')}`);
    assert.deepEqual(missing(n1), []);

    // Node 3 restarts and takes vhids 1 and 4 back; n1 deletes 10.250.8.1/24, its subnet's primary.
    const n3 = addNode(sim, 'n3b', 3);
    n3.engine.start();
    await run(sim, 8_000);
    assert.deepEqual(keysOf(sim, 'n1', 'MASTER').sort(), ['2@eth0', '5@eth0']);
    assert.deepEqual(keysOf(sim, 'n3b', 'MASTER').sort(), ['1@eth0', '4@eth0']);
    assert.ok(
      n1.net.cascaded.some((c) => c === `${vip(2)}@eth0` || c === `${vip(5)}@eth0`),
      `the kernel deleted n1's own VIPs with the primary: ${n1.net.cascaded.join(' ')}`,
    );
    for (const n of sim.nodes.values()) assert.deepEqual(missing(n), [], `${n.name} holds every VIP of its MASTER vhids`);
    assert.ok(
      n1.logs.some((l) => /carp: [25]@eth0: VIP 10\.250\.8\.[25]\/24 vanished from eth0 while MASTER \(found by an address event\); re-added/.test(l)),
      n1.logs.filter((l) => l.includes('VIP')).join('\n'),
    );
    assert.ok(restored(n1) >= 1, 'counted');
    // No node holds a VIP of a vhid it is not MASTER of.
    for (const n of sim.nodes.values()) {
      for (const s of n.engine.status()) {
        if (s.state === 'MASTER') continue;
        for (const a of s.addresses) assert.ok(!n.net.vips.has(`${a}@eth0`), `${n.name} holds ${a} as ${s.state}`);
      }
    }
  });

  it('with promote_secondaries left as carpd set it, the same deletion loses nothing', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0, { addresses: [vip(1)] }), vhidCfg(2, 0, { addresses: [vip(2)] })]);
    a.engine.start();
    assert.equal(a.net.promote.get('eth0'), 1);
    assert.ok(
      a.logs.some((l) => l.includes('set net.ipv4.conf.eth0.promote_secondaries = 1 (was 0)')),
      a.logs.join('\n'),
    );
    await run(sim, 5_000);
    assert.ok(a.net.isPrimary('eth0', vip(1)));
    a.engine.force('1@eth0', 'BACKUP');
    await settle();
    assert.deepEqual(a.net.cascaded, []);
    assert.ok(a.net.vips.has(`${vip(2)}@eth0`));
    assert.equal(restored(a), 0);
  });

  it('an address deleted by hand from a MASTER comes back on the address event, before any periodic check', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0, { addresses: [vip(1), '10.250.9.1/24'] })]);
    a.engine.start();
    await run(sim, 5_000);
    assert.equal(sim.state('a', '1@eth0'), 'MASTER');
    a.net.actions.length = 0;
    a.net.kernelDel('eth0', '10.250.9.1/24');
    await settle(); // no fake time passes: only the event can have found it
    assert.ok(a.net.vips.has('10.250.9.1/24@eth0'), [...a.net.vips].join(' '));
    assert.deepEqual(a.net.actions, ['add 10.250.9.1/24 eth0', 'garp 10.250.9.1/24 eth0']);
    assert.ok(a.logs.some((l) => l === 'carp: 1@eth0: VIP 10.250.9.1/24 vanished from eth0 while MASTER (found by an address event); re-added'));
    assert.equal(restored(a), 1);
  });

  it('a loss no event reported is found by the periodic check within 5 s', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0, { addresses: [vip(1)] })]);
    a.engine.start();
    await run(sim, 5_000);
    a.net.kernel.set('eth0', ['198.18.0.1/24']); // gone without an event (ip monitor not running)
    await settle();
    assert.ok(!a.net.vips.has(`${vip(1)}@eth0`));
    await run(sim, 5_000);
    assert.ok(a.net.vips.has(`${vip(1)}@eth0`));
    assert.ok(a.logs.some((l) => l.includes('vanished from eth0 while MASTER (found by the periodic check); re-added')));
  });

  it('a VIP on a BACKUP is removed (a hand-added copy, a failed delete); addresses carpd does not list are left alone', async () => {
    const sim = new Sim();
    const m = sim.add('m', 1, [vhidCfg(1, 0, { addresses: [vip(1)] })]);
    const b = sim.add('b', 2, [vhidCfg(1, 100, { addresses: [vip(1)] })]);
    m.engine.start();
    b.engine.start();
    await run(sim, 5_000);
    assert.equal(sim.state('b', '1@eth0'), 'BACKUP');
    // Someone adds the VIP by hand on the BACKUP (or a delete failed), and an address of their own.
    b.net.kernelAdd('eth0', '10.250.8.200/24');
    b.net.kernelAdd('eth0', vip(1));
    await settle();
    assert.deepEqual(b.net.kernel.get('eth0'), ['198.18.0.2/24', '10.250.8.200/24']);
    assert.ok(
      b.logs.some((l) => l.includes(`VIP ${vip(1)} still on eth0 while BACKUP`) && l.endsWith('removed')),
      b.logs.join('\n'),
    );
    assert.equal((b.engine.vhidStats('1@eth0') as { vipRemoved?: number }).vipRemoved, 1);
    assert.ok(m.net.vips.has(`${vip(1)}@eth0`));
  });

  it('a re-add that fails takes the VIP-failure path: demotion, retry with backoff, then gratuitous ARP', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0, { addresses: [vip(1)] })]);
    a.engine.start();
    await run(sim, 5_000);
    a.net.failAdds = 1;
    a.net.actions.length = 0;
    a.net.kernelDel('eth0', vip(1));
    await settle();
    assert.equal(a.engine.ledger.held('carp', 'vip:1@eth0'), 240, 'demoted while the VIP is missing');
    assert.ok(!a.net.vips.has(`${vip(1)}@eth0`));
    await run(sim, 1_100);
    assert.ok(a.net.vips.has(`${vip(1)}@eth0`));
    assert.equal(a.engine.ledger.held('carp', 'vip:1@eth0'), 0);
    assert.deepEqual(a.net.actions, [`add-failed ${vip(1)} eth0`, `garp ${vip(1)} eth0`, `add ${vip(1)} eth0`, `garp ${vip(1)} eth0`]);
  });

  it('a reload that rebuilds a vhid while its VIP add is in flight does not leave it unchecked', async () => {
    const sim = new Sim();
    const cfg = vhidCfg(1, 0, { addresses: [vip(1)] });
    const a = sim.add('a', 1, [cfg]);
    a.engine.start();
    await settle();
    a.engine.force('1@eth0', 'MASTER');
    // The add is queued, not yet done; a new password rebuilds the vhid's wire meanwhile.
    a.engine.reconfigure({ global: { allow: true, preempt: false, log: 7 }, vhids: [{ ...cfg, password: 'other' }] });
    await run(sim, 1_000);
    assert.equal(sim.state('a', '1@eth0'), 'MASTER');
    a.net.kernelDel('eth0', vip(1));
    await settle();
    assert.ok(a.net.vips.has(`${vip(1)}@eth0`), 'the vhid is still reconciled after the reload');
  });

  it('the counter shows in carpctl status, stats and the metrics', async () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0, { addresses: [vip(1)] })]);
    a.engine.start();
    await run(sim, 5_000);
    a.net.kernelDel('eth0', vip(1));
    await settle();
    const status = formatStatus(statusReport(a.engine)).join('\n');
    assert.match(status, /VIP re-added 1 time after it vanished from the interface while MASTER/);
    assert.match(formatStats(statsReport(a.engine)).join('\n'), /1@eth0: .* bad authentication, 1 VIP re-added after vanishing$/m);
    assert.match(renderMetrics({ engine: a.engine }), /^carpd_vhid_vip_restored_total\{key="1@eth0",vhid="1",interface="eth0"\} 1$/m);
  });
});

describe('vip-check in the pure node', () => {
  const config = (): NodeConfig => ({
    preempt: false,
    masterDown: 'freebsd',
    ifdownDemotion: 240,
    senderrDemotion: 240,
    handoverHoldMs: 0,
    demotions: [],
    vipCheckMs: 5_000,
    vhids: [
      {
        key: '1@eth0',
        vhid: 1,
        ifname: 'eth0',
        addresses: ['2001:DB8:0::1/64', '10.0.0.1/24'],
        advbase: 1,
        advskew: 0,
        deadRatio: 3,
        groups: ['carp'],
        fingerprint: '1',
      },
    ],
  });
  const vipFx = (fx: NodeEffect[]) => fx.filter((e) => e.type === 'vip' || e.type === 'vip-repaired').map((e) => JSON.stringify(e));

  it('arms a check at start and every vipCheckMs after', () => {
    const node = new CarpNode();
    node.step({ type: 'start', config: config(), links: { eth0: true } }, 0);
    assert.deepEqual(
      node.timers().filter((t) => t.timer === 'check'),
      [{ timer: 'check', key: '', dueAt: 0 }],
    );
    const fx = node.step({ type: 'tick' }, 0);
    assert.ok(fx.some((e) => e.type === 'check-vips'));
    assert.equal(node.timers().find((t) => t.timer === 'check')?.dueAt, 5_000);
  });

  it('compares addresses in one spelling, and leaves a vhid with VIP work in flight alone', () => {
    const node = new CarpNode();
    node.step({ type: 'start', config: config(), links: { eth0: true } }, 0);
    node.step({ type: 'force', key: '1@eth0', state: 'MASTER', reason: 'test' }, 0);
    assert.deepEqual(vipFx(node.step({ type: 'vip-check', addresses: { eth0: ['2001:db8::1/64', '10.0.0.1/24'] }, why: 'test' }, 1)), []);
    assert.deepEqual(vipFx(node.step({ type: 'vip-check', addresses: { eth0: ['2001:db8::1/64'] }, skip: ['1@eth0'], why: 'test' }, 2)), []);
    assert.deepEqual(vipFx(node.step({ type: 'vip-check', addresses: { eth0: ['2001:db8::1/64'] }, why: 'test' }, 3)), [
      JSON.stringify({ type: 'vip-repaired', key: '1@eth0', cidr: '10.0.0.1/24', op: 'add' }),
      JSON.stringify({ type: 'vip', op: 'add', key: '1@eth0', ifname: 'eth0', cidr: '10.0.0.1/24' }),
    ]);
    // An interface the kernel did not list (gone) is not a reason to act.
    assert.deepEqual(vipFx(node.step({ type: 'vip-check', addresses: {}, why: 'test' }, 4)), []);
    assert.equal(addressKey('2001:DB8:0:0::0001/64'), addressKey('2001:db8::1'));
    assert.equal(addressKey('::ffff:10.0.0.1'), addressKey('::ffff:a00:1'));
  });
});

describe('LinuxNet reading the kernel', () => {
  it('folds labelled addresses (eth0:1) into their interface and drops the IPv6 scope', () => {
    const info = (cidr: string, family: 'IPv4' | 'IPv6' = 'IPv4') => ({
      address: cidr.split('/')[0]!,
      netmask: '',
      family,
      mac: '02:00:00:00:00:01',
      internal: false,
      cidr,
      ...(family === 'IPv6' ? { scopeid: 2 } : {}),
    });
    const got = interfaceAddresses(
      {
        eth0: [info('198.18.0.1/24'), info('10.250.8.1/24'), info('fe80::1%eth0/64', 'IPv6')],
        'eth0:1': [info('10.250.8.9/24')],
        eth1: [info('10.0.0.1/24')],
      } as Parameters<typeof interfaceAddresses>[0],
      ['eth0'],
    );
    assert.deepEqual(got, { eth0: ['198.18.0.1/24', '10.250.8.1/24', 'fe80::1/64', '10.250.8.9/24'] });
  });

  it('names the interface of an ip -o monitor address line, added or deleted', () => {
    assert.equal(monitorIfname('3: v0    inet 10.250.8.5/24 scope global secondary v0\\       valid_lft forever preferred_lft forever'), 'v0');
    assert.equal(monitorIfname('Deleted 2: eth0    inet 10.250.8.2/24 scope global secondary eth0\\       valid_lft forever'), 'eth0');
    assert.equal(monitorIfname('Deleted 7: eth0.10    inet6 2001:db8::1/64 scope global \\       valid_lft forever'), 'eth0.10');
    assert.equal(monitorIfname('[ADDR]3: v0    inet 10.0.0.1/24 scope global v0'), 'v0');
    assert.equal(monitorIfname('3: v0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500'), undefined);
  });
});
