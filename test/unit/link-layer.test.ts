import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRNO, LinkLayer, LinkLayerError, type PacketFfi } from '../../src/adapters/link-layer.js';
import { gratuitousArp, macBytes } from '../../src/proto/arp.js';
import { icmp6Checksum, ipv6Bytes, multicastMac, unsolicitedNa } from '../../src/proto/ndp.js';
import { inCksum } from '../../src/proto/checksum.js';
import { readPcap } from '../../src/proto/pcap.js';

const fixture = (name: string): Buffer => {
  const recs = [...readPcap(readFileSync(new URL(`../../../test/fixtures/link/${name}`, import.meta.url)))];
  assert.equal(recs.length, 1, `${name} holds one frame`);
  return recs[0]!.data;
};
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('gratuitous ARP: the exact bytes of FreeBSD arprequest_internal(ifp, vip, vip, lladdr)', () => {
  const f = gratuitousArp(macBytes('02:00:00:00:00:0a'), '198.18.1.7');
  assert.deepEqual(
    f,
    hex(`
      ffffffffffff 02000000000a 0806
      0001 0800 06 04 0001
      02000000000a c6120107
      000000000000 c6120107`),
  );
});

test('gratuitous ARP: what iputils arping -U sent (test/fixtures/link/arping-U.pcap) but for the target hardware address', () => {
  // Captured on a veth with MAC 02:00:00:00:00:0a: `arping -U -c 1 -I v0 198.18.1.7`.
  const arping = fixture('arping-U.pcap');
  const ours = gratuitousArp(macBytes('02:00:00:00:00:0a'), '198.18.1.7');
  assert.equal(ours.length, arping.length);
  assert.deepEqual(ours.subarray(0, 32), arping.subarray(0, 32), 'Ethernet header, op, sender');
  assert.deepEqual(ours.subarray(38), arping.subarray(38), 'target protocol address');
  assert.equal(arping.subarray(32, 38).toString('hex'), 'ffffffffffff', 'arping puts the broadcast address in tha');
  assert.equal(ours.subarray(32, 38).toString('hex'), '000000000000', 'the kernels leave tha zero');
});

test('gratuitous ARP: the source MAC is a parameter (the virtual MAC 00:00:5e:00:01:VHID)', () => {
  const f = gratuitousArp(macBytes('00:00:5e:00:01:07'), '10.0.0.1');
  assert.equal(f.subarray(6, 12).toString('hex'), '00005e000107', 'Ethernet source');
  assert.equal(f.subarray(22, 28).toString('hex'), '00005e000107', 'sender hardware address');
  assert.throws(() => gratuitousArp(Buffer.alloc(5), '10.0.0.1'));
  assert.throws(() => gratuitousArp(macBytes('02:00:00:00:00:01'), '10.0.0.256'));
  assert.throws(() => macBytes('02:00:00:00:00'));
});

test('unsolicited NA: byte for byte what the Linux kernel sent from an ICMPv6 socket (test/fixtures/link/linux-unsol-na.pcap), flow label aside', () => {
  // Captured on a veth with MAC 02:00:00:00:00:0a and link-local fe80::a: the kernel filled in the
  // ICMPv6 checksum (0x284b), so this checks ours against an independent implementation.
  const kernel = fixture('linux-unsol-na.pcap');
  const ours = unsolicitedNa(macBytes('02:00:00:00:00:0a'), 'fe80::a', '2001:db8::7');
  assert.equal(ours.length, kernel.length);
  assert.deepEqual(ours.subarray(0, 14), kernel.subarray(0, 14), 'Ethernet: 02:00:00:00:00:0a → 33:33:00:00:00:01, IPv6');
  assert.equal(ours[14]! >> 4, 6);
  assert.equal(kernel.readUInt32BE(14) & 0xfff00000, ours.readUInt32BE(14), 'version and traffic class (the kernel adds an auto flow label, we send 0)');
  assert.deepEqual(ours.subarray(18, 86), kernel.subarray(18, 86), 'payload length, next header, hop limit 255, addresses, the whole NA with its checksum');
  assert.equal(ours.readUInt16BE(56), 0x284b);
});

test('unsolicited NA: the exact hand-built frame, override only, target option with the source MAC', () => {
  const f = unsolicitedNa(macBytes('00:00:5e:00:01:07'), 'fe80::1', '2001:db8::100');
  const na = f.subarray(54);
  const sum = icmp6Checksum(ipv6Bytes('fe80::1'), ipv6Bytes('ff02::1'), Buffer.concat([na.subarray(0, 2), Buffer.alloc(2), na.subarray(4)]));
  assert.deepEqual(
    f,
    hex(`
      333300000001 00005e000107 86dd
      60000000 0020 3a ff
      fe800000000000000000000000000001
      ff020000000000000000000000000001
      88 00 ${sum.toString(16).padStart(4, '0')} 20000000
      20010db8000000000000000000000100
      02 01 00005e000107`),
  );
  // The checksum field is right: the sum over pseudo-header and message, checksum included, is 0.
  const pseudo = Buffer.concat([ipv6Bytes('fe80::1'), ipv6Bytes('ff02::1'), hex('00000020 000000 3a'), na]);
  assert.equal(inCksum(pseudo), 0);
  assert.notEqual(sum, 0);
});

