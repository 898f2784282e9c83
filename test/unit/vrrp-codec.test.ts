import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inCksum } from '../../src/proto/checksum.js';
import { decodeIpv4, encodeIpv4Header } from '../../src/proto/ipv4.js';
import { ipPayloadOf, readPcap } from '../../src/proto/pcap.js';
import { checkPacket } from '../../src/proto/packet.js';
import { makeAuthContext } from '../../src/proto/hmac.js';
import { buildAdvert } from '../../src/proto/advert.js';
import {
  buildVrrp,
  checkVrrp,
  decodeVrrp,
  formatIpv6,
  parseIpv6,
  pseudoHeader,
  vrrpChecksum,
  VRRP_GROUP4,
  VRRP_GROUP6,
  type VhidLookup,
} from '../../src/proto/vrrp.js';

const VECTORS = new URL('../../../test/fixtures/vectors/', import.meta.url);

/** Every protocol-112 IPv4 packet of the keepalived capture, with its time. */
function keepalivedPackets(): { t: number; ip: Buffer }[] {
  const out: { t: number; ip: Buffer }[] = [];
  for (const rec of readPcap(readFileSync(new URL('keepalived-vrrpv3.pcap', VECTORS)))) {
    const ip = ipPayloadOf(rec);
    if (!ip) continue;
    const d = decodeIpv4(ip);
    if (d.ok && d.protocol === 112) out.push({ t: Number(rec.tsText), ip });
  }
  return out;
}

const lookup51: VhidLookup = (vrid) => (vrid === 51 ? { version: 3, addresses: ['10.200.0.101/24'] } : undefined);

/** An IPv4 packet around a VRRP payload. */
function ipv4(payload: Buffer, src = '10.0.0.1', ttl = 255, dst = VRRP_GROUP4): Buffer {
  return Buffer.concat([encodeIpv4Header({ src, dst, ttl, tos: 0xc0, protocol: 112, payloadLength: payload.length }), payload]);
}

test('the keepalived 2.2.7 capture: every VRRPv3 advert verifies with the IPv4 pseudo-header, not without', () => {
  const pkts = keepalivedPackets();
  assert.ok(pkts.length >= 5, `${pkts.length} adverts`);
  for (const { ip } of pkts) {
    const d = decodeIpv4(ip);
    assert.ok(d.ok);
    const payload = ip.subarray(d.payloadOffset, d.totalLength);
    assert.equal(vrrpChecksum(payload, { family: 4, src: d.src, dst: d.dst }), 0, 'pseudo-header form');
    assert.notEqual(vrrpChecksum(payload), 0, 'keepalived does not send the v2 form by default');
    const r = checkVrrp(payload, { family: 4, src: d.src, dst: d.dst, ttl: d.ttl }, lookup51);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.checksumForm, 'pseudo');
    assert.equal(r.addressesMatch, true);
    assert.equal(r.advert.vrid, 51);
    assert.equal(r.advert.intervalCs, 100, 'advert_int 1 is 100 cs');
    assert.deepEqual(r.advert.addresses, ['10.200.0.101']);
  }
});

test('the keepalived capture: priorities 150 (A) and 100 (B), A stops with priority 0, B takes over after its Skew_Time', () => {
  const pkts = keepalivedPackets().map(({ t, ip }) => {
    const r = checkPacket(ip, (v) => (v === 51 ? { version: 3, addresses: ['10.200.0.101/24'] } : undefined));
    assert.ok(r.ok && r.version === 3, JSON.stringify(r));
    return { t, src: r.src, priority: r.advert.priority };
  });
  const stop = pkts.findIndex((p) => p.priority === 0);
  assert.ok(stop > 0, 'a priority-0 advert is in the capture');
  assert.ok(pkts.slice(0, stop).every((p) => p.priority === 150));
  // B then masters at 100 until it is stopped too, with its own priority 0.
  const after = pkts.slice(stop + 1, -1);
  assert.ok(after.length > 0 && after.every((p) => p.priority === 100 && p.src !== pkts[stop]!.src));
  assert.equal(pkts.at(-1)!.priority, 0);
  assert.equal(pkts.at(-1)!.src, after[0]!.src);
  // README: B's first advert about 0.61 s after the priority 0: Skew_Time of priority 100 at 1 s is
  // (256 − 100) / 256 s = 609.375 ms.
  const gap = after[0]!.t - pkts[stop]!.t;
  assert.ok(gap > 0.55 && gap < 0.7, `${gap} s`);
});

