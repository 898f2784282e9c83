/**
 * VRRPv3 election: the pure machine with an explicit `now`, then whole engines on the in-memory
 * wire and fake clock (test/helpers/fake-wire.ts), sim-cluster style. Deterministic, no waits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Advert, Effect } from '../../src/core/machine.js';
import { effectivePriority, masterDownIntervalMs, skewMs, VrrpMachine, type VrrpMachineConfig } from '../../src/core/vrrp-machine.js';
import { CarpNode } from '../../src/core/node.js';
import { formatStatus, statusReport } from '../../src/daemon/reports.js';
import { decodeVrrp, vrrpChecksum } from '../../src/proto/vrrp.js';
import { Sim, vhidCfg } from '../helpers/fake-wire.js';

function machine(over: Partial<VrrpMachineConfig> = {}): VrrpMachine {
  return new VrrpMachine({
    key: '1@eth0',
    vhid: 1,
    advbase: 1,
    advskew: 0,
    preempt: false,
    masterDown: 'freebsd',
    deadRatio: 3,
    srcip: '10.0.0.2',
    priority: 100,
    intervalCs: 100,
    ...over,
  });
}

const ad = (src: string, priority: number, intervalCs = 100): Advert => ({ src, advbase: 0, advskew: 0, demote: 0, vrrp: { priority, intervalCs } });
const sends = (fx: Effect[]) => fx.filter((e): e is Extract<Effect, { type: 'send' }> => e.type === 'send').map((e) => e.vrrp?.priority);
const to = (fx: Effect[]) => fx.find((e): e is Extract<Effect, { type: 'transition' }> => e.type === 'transition')?.to;

function master(over: Partial<VrrpMachineConfig> = {}): VrrpMachine {
  const m = machine(over);
  m.step({ type: 'start', linkUp: true }, 0);
  m.step({ type: 'force', state: 'MASTER', reason: 'test' }, 0);
  assert.equal(m.state, 'MASTER');
  return m;
}

describe('VRRPv3 machine (RFC 5798 §6.4)', () => {
  it('master-down is 3 × Master_Adver_Interval + (256 − priority) × Master_Adver_Interval / 256, exactly', () => {
    assert.equal(skewMs(100, 100), (156 * 1000) / 256);
    assert.equal(masterDownIntervalMs(100, 100), 3000 + 609.375);
    assert.equal(masterDownIntervalMs(254, 100), 3000 + 7.8125);
    assert.equal(masterDownIntervalMs(1, 4095), 3 * 40_950 + (255 * 40_950) / 256);
    const m = machine();
    const fx = m.step({ type: 'start', linkUp: true }, 1000);
    assert.equal(to(fx), 'BACKUP');
    assert.equal(m.timers.masterDown, 1000 + 3609.375);
    assert.equal(m.step({ type: 'timeout' }, 1000 + 3609.374).length, 0, 'not a microsecond early');
    const fx2 = m.step({ type: 'timeout' }, 1000 + 3609.375);
    assert.equal(to(fx2), 'MASTER');
    assert.equal(m.lastReason, 'master timed out');
    assert.deepEqual(sends(fx2), [100]);
  });

  it('Master_Adver_Interval is learned from the master’s adverts, not our own', () => {
    const m = machine({ intervalCs: 100, priority: 200 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'advert', advert: ad('10.0.0.9', 250, 40) }, 500);
    assert.equal(m.masterIntervalCs, 40);
    assert.equal(m.timers.masterDown, 500 + 3 * 400 + (56 * 400) / 256);
    // Our own advert interval stays ours.
    m.step({ type: 'timeout' }, 10_000);
    assert.equal(m.state, 'MASTER');
    assert.equal(m.timers.advertise, 10_000 + 1000);
  });

  it('priority 0 from the master: the backup takes over after Skew_Time only', () => {
    const m = machine({ priority: 100 });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'advert', advert: ad('10.0.0.9', 150) }, 1000);
    m.step({ type: 'advert', advert: ad('10.0.0.9', 0) }, 1500);
    assert.equal(m.timers.masterDown, 1500 + 609.375);
    const fx = m.step({ type: 'timeout' }, 1500 + 609.375);
    assert.equal(to(fx), 'MASTER');
    assert.equal(m.lastReason, 'master sent priority 0');
  });

  it('a higher priority wins; a MASTER hearing one yields and learns its interval', () => {
    const m = master({ priority: 100 });
    const fx = m.step({ type: 'advert', advert: ad('10.0.0.1', 101, 70) }, 100);
    assert.equal(to(fx), 'BACKUP');
    assert.equal(m.lastReason, 'higher priority advertisement received');
    assert.deepEqual(
      fx.filter((e) => e.type === 'vip'),
      [{ type: 'vip', op: 'del' }],
    );
    assert.equal(m.masterIntervalCs, 70);
    assert.equal(m.timers.masterDown, 100 + masterDownIntervalMs(100, 70));
  });

  it('equal priority: the higher primary address wins (RFC 5798 §6.4.3)', () => {
    const lower = master({ srcip: '10.0.0.2' });
    assert.equal(to(lower.step({ type: 'advert', advert: ad('10.0.0.3', 100) }, 100)), 'BACKUP');
    assert.equal(lower.lastReason, 'equal priority advertisement from a higher address');
    const higher = master({ srcip: '10.0.0.2' });
    const fx = higher.step({ type: 'advert', advert: ad('10.0.0.1', 100) }, 100);
    assert.equal(higher.state, 'MASTER');
    assert.deepEqual(sends(fx), [100], 'reasserts at once');
    // At most once an interval.
    assert.deepEqual(sends(higher.step({ type: 'advert', advert: ad('10.0.0.1', 100) }, 150)), []);
    // IPv6 sources compare as 128-bit numbers, with our own IPv6 source (the link-local, srcip6).
    const six = master({ srcip: '10.0.0.2', srcip6: 'fe80::2' });
    assert.equal(to(six.step({ type: 'advert', advert: ad('fe80::1:0', 100) }, 100)), 'BACKUP');
    // A lower link-local loses to ours, though as a number it is above our IPv4 srcip.
    const six2 = master({ srcip: '10.0.0.2', srcip6: 'fe80::2' });
    six2.step({ type: 'advert', advert: ad('fe80::1', 100) }, 100);
    assert.equal(six2.state, 'MASTER');
  });

  it('preempt on: a BACKUP takes over from a lower-priority master at once; off: it stays', () => {
    const on = machine({ priority: 150, preempt: true });
    on.step({ type: 'start', linkUp: true }, 0);
    assert.equal(to(on.step({ type: 'advert', advert: ad('10.0.0.9', 100) }, 100)), 'MASTER');
    assert.equal(on.lastReason, 'preempting a lower-priority master');
    const off = machine({ priority: 150, preempt: false });
    off.step({ type: 'start', linkUp: true }, 0);
    assert.deepEqual(off.step({ type: 'advert', advert: ad('10.0.0.9', 100) }, 100), []);
    assert.equal(off.state, 'BACKUP');
    assert.equal(off.timers.masterDown, 100 + masterDownIntervalMs(150, 100), 'the master-down timer restarts');
    // Equal priority never preempts, whatever the addresses.
    const eq = machine({ priority: 100, preempt: true, srcip: '10.0.0.200' });
    eq.step({ type: 'start', linkUp: true }, 0);
    assert.deepEqual(eq.step({ type: 'advert', advert: ad('10.0.0.1', 100) }, 100), []);
  });

  it('priority 255, the address owner: MASTER at start without waiting, deaf to peers', () => {
    const m = machine({ priority: 255 });
    const fx = m.step({ type: 'start', linkUp: true }, 0);
    assert.equal(to(fx), 'MASTER');
    assert.deepEqual(sends(fx), [255]);
    assert.deepEqual(m.step({ type: 'advert', advert: ad('10.0.0.200', 254) }, 10), []);
    assert.equal(m.state, 'MASTER');
    // Demotion never moves an owner (keepalived vrrp_set_effective_priority()).
    m.step({ type: 'demotion', demotion: 240 }, 20);
    assert.equal(m.wirePriority, 255);
  });

  it('demotion lowers the advertised priority, clamped to 1..254, and a MASTER says so at once', () => {
    assert.equal(effectivePriority(100, 0), 100);
    assert.equal(effectivePriority(100, 30), 70);
    assert.equal(effectivePriority(100, 240), 1);
    assert.equal(effectivePriority(254, 0), 254);
    const m = master({ priority: 100 });
    assert.deepEqual(sends(m.step({ type: 'demotion', demotion: 40 }, 50)), [60]);
    assert.equal(m.masterDownMs(), masterDownIntervalMs(60, 100), 'the skew follows the priority on the wire');
  });

  it('shutdown and forced BACKUP send priority 0 as MASTER; a MASTER hearing priority 0 advertises at once', () => {
    const a = master();
    const fx = a.step({ type: 'shutdown' }, 100);
    assert.deepEqual(sends(fx), [0]);
    assert.equal(a.state, 'INIT');
    const b = master();
    const fb = b.step({ type: 'force', state: 'BACKUP', reason: 'user requested' }, 100);
    assert.deepEqual(sends(fb), [0]);
    assert.equal(b.state, 'BACKUP');
    const c = master();
    assert.deepEqual(sends(c.step({ type: 'advert', advert: ad('10.0.0.7', 0) }, 100)), [100]);
    assert.equal(c.state, 'MASTER');
  });
});

describe('VRRPv3 node: no replay check', () => {
  it('adverts without a counter never reach the replay guard, however often they repeat', () => {
    const node = new CarpNode();
    node.step(
      {
        type: 'start',
        links: { eth0: true },
        config: {
          preempt: false,
          masterDown: 'freebsd',
          ifdownDemotion: 240,
          senderrDemotion: 240,
          handoverHoldMs: 0,
          replayProtection: 'strict',
          demotions: [],
          vhids: [
            {
              key: '1@eth0',
              vhid: 1,
              ifname: 'eth0',
              addresses: ['10.0.0.100/24'],
              advbase: 1,
              advskew: 0,
              deadRatio: 3,
              srcip: '10.0.0.2',
              groups: ['carp'],
              fingerprint: 'x',
              version: 3,
              priority: 100,
              intervalCs: 100,
            },
          ],
        },
      },
      0,
    );
    for (let t = 1000; t <= 60_000; t += 1000) {
      const fx = node.step({ type: 'advert', key: '1@eth0', advert: ad('10.0.0.9', 200) }, t);
      assert.ok(!fx.some((e) => e.type === 'replay'), `t=${t}`);
      node.step({ type: 'tick' }, t);
    }
    assert.equal(node.state('1@eth0'), 'BACKUP');
  });
});

const KEY = '1@eth0';
const vrrp = (priority: number, over = {}) => vhidCfg(1, 0, { version: 3, priority, intervalCs: 100, password: '', ...over });

/** Let the engines' VIP queues (promises) drain. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** The VRRP adverts on the wire: time, node, priority. Each one's checksum verifies with its pseudo-header. */
function wireAdverts(sim: Sim): { at: number; node: string; priority: number }[] {
  return sim.wire.log.map((l) => {
    const src = `198.18.0.${l.node === 'a' ? 1 : l.node === 'b' ? 2 : 3}`;
    assert.equal(vrrpChecksum(l.payload, { family: 4, src, dst: '224.0.0.18' }), 0);
    const d = decodeVrrp(l.payload, 4)!;
    assert.equal(d.version, 3);
    return { at: l.at, node: l.node, priority: d.priority };
  });
}

