/**
 * VRRPv3 over IPv6 (issue 11 §5) with real engines on the fake wire and clock
 * (test/helpers/fake-wire.ts): adverts to ff02::12 from the interface link-local, checksummed with
 * the RFC 5798 / RFC 8200 pseudo-header; the election, kill -9 and priority-0 timings over IPv6;
 * hop limit 255 required; a mixed vhid sends one advert per family (FreeBSD vrrp_send_ad_locked()).
 * Deterministic, no waits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAdvert } from '../../src/proto/advert.js';
import { makeAuthContext } from '../../src/proto/hmac.js';
import { buildVrrp, decodeVrrp, vrrpChecksum } from '../../src/proto/vrrp.js';
import { inject6, linkLocalOf, Sim, vhidCfg } from '../helpers/fake-wire.js';

const KEY = '1@eth0';
const V6 = ['2001:db8::100/64'];
const MIXED = ['198.18.0.101/24', ...V6];
const vrrp = (priority: number, addresses = V6, over = {}) => vhidCfg(1, 0, { version: 3, priority, intervalCs: 100, password: '', addresses, ...over });
const src4 = (node: string) => `198.18.0.${node === 'a' ? 1 : node === 'b' ? 2 : 3}`;

/** The IPv6 VRRP adverts on the wire; each one's checksum verifies with the sender's link-local → ff02::12 pseudo-header. */
function wire6(sim: Sim): { at: number; node: string; priority: number; addresses: string[] }[] {
  return sim.wire.log
    .filter((l) => l.family === 6)
    .map((l) => {
      assert.equal(l.dst, 'ff02::12', 'VRRP over IPv6 goes to ff02::12');
      assert.equal(vrrpChecksum(l.payload, { family: 6, src: linkLocalOf(src4(l.node)), dst: 'ff02::12' }), 0, 'pseudo-header checksum');
      const d = decodeVrrp(l.payload, 6)!;
      assert.equal(d.version, 3);
      return { at: l.at, node: l.node, priority: d.priority, addresses: d.addresses };
    });
}

