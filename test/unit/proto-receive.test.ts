import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAdvert, checkAdvert, type CheckResult } from '../../src/proto/advert.js';
import { inCksum } from '../../src/proto/checksum.js';
import { makeAuthContext, type AuthContext } from '../../src/proto/hmac.js';
import { encodeIpv4Header } from '../../src/proto/ipv4.js';
import { dropCounter, newStats, NETSTAT_WORDING, netstatLines, COUNTER_NAMES, type DropReason } from '../../src/proto/counters.js';

const ctx = makeAuthContext('s3cretPass', 42, ['10.200.0.100/24']);
const lookup = (vhid: number): AuthContext | undefined => (vhid === 42 ? ctx : undefined);

function packet(opts: { ttl?: number; counter?: bigint; extra?: number } = {}): Buffer {
  const carp = buildAdvert(ctx, { advbase: 1, advskew: 50, demote: 0, counter: opts.counter ?? 77n });
  const payload = Buffer.concat([carp, Buffer.alloc(opts.extra ?? 0)]);
  const ip = encodeIpv4Header({ src: '10.200.0.2', dst: '224.0.0.18', ttl: opts.ttl ?? 255, tos: 0x10, protocol: 112, payloadLength: payload.length });
  return Buffer.concat([ip, payload]);
}

/** Recompute the CARP checksum after editing the header, so later checks get their turn. */
function fixCksum(pkt: Buffer, off = 20): Buffer {
  pkt.writeUInt16BE(0, off + 6);
  pkt.writeUInt16BE(inCksum(pkt, off, 36), off + 6);
  return pkt;
}

function reason(r: CheckResult): DropReason | 'ok' {
  return r.ok ? 'ok' : r.reason;
}

test('a good advert is accepted with its header, addresses and context', () => {
  const r = checkAdvert(packet(), lookup);
  assert.ok(r.ok);
  assert.equal(r.src, '10.200.0.2');
  assert.equal(r.dst, '224.0.0.18');
  assert.equal(r.ttl, 255);
  assert.equal(r.ctx, ctx);
  assert.deepEqual(
    { ...r.header, md: undefined, cksum: undefined },
    {
      version: 2,
      type: 1,
      vhid: 42,
      advskew: 50,
      authlen: 7,
      demote: 0,
      advbase: 1,
      counter: 77n,
      md: undefined,
      cksum: undefined,
    },
  );
});

test('bytes after the 36 CARP bytes are ignored, as the kernels sum only the header', () => {
  assert.equal(reason(checkAdvert(packet({ extra: 8 }), lookup)), 'ok');
});

test('IP options move the CARP header and are skipped', () => {
  const plain = packet();
  const ip = Buffer.concat([plain.subarray(0, 20), Buffer.from([1, 1, 1, 0])]);
  ip[0] = 0x46;
  ip.writeUInt16BE(24 + 36, 2);
  assert.equal(reason(checkAdvert(Buffer.concat([ip, plain.subarray(20)]), lookup)), 'ok');
});

test('TTL is checked first: TTL 64 with a bad checksum and an unknown vhid is badttl', () => {
  const p = packet({ ttl: 64 });
  p[21] = 99;
  assert.deepEqual(checkAdvert(p, lookup), { ok: false, reason: 'badttl', src: '10.200.0.2' });
});

test('an IP total length too short for the header is badlen, ahead of the checksum', () => {
  const p = packet();
  p.writeUInt16BE(20 + 35, 2);
  p[30] ^= 0xff;
  assert.equal(reason(checkAdvert(p, lookup)), 'badlen');
  const vrrp3 = Buffer.concat([
    encodeIpv4Header({ src: '10.200.0.1', dst: '224.0.0.18', ttl: 255, tos: 0, protocol: 112, payloadLength: 12 }),
    Buffer.alloc(12),
  ]);
  assert.equal(reason(checkAdvert(vrrp3, lookup)), 'badlen', 'a 12-byte VRRPv3 advert');
});

test('bytes missing from the buffer are hdrops (header unreadable or packet truncated)', () => {
  const p = packet();
  assert.deepEqual(checkAdvert(p.subarray(0, 55), lookup), { ok: false, reason: 'hdrops', src: '10.200.0.2' });
  assert.equal(reason(checkAdvert(p.subarray(0, 19), lookup)), 'hdrops');
  assert.equal(reason(checkAdvert(Buffer.alloc(0), lookup)), 'hdrops');
  const v6 = Buffer.from(p);
  v6[0] = 0x65;
  assert.equal(reason(checkAdvert(v6, lookup)), 'hdrops');
});

test('checksum comes before version and vhid: a bad sum with version 3 and vhid 99 is badsum', () => {
  const p = packet();
  p[20] = 0x31;
  p[21] = 99;
  assert.deepEqual(checkAdvert(p, lookup), { ok: false, reason: 'badsum', src: '10.200.0.2' });
});

