/**
 * IPv6 adverts and unicast peers (issue 11 §2, §3): the IPv6 codec, the hop-limit decision per
 * unicast mode (FreeBSD carp_input_c(), OpenBSD carp6_proto_input_if()), and the engine on the
 * fake wire: IPv6-only and mixed vhids, a forged hop-limit-64 advert, FreeBSD unicast across a
 * router, OpenBSD carppeer. Deterministic: fake wire and clock.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildAdvert, checkAdvert, checkAdvert6 } from '../../src/proto/advert.js';
import { makeAuthContext } from '../../src/proto/hmac.js';
import { canonicalIpv6, compareIpv6, decodeIpv6, encodeIpv6Header, formatIpv6, isMulticast4, parseIpv6 } from '../../src/proto/ipv6.js';
import { encodeIpv4Header } from '../../src/proto/ipv4.js';
import { familiesOf, unicastMode } from '../../src/daemon/engine.js';
import { Sim, inject6, vhidCfg } from '../helpers/fake-wire.js';
import { VhidMachine } from '../../src/core/machine.js';

const V6 = ['2001:db8::1/64'];
const ctx6 = makeAuthContext('secret', 1, V6);
const advert6 = (counter = 5n, advskew = 0) => buildAdvert(ctx6, { advbase: 1, advskew, demote: 0, counter });

describe('IPv6 codec', () => {
  test('formatIpv6 / parseIpv6 round trip in RFC 5952 form', () => {
    for (const a of ['::', '::1', 'fe80::a00:2', '2001:db8::1', 'ff02::12', '2001:db8:0:1:0:0:0:1', '1:0:0:2:0:0:0:3']) {
      const b = parseIpv6(a)!;
      assert.equal(parseIpv6(formatIpv6(b))!.toString('hex'), b.toString('hex'), a);
    }
    assert.equal(formatIpv6(parseIpv6('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
    assert.equal(canonicalIpv6('FE80:0:0:0:0:0:0:1%eth0'), 'fe80::1');
  });

  test('encode/decode a 40-byte header (next header 112, hop limit 255, to ff02::12)', () => {
    const h = encodeIpv6Header({ src: 'fe80::1', dst: 'ff02::12', hopLimit: 255, nextHeader: 112, payloadLength: 36 });
    const d = decodeIpv6(h);
    assert.ok(d.ok);
    assert.deepEqual([d.src, d.dst, d.hopLimit, d.nextHeader, d.payloadLength], ['fe80::1', 'ff02::12', 255, 112, 36]);
  });

  test('PR 284872: 198.51.100.224 is unicast, 224.0.0.18 is multicast', () => {
    assert.equal(isMulticast4('198.51.100.224'), false);
    assert.equal(isMulticast4('224.0.0.18'), true);
    assert.equal(isMulticast4('239.1.2.3'), true);
    assert.equal(unicastMode({ peer: '198.51.100.224' }, 4), 'freebsd');
    assert.equal(unicastMode({ peer: '224.0.0.18' }, 4), undefined);
  });

  test('compareIpv6 orders by bytes', () => {
    assert.ok(compareIpv6('fe80::1', 'fe80::2')! < 0);
    assert.ok(compareIpv6('fe80::a:0', 'fe80::9:ffff')! > 0);
    assert.equal(compareIpv6('fe80::1', '10.0.0.1'), undefined);
  });

  test('a good IPv6 advert is accepted: checksum over the 36 CARP bytes only, no pseudo-header', () => {
    const r = checkAdvert6({ payload: advert6(), src: 'fe80::2', dst: 'ff02::12', hopLimit: 255 }, () => ctx6);
    assert.ok(r.ok);
    assert.equal(r.family, 6);
    assert.equal(r.header.counter, 5n);
  });

  test('the same bytes pass over IPv4: both families share the CARP checks', () => {
    const payload = advert6();
    const ip = Buffer.concat([encodeIpv4Header({ src: '10.0.0.2', dst: '224.0.0.18', ttl: 255, tos: 0x10, protocol: 112, payloadLength: 36 }), payload]);
    const r = checkAdvert(ip, () => ctx6);
    assert.ok(r.ok);
    assert.equal(r.family, 4);
  });

  test('hop limit not 255 is badttl first (OpenBSD order), before length and checksum', () => {
    assert.deepEqual(
      checkAdvert6({ payload: Buffer.alloc(3), src: 'fe80::2', dst: 'ff02::12', hopLimit: undefined }, () => ctx6),
      {
        ok: false,
        reason: 'badttl',
        src: 'fe80::2',
      },
    );
  });

  test('short, bad checksum, bad version, unknown vhid, bad HMAC', () => {
    const rx = (payload: Buffer) => ({ payload, src: 'fe80::2', dst: 'ff02::12', hopLimit: 255 });
    const reason = (r: ReturnType<typeof checkAdvert6>) => (r.ok ? 'ok' : r.reason);
    assert.equal(reason(checkAdvert6(rx(advert6().subarray(0, 35)), () => ctx6)), 'badlen');
    const bad = advert6();
    bad[10] ^= 1;
    assert.equal(reason(checkAdvert6(rx(bad), () => ctx6)), 'badsum');
    assert.equal(reason(checkAdvert6(rx(advert6()), () => undefined)), 'badvhid');
    const other = buildAdvert(makeAuthContext('other', 1, V6), { advbase: 1, advskew: 0, demote: 0, counter: 5n });
    assert.equal(reason(checkAdvert6(rx(other), () => ctx6)), 'badauth');
  });

  test('FreeBSD unicast: the hop-limit check waits for the vhid and is skipped for an exempt vhid', () => {
    const rx = { payload: advert6(), src: '2001:db8:1::2', dst: '2001:db8:2::2', hopLimit: undefined };
    assert.ok(
      checkAdvert6(
        rx,
        () => ctx6,
        () => true,
      ).ok,
      'exempt vhid: hop limit 254 accepted',
    );
    const r = checkAdvert6(
      rx,
      () => ctx6,
      () => false,
    );
    assert.deepEqual(r.ok ? 'ok' : [r.reason, r.vhid], ['badttl', 1], 'a multicast vhid on the same interface still needs 255');
    // IPv4 too: TTL 254 from a routed unicast peer.
    const ip = Buffer.concat([
      encodeIpv4Header({ src: '198.51.100.2', dst: '198.51.100.224', ttl: 254, tos: 0x10, protocol: 112, payloadLength: 36 }),
      advert6(),
    ]);
    assert.equal(checkAdvert(ip, () => ctx6).ok, false);
    assert.ok(
      checkAdvert(
        ip,
        () => ctx6,
        () => true,
      ).ok,
    );
  });

  test('tie-break compares IPv6 sources: the lower link-local keeps MASTER', () => {
    const m = new VhidMachine({ key: '1@eth0', vhid: 1, advbase: 1, advskew: 0, preempt: false, masterDown: 'freebsd', deadRatio: 3, srcip6: 'fe80::5' });
    m.step({ type: 'start', linkUp: true }, 0);
    m.step({ type: 'timer', name: 'masterDown' } as never, 3_100);
    if (m.state !== 'MASTER') m.step({ type: 'force', state: 'MASTER', reason: 't' } as never, 3_100);
    assert.equal(m.state, 'MASTER');
    m.step({ type: 'advert', advert: { src: 'fe80::9', advbase: 1, advskew: 0, demote: 0 } } as never, 3_200);
    assert.equal(m.state, 'MASTER', 'a higher source yields to us');
    m.step({ type: 'advert', advert: { src: 'fe80::1', advbase: 1, advskew: 0, demote: 0 } } as never, 3_300);
    assert.equal(m.state, 'BACKUP', 'a lower source wins the tie');
  });
});

describe('engine over IPv6 on the fake wire', () => {
  test('familiesOf: IPv4, IPv6 or both, by the vhid addresses', () => {
    assert.deepEqual(familiesOf({ addresses: ['10.0.0.1/24'] }), [4]);
    assert.deepEqual(familiesOf({ addresses: V6 }), [6]);
    assert.deepEqual(familiesOf({ addresses: ['10.0.0.1/24', ...V6] }), [4, 6]);
  });

  test('freebsd carp.sh basic_v6: an IPv6-only vhid elects exactly one MASTER, adverts only over IPv6', () => {
    const sim = new Sim();
    const a = sim.add('a', 2, [vhidCfg(1, 0, { addresses: V6 })]);
    const b = sim.add('b', 3, [vhidCfg(1, 0, { addresses: V6 })]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    const states = [a, b].map((n) => n.engine.status()[0]!.state);
    assert.deepEqual(states.sort(), ['BACKUP', 'MASTER']);
    assert.ok(sim.wire.log.length > 5);
    assert.ok(sim.wire.log.every((e) => e.family === 6));
    // Equal advskew: the lower link-local (fe80::c612:2, node a) keeps MASTER.
    assert.equal(a.engine.status()[0]!.state, 'MASTER');
    assert.equal(a.engine.stats.carps_opackets6 > 0 && a.engine.stats.carps_opackets === 0, true);
  });

  test('a hop-limit-64 IPv6 advert is dropped and counted as badttl', () => {
    const sim = new Sim();
    const b = sim.add('b', 3, [vhidCfg(1, 50, { addresses: V6 })]);
    b.engine.start();
    sim.time.advance(100);
    const payload = buildAdvert(makeAuthContext('secret', 1, V6), { advbase: 1, advskew: 0, demote: 0, counter: 1n });
    assert.ok(inject6(sim.wire, 'b', payload, 'fe80::99', 64));
    assert.equal(b.engine.stats.carps_badttl, 1);
    assert.equal(b.engine.status()[0]!.state, 'BACKUP');
    assert.equal(b.engine.status()[0]!.lastHeard, undefined, 'not taken as an advert');
    assert.ok(inject6(sim.wire, 'b', payload, 'fe80::99', 255));
    assert.equal(b.engine.stats.carps_badttl, 1);
    assert.equal(b.engine.status()[0]!.lastHeard?.src, 'fe80::99');
  });

  test('freebsd carp.sh unicast_v6: a peer6 vhid takes hop limit 254 (routed); a multicast vhid does not', () => {
    const sim = new Sim();
    sim.wire.ttl = 254;
    const cfgA = vhidCfg(1, 0, { addresses: V6, peer6: 'fe80::c612:3', unicast: 'freebsd' });
    const cfgB = vhidCfg(1, 100, { addresses: V6, peer6: 'fe80::c612:2', unicast: 'freebsd' });
    const a = sim.add('a', 2, [cfgA]);
    const b = sim.add('b', 3, [cfgB]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    assert.equal(a.engine.status()[0]!.state, 'MASTER');
    assert.equal(b.engine.status()[0]!.state, 'BACKUP');
    assert.equal(b.engine.stats.carps_badttl, 0);
    assert.ok(
      sim.wire.log.filter((e) => e.node === 'a').every((e) => e.dst === 'fe80::c612:3'),
      'sent to the peer, not ff02::12',
    );

    // Without peer6 (multicast) the same routed adverts are badttl, and both become MASTER.
    const sim2 = new Sim();
    sim2.wire.ttl = 254;
    const c = sim2.add('c', 2, [vhidCfg(1, 0, { addresses: V6 })]);
    const d = sim2.add('d', 3, [vhidCfg(1, 100, { addresses: V6 })]);
    c.engine.start();
    d.engine.start();
    sim2.time.advance(10_000);
    assert.ok(d.engine.stats.carps_badttl > 0);
    assert.equal(d.engine.status()[0]!.state, 'MASTER');
  });

  test('freebsd carp.sh unicast_v4: peer 198.51.100.224 (PR 284872) over a router, TTL 254', () => {
    const sim = new Sim();
    sim.wire.ttl = 254;
    const a = sim.add('a', 2, [vhidCfg(1, 0, { addresses: ['192.0.2.1/32'], peer: '198.18.0.3' })]);
    const b = sim.add('b', 3, [vhidCfg(1, 100, { addresses: ['192.0.2.1/32'], peer: '198.18.0.2' })]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(
      [a, b].map((n) => n.engine.status()[0]!.state),
      ['MASTER', 'BACKUP'],
    );
    assert.equal(b.engine.stats.carps_badttl, 0);
  });

  test('a mixed vhid sends each advert over both families and counts the pair as one input, no replay', () => {
    const sim = new Sim();
    const mixed = ['192.0.2.1/24', ...V6];
    const a = sim.add('a', 2, [vhidCfg(1, 0, { addresses: mixed })]);
    const b = sim.add('b', 3, [vhidCfg(1, 100, { addresses: mixed })]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(
      [a, b].map((n) => n.engine.status()[0]!.state),
      ['MASTER', 'BACKUP'],
    );
    const fromA = sim.wire.log.filter((e) => e.node === 'a');
    assert.equal(fromA.filter((e) => e.family === 4).length, fromA.filter((e) => e.family === 6).length);
    assert.equal(b.engine.stats.carps_replay, 0, 'the other family copy is not a replay');
    const ipackets = b.engine.stats.carps_ipackets + b.engine.stats.carps_ipackets6;
    assert.ok(ipackets >= 2 * b.engine.vhidStats('1@eth0')!.advertsReceived - 2, 'both copies arrive');
    assert.ok(b.engine.vhidStats('1@eth0')!.advertsReceived <= fromA.length / 2 + 1, 'one election input per advert pair');
  });

  test('openbsd carp_3 (carppeer): TTL 255 still required, multicast adverts ignored, no group joined', () => {
    const sim = new Sim();
    const a = sim.add('a', 2, [vhidCfg(1, 0, { peer: '198.18.0.3', unicast: 'openbsd' })]);
    const b = sim.add('b', 3, [vhidCfg(1, 100, { peer: '198.18.0.2', unicast: 'openbsd' })]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(
      [a, b].map((n) => n.engine.status()[0]!.state),
      ['MASTER', 'BACKUP'],
    );
    assert.ok(
      sim.wire.ports.filter((p) => p.family === 4).every((p) => !p.joined),
      'no 224.0.0.18 membership',
    );

    // A multicast advert (a third node without carppeer) is not matched: badvhid, like the kernel.
    const c = sim.add('c', 4, [vhidCfg(1, 0, {})]);
    const port = sim.wire.ports.find((p) => p.node === 'b' && p.family === 4)!;
    port.joined = true; // as if another vhid kept the membership
    const badvhid = b.engine.stats.carps_badvhid;
    c.engine.start();
    sim.time.advance(5_000);
    assert.ok(b.engine.stats.carps_badvhid > badvhid);

    // Routed (TTL 254): OpenBSD still drops it.
    const sim2 = new Sim();
    sim2.wire.ttl = 254;
    const d = sim2.add('d', 3, [vhidCfg(1, 100, { peer: '198.18.0.2', unicast: 'openbsd' })]);
    const e = sim2.add('e', 2, [vhidCfg(1, 0, { peer: '198.18.0.3', unicast: 'openbsd' })]);
    d.engine.start();
    e.engine.start();
    sim2.time.advance(5_000);
    assert.ok(d.engine.stats.carps_badttl > 0);
  });
});

test('a reload that adds a multicast vhid to a carppeer-only interface joins 224.0.0.18 again (membership is per interface)', () => {
  const sim = new Sim();
  const peerOnly = vhidCfg(1, 0, { peer: '198.18.0.3', unicast: 'openbsd' });
  const b = sim.add('b', 2, [peerOnly]);
  b.engine.start();
  sim.time.advance(100);
  const live = () => sim.wire.ports.filter((p) => p.node === 'b' && p.family === 4 && !p.closed);
  assert.deepEqual(
    live().map((p) => p.joined),
    [false],
  );
  b.engine.reconfigure({ global: { allow: true, preempt: false, log: 0 }, vhids: [peerOnly, vhidCfg(2, 0)] });
  assert.deepEqual(
    live().map((p) => p.joined),
    [true],
  );
  b.engine.reconfigure({ global: { allow: true, preempt: false, log: 0 }, vhids: [peerOnly] });
  assert.deepEqual(
    live().map((p) => p.joined),
    [false],
  );
});
