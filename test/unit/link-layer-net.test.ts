/**
 * LinuxNet on fake libc calls: gratuitous ARP/NA batching through the packet socket, and VIP
 * adds/deletes over rtnetlink, with no socket, process or namespace.
 */
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { test } from 'node:test';
import { addrMessage, IFA_F_NODAD, LinkLayer, parseAcks, RtNetlink, type NetlinkFfi, type PacketFfi } from '../../src/adapters/link-layer.js';
import { LinuxNet, NetError } from '../../src/adapters/linux-net.js';
import { gratuitousArp, macBytes } from '../../src/proto/arp.js';
import { unsolicitedNa } from '../../src/proto/ndp.js';

const MAC = '02:00:00:00:00:0a';
const addr = (address: string, family: 'IPv4' | 'IPv6', mac = MAC): NetworkInterfaceInfo =>
  ({ address, family, mac, netmask: '', internal: false, cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as NetworkInterfaceInfo;

function packetFfi() {
  const sends: { ifindex: number; ethertype: number; frame: Buffer }[] = [];
  let sendCalls = 0;
  const ffi: PacketFfi = {
    open: () => 10,
    send(_fd, frame, ifindex, ethertype) {
      sendCalls++;
      sends.push({ ifindex, ethertype, frame: Buffer.from(frame) });
      return frame.length;
    },
    close: () => undefined,
    ifindex: (name) => ({ eth0: 2, eth1: 3 })[name] ?? 0,
  };
  return { ffi, sends, calls: () => sendCalls };
}

test("LinuxNet.garp: calls in one turn go out as one batch, the kernels' frames, from the interface MAC or the one given", async () => {
  const p = packetFfi();
  let lookups = 0;
  const net = new LinuxNet({
    link: new LinkLayer(() => p.ffi),
    netlink: null,
    interfaces: () => {
      lookups++;
      return {
        eth0: [addr('198.18.0.2', 'IPv4'), addr('fe80::a', 'IPv6'), addr('2001:db8::7', 'IPv6')],
        'eth0:1': [addr('198.18.1.7', 'IPv4')],
        eth1: [addr('10.0.0.1', 'IPv4', '02:00:00:00:00:0b')],
      };
    },
  });
  await Promise.all([
    net.garp('eth0', '198.18.1.7/16'),
    net.garp('eth0', '2001:0db8:0::7/64'),
    net.garp('eth0', '198.18.1.7/16', '00:00:5e:00:01:07'),
    net.garp('eth1', '10.0.0.1/24'),
  ]);
  assert.equal(lookups, 1, 'one getifaddrs for the batch');
  assert.deepEqual(
    p.sends.map((s) => [s.ifindex, s.ethertype]),
    [
      [2, 0x0806],
      [2, 0x86dd],
      [2, 0x0806],
      [3, 0x0806],
    ],
  );
  assert.deepEqual(p.sends[0]!.frame, gratuitousArp(macBytes(MAC), '198.18.1.7'), 'the VIP of a labelled address counts for its interface');
  assert.deepEqual(p.sends[1]!.frame, unsolicitedNa(macBytes(MAC), 'fe80::a', '2001:db8::7'), 'NA from the link-local address');
  assert.deepEqual(p.sends[2]!.frame, gratuitousArp(macBytes('00:00:5e:00:01:07'), '198.18.1.7'), 'the virtual MAC when asked');
  assert.deepEqual(p.sends[3]!.frame, gratuitousArp(macBytes('02:00:00:00:00:0b'), '10.0.0.1'));
});

test('LinuxNet.garp: a VIP not on the interface is refused (it would steal the address); no link-local falls back to the VIP as source', async () => {
  const p = packetFfi();
  const net = new LinuxNet({
    link: new LinkLayer(() => p.ffi),
    netlink: null,
    interfaces: () => ({ eth0: [addr('198.18.0.2', 'IPv4'), addr('2001:db8::7', 'IPv6')] }),
  });
  const [missing, v6] = await Promise.allSettled([net.garp('eth0', '198.18.1.9/16'), net.garp('eth0', '2001:db8::7/64')]);
  assert.equal(missing.status, 'rejected');
  assert.ok((missing as PromiseRejectedResult).reason instanceof NetError);
  assert.match(String((missing as PromiseRejectedResult).reason), /198\.18\.1\.9 is not on eth0/);
  assert.equal(v6.status, 'fulfilled');
  assert.deepEqual(
    p.sends.map((s) => s.frame),
    [unsolicitedNa(macBytes(MAC), '2001:db8::7', '2001:db8::7')],
  );
  await assert.rejects(net.garp('eth0', '198.18.0.2/16', 'nope'), NetError);
  await assert.rejects(net.garp('bad name!', '198.18.0.2/16'), NetError);
});

test('LinuxNet.garp: no AF_PACKET (not Linux, no koffi) fails with a clear NetError', async () => {
  const net = new LinuxNet({
    link: new LinkLayer(() => {
      throw new Error('link-layer sends need Linux AF_PACKET sockets (this is freebsd)');
    }),
    netlink: null,
    interfaces: () => ({ eth0: [addr('198.18.1.7', 'IPv4')] }),
  });
  await assert.rejects(net.garp('eth0', '198.18.1.7/16'), (e: NetError) => e.code === 'CARPD_ERR_NET' && /AF_PACKET/.test(e.message));
});

/** A fake NETLINK_ROUTE: records each sendto's messages and answers each with the errno `answer` picks. */
function netlinkFfi(answer: (type: number, family: number, prefix: number, flags: number) => number) {
  const sent: Buffer[][] = [];
  const queue: Buffer[] = [];
  const ffi: NetlinkFfi = {
    open: () => 20,
    send(_fd, buf) {
      const msgs: Buffer[] = [];
      for (let off = 0; off < buf.length;) {
        const len = buf.readUInt32LE(off);
        const m = buf.subarray(off, off + len);
        msgs.push(Buffer.from(m));
        const ack = Buffer.alloc(36);
        ack.writeUInt32LE(36, 0);
        ack.writeUInt16LE(2, 4); // NLMSG_ERROR
        ack.writeUInt32LE(m.readUInt32LE(8), 8);
        ack.writeInt32LE(-answer(m.readUInt16LE(4), m[16]!, m[17]!, m[18]!), 16);
        queue.push(ack);
        off += len;
      }
      sent.push(msgs);
      return buf.length;
    },
    recv(_fd, buf) {
      // The kernel hands acks over one datagram each.
      const a = queue.shift();
      if (!a) return -11;
      a.copy(buf);
      return a.length;
    },
    close: () => undefined,
    strerror: (e) => ({ 17: 'File exists', 99: 'Cannot assign requested address', 22: 'Invalid argument' })[e] ?? `errno ${e}`,
  };
  return { ffi, sent };
}

test('LinuxNet over rtnetlink: one sendto for the adds of a turn; EEXIST on add and EADDRNOTAVAIL on del are success; other errors reach their caller', async () => {
  const nl = netlinkFfi((type, family, prefix) => (type === 20 && prefix === 17 ? 17 : type === 21 && family === 10 ? 99 : prefix === 9 ? 22 : 0));
  const p = packetFfi();
  const net = new LinuxNet({ link: new LinkLayer(() => p.ffi), netlink: new RtNetlink(() => nl.ffi), interfaces: () => ({}) });
  const results = await Promise.allSettled([
    net.addVip('eth0', '198.18.1.1/16'),
    net.addVip('eth0', '198.18.1.2/17'), // EEXIST: already there
    net.addVip('eth1', '2001:db8::7/64'),
    net.addVip('eth0', '198.18.1.3/9'), // EINVAL
    net.addVip('nosuch0', '198.18.1.4/16'),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'],
  );
  assert.match(String((results[3] as PromiseRejectedResult).reason), /ip addr add 198\.18\.1\.3\/9 dev eth0: RTNETLINK answers: Invalid argument/);
  assert.match(String((results[4] as PromiseRejectedResult).reason), /Cannot find device "nosuch0"/);
  assert.equal(nl.sent.length, 1, 'one sendto for the batch');
  const [m0, , m2] = nl.sent[0]!;
  assert.deepEqual(m0, addrMessage({ op: 'add', ifindex: 2, family: 4, address: Buffer.from([198, 18, 1, 1]), prefix: 16 }, m0!.readUInt32LE(8)));
  assert.equal(m2![16], 10, 'AF_INET6');
  assert.equal(m2![18], IFA_F_NODAD, 'IPv6 VIPs without DAD, as keepalived adds them');
  assert.equal(m2!.readUInt32LE(20), 3, 'ifindex of eth1');
  await net.delVip('eth1', '2001:db8::7/64'); // EADDRNOTAVAIL: already gone
  assert.equal(nl.sent[1]![0]!.readUInt16LE(4), 21, 'RTM_DELADDR');
  assert.equal(nl.sent[1]![0]![18], 0, 'no flags on delete');
});

test("rtnetlink messages: the bytes of iproute2's RTM_NEWADDR (IFA_LOCAL and IFA_ADDRESS), and acks parsed by sequence", () => {
  const m = addrMessage({ op: 'add', ifindex: 2, family: 4, address: Buffer.from([198, 18, 1, 7]), prefix: 16 }, 0x01020304);
  assert.equal(
    m.toString('hex'),
    [
      '28000000', // nlmsg_len 40
      '1400', // RTM_NEWADDR
      '0506', // NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
      '04030201', // seq
      '00000000', // pid
      '02',
      '10',
      '00',
      '00',
      '02000000', // AF_INET, /16, flags, scope, ifindex 2
      '0800',
      '0200',
      'c6120107', // IFA_LOCAL
      '0800',
      '0100',
      'c6120107', // IFA_ADDRESS
    ].join(''),
  );
  const ack = (seq: number, err: number) => {
    const b = Buffer.alloc(36);
    b.writeUInt32LE(36, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt32LE(seq, 8);
    b.writeInt32LE(err, 16);
    return b;
  };
  assert.deepEqual(
    [...parseAcks(Buffer.concat([ack(7, 0), ack(8, -17)]))],
    [
      [7, 0],
      [8, -17],
    ],
  );
  assert.equal(parseAcks(Buffer.alloc(10)).size, 0, 'a short buffer is ignored');
});

test('rtnetlink: a request with no ack is reported (ENOBUFS), not assumed done', () => {
  const nl = netlinkFfi(() => 0);
  const lossy: NetlinkFfi = { ...nl.ffi, recv: () => -11 };
  const r = new RtNetlink(() => lossy).apply([{ op: 'add', ifindex: 2, family: 4, address: Buffer.from([10, 0, 0, 1]), prefix: 24 }]);
  assert.deepEqual(r, [105]);
});