test('version comes before vhid: version 3 with an unknown vhid is badver; so is type 2', () => {
  const v3 = packet();
  v3[20] = 0x31;
  v3[21] = 99;
  assert.deepEqual(checkAdvert(fixCksum(v3), lookup), { ok: false, reason: 'badver', src: '10.200.0.2', vhid: 99 });
  const t2 = packet();
  t2[20] = 0x22;
  assert.equal(reason(checkAdvert(fixCksum(t2), lookup)), 'badver');
});

test('vhid comes before authentication: unknown vhid with a bad md is badvhid', () => {
  const p = packet();
  p[21] = 43;
  p[40] ^= 1;
  assert.deepEqual(checkAdvert(fixCksum(p), lookup), { ok: false, reason: 'badvhid', src: '10.200.0.2', vhid: 43 });
});

test('a wrong md, or an md for another counter, is badauth', () => {
  const p = packet();
  p[55] ^= 0x80;
  assert.deepEqual(checkAdvert(fixCksum(p), lookup), { ok: false, reason: 'badauth', src: '10.200.0.2', vhid: 42 });
  const q = packet({ counter: 5n });
  q.writeBigUInt64BE(6n, 28);
  assert.equal(reason(checkAdvert(fixCksum(q), lookup)), 'badauth');
  const otherKey = makeAuthContext('wrong', 42, ['10.200.0.100']);
  assert.equal(reason(checkAdvert(packet(), () => otherKey)), 'badauth');
});

test('each drop reason names a carpstats counter with netstat wording', () => {
  const stats = newStats();
  for (const r of ['badttl', 'badlen', 'hdrops', 'badsum', 'badver', 'badvhid', 'badauth', 'badif'] as const) {
    const name = dropCounter(r);
    assert.ok(COUNTER_NAMES.includes(name), name);
    stats[name]++;
  }
  assert.equal(NETSTAT_WORDING.carps_badttl, 'packets discarded for wrong TTL');
  assert.equal(NETSTAT_WORDING.carps_hdrops, 'packets shorter than header');
  assert.equal(NETSTAT_WORDING.carps_badsum, 'discarded for bad checksums');
  assert.equal(NETSTAT_WORDING.carps_badlen, 'discarded because packet too short');
  assert.equal(NETSTAT_WORDING.carps_preempt, 'transitions to master');
  stats.carps_ipackets = 2;
  const lines = netstatLines(stats);
  assert.equal(lines.length, COUNTER_NAMES.length);
  assert.equal(lines[0], '\t2 packets received (IPv4)');
  assert.ok(lines.includes('\t\t1 packet discarded for wrong TTL'));
  assert.ok(lines.includes('\t\t1 discarded for bad checksum'));
  assert.ok(lines.includes('\t0 transitions to master'));
  assert.deepEqual(netstatLines(newStats(), false), []);
});

/** mulberry32: a small seeded PRNG so the fuzz run is the same every time. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('checkAdvert never throws on 5,000 random, truncated and mutated packets', () => {
  const rand = prng(0xc4a9);
  const int = (n: number): number => Math.floor(rand() * n);
  const good = packet();
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    let buf: Buffer;
    switch (i % 5) {
      case 0:
        buf = Buffer.from(Array.from({ length: int(80) }, () => int(256)));
        break;
      case 1:
        buf = Buffer.from(good.subarray(0, int(good.length + 1)));
        break;
      case 2: {
        buf = Buffer.from(good);
        for (let k = 1 + int(4); k > 0; k--) buf[int(buf.length)] = int(256);
        break;
      }
      case 3: {
        // Mutate the CARP part only and repair the sum, to reach the version/vhid/auth checks.
        buf = Buffer.from(good);
        for (let k = 1 + int(3); k > 0; k--) buf[20 + int(36)] = int(256);
        fixCksum(buf);
        break;
      }
      default: {
        // A plausible IPv4 header with a random ihl and total length over random bytes.
        buf = Buffer.from(Array.from({ length: int(100) }, () => int(256)));
        if (buf.length > 0) buf[0] = 0x40 | int(16);
        if (buf.length > 8) buf[8] = rand() < 0.8 ? 255 : int(256);
      }
    }
    let r: CheckResult;
    try {
      r = checkAdvert(buf, lookup);
    } catch (err) {
      assert.fail(`checkAdvert threw on ${buf.toString('hex')}: ${String(err)}`);
    }
    assert.equal(typeof r.ok, 'boolean');
    if (r.ok) assert.equal(r.header.vhid, 42);
    seen.add(reason(r));
  }
  for (const want of ['ok', 'hdrops', 'badttl', 'badlen', 'badsum', 'badver', 'badvhid', 'badauth']) {
    assert.ok(seen.has(want), `fuzzing reached ${want}`);
  }
});
