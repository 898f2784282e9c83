import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { AddressError, makeAuthContext, parseIpv6, signAdvert, verifyAdvert } from '../../src/proto/hmac.js';

/*
 * Expected digests are computed here from the formula, with the message written out byte by
 * byte. It follows OpenBSD sys/netinet/ip_carp.c carp_hmac_prepare_ctx() (and FreeBSD
 * carp_hmac_prepare()): version 2, type 1, vhid, then IPv4 addresses smallest to largest
 * (each once), then IPv6 addresses smallest to largest by bytes, link-locals with their scope
 * zeroed and only in the non-HMAC_NOV6LL context; carp_hmac_generate() appends the counter.
 */
function expectedMd(key: string | Buffer, message: number[][], counter: bigint): Buffer {
  const c = Buffer.alloc(8);
  c.writeBigUInt64BE(counter);
  return createHmac('sha1', key).update(Buffer.from(message.flat())).update(c).digest();
}

const COUNTER = 0x0102030405060708n;

test('the vectors README packet: key s3cretPass, vhid 42, VIP 10.200.0.100', () => {
  const ctx = makeAuthContext('s3cretPass', 42, ['10.200.0.100']);
  const md = signAdvert(ctx, 0x3b89b501131154e0n);
  assert.equal(md.toString('hex'), '0e27580a7795f277f0c8e2e9aa9686897b6173c2');
});

test('IPv4 addresses are hashed ascending numerically, each once, prefix lengths ignored', () => {
  const ctx = makeAuthContext('pw', 7, ['192.168.1.20/24', '10.0.0.1', '192.168.1.3', '10.0.0.1/8', '9.255.255.255/32']);
  const msg = [
    [0x02, 0x01, 0x07],
    [9, 255, 255, 255],
    [10, 0, 0, 1],
    [192, 168, 1, 3],
    [192, 168, 1, 20],
  ];
  const want = expectedMd('pw', msg, COUNTER);
  assert.deepEqual(signAdvert(ctx, COUNTER), want);
  assert.ok(verifyAdvert(ctx, COUNTER, want));
  // The order given does not matter.
  const shuffled = makeAuthContext('pw', 7, ['9.255.255.255', '192.168.1.3', '192.168.1.20', '10.0.0.1']);
  assert.deepEqual(signAdvert(shuffled, COUNTER), want);
});

test('IPv4 then IPv6 sorted; carpd signs without link-locals and verifies both variants', () => {
  const ctx = makeAuthContext('pw', 200, ['2001:db8::10/64', 'fe80::1%eth0', '10.1.1.1/24', '2001:db8::2', 'fe80::1:2/64']);
  const v4 = [10, 1, 1, 1];
  const g2 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x02];
  const g10 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10];
  const ll1 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01];
  const ll12 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x02];
  const noLl = expectedMd('pw', [[0x02, 0x01, 200], v4, g2, g10], COUNTER);
  const withLl = expectedMd('pw', [[0x02, 0x01, 200], v4, g2, g10, ll1, ll12], COUNTER);
  assert.notDeepEqual(noLl, withLl);
  assert.deepEqual(signAdvert(ctx, COUNTER), noLl, 'sent like OpenBSD HMAC_NOV6LL');
  assert.ok(verifyAdvert(ctx, COUNTER, noLl), 'accepts OpenBSD/carpd');
  assert.ok(verifyAdvert(ctx, COUNTER, withLl), 'accepts FreeBSD (link-locals included)');
  assert.ok(!verifyAdvert(ctx, COUNTER + 1n, withLl));
});

test('a link-local embedded scope is zeroed, as OpenBSD does with s6_addr16[1]', () => {
  const a = makeAuthContext('pw', 1, ['fe80:5::1']);
  const b = makeAuthContext('pw', 1, ['fe80::1%vlan5']);
  assert.deepEqual(a.prefixLl, b.prefixLl);
  assert.deepEqual(a.prefix, Buffer.from([2, 1, 1]), 'no link-locals in what is sent');
});

