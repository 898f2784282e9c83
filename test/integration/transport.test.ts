/**
 * The Linux adapters for real, in throwaway network namespaces: RawTransport (CARP packets on
 * the wire) and LinuxNet (VIPs, gratuitous ARP, unsolicited NA, link state).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressesOf, parseEthernet, readPcap, runProbe, sleep, startProbe, withLab, type JsonLine } from '../helpers/netns.js';

const GROUP = '224.0.0.18';
const TIMEOUT = { timeout: 25_000 };

const recvs = (lines: JsonLine[]): JsonLine[] => lines.filter((l) => l.event === 'recv');
/** The probe's result line in `net` mode (log lines may come first). */
const result = (lines: JsonLine[]): JsonLine => lines.find((l) => 'ok' in l) ?? {};

test('RawTransport: adverts reach the group with TTL 255 and TOS 0x10, are not looped back, and stay on their interface', TIMEOUT, async () => {
  await withLab({ nodes: ['a', 'b', 'c'] }, async (lab) => {
    const [a, b, c] = [lab.node('a'), lab.node('b'), lab.node('c')];
    // A second interface in b (a veth pair local to b): a socket bound to it must not see what arrives on eth0.
    for (const argv of [
      ['ip', 'link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x1'],
      ['ip', 'addr', 'add', '198.19.0.2/24', 'dev', 'x0'],
      ['ip', 'link', 'set', 'x1', 'up'],
      ['ip', 'link', 'set', 'x0', 'up'],
    ]) {
      assert.equal((await lab.exec(b.ns, argv)).exitCode, 0, argv.join(' '));
    }
    const cap = await lab.capture(lab.switchNs!, 'br0', 'ip proto 112');
    const onB = startProbe(lab, b.ns, ['transport', '--if', 'eth0', '--src', b.address, '--duration', '8000']);
    const onDummy = startProbe(lab, b.ns, ['transport', '--if', 'x0', '--duration', '8000']);
    const onC = startProbe(lab, c.ns, ['transport', '--if', 'eth0', '--src', c.address, '--duration', '8000']);
    await Promise.all([onB, onDummy, onC].map((p) => p.waitLine((l) => l.event === 'ready')));

    const fromA = startProbe(lab, a.ns, ['transport', '--if', 'eth0', '--src', a.address, '--send', '5', '--send', `3@${c.address}`, '--duration', '8000']);
    await fromA.waitLine((l) => l.event === 'sent-all', 5_000);
    await onC.waitLine((l) => l.event === 'recv' && l.dst === c.address && l.payload === payloadHex(8), 3_000);
    await onB.waitLine((l) => l.event === 'recv' && l.payload === payloadHex(5), 3_000);
    await sleep(300);
    await Promise.all([fromA, onB, onDummy, onC].map((p) => p.stop()));
    await cap.stop();

    const atB = recvs(onB.lines);
    assert.deepEqual(
      atB.map((l) => l.payload),
      [1, 2, 3, 4, 5].map(payloadHex),
      'b got the five multicast adverts, in order, and no unicast',
    );
    for (const l of atB) {
      assert.equal(l.ttl, 255);
      assert.equal(l.dst, GROUP);
      assert.equal(l.src, a.address);
      assert.equal(l.proto, 112);
      assert.equal(l.tos, 0x10);
      assert.equal(l.totalLength, 20 + 36);
    }
    const atC = recvs(onC.lines);
    assert.deepEqual(
      atC.filter((l) => l.dst === GROUP).map((l) => l.payload),
      [1, 2, 3, 4, 5].map(payloadHex),
    );
    const unicast = atC.filter((l) => l.dst === c.address);
    assert.deepEqual(
      unicast.map((l) => l.payload),
      [6, 7, 8].map(payloadHex),
      'c got the unicast adverts',
    );
    for (const l of unicast) assert.equal(l.ttl, 255, 'unicast TTL is 255 too');

    assert.deepEqual(recvs(fromA.lines), [], 'a does not hear itself (IP_MULTICAST_LOOP 0)');
    assert.equal(fromA.lines.filter((l) => l.event === 'send-error').length, 0);
    assert.deepEqual(recvs(onDummy.lines), [], 'a socket bound to x0 sees nothing that arrived on eth0');

    const frames = readPcap(cap.file)
      .frames.map((f) => parseEthernet(f.data))
      .filter((f) => f.ipv4?.proto === 112);
    assert.equal(frames.length, 8, 'the bridge saw 5 multicast + 3 unicast adverts');
    for (const f of frames) {
      assert.equal(f.src, a.mac);
      assert.equal(f.ipv4!.tos, 0x10);
      assert.equal(f.ipv4!.ttl, 255);
      assert.equal(f.ipv4!.df, true);
      assert.equal(f.ipv4!.src, a.address);
      assert.equal(f.ipv4!.payload.length, 36);
    }
    assert.equal(frames.filter((f) => f.dst === '01:00:5e:00:00:12').length, 5, 'multicast MAC for 224.0.0.18');
  });
});