describe('VRRPv3 on the fake wire (real engines)', () => {
  it('the higher priority becomes MASTER; status prints FreeBSD ifconfig’s vrrp line', async () => {
    const sim = new Sim();
    // Strict replay protection: VRRP adverts repeat byte for byte, and must still be taken.
    sim.add('a', 1, [vrrp(100)], { replayProtection: 'strict' }).engine.start();
    sim.add('b', 2, [vrrp(150)], { replayProtection: 'strict' }).engine.start();
    sim.time.advance(10_000);
    await settle();
    assert.deepEqual(sim.masters(KEY), ['b']);
    const lines = formatStatus(statusReport(sim.node('b').engine));
    assert.equal(lines[0], 'eth0: vrrp: MASTER vrid 1 prio 150 interval 100');
    const backup = formatStatus(statusReport(sim.node('a').engine));
    assert.equal(backup[0], 'eth0: vrrp: BACKUP vrid 1 prio 100 interval 100');
    assert.ok(backup.includes('\tbackup, master is 198.18.0.2 (prio 150 interval 100)'), backup.join('\n'));
    assert.ok(wireAdverts(sim).every((w) => w.node === 'b' || w.priority === 100));
    assert.equal(sim.node('a').engine.stats.carps_replay, 0);
    assert.equal(sim.node('a').engine.stats.carps_badsum, 0);
    assert.ok(sim.node('a').net.vips.size === 0 && sim.node('b').net.vips.has('198.18.0.101/24@eth0'));
  });

  it('a killed master is replaced after exactly 3 × interval + skew from its last advert', () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(150)]).engine.start();
    sim.time.advance(10_000);
    const lastB = wireAdverts(sim)
      .filter((w) => w.node === 'b')
      .at(-1)!.at;
    sim.crash('b');
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['a']);
    const firstA = wireAdverts(sim).find((w) => w.node === 'a' && w.at > lastB)!.at;
    // Heard 0.2 ms (the wire's latency) after it left; then 3 s + (256 − 100)/256 s.
    assert.equal(Math.round((firstA - lastB - sim.wire.latencyMs) * 1000) / 1000, 3609.375);
    assert.equal(sim.node('a').events.at(-1)?.reason, 'master timed out');
  });

  it('a master that stops sends priority 0 and the backup takes over after Skew_Time', async () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(150)]).engine.start();
    sim.time.advance(10_000);
    const stopAt = sim.time.now;
    void sim.node('b').engine.stop();
    sim.time.advance(5000);
    await settle();
    const w = wireAdverts(sim);
    const stop = w.find((x) => x.node === 'b' && x.priority === 0)!;
    assert.equal(stop.at, stopAt);
    const firstA = w.find((x) => x.node === 'a')!;
    assert.equal(Math.round((firstA.at - stop.at - sim.wire.latencyMs) * 1000) / 1000, 609.375);
    assert.equal(sim.node('a').events.at(-1)?.reason, 'master sent priority 0');
  });

  it('carpctl state BACKUP on the master: priority 0, the peer takes over, and we stay BACKUP', () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(150)]).engine.start();
    sim.time.advance(10_000);
    assert.ok(sim.node('b').engine.force(KEY, 'BACKUP'));
    sim.time.advance(20_000);
    assert.deepEqual(sim.masters(KEY), ['a']);
    assert.equal(sim.state('b', KEY), 'BACKUP', 'a lower-priority master is not preempted while preempt is off');
  });

  it('preempt: a higher-priority node joining later takes over at once, and only with preempt on', () => {
    for (const preempt of [true, false]) {
      const sim = new Sim();
      sim.add('a', 1, [vrrp(100)], { preempt }).engine.start();
      sim.time.advance(10_000);
      sim.add('b', 2, [vrrp(150)], { preempt }).engine.start();
      sim.time.advance(1500);
      assert.deepEqual(sim.masters(KEY), [preempt ? 'b' : 'a'], `preempt ${preempt}`);
      sim.time.advance(30_000);
      assert.deepEqual(sim.masters(KEY), [preempt ? 'b' : 'a'], `preempt ${preempt}, later`);
    }
  });

  it('equal priorities starting together (both MASTER at once) settle on the higher address', () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(100)]).engine.start();
    sim.add('c', 3, [vrrp(100)]).engine.start();
    sim.time.advance(20_000);
    assert.deepEqual(sim.masters(KEY), ['c']);
  });

  it('demotion lowers the master’s priority; a preempting backup takes over', () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)], { preempt: true }).engine.start();
    sim.add('b', 2, [vrrp(150)], { preempt: true }).engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['b']);
    sim.node('b').engine.demote('carp', 'test', 100);
    sim.time.advance(100);
    assert.deepEqual(sim.masters(KEY), ['a']);
    assert.ok(formatStatus(statusReport(sim.node('b').engine)).includes('\tdemoted: advertising prio 50'));
  });

  it('a VRRP vhid with IPv6 VIPs only sends no IPv4 advert (no empty address list), only IPv6 ones', () => {
    const sim = new Sim();
    const n = sim.add('a', 1, [vrrp(100, { addresses: ['2001:db8::1/64'] })]);
    n.engine.start();
    sim.time.advance(10_000);
    assert.equal(sim.wire.log.filter((l) => l.family === 4).length, 0);
    assert.ok(sim.wire.log.filter((l) => l.family === 6).length >= 5);
    assert.equal(n.engine.stats.carps_opackets, 0);
  });

  it('a reload that switches a vhid between CARP and VRRP starts it afresh (FreeBSD refuses to change a live vhid’s version)', () => {
    const sim = new Sim();
    const n = sim.add('a', 1, [vhidCfg(1, 0)]);
    n.engine.start();
    sim.time.advance(5000);
    assert.equal(sim.state('a', KEY), 'MASTER');
    const res = n.engine.reconfigure({ global: { allow: true, preempt: false, log: 7 }, vhids: [vrrp(100)] });
    assert.deepEqual(res.changed, [KEY]);
    assert.equal(n.engine.status()[0]!.vrrp?.priority, 100);
    assert.equal(sim.state('a', KEY), 'BACKUP');
    sim.time.advance(5000);
    assert.equal(sim.state('a', KEY), 'MASTER');
    const last = sim.wire.log.at(-1)!.payload;
    assert.equal(last[0]! >> 4, 3, 'VRRP adverts now');
  });

  it('adverts go to 224.0.0.18 whatever `peer` says (FreeBSD vrrp_send_ad_locked())', () => {
    const sim = new Sim();
    const dsts: (string | undefined)[] = [];
    const wire = sim.wire.transport.bind(sim.wire);
    sim.wire.transport = (node, addrOf) => {
      const t = wire(node, addrOf);
      return {
        open: (o) => {
          const s = t.open(o);
          return { ...s, send: (p: Buffer, dst?: string) => (dsts.push(dst), s.send(p, dst)) };
        },
      };
    };
    sim.add('a', 1, [vrrp(100, { peer: '198.18.0.2' })]).engine.start();
    sim.add('b', 2, [vhidCfg(2, 0, { peer: '198.18.0.1' })]).engine.start();
    sim.time.advance(5000);
    assert.ok(dsts.includes('224.0.0.18'));
    assert.ok(dsts.includes('198.18.0.1'), 'the CARP vhid still uses its peer');
    assert.ok(!dsts.includes('198.18.0.2'), 'the VRRP vhid never does');
  });
});

describe('VRRPv3 in the metrics', () => {
  it('a VRRP vhid exports its advertised priority; a CARP-only node exports no such family', async () => {
    const { renderMetrics } = await import('../../src/daemon/metrics.js');
    const sim = new Sim();
    const n = sim.add('a', 1, [vrrp(120), vhidCfg(2, 0)]);
    n.engine.start();
    sim.time.advance(5000);
    n.engine.demote('carp', 'test', 20);
    const text = renderMetrics({ engine: n.engine } as Parameters<typeof renderMetrics>[0]);
    assert.match(text, /^carpd_vhid_vrrp_priority\{key="1@eth0",vhid="1",interface="eth0"\} 100$/m);
    assert.ok(!/carpd_vhid_vrrp_priority\{key="2@eth0"/.test(text));
    const carpOnly = new Sim().add('b', 2, [vhidCfg(2, 0)]);
    assert.ok(!renderMetrics({ engine: carpOnly.engine } as Parameters<typeof renderMetrics>[0]).includes('vrrp_priority'));
  });
});
