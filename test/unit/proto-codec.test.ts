import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inCksum } from '../../src/proto/checksum.js';
import { CARP_HEADER_LEN, carpHeader, type CarpHeader } from '../../src/proto/carp-header.js';
import { decodeIpv4, encodeIpv4Header, ipv4Header, type Ipv4Header } from '../../src/proto/ipv4.js';

interface Codec<T> {
  encode(value: T, buf?: Buffer, offset?: number): Buffer;
  decode(buf: Buffer, offset?: number): T;
  encodingLength(value?: T): number;
}

/** The shared round trip (as mafintosh/dns-packet testEncoder): decode(encode(v)) equals v, re-encoding gives
 * the same bytes, and encoding at an offset inside a larger buffer touches exactly its own bytes. */
function testCodec<T>(codec: Codec<T>, value: T): void {
  const buf = codec.encode(value);
  assert.equal(buf.length, codec.encodingLength(value));
  const decoded = codec.decode(buf);
  assert.deepEqual(decoded, value);
  assert.deepEqual(codec.encode(decoded), buf);

  const offset = 7;
  const big = Buffer.alloc(offset + buf.length + 5, 0xaa);
  const returned = codec.encode(value, big, offset);
  assert.equal(returned, big, 'encode into a given buffer returns that buffer');
  assert.deepEqual(big.subarray(offset, offset + buf.length), buf);
  assert.ok(
    big.subarray(0, offset).every((b) => b === 0xaa),
    'bytes before the offset untouched',
  );
  assert.ok(
    big.subarray(offset + buf.length).every((b) => b === 0xaa),
    'bytes after the value untouched',
  );
  assert.deepEqual(codec.decode(big, offset), value);
}

const md = Buffer.from('0e27580a7795f277f0c8e2e9aa9686897b6173c2', 'hex');

test('carpHeader round-trips an ordinary advertisement', () => {
  testCodec<CarpHeader>(carpHeader, {
    version: 2,
    type: 1,
    vhid: 42,
    advskew: 0,
    authlen: 7,
    demote: 0,
    advbase: 1,
    cksum: 0xc21b,
    counter: 0x3b89b501131154e0n,
    md,
  });
});

test('carpHeader round-trips extreme field values (bow-out advert, counter 2^64-1)', () => {
  testCodec<CarpHeader>(carpHeader, {
    version: 15,
    type: 15,
    vhid: 255,
    advskew: 255,
    authlen: 255,
    demote: 255,
    advbase: 255,
    cksum: 0xffff,
    counter: 0xffffffffffffffffn,
    md: Buffer.alloc(20, 0xff),
  });
  testCodec<CarpHeader>(carpHeader, {
    version: 0,
    type: 0,
    vhid: 0,
    advskew: 0,
    authlen: 0,
    demote: 0,
    advbase: 0,
    cksum: 0,
    counter: 0n,
    md: Buffer.alloc(20),
  });
});

test('carpHeader lays the fields out as struct carp_header', () => {
  const buf = carpHeader.encode({
    version: 2,
    type: 1,
    vhid: 42,
    advskew: 0,
    authlen: 7,
    demote: 1,
    advbase: 1,
    cksum: 0xc21b,
    counter: 0x3b89b501131154e0n,
    md,
  });
  assert.equal(buf.toString('hex'), '212a00070101c21b3b89b501131154e0' + md.toString('hex'));
  assert.equal(carpHeader.encodingLength(), CARP_HEADER_LEN);
});

test('carpHeader counter is two big-endian 32-bit words', () => {
  const h = carpHeader.decode(Buffer.concat([Buffer.from('21010007000100000000000100000002', 'hex'), md]));
  assert.equal(h.counter, (1n << 32n) | 2n);
});

test('carpHeader decode of a short buffer throws RangeError; encode rejects an md that is not 20 bytes', () => {
  assert.throws(() => carpHeader.decode(Buffer.alloc(35)), RangeError);
  assert.throws(() => carpHeader.decode(Buffer.alloc(40), 5), RangeError);
  const h = carpHeader.decode(Buffer.alloc(36));
  assert.throws(() => carpHeader.encode({ ...h, md: Buffer.alloc(19) }), RangeError);
});

test('carpHeader decode copies md out of the packet buffer', () => {
  const buf = Buffer.alloc(36);
  const h = carpHeader.decode(buf);
  buf.fill(0xff);
  assert.deepEqual(h.md, Buffer.alloc(20));
});