test('encode → decode round trip, IPv4, and the bytes of the header', () => {
  const payload = buildVrrp(
    { vrid: 7, priority: 200, intervalCs: 4095, addresses: ['192.0.2.1/29', '2001:db8::1/64', '192.0.2.2/29'] },
    { family: 4, src: '192.0.2.10', dst: VRRP_GROUP4 },
  );
  assert.equal(payload.length, 8 + 2 * 4, 'only the IPv4 addresses');
  assert.deepEqual([...payload.subarray(0, 6)], [0x31, 7, 200, 2, 0x0f, 0xff]);
  const d = decodeVrrp(payload, 4)!;
  assert.deepEqual(
    { ...d, checksum: 0 },
    { version: 3, type: 1, vrid: 7, priority: 200, intervalCs: 4095, checksum: 0, addresses: ['192.0.2.1', '192.0.2.2'] },
  );
  assert.equal(vrrpChecksum(payload, { family: 4, src: '192.0.2.10', dst: VRRP_GROUP4 }), 0);
});

test('encode → decode round trip, IPv6, checksum over the IPv6 pseudo-header (RFC 8200 §8.1)', () => {
  const pseudo = { family: 6 as const, src: 'fe80::1', dst: VRRP_GROUP6 };
  const payload = buildVrrp({ vrid: 1, priority: 100, intervalCs: 100, addresses: ['2001:db8::1/64', '192.0.2.1/24', 'fe80::5:1/64'] }, pseudo);
  assert.equal(payload.length, 8 + 2 * 16);
  const d = decodeVrrp(payload, 6)!;
  assert.deepEqual(d.addresses, ['2001:db8::1', 'fe80::5:1']);
  assert.equal(vrrpChecksum(payload, pseudo), 0);
  // The pseudo-header by hand: src, dst, 32-bit length, 3 zero bytes, next header 112.
  const ph = pseudoHeader(pseudo, payload.length);
  assert.equal(ph.length, 40);
  assert.equal(ph.toString('hex'), 'fe800000000000000000000000000001' + 'ff020000000000000000000000000012' + '00000028' + '00000070');
  assert.equal(inCksum(Buffer.concat([ph, payload])), 0);
  // Another source, another sum: the pseudo-header counts.
  assert.notEqual(vrrpChecksum(payload, { ...pseudo, src: 'fe80::2' }), 0);
  const r = checkVrrp(payload, { ...pseudo, ttl: 255 }, (v) => (v === 1 ? { version: 3, addresses: ['2001:db8::1/64', 'fe80::5:1/64'] } : undefined));
  assert.ok(r.ok && r.checksumForm === 'pseudo' && r.addressesMatch);
  // IPv6 has no v2 form: the sum without the pseudo-header is refused.
  const v2 = Buffer.from(payload);
  v2.writeUInt16BE(0, 6);
  v2.writeUInt16BE(inCksum(v2), 6);
  const bad = checkVrrp(v2, { ...pseudo, ttl: 255 }, (v) => (v === 1 ? { version: 3, addresses: [] } : undefined));
  assert.deepEqual(bad.ok ? 'ok' : bad.reason, 'badsum');
});

test('IPv6 text: parse and RFC 5952 format', () => {
  for (const [text, want] of [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
  ] as const) {
    assert.equal(formatIpv6(parseIpv6(text)), want, text);
  }
  for (const bad of ['1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', 'g::1']) assert.throws(() => parseIpv6(bad), bad);
});

test('IPv4: both checksum forms are accepted (keepalived v3_checksum_as_v2; Cisco/Juniper leave the pseudo-header out)', () => {
  const f = { vrid: 51, priority: 100, intervalCs: 100, addresses: ['10.200.0.101/24'] };
  const pseudo = { family: 4 as const, src: '10.200.0.2', dst: VRRP_GROUP4 };
  const withPh = buildVrrp(f, pseudo);
  const asV2 = buildVrrp(f, pseudo, true);
  assert.notEqual(withPh.readUInt16BE(6), asV2.readUInt16BE(6));
  const a = checkPacket(ipv4(withPh, '10.200.0.2'), (v) => (v === 51 ? { version: 3, addresses: f.addresses } : undefined));
  const b = checkPacket(ipv4(asV2, '10.200.0.2'), (v) => (v === 51 ? { version: 3, addresses: f.addresses } : undefined));
  assert.ok(a.ok && a.version === 3 && a.checksumForm === 'pseudo');
  assert.ok(b.ok && b.version === 3 && b.checksumForm === 'v2');
  // Neither form: badsum.
  const broken = Buffer.from(withPh);
  broken[2] = 99;
  const c = checkPacket(ipv4(broken, '10.200.0.2'), (v) => (v === 51 ? { version: 3, addresses: f.addresses } : undefined));
  assert.deepEqual(c.ok ? 'ok' : c.reason, 'badsum');
});