test('RawTransport: joins the group on an interface with no IPv4 address and can send from it', TIMEOUT, async () => {
  await withLab({ nodes: ['a', 'b'] }, async (lab) => {
    const [a, b] = [lab.node('a'), lab.node('b')];
    assert.equal((await lab.exec(b.ns, ['ip', 'addr', 'flush', 'dev', 'eth0'])).exitCode, 0);
    const onB = startProbe(lab, b.ns, ['transport', '--if', 'eth0', '--duration', '8000']);
    await onB.waitLine((l) => l.event === 'ready');
    const fromA = startProbe(lab, a.ns, ['transport', '--if', 'eth0', '--send', '2', '--duration', '8000']);
    await onB.waitLine((l) => l.event === 'recv' && l.payload === payloadHex(2), 3_000);
    const fromB = startProbe(lab, b.ns, ['transport', '--if', 'eth0', '--send', '1', '--duration', '8000']);
    await fromB.waitLine((l) => l.event === 'sent-all');
    await fromA.waitLine((l) => l.event === 'recv' && l.payload === payloadHex(1), 3_000);
    await Promise.all([fromA, fromB, onB].map((p) => p.stop()));
    assert.deepEqual(
      fromB.lines.filter((l) => l.event === 'send-error'),
      [],
      'no "Network is unreachable" without an address',
    );
    assert.equal(recvs(onB.lines).length, 2);
  });
});

test('RawTransport: a send on a link without carrier is reported through onSendError, not thrown', TIMEOUT, async () => {
  await withLab({ nodes: ['a', 'b'] }, async (lab) => {
    const a = lab.node('a');
    assert.equal((await lab.exec(a.ns, ['ip', 'link', 'set', 'eth0', 'down'])).exitCode, 0);
    const p = startProbe(lab, a.ns, ['transport', '--if', 'eth0', '--send', '2', '--duration', '3000']);
    await p.waitLine((l) => l.event === 'send-error', 3_000);
    await p.stop();
    assert.equal(p.lines.filter((l) => l.event === 'fatal').length, 0);
  });
});

test('LinuxNet: addVip is idempotent, delVip removes the address, primaryAddress ignores our VIPs', TIMEOUT, async () => {
  await withLab({ nodes: ['a'] }, async (lab) => {
    const a = lab.node('a');
    const vip = '198.18.0.100/24';
    for (let i = 0; i < 2; i++) {
      const r = await runProbe(lab, a.ns, ['net', 'add', 'eth0', vip]);
      assert.equal(r.exitCode, 0, JSON.stringify(r));
    }
    assert.ok((await addressesOf(lab, a.ns, 'eth0')).includes(vip));
    const primary = await runProbe(lab, a.ns, ['net', 'primary', 'eth0']);
    assert.equal(result(primary.lines).value, a.address);

    for (let i = 0; i < 2; i++) {
      const r = await runProbe(lab, a.ns, ['net', 'del', 'eth0', vip]);
      assert.equal(r.exitCode, 0, JSON.stringify(r));
    }
    assert.ok(!(await addressesOf(lab, a.ns, 'eth0')).includes(vip));

    const v6 = '2001:db8::100/64';
    assert.equal((await runProbe(lab, a.ns, ['net', 'add', 'eth0', v6])).exitCode, 0);
    assert.equal((await runProbe(lab, a.ns, ['net', 'add', 'eth0', v6])).exitCode, 0);
    assert.ok((await addressesOf(lab, a.ns, 'eth0')).includes(v6));
    assert.equal((await runProbe(lab, a.ns, ['net', 'del', 'eth0', v6])).exitCode, 0);
    assert.ok(!(await addressesOf(lab, a.ns, 'eth0')).includes(v6));

    const bad = await runProbe(lab, a.ns, ['net', 'add', 'nosuch0', vip]);
    assert.equal(bad.exitCode, 1);
    assert.equal(result(bad.lines).code, 'CARPD_ERR_NET');
  });
});

