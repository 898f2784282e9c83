import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { buildAdvert, checkAdvert } from '../../src/proto/advert.js';
import { carpHeader } from '../../src/proto/carp-header.js';
import { makeAuthContext, type AuthContext } from '../../src/proto/hmac.js';
import { decodeIpv4 } from '../../src/proto/ipv4.js';
import { ipPayloadOf, PcapFormatError, readPcap, type PcapRecord } from '../../src/proto/pcap.js';

/** test/fixtures/vectors/ in the source tree (this file runs from dist/test/unit/). */
const VECTORS = new URL('../../../test/fixtures/vectors/', import.meta.url);
const vector = (name: string): Buffer => readFileSync(new URL(name, VECTORS));
const UCARP_FILES = readdirSync(VECTORS)
  .filter((f) => /^ucarp-.*\.pcap$/.test(f))
  .sort();

const ctx = makeAuthContext('s3cretPass', 42, ['10.200.0.100']);

/** Every IPv4 protocol-112 packet of a capture. */
function carpPackets(file: string): { rec: PcapRecord; ip: Buffer }[] {
  const out: { rec: PcapRecord; ip: Buffer }[] = [];
  for (const rec of readPcap(vector(file))) {
    const ip = ipPayloadOf(rec);
    if (!ip) continue;
    const d = decodeIpv4(ip);
    if (d.ok && d.protocol === 112) out.push({ rec, ip });
  }
  return out;
}

test('the ucarp captures are present', () => {
  assert.deepEqual(UCARP_FILES, ['ucarp-s1-basic-failover.pcap', 'ucarp-s3-signals.pcap', 'ucarp-s4-preempt.pcap']);
});

for (const file of UCARP_FILES) {
  test(`every ucarp advert in ${file} passes checkAdvert (vhid 42, s3cretPass, 10.200.0.100)`, () => {
    const pkts = carpPackets(file);
    assert.ok(pkts.length > 0);
    for (const { ip } of pkts) {
      const r = checkAdvert(ip, (v) => (v === 42 ? ctx : undefined));
      assert.ok(r.ok, r.ok ? '' : `dropped: ${r.reason}`);
      assert.equal(r.header.advbase, 1);
      assert.equal(r.header.advskew, r.src === '10.200.0.1' ? 0 : 50, 'A has advskew 0, B 50');
      assert.equal(r.dst, '224.0.0.18');
    }
  });

  test(`a wrong password or a wrong address list gives badauth on ${file}`, () => {
    const wrong: AuthContext[] = [
      makeAuthContext('s3cretPasS', 42, ['10.200.0.100']),
      makeAuthContext('s3cretPass', 42, ['10.200.0.101']),
      makeAuthContext('s3cretPass', 42, ['10.200.0.100', '10.200.0.101']),
      makeAuthContext('s3cretPass', 42, []),
    ];
    for (const w of wrong) {
      for (const { ip } of carpPackets(file)) {
        const r = checkAdvert(ip, () => w);
        assert.deepEqual(r.ok ? 'ok' : [r.reason, r.vhid], ['badauth', 42]);
      }
    }
  });
}

test("A's first advert in s1 (vectors/README.md) is rebuilt byte for byte by buildAdvert", () => {
  const first = carpPackets('ucarp-s1-basic-failover.pcap')[0]!;
  const payload = first.ip.subarray(20, 56);
  assert.equal(payload.toString('hex'), '212a00070001c21b3b89b501131154e00e27580a7795f277f0c8e2e9aa9686897b6173c2');
  const h = carpHeader.decode(payload);
  assert.equal(h.cksum, 0xc21b);
  const rebuilt = buildAdvert(ctx, { advbase: h.advbase, advskew: h.advskew, demote: h.demote, counter: h.counter });
  assert.deepEqual(rebuilt, payload);
});

test('every ucarp advert is what buildAdvert makes from its fields', () => {
  for (const file of UCARP_FILES) {
    for (const { ip } of carpPackets(file)) {
      const payload = ip.subarray(20, 56);
      const h = carpHeader.decode(payload);
      assert.deepEqual(buildAdvert(ctx, h), payload);
    }
  }
});

test('keepalived VRRPv3 adverts are too short for CARP: badlen, never accepted', () => {
  const pkts = carpPackets('keepalived-vrrpv3.pcap');
  assert.ok(pkts.length > 0);
  for (const { ip } of pkts) {
    const r = checkAdvert(ip, () => ctx);
    assert.equal(r.ok ? 'ok' : r.reason, 'badlen');
  }
});

/** Write a classic pcap; the test builds every header variant from the captured frames. */
function writePcap(linktype: number, frames: { sec: number; frac: number; data: Buffer }[], o: { be?: boolean; nanos?: boolean } = {}): Buffer {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    if (o.be) b.writeUInt32BE(n);
    else b.writeUInt32LE(n);
    return b;
  };
  const u16 = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    if (o.be) b.writeUInt16BE(n);
    else b.writeUInt16LE(n);
    return b;
  };
  const parts = [u32(o.nanos ? 0xa1b23c4d : 0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(262144), u32(linktype)];
  for (const f of frames) parts.push(u32(f.sec), u32(f.frac), u32(f.data.length), u32(f.data.length), f.data);
  return Buffer.concat(parts);
}