test('receive checks in FreeBSD vrrp_input_c order, each with its counter', () => {
  const f = { vrid: 5, priority: 100, intervalCs: 100, addresses: ['192.0.2.1/29'] };
  const good = buildVrrp(f, { family: 4, src: '10.0.0.1', dst: VRRP_GROUP4 });
  const carpCtx = makeAuthContext('', 9, ['192.0.2.9/29']);
  const look = (v: number) =>
    v === 5
      ? { version: 3 as const, addresses: f.addresses }
      : v === 9
        ? { version: 2 as const, ctx: carpCtx }
        : v === 6
          ? { version: 2 as const, ctx: carpCtx }
          : undefined;
  const reason = (pkt: Buffer) => {
    const r = checkPacket(pkt, look);
    return r.ok ? `ok v${r.version}` : r.reason;
  };
  assert.equal(reason(ipv4(good)), 'ok v3');
  // Shorter than the 8-byte header.
  assert.equal(reason(ipv4(good.subarray(0, 6))), 'badlen');
  // Unknown vrid, before the TTL is looked at (carp_find_ifa() comes first).
  const other = buildVrrp({ ...f, vrid: 77 }, { family: 4, src: '10.0.0.1', dst: VRRP_GROUP4 });
  assert.equal(reason(ipv4(other, '10.0.0.1', 64)), 'badvhid');
  // A VRRP advert for a CARP vhid: badver (the vhid's version is not 3).
  const forCarp = buildVrrp({ ...f, vrid: 6 }, { family: 4, src: '10.0.0.1', dst: VRRP_GROUP4 });
  assert.equal(reason(ipv4(forCarp)), 'badver');
  // A CARP advert for a VRRP vhid: badver too (carp_input_c()).
  const carpFor5 = buildAdvert(makeAuthContext('', 5, ['192.0.2.1/29']), { advbase: 1, advskew: 0, demote: 0, counter: 1n });
  assert.equal(reason(ipv4(carpFor5)), 'badver');
  // CARP still goes through the CARP check unchanged.
  const carp9 = buildAdvert(carpCtx, { advbase: 1, advskew: 0, demote: 0, counter: 1n });
  assert.equal(reason(ipv4(carp9)), 'ok v2');
  // Type other than advertisement.
  const type2 = Buffer.from(good);
  type2[0] = 0x32;
  assert.equal(reason(ipv4(type2)), 'badver');
  // TTL 255 always, also for a routed one (no unicast exemption for VRRP).
  assert.equal(reason(ipv4(good, '10.0.0.1', 254)), 'badttl');
  assert.equal(reason(ipv4(good, '10.0.0.1', 64)), 'badttl');
  // Count says 2 addresses, the payload holds 1.
  const short = Buffer.from(good);
  short[3] = 2;
  assert.equal(reason(ipv4(short)), 'badlen');
  // IP total length past the bytes received: a failed pullup.
  const cut = ipv4(good).subarray(0, 20 + 10);
  assert.equal(reason(cut), 'hdrops');
});

test('a different address list is accepted but reported (keepalived addr_list_err, FreeBSD does not check)', () => {
  const pseudo = { family: 4 as const, src: '10.0.0.1', dst: VRRP_GROUP4 };
  const look: VhidLookup = (v) => (v === 5 ? { version: 3, addresses: ['192.0.2.1/29', '192.0.2.2/29'] } : undefined);
  const check = (addresses: string[]) => {
    const r = checkVrrp(buildVrrp({ vrid: 5, priority: 100, intervalCs: 100, addresses }, pseudo), { ...pseudo, ttl: 255 }, look);
    assert.ok(r.ok);
    return r.addressesMatch;
  };
  assert.equal(check(['192.0.2.2/29', '192.0.2.1/29']), true, 'order does not matter');
  assert.equal(check(['192.0.2.1/29']), false, 'one missing');
  assert.equal(check(['192.0.2.1/29', '192.0.2.3/29']), false, 'one different');
  assert.equal(check(['192.0.2.1/29', '192.0.2.2/29', '192.0.2.3/29']), false, 'one more');
});

test('buildVrrp refuses what the fields cannot carry', () => {
  const p = { family: 4 as const, src: '10.0.0.1', dst: VRRP_GROUP4 };
  assert.throws(() => buildVrrp({ vrid: 1, priority: 100, intervalCs: 4096, addresses: [] }, p), /interval/);
  assert.throws(() => buildVrrp({ vrid: 1, priority: 100, intervalCs: 0, addresses: [] }, p), /interval/);
  assert.throws(() => buildVrrp({ vrid: 0, priority: 100, intervalCs: 100, addresses: [] }, p), /vrid/);
  assert.throws(() => buildVrrp({ vrid: 1, priority: 256, intervalCs: 100, addresses: [] }, p), /priority/);
  // Priority 0 is a legal advert: the master stops.
  assert.equal(buildVrrp({ vrid: 1, priority: 0, intervalCs: 100, addresses: [] }, p)[2], 0);
});