test('the key is the password truncated to 19 bytes', () => {
  const long = 'abcdefghijklmnopqrstuvwxyz';
  const ctx = makeAuthContext(long, 1, ['192.0.2.1']);
  const msg = [
    [0x02, 0x01, 0x01],
    [192, 0, 2, 1],
  ];
  assert.deepEqual(signAdvert(ctx, COUNTER), expectedMd('abcdefghijklmnopqrs', msg, COUNTER));
  assert.notDeepEqual(signAdvert(ctx, COUNTER), expectedMd('abcdefghijklmnopqrst', msg, COUNTER));
  assert.equal(ctx.key.length, 19);
  assert.deepEqual(makeAuthContext(Buffer.from('abc\0def'), 1, []).key, Buffer.from('abc'), 'strlcpy stops at NUL');
});

test('an empty key is allowed (kernel CARP without pass)', () => {
  const ctx = makeAuthContext('', 3, ['198.51.100.7']);
  const want = expectedMd(
    Buffer.alloc(0),
    [
      [0x02, 0x01, 0x03],
      [198, 51, 100, 7],
    ],
    5n,
  );
  assert.deepEqual(signAdvert(ctx, 5n), want);
  assert.ok(verifyAdvert(ctx, 5n, want));
});

test('verify rejects a wrong md, a wrong length, a wrong key and a different address set', () => {
  const ctx = makeAuthContext('pw', 9, ['10.0.0.9']);
  const md = signAdvert(ctx, COUNTER);
  assert.ok(verifyAdvert(ctx, COUNTER, md));
  const flipped = Buffer.from(md);
  flipped[19]! ^= 1;
  assert.ok(!verifyAdvert(ctx, COUNTER, flipped));
  assert.ok(!verifyAdvert(ctx, COUNTER, md.subarray(0, 19)));
  assert.ok(!verifyAdvert(ctx, COUNTER, Buffer.concat([md, Buffer.alloc(1)])));
  assert.ok(!verifyAdvert(makeAuthContext('pW', 9, ['10.0.0.9']), COUNTER, md));
  assert.ok(!verifyAdvert(makeAuthContext('pw', 9, ['10.0.0.9', '10.0.0.10']), COUNTER, md));
  assert.ok(!verifyAdvert(makeAuthContext('pw', 10, ['10.0.0.9']), COUNTER, md));
});

test('makeAuthContext throws AddressError (code CARPD_ERR_ADDRESS) on a bad address', () => {
  for (const bad of ['10.0.0', '300.1.1.1', 'fe80::1::2', 'host.example', '1:2:3:4:5:6:7:8:9', '']) {
    assert.throws(
      () => makeAuthContext('pw', 1, [bad]),
      (e: unknown) => e instanceof AddressError && e.code === 'CARPD_ERR_ADDRESS',
      bad,
    );
  }
});

test('parseIpv6 handles compression, full form and a dotted IPv4 tail', () => {
  const hex = (s: string): string | undefined => parseIpv6(s)?.toString('hex');
  assert.equal(hex('::'), '0'.repeat(32));
  assert.equal(hex('::1'), '0'.repeat(31) + '1');
  assert.equal(hex('2001:db8::'), '20010db8' + '0'.repeat(24));
  assert.equal(hex('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
  assert.equal(hex('::ffff:192.0.2.1'), '00000000000000000000ffffc0000201');
  assert.equal(hex('1:2:3:4:5:6:192.0.2.1'), '000100020003000400050006c0000201');
  assert.equal(hex('1:2:3:4:5:6:7::'), '00010002000300040005000600070000');
  for (const bad of ['1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::', ':1', '12345::', '::1.2.3', 'g::1', '1:2:3:4:5:6:7:1.2.3.4']) {
    assert.equal(parseIpv6(bad), undefined, bad);
  }
});