test('unsolicited NA: multicast MAC mapping, IPv6 parsing, bad input', () => {
  assert.equal(multicastMac(ipv6Bytes('ff02::1')).toString('hex'), '333300000001');
  assert.equal(multicastMac(ipv6Bytes('ff02::1:ff00:7')).toString('hex'), '3333ff000007');
  assert.equal(ipv6Bytes('::ffff:198.18.1.7').toString('hex'), '00000000000000000000ffffc6120107');
  assert.equal(ipv6Bytes('fe80::a%eth0').toString('hex'), 'fe80000000000000000000000000000a');
  assert.throws(() => ipv6Bytes('198.18.1.7'));
  assert.throws(() => unsolicitedNa(macBytes('02:00:00:00:00:0a'), 'fe80::a', 'nope'));
});

/** A fake libc: interfaces by name, a scripted errno per send, every call recorded. */
function fakeFfi(ifaces: Record<string, number>, errnos: number[] = []) {
  const calls: string[] = [];
  let nextFd = 10;
  const open = new Set<number>();
  const ffi: PacketFfi = {
    open() {
      const fd = nextFd++;
      open.add(fd);
      calls.push(`open ${fd}`);
      return fd;
    },
    send(fd, frame, ifindex, ethertype) {
      assert.ok(open.has(fd), `send on a closed fd ${fd}`);
      const e = errnos.shift() ?? 0;
      calls.push(`send ${fd} if${ifindex} 0x${ethertype.toString(16)} ${frame.length}${e ? ` -> errno ${e}` : ''}`);
      return e ? -e : frame.length;
    },
    close(fd) {
      open.delete(fd);
      calls.push(`close ${fd}`);
    },
    ifindex: (name) => ifaces[name] ?? 0,
  };
  return { ffi, calls, open };
}
const arp = { frame: gratuitousArp(macBytes('02:00:00:00:00:0a'), '10.0.0.1'), ethertype: 0x0806 };
const noSleep = () => Promise.resolve();

test('LinkLayer: one socket per interface, opened on first use and kept', async () => {
  const { ffi, calls } = fakeFfi({ eth0: 2, eth1: 3 });
  const ll = new LinkLayer(() => ffi, noSleep);
  assert.deepEqual(await ll.send('eth0', [arp, arp]), [undefined, undefined]);
  await ll.send('eth0', [arp]);
  await ll.send('eth1', [arp]);
  assert.deepEqual(calls, ['open 10', 'send 10 if2 0x806 42', 'send 10 if2 0x806 42', 'send 10 if2 0x806 42', 'open 11', 'send 11 if3 0x806 42']);
  assert.deepEqual(
    ll.openSockets().map((s) => `${s.ifname}:${s.ifindex}:${s.fd}`),
    ['eth0:2:10', 'eth1:3:11'],
  );
  ll.close();
  assert.deepEqual(calls.slice(-2), ['close 10', 'close 11']);
});

test('LinkLayer: the socket is reopened when the interface comes back with a new index', async () => {
  const ifaces: Record<string, number> = { eth0: 2 };
  const { ffi, calls, open } = fakeFfi(ifaces);
  const ll = new LinkLayer(() => ffi, noSleep);
  await ll.send('eth0', [arp]);
  ifaces.eth0 = 7;
  await ll.send('eth0', [arp]);
  assert.deepEqual(calls, ['open 10', 'send 10 if2 0x806 42', 'close 10', 'open 11', 'send 11 if7 0x806 42']);
  assert.deepEqual([...open], [11]);
});

test('LinkLayer: ENXIO/ENODEV reopens once and sends the frame again; a second failure is reported', async () => {
  const { ffi, calls } = fakeFfi({ eth0: 2 }, [ERRNO.ENXIO, 0, ERRNO.ENODEV]);
  const ll = new LinkLayer(() => ffi, noSleep);
  const r = await ll.send('eth0', [arp, arp]);
  assert.equal(r[0], undefined, 'first frame sent after the reopen');
  assert.ok(r[1] instanceof LinkLayerError);
  assert.equal(r[1].errno, ERRNO.ENODEV, 'only one reopen per batch');
  assert.deepEqual(calls, ['open 10', 'send 10 if2 0x806 42 -> errno 6', 'close 10', 'open 11', 'send 11 if2 0x806 42', 'send 11 if2 0x806 42 -> errno 19']);
});

test('LinkLayer: a full socket buffer (EAGAIN) is waited out, bounded', async () => {
  const waits: number[] = [];
  const { ffi } = fakeFfi({ eth0: 2 }, [ERRNO.EAGAIN, ERRNO.EAGAIN, 0, ...Array<number>(300).fill(ERRNO.EAGAIN)]);
  const ll = new LinkLayer(
    () => ffi,
    (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
  );
  assert.deepEqual(await ll.send('eth0', [arp]), [undefined]);
  assert.deepEqual(waits, [1, 1]);
  const r = await ll.send('eth0', [arp]);
  assert.equal(r[0]?.errno, ERRNO.EAGAIN, 'gives up after its retries');
  assert.equal(waits.length, 2 + 200);
});

test('LinkLayer: no such interface or no socket throws with the errno; no FFI throws its reason', async () => {
  const { ffi } = fakeFfi({});
  const ll = new LinkLayer(() => ffi, noSleep);
  await assert.rejects(ll.send('nosuch0', [arp]), (e: LinkLayerError) => e.errno === ERRNO.ENODEV && /no such interface nosuch0/.test(e.message));
  const eperm = new LinkLayer(() => ({ ...fakeFfi({ eth0: 2 }).ffi, open: () => -1 }), noSleep);
  await assert.rejects(eperm.send('eth0', [arp]), (e: LinkLayerError) => e.errno === 1 && /AF_PACKET/.test(e.message));
  const none = new LinkLayer(() => {
    throw new LinkLayerError('link-layer sends need Linux AF_PACKET sockets (this is freebsd)');
  });
  await assert.rejects(none.send('eth0', [arp]), /need Linux AF_PACKET/);
});