test('LinuxNet: garp sends an ARP request with sender and target both the VIP; IPv6 sends an unsolicited NA', TIMEOUT, async () => {
  await withLab({ nodes: ['a', 'b'] }, async (lab) => {
    const a = lab.node('a');
    const cap = await lab.capture(lab.switchNs!, 'br0', 'arp or icmp6');
    assert.equal((await runProbe(lab, a.ns, ['net', 'add', 'eth0', '198.18.0.100/24'])).exitCode, 0);
    const garp = await runProbe(lab, a.ns, ['net', 'garp', 'eth0', '198.18.0.100/24']);
    assert.equal(garp.exitCode, 0, JSON.stringify(garp));
    assert.equal((await runProbe(lab, a.ns, ['net', 'add', 'eth0', '2001:db8::100/64'])).exitCode, 0);
    const na = await runProbe(lab, a.ns, ['net', 'garp', 'eth0', '2001:db8::100/64']);
    assert.equal(na.exitCode, 0, JSON.stringify(na));
    await sleep(200);
    await cap.stop();

    const frames = readPcap(cap.file).frames.map((f) => parseEthernet(f.data));
    const arps = frames.filter((f) => f.arp && f.arp.spa === '198.18.0.100');
    assert.equal(arps.length, 1, 'exactly one gratuitous ARP');
    const g = arps[0]!;
    assert.equal(g.dst, 'ff:ff:ff:ff:ff:ff');
    assert.equal(g.src, a.mac);
    assert.equal(g.arp!.op, 1, 'an ARP request, not a reply');
    assert.equal(g.arp!.spa, '198.18.0.100');
    assert.equal(g.arp!.tpa, '198.18.0.100');
    assert.equal(g.arp!.sha, a.mac);

    const nas = frames.filter((f) => f.ipv6 && f.ipv6.next === 58 && f.ipv6.payload[0] === 136);
    assert.equal(nas.length, 1, 'exactly one unsolicited NA');
    const n = nas[0]!.ipv6!;
    assert.equal(n.hopLimit, 255);
    assert.equal(n.dst.toString('hex'), 'ff020000000000000000000000000001');
    assert.equal(n.payload[4]! & 0xe0, 0x20, 'override flag only (not solicited, not router)');
    assert.equal(n.payload.subarray(8, 24).toString('hex'), '20010db8000000000000000000000100');
    assert.equal(n.payload[24], 2, 'target link-layer address option');
    assert.equal(n.payload.subarray(26, 32).toString('hex'), a.mac.replaceAll(':', ''));
  });
});

test('LinuxNet: garp fails with a coded error when the VIP is not on the interface (iputils binds to it)', TIMEOUT, async () => {
  await withLab({ nodes: ['a'] }, async (lab) => {
    const r = await runProbe(lab, lab.node('a').ns, ['net', 'garp', 'eth0', '198.18.0.101/24']);
    assert.equal(r.exitCode, 1);
    assert.equal(result(r.lines).code, 'CARPD_ERR_NET');
  });
});

test('LinuxNet: linkUp and watchLinks follow carrier when the far end goes down and up', TIMEOUT, async () => {
  await withLab({ nodes: ['a', 'b'] }, async (lab) => {
    const a = lab.node('a');
    assert.equal(result((await runProbe(lab, a.ns, ['net', 'link', 'eth0'])).lines).value, true);
    const watch = startProbe(lab, a.ns, ['net', 'watch', 'eth0', '--duration', '10000']);
    const ready = await watch.waitLine((l) => l.event === 'ready');
    assert.equal(ready.up, true);
    await lab.linkDown(a);
    await watch.waitLine((l) => l.event === 'link' && l.up === false, 3_000);
    assert.equal(result((await runProbe(lab, a.ns, ['net', 'link', 'eth0'])).lines).value, false);
    await lab.linkUp(a);
    await watch.waitLine((l) => l.event === 'link' && l.up === true, 3_000);
    await watch.stop();
    assert.deepEqual(
      watch.lines.filter((l) => l.event === 'link').map((l) => l.up),
      [false, true],
      'one callback per change',
    );
  });
});

test('lab: destroy removes every namespace it made and is idempotent', TIMEOUT, async () => {
  let made: string[] = [];
  await withLab({ nodes: ['a', 'b'] }, async (lab) => {
    made = lab.namespaces();
    assert.equal(made.length, 3);
    const child = lab.spawn(lab.node('a').ns, ['sleep', '30']);
    assert.ok(child.pid);
    await lab.destroy();
    assert.ok(child.exitCode !== null || child.signalCode !== null, 'tracked process was killed');
  });
  const { readdirSync } = await import('node:fs');
  const left = readdirSync('/var/run/netns');
  for (const ns of made) assert.ok(!left.includes(ns), `${ns} removed`);
});

/** The payload the probe sends as its seq-th packet, in hex. */
function payloadHex(seq: number): string {
  const p = Buffer.alloc(36);
  p[0] = 0x21;
  p[1] = seq & 0xff;
  p.write('carpd-probe', 16, 'latin1');
  return p.toString('hex');
}
