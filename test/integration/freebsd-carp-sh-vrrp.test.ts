/**
 * FreeBSD's tests/sys/netinet/carp.sh `vrrp_v4` (HalfBSD/freebsd-src @569873cc, read through
 * research note §1.2), ported to network namespaces. Topology B3: jail `one` holds the bridge with
 * 192.0.2.4/29, jails `two` (192.0.2.202/29) and `three` (192.0.2.203/29) hang off it, and both
 * add `vhid 1 carpver 3 192.0.2.1/29`. Here: a lab bridge, `one` a node on it; `two` and `three`
 * run carpd on a FreeBSD rc.conf that says just that (`ifconfig_eth0_alias0="inet vhid 1 carpver 3
 * 192.0.2.1/29"`). wait_for_carp: poll (1 s, bounded here) until one is MASTER, fail if both are;
 * is_master greps ifconfig for `(carp|vrrp)` and MASTER, here carpctl status's line, which prints
 * `vrrp: MASTER vrid 1 prio 100 interval 100` as ifconfig does. Then `one` pings the VIP 3 times.
 * `vrrp_v6` (below) runs on the B3 harness of test/helpers/bsd-topology.ts.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CARPD_JS } from '../../src/lab/lab.js';
import { sleep, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { decodeIpv6 } from '../../src/proto/ipv6.js';
import { linkPayloadOf, readPcap } from '../../src/proto/pcap.js';
import { checkVrrp } from '../../src/proto/vrrp.js';
import { b3, ping, waitForCarp, withLog, withVnet } from '../helpers/bsd-topology.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');

function carpd(lab: Lab, node: LabNode, lines: string[]): { child: ChildProcess; sock: string } {
  const dir = join(lab.dir, node.name);
  mkdirSync(dir, { recursive: true });
  const rc = join(dir, 'rc.conf');
  writeFileSync(rc, [`ifconfig_eth0="inet ${node.cidr}"`, 'ifconfig_eth0_alias0="inet vhid 1 carpver 3 192.0.2.1/29"', ''].join('\n'), { mode: 0o600 });
  const sock = join(dir, 'carpd.sock');
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'run', '-c', rc, '--control', sock, '--run-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { STATE_DIRECTORY: join(dir, 'state') },
  });
  for (const s of [child.stdout, child.stderr]) s?.on('data', (d: Buffer) => lines.length < 2000 && lines.push(`${node.name}: ${d.toString().trimEnd()}`));
  return { child, sock };
}

/** carp.sh is_master: ifconfig | grep -E '(carp|vrrp)' | grep MASTER. */
async function isMaster(lab: Lab, node: LabNode, sock: string): Promise<boolean> {
  const r = await lab.exec(node.ns, [process.execPath, CARPCTL_JS, '-s', sock, 'status'], { timeoutMs: 10_000 });
  return r.stdout.split('\n').some((l) => /(carp|vrrp)/.test(l) && l.includes('MASTER'));
}

test('freebsd carp.sh vrrp_v4: two carpver 3 nodes on a bridge, one MASTER, the bridge pings the VIP', { timeout: 120_000 }, async () => {
  await withLab(
    {
      prefix: 'fbvrrp4',
      nodes: [
        { name: 'one', address: '192.0.2.4/29' },
        { name: 'two', address: '192.0.2.202/29' },
        { name: 'three', address: '192.0.2.203/29' },
      ],
    },
    async (lab) => {
      const lines: string[] = [];
      const [one, two, three] = [lab.node('one'), lab.node('two'), lab.node('three')];
      const a = carpd(lab, two, lines);
      const b = carpd(lab, three, lines);
      try {
        // wait_for_carp: while neither is MASTER, sleep 1 (ATF's 300 s default; 30 s here).
        let masters: boolean[] = [false, false];
        for (let i = 0; i < 30 && !masters.some(Boolean); i++) {
          await sleep(1_000);
          masters = [await isMaster(lab, two, a.sock), await isMaster(lab, three, b.sock)];
        }
        assert.ok(masters.some(Boolean), `no MASTER after 30 s\n${lines.join('\n')}`);
        assert.ok(!masters.every(Boolean), `Both jails are master\n${lines.join('\n')}`);
        // Still exactly one a little later. Which one is not fixed: equal priorities (100) elect by
        // address only when both are MASTER at once (RFC 5798 §6.4.3); a BACKUP accepts an equal
        // priority whatever its address (§6.4.2), so the first to time out usually stays.
        await sleep(2_000);
        const now = [await isMaster(lab, two, a.sock), await isMaster(lab, three, b.sock)];
        assert.equal(now.filter(Boolean).length, 1, `${JSON.stringify(now)}\n${lines.join('\n')}`);
        const [node, d] = now[0] ? [two, a] : [three, b];
        const status = await lab.exec(node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, 'status']);
        assert.match(status.stdout, /^eth0: vrrp: MASTER vrid 1 prio 100 interval 100$/m);
        // atf_check -s exit:0 -o ignore jexec one ping -c 3 192.0.2.1
        const ping = await lab.exec(one.ns, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '192.0.2.1'], { timeoutMs: 10_000 });
        assert.equal(ping.exitCode, 0, `${ping.stdout}${ping.stderr}\n${lines.join('\n')}`);
      } finally {
        for (const d of [a, b]) lab.kill(d.child, 'SIGTERM');
        await Promise.all([a, b].map((d) => lab.waitExit(d.child, 5_000)));
      }
    },
  );
});