describe('VRRPv3 over IPv6 on the fake wire (real engines)', () => {
  it('freebsd carp.sh vrrp_v6: an IPv6-only VRRP vhid elects one MASTER, adverts only over IPv6 with the pseudo-header checksum', () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(150)]).engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['b']);
    const w = wire6(sim);
    assert.ok(w.length >= 5, `adverts on the wire: ${w.length}`);
    assert.equal(sim.wire.log.filter((l) => l.family === 4).length, 0, 'no IPv4 advert for an IPv6-only vhid');
    assert.ok(w.every((x) => x.addresses.length === 1 && x.addresses[0] === '2001:db8::100'));
    assert.ok(w.filter((x) => x.node === 'a').length <= 1, 'the backup stays quiet after its start');
    assert.equal(sim.node('a').engine.stats.carps_badsum, 0);
    assert.equal(sim.node('a').engine.stats.carps_ipackets6 > 0, true);
    assert.equal(sim.node('a').engine.status()[0]!.lastHeard?.src, linkLocalOf('198.18.0.2'));
  });

  it('kill -9 over IPv6: the backup takes over exactly 3 × interval + skew after the last advert', () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(150)]).engine.start();
    sim.time.advance(10_000);
    const lastB = wire6(sim)
      .filter((w) => w.node === 'b')
      .at(-1)!.at;
    sim.crash('b');
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['a']);
    const firstA = wire6(sim).find((w) => w.node === 'a' && w.at > lastB)!.at;
    assert.equal(Math.round((firstA - lastB - sim.wire.latencyMs) * 1000) / 1000, 3609.375);
  });

  it('priority 0 over IPv6: a stopping master sends it and the backup waits only Skew_Time', async () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(150)]).engine.start();
    sim.time.advance(10_000);
    const stopAt = sim.time.now;
    void sim.node('b').engine.stop();
    sim.time.advance(5000);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    const w = wire6(sim);
    const stop = w.find((x) => x.node === 'b' && x.priority === 0)!;
    assert.equal(stop.at, stopAt);
    const firstA = w.find((x) => x.node === 'a' && x.at > stopAt)!;
    assert.equal(Math.round((firstA.at - stop.at - sim.wire.latencyMs) * 1000) / 1000, 609.375);
    assert.equal(sim.node('a').events.at(-1)?.reason, 'master sent priority 0');
  });

  it('equal priority: the higher link-local wins (the machine compares IPv6 sources with its own link-local)', () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100)]).engine.start();
    sim.add('b', 2, [vrrp(100)]).engine.start();
    sim.add('c', 3, [vrrp(100)]).engine.start();
    sim.time.advance(20_000);
    // fe80::c612:3 is the highest link-local.
    assert.deepEqual(sim.masters(KEY), ['c']);
    sim.time.advance(20_000);
    assert.deepEqual(sim.masters(KEY), ['c'], 'stable');
  });

  it('hop limit not 255 is badttl, always (VRRP has no unicast exemption); 255 is taken', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vrrp(100)]);
    a.engine.start();
    sim.time.advance(100);
    const from = 'fe80::99';
    const payload = buildVrrp({ vrid: 1, priority: 200, intervalCs: 100, addresses: V6 }, { family: 6, src: from, dst: 'ff02::12' });
    assert.ok(inject6(sim.wire, 'a', payload, from, 64));
    assert.equal(a.engine.stats.carps_badttl, 1);
    assert.equal(a.engine.status()[0]!.lastHeard, undefined);
    assert.ok(inject6(sim.wire, 'a', payload, from, 255));
    assert.equal(a.engine.stats.carps_badttl, 1);
    assert.equal(a.engine.status()[0]!.lastHeard?.src, from);
    // A checksum made for another source (an IPv4-style sum, no pseudo-header) is badsum on IPv6.
    const v2form = buildVrrp({ vrid: 1, priority: 200, intervalCs: 100, addresses: V6 }, { family: 6, src: 'fe80::98', dst: 'ff02::12' });
    assert.ok(inject6(sim.wire, 'a', v2form, from, 255));
    assert.equal(a.engine.stats.carps_badsum, 1);
  });

  it('a CARP advert over IPv6 for a VRRP vhid is badver, as FreeBSD carp_input_c() counts it', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vrrp(100)]);
    a.engine.start();
    sim.time.advance(100);
    const carp = buildAdvert(makeAuthContext('', 1, V6), { advbase: 1, advskew: 0, demote: 0, counter: 1n });
    assert.ok(inject6(sim.wire, 'a', carp, 'fe80::99', 255));
    assert.equal(a.engine.stats.carps_badver, 1);
  });

  it('a mixed vhid: one advert per family, each listing that family’s VIPs (FreeBSD vrrp_send_ad_locked()); one election', async () => {
    const sim = new Sim();
    sim.add('a', 1, [vrrp(100, MIXED)]).engine.start();
    sim.add('b', 2, [vrrp(150, MIXED)]).engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['b']);
    const fromB = sim.wire.log.filter((l) => l.node === 'b');
    const v4 = fromB.filter((l) => l.family === 4);
    const v6 = fromB.filter((l) => l.family === 6);
    assert.ok(v4.length >= 5 && v4.length === v6.length, `${v4.length} IPv4, ${v6.length} IPv6`);
    assert.deepEqual(decodeVrrp(v4[0]!.payload, 4)!.addresses, ['198.18.0.101']);
    assert.equal(vrrpChecksum(v4[0]!.payload, { family: 4, src: '198.18.0.2', dst: '224.0.0.18' }), 0);
    assert.deepEqual(
      wire6(sim)
        .filter((x) => x.node === 'b')
        .map((x) => x.addresses.join()),
      v6.map(() => '2001:db8::100'),
    );
    assert.equal(sim.node('a').engine.stats.carps_badaddrs ?? 0, 0, 'each family list matches ours');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.ok(sim.node('b').net.vips.has('198.18.0.101/24@eth0'));
  });
});