test('ipv4Header round-trips', () => {
  testCodec<Ipv4Header>(ipv4Header, {
    tos: 0x10,
    totalLength: 56,
    id: 0x1234,
    flags: 0b010,
    fragOffset: 0,
    ttl: 255,
    protocol: 112,
    cksum: 0xabcd,
    src: '10.200.0.1',
    dst: '224.0.0.18',
  });
  testCodec<Ipv4Header>(ipv4Header, {
    tos: 0xff,
    totalLength: 0xffff,
    id: 0xffff,
    flags: 0b111,
    fragOffset: 0x1fff,
    ttl: 0,
    protocol: 255,
    cksum: 0xffff,
    src: '255.255.255.255',
    dst: '0.0.0.0',
  });
});

test('ipv4Header encode rejects a malformed address', () => {
  const h = ipv4Header.decode(Buffer.from('45000038000040004070000000000000e0000012', 'hex'));
  for (const src of ['10.0.0', '10.0.0.256', '1.2.3.4.5', 'a.b.c.d', '']) {
    assert.throws(() => ipv4Header.encode({ ...h, src }), TypeError, src);
  }
});

test('encodeIpv4Header sets DF, the total length and a header checksum that verifies', () => {
  const buf = encodeIpv4Header({ src: '10.200.0.1', dst: '224.0.0.18', ttl: 255, tos: 0x10, protocol: 112, payloadLength: 36, id: 7 });
  assert.equal(buf.length, 20);
  assert.equal(inCksum(buf), 0);
  const h = ipv4Header.decode(buf);
  assert.equal(h.flags, 0b010);
  assert.equal(h.totalLength, 56);
  assert.equal(h.id, 7);
  const d = decodeIpv4(Buffer.concat([buf, Buffer.alloc(36)]));
  assert.deepEqual(d, { ok: true, ihl: 5, totalLength: 56, ttl: 255, protocol: 112, src: '10.200.0.1', dst: '224.0.0.18', payloadOffset: 20 });
});

test('decodeIpv4 refuses what is not a readable IPv4 header', () => {
  const good = encodeIpv4Header({ src: '1.2.3.4', dst: '5.6.7.8', ttl: 1, tos: 0, protocol: 112, payloadLength: 0 });
  assert.equal(decodeIpv4(good).ok, true);
  assert.equal(decodeIpv4(good.subarray(0, 19)).ok, false);
  assert.equal(decodeIpv4(Buffer.from([0x60, ...good.subarray(1)])).ok, false, 'version 6');
  assert.equal(decodeIpv4(Buffer.from([0x44, ...good.subarray(1)])).ok, false, 'ihl 4');
  assert.equal(decodeIpv4(Buffer.from([0x46, ...good.subarray(1)])).ok, false, 'ihl 6 but only 20 bytes');
  const withOptions = Buffer.concat([Buffer.from([0x46]), good.subarray(1), Buffer.alloc(4)]);
  assert.deepEqual(decodeIpv4(withOptions), { ok: true, ihl: 6, totalLength: 20, ttl: 1, protocol: 112, src: '1.2.3.4', dst: '5.6.7.8', payloadOffset: 24 });
});

test('inCksum matches the RFC 1071 worked example and odd lengths pad with zero', () => {
  // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (one's complement), checksum 220d.
  assert.equal(inCksum(Buffer.from('0001f203f4f5f6f7', 'hex')), 0x220d);
  assert.equal(inCksum(Buffer.from('0001f203f4f5f6', 'hex')), inCksum(Buffer.from('0001f203f4f5f600', 'hex')));
  assert.equal(inCksum(Buffer.alloc(0)), 0xffff);
});

test('inCksum of a well-known IPv4 header, and of the header carrying it, is right', () => {
  const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  assert.equal(inCksum(hdr), 0xb861);
  hdr.writeUInt16BE(0xb861, 10);
  assert.equal(inCksum(hdr), 0);
});

test('inCksum honours offset and length', () => {
  const carp = Buffer.from('212a00070001c21b3b89b501131154e00e27580a7795f277f0c8e2e9aa9686897b6173c2', 'hex');
  const framed = Buffer.concat([Buffer.alloc(3, 0x77), carp, Buffer.alloc(5, 0x99)]);
  assert.equal(inCksum(framed, 3, 36), 0);
  carp.writeUInt16BE(0, 6);
  assert.equal(inCksum(carp, 0, 36), 0xc21b);
});