// carp.sh vrrp_v6 is basic_v6 with `carpver 3`: jail one's bridge has 2001:db8::0:4/64 (no_dad),
// two and three `inet6 2001:db8::1:2/64` / `::1:3/64 no_dad` and `inet6 add vhid 1 carpver 3
// 2001:db8::0:1/64`; wait_for_carp; one pings the VIP 3 times (`ping -6 -c 3 2001:db8::0:1`).
// Here on the B3 harness (test/helpers/bsd-topology.ts) with the rc.conf words FreeBSD's rc
// writes for it: `ifconfig_IF_ipv6="inet6 … no_dad"` and `ifconfig_IF_alias0="inet6 vhid 1
// carpver 3 2001:db8::0:1/64"`. The adverts must be VRRPv3 over IPv6: to ff02::12, hop limit 255,
// next header 112, from the link-local, each checksum verifying with carpd's receive check.
test(
  'freebsd carp.sh vrrp_v6: two carpver 3 nodes with an IPv6 VIP, one MASTER, VRRPv3 to ff02::12, the bridge pings the VIP',
  { timeout: 120_000 },
  async () => {
    await withVnet('fbvrrp6', async (vnet) => {
      const { one, two, three, bridge, epairOne, epairTwo } = await b3(vnet);
      await vnet.netif(one, { 'rc.conf': `ifconfig_${bridge}_ipv6="inet6 2001:db8::0:4/64 no_dad"\n` });
      const rc = (ifname: string, addr: string) =>
        `ifconfig_${ifname}="up"\nifconfig_${ifname}_ipv6="inet6 ${addr}/64 no_dad"\nifconfig_${ifname}_alias0="inet6 vhid 1 carpver 3 2001:db8::0:1/64"\n`;
      const f2 = { 'rc.conf': rc(epairOne.b, '2001:db8::1:2') };
      const f3 = { 'rc.conf': rc(epairTwo.b, '2001:db8::1:3') };
      await vnet.netif(two, f2);
      await vnet.netif(three, f3);
      const cap = await vnet.capture(one, bridge, ['ip6', 'proto', '112']);
      const n2 = await vnet.carpd(two, f2);
      const n3 = await vnet.carpd(three, f3);
      try {
        // wait_for_carp carp_vrrp_v6_two epair_one b carp_vrrp_v6_three epair_two b
        await waitForCarp(n2, epairOne.b, n3, epairTwo.b);
        const [m, ifname] = (await n2.isMaster(epairOne.b)) ? [n2, epairOne.b] : [n3, epairTwo.b];
        assert.match(await m.status(), new RegExp(`^${ifname}: vrrp: MASTER vrid 1 prio 100 interval 100$`, 'm'));
        // atf_check -s exit:0 -o ignore jexec carp_vrrp_v6_one ping -6 -c 3 2001:db8::0:1
        const r = await ping(vnet, one, '2001:db8::1', ['-6', '-c', '3']);
        assert.equal(r.exitCode, 0, `ping -6 -c 3 2001:db8::1: ${r.stdout}${r.stderr}`);
        await cap.stop();
        let n = 0;
        for (const rec of readPcap(readFileSync(cap.file))) {
          const link = linkPayloadOf(rec);
          if (!link || link.ethertype !== 0x86dd) continue;
          const d = decodeIpv6(link.payload);
          if (!d.ok || d.nextHeader !== 112) continue;
          n++;
          assert.equal(d.dst, 'ff02::12');
          assert.equal(d.hopLimit, 255);
          assert.ok(d.src.startsWith('fe80:'), d.src);
          const payload = link.payload.subarray(40, 40 + d.payloadLength);
          const res = checkVrrp(payload, { family: 6, src: d.src, dst: d.dst, ttl: d.hopLimit }, (v) =>
            v === 1 ? { version: 3, addresses: ['2001:db8::1/64'] } : undefined,
          );
          assert.ok(res.ok && res.addressesMatch && res.checksumForm === 'pseudo', JSON.stringify(res));
        }
        assert.ok(n >= 2, `VRRPv3 IPv6 adverts captured: ${n}`);
      } catch (err) {
        throw withLog(err, [n2, n3]);
      }
    });
  },
);