function framesOf(file: string): { sec: number; frac: number; data: Buffer }[] {
  return [...readPcap(vector(file))].map((r) => {
    const [sec, frac] = r.tsText.split('.');
    return { sec: Number(sec), frac: Number(frac), data: r.data };
  });
}

test('readPcap reads both byte orders and ns timestamps alike', () => {
  const frames = framesOf('ucarp-s1-basic-failover.pcap');
  const ref = [...readPcap(writePcap(1, frames))];
  const be = [...readPcap(writePcap(1, frames, { be: true }))];
  const ns = [
    ...readPcap(
      writePcap(
        1,
        frames.map((f) => ({ ...f, frac: f.frac * 1000 })),
        { nanos: true },
      ),
    ),
  ];
  assert.equal(ref.length, frames.length);
  assert.deepEqual(be, ref);
  assert.deepEqual(
    ns.map((r) => [r.ts, r.data]),
    ref.map((r) => [r.ts, r.data]),
  );
  assert.equal(ns[0]!.tsText, `${ref[0]!.tsText}000`);
  assert.equal(ref[0]!.linktype, 1);
  assert.ok(Math.abs(ref[0]!.ts - Number(ref[0]!.tsText)) < 1e-6);
});

test('ipPayloadOf finds the same IPv4 packet under Ethernet+802.1Q, SLL, SLL2 and raw IP', () => {
  const frames = framesOf('ucarp-s1-basic-failover.pcap');
  const want = carpPackets('ucarp-s1-basic-failover.pcap').map((p) => p.ip);
  const ipOnly = frames.flatMap((f) => (f.data.readUInt16BE(12) === 0x0800 ? [{ ...f, data: f.data.subarray(14) }] : []));
  const mac = Buffer.from('020000000a01', 'hex');
  const sll = (ip: Buffer): Buffer => {
    // packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
    const h = Buffer.alloc(16);
    h.writeUInt16BE(1, 2);
    h.writeUInt16BE(6, 4);
    mac.copy(h, 6);
    h.writeUInt16BE(0x0800, 14);
    return Buffer.concat([h, ip]);
  };
  const sll2 = (ip: Buffer): Buffer => {
    // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) address length(1) address(8)
    const h = Buffer.alloc(20);
    h.writeUInt16BE(0x0800, 0);
    h.writeUInt32BE(2, 4);
    h.writeUInt16BE(1, 8);
    h[11] = 6;
    mac.copy(h, 12);
    return Buffer.concat([h, ip]);
  };
  const vlan = (f: { data: Buffer }): Buffer => Buffer.concat([f.data.subarray(0, 12), Buffer.from('81000064', 'hex'), f.data.subarray(12)]);
  const variants: [string, number, { sec: number; frac: number; data: Buffer }[]][] = [
    ['ethernet + 802.1Q', 1, frames.map((f) => ({ ...f, data: vlan(f) }))],
    ['linux sll', 113, ipOnly.map((f) => ({ ...f, data: sll(f.data) }))],
    ['linux sll2', 276, ipOnly.map((f) => ({ ...f, data: sll2(f.data) }))],
    ['raw 101', 101, ipOnly],
    ['raw 12', 12, ipOnly],
    ['raw 14', 14, ipOnly],
  ];
  for (const [name, linktype, fs] of variants) {
    const got: Buffer[] = [];
    for (const rec of readPcap(writePcap(linktype, fs))) {
      const ip = ipPayloadOf(rec);
      const d = ip && decodeIpv4(ip);
      if (d && d.ok && d.protocol === 112) got.push(ip);
    }
    assert.deepEqual(got, want, name);
  }
});

test('ipPayloadOf cuts Ethernet padding off at the IP total length', () => {
  const frames = framesOf('ucarp-s1-basic-failover.pcap');
  const igmp = frames.find((f) => f.data.readUInt16BE(12) === 0x0800 && f.data[23] === 2)!;
  const padded = Buffer.concat([igmp.data, Buffer.alloc(6)]);
  const [rec] = [...readPcap(writePcap(1, [{ ...igmp, data: padded }]))];
  assert.equal(ipPayloadOf(rec!)!.length, igmp.data.length - 14);
  const arp = frames.find((f) => f.data.readUInt16BE(12) === 0x0806)!;
  assert.equal(ipPayloadOf([...readPcap(writePcap(1, [arp]))][0]!), undefined, 'ARP is not IPv4');
});

test('a truncated capture yields its whole records and never throws', () => {
  const file = vector('ucarp-s1-basic-failover.pcap');
  const total = [...readPcap(file)].length;
  let last = 0;
  for (let len = 24; len <= file.length; len++) {
    const n = [...readPcap(file.subarray(0, len))].length;
    assert.ok(n >= last && n <= total);
    last = n;
  }
  assert.equal(last, total);
});

test('readPcap rejects what is not classic pcap with CARPD_ERR_PCAP_FORMAT', () => {
  const isFormatError = (e: unknown): boolean => e instanceof PcapFormatError && e.code === 'CARPD_ERR_PCAP_FORMAT';
  assert.throws(() => readPcap(Buffer.alloc(10)), isFormatError);
  assert.throws(() => readPcap(Buffer.alloc(24)), isFormatError);
  assert.throws(() => readPcap(Buffer.from('0a0d0d0a' + '00'.repeat(28), 'hex')), isFormatError, 'pcapng');
});
