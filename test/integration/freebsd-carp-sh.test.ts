/**
 * FreeBSD's own CARP regression tests, ported to carpd in network namespaces:
 * `tests/sys/netinet/carp.sh` (HalfBSD/freebsd-src @569873ccb4c399d9a62f57b3eaccc31e648e1e90, a
 * 2025 main snapshot) and the CARP half of `tests/sys/netpfil/pf/pfsync.sh` `pfsync_pbr`
 * (freebsd/freebsd-src @023fc80e). Each case keeps upstream's topology, addresses, vhids and
 * assertions; where upstream runs `ifconfig IF add vhid …` we write the same thing the way an
 * admin makes it permanent, in rc.conf (`ifconfig_IF_alias0="inet vhid …"`) and sysctl.conf, and
 * run `carpd run -c rc.conf -c sysctl.conf`. The harness is test/helpers/bsd-topology.ts.
 *
 * Cases that need features carpd does not have yet (basic_v6, unicast_v4, unicast_v6,
 * unicast_ll_v6, vrrp_v4, vrrp_v6, nd6_ns_source_mac) are added on top of the same harness by
 * the engineers building those features.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createInterface } from 'node:readline';
import { CARP_MAXSKEW } from '../../src/core/machine.js';
import { parseEthernet, readPcap } from '../helpers/netns.js';
import { b3, pair, ping, sleep, waitFor, waitForCarp, withVnet } from '../helpers/bsd-topology.js';

const TEST = { timeout: 40_000 };

// The cases share nothing (own namespaces, sockets and dirs), so they run side by side.
describe('freebsd carp.sh', { concurrency: true }, () => {
  test('freebsd carp.sh basic_v4: two nodes on a bridge elect exactly one MASTER and the VIP answers ping', TEST, async () => {
    await withVnet('bsdfb', async (vnet) => {
      // vnet_mkjail carp_basic_v4_one bridge epair_one a epair_two a; _two epair_one b; _three epair_two b
      const { one, two, three, epairOne, epairTwo } = await b3(vnet);
      // jexec one ifconfig bridge 192.0.2.4/29 up
      await vnet.netif(one, { 'rc.conf': 'ifconfig_bridge0="inet 192.0.2.4/29 up"\n' });
      // jexec two ifconfig epair_one b 192.0.2.202/29 up; ifconfig epair_one b add vhid 1 192.0.2.1/29
      // (no pass: the empty key; advbase 1, advskew 0: the defaults)
      const rc = (ifname: string, addr: string) => `ifconfig_${ifname}="inet ${addr}/29 up"\nifconfig_${ifname}_alias0="inet vhid 1 192.0.2.1/29"\n`;
      const f2 = { 'rc.conf': rc(epairOne.b, '192.0.2.202') };
      const f3 = { 'rc.conf': rc(epairTwo.b, '192.0.2.203') };
      await vnet.netif(two, f2);
      await vnet.netif(three, f3);
      const n2 = await vnet.carpd(two, f2);
      const n3 = await vnet.carpd(three, f3);
      // wait_for_carp carp_basic_v4_two epair_one b carp_basic_v4_three epair_two b
      await waitForCarp(n2, epairOne.b, n3, epairTwo.b);
      // atf_check -s exit:0 -o ignore jexec carp_basic_v4_one ping -c 3 192.0.2.1
      const r = await ping(vnet, one, '192.0.2.1');
      assert.equal(r.exitCode, 0, `ping -c 3 192.0.2.1: ${r.stdout}${r.stderr}`);
    });
  });

  test(
    'freebsd carp.sh negative_demotion (PR 259528): demotion -1 on the master never makes two masters nor a negative advskew on the wire',
    TEST,
    async () => {
      await withVnet('bsdfb', async (vnet) => {
        // vnet_mkjail one epair a; vnet_mkjail two epair b
        const { a: one, b: two, epair } = await pair(vnet, ['one', 'two']);
        // jexec one sysctl net.inet.carp.preempt=1
        // jexec one ifconfig epair a 192.0.2.1/24 up
        // jexec one ifconfig epair a add vhid 1 192.0.2.254/24 advskew 0 pass foobar
        const files = (ifname: string, addr: string, advskew: number) => ({
          'rc.conf': `ifconfig_${ifname}="inet ${addr}/24 up"\nifconfig_${ifname}_alias0="inet vhid 1 advskew ${advskew} pass foobar 192.0.2.254/24"\n`,
          'sysctl.conf': 'net.inet.carp.preempt=1\n',
        });
        const f1 = files(epair.a, '192.0.2.1', 0);
        const f2 = files(epair.b, '192.0.2.2', 100);
        await vnet.netif(one, f1);
        await vnet.netif(two, f2);
        const cap = await vnet.capture(two, epair.b, ['ip', 'proto', '112']);
        const n1 = await vnet.carpd(one, f1);
        const n2 = await vnet.carpd(two, f2);
        // Allow things to settle
        await waitForCarp(n1, epair.a, n2, epair.b);
        const twoMasters = async () => (await n1.isMaster(epair.a)) && (await n2.isMaster(epair.b));
        assert.equal(await twoMasters(), false, 'Two masters!');
        // jexec one sysctl net.inet.carp.demotion=-1: the sysctl *adds* -1 to the node's demotion;
        // carpd's equivalent is the additive admin adjust of the `carp` group.
        const d = await n1.ctl('demote', '-1');
        assert.equal(d.exitCode, 0, `carpctl demote -1: ${d.stderr}`);
        await sleep(3_000);
        assert.equal(await twoMasters(), false, 'Two masters!');
        await cap.stop();
        // The bug was on the wire: advskew + demotion went below 0 and left as a byte near 255
        // (FreeBSD now clamps DEMOTE_ADVSKEW to [0, CARP_MAXSKEW]). Every advert from one must carry
        // a valid advskew, and with demotion -1 on top of 0 that is still 0.
        const fromOne = readPcap(cap.file)
          .frames.map((f) => parseEthernet(f.data).ipv4)
          .filter((ip) => ip?.proto === 112 && ip.src === '192.0.2.1');
        assert.ok(fromOne.length >= 3, `adverts from one captured: ${fromOne.length}`);
        for (const ip of fromOne) {
          const advskew = ip!.payload[2]!;
          assert.ok(advskew <= CARP_MAXSKEW, `advskew ${advskew} on the wire`);
          assert.equal(advskew, 0, 'demotion -1 on advskew 0 stays 0');
        }
      });
    },
  );

  test('freebsd carp.sh switch: forcing state backup then state master on a vhid both succeed', TEST, async () => {
    await withVnet('bsdfb', async (vnet) => {
      // Upstream runs in the host vnet on one epair: `ifconfig epairNa up`, then
      // `ifconfig epairNa vhid 1 advskew 100 192.0.2.1/24`, `… vhid 1 state backup`, `… vhid 1 state master`.
      const host = await vnet.mkjail('host');
      const epair = await vnet.mkepair(host, host);
      const files = { 'rc.conf': `ifconfig_${epair.a}="up"\nifconfig_${epair.a}_alias0="inet vhid 1 advskew 100 192.0.2.1/24"\n` };
      await vnet.netif(host, files);
      const n = await vnet.carpd(host, files);
      // Each must succeed (upstream: the ifconfig exits 0 and the kernel does not panic); we also
      // check that each forced state took.
      const backup = await n.ctl('state', `1@${epair.a}`, 'backup');
      assert.equal(backup.exitCode, 0, `state backup: ${backup.stderr}`);
      assert.match(backup.stdout, /BACKUP/);
      const master = await n.ctl('state', `1@${epair.a}`, 'master');
      assert.equal(master.exitCode, 0, `state master: ${master.stderr}`);
      assert.match(master.stdout, /MASTER/);
      assert.equal(await n.isMaster(epair.a), true);
      // And carpd is still there to answer.
      assert.equal(n.child.exitCode, null, 'carpd still running');
      assert.equal(await n.stop(), 0, 'clean exit');
    });
  });

  /**
   * A master that a peer preempts with a better advert hands over make-before-break
   * (src/core/node.ts outranks(): the handover hold), so the client loses nothing while it learns
   * the new master's MAC; without it, 3 to 17 of 600 pings 5 ms apart were lost here. Upstream
   * loses none because the kernel's CARP answers from the virtual MAC.
   */

  test(
    'freebsd pfsync.sh pfsync_pbr (CARP half): lowering the running backup advskew below the master by SIGHUP reload preempts with 0 lost pings at 100/s',
    TEST,
    async (t) => {
      await withVnet('bsdfb', async (vnet) => {
        // client — bridge0 — {gw_route_to_master, gw_route_to_backup}, vhid 10 only (the other three
        // vhids of upstream are the same on other bridges). one is the client on bridge0.
        const { one: client, two: master, three: backup, epairOne, epairTwo } = await b3(vnet);
        await vnet.netif(client, { 'rc.conf': 'ifconfig_bridge0="inet 198.18.0.1/24 up"\n' });
        // jexec gw_route_to_master ifconfig if_br0 inet 198.18.0.8/24 up
        // jexec gw_route_to_master ifconfig if_br0 alias 198.18.0.10/32 vhid 10 pass 3WjvVVw7 advskew 50
        // jexec gw_route_to_master sysctl net.inet.carp.preempt=1 (and 100 on the backup)
        const files = (ifname: string, addr: string, advskew: number) => ({
          'rc.conf': `ifconfig_${ifname}="inet ${addr}/24 up"\nifconfig_${ifname}_alias0="inet 198.18.0.10/32 vhid 10 pass 3WjvVVw7 advskew ${advskew}"\n`,
          'sysctl.conf': 'net.inet.carp.preempt=1\n',
        });
        const fm = files(epairOne.b, '198.18.0.8', 50);
        const fb = files(epairTwo.b, '198.18.0.9', 100);
        await vnet.netif(master, fm);
        await vnet.netif(backup, fb);
        const nm = await vnet.carpd(master, fm);
        // Started once the master holds the vhid, as upstream waits for `carp: BACKUP` on the backup.
        await waitFor(() => nm.isMaster(epairOne.b), { timeoutMs: 10_000, intervalMs: 100, what: 'master MASTER' });
        const nb = await vnet.carpd(backup, fb);
        await waitFor(async () => (await nb.state(epairTwo.b)) === 'BACKUP', { timeoutMs: 10_000, intervalMs: 100, what: 'carp: BACKUP' });
        // while ! jexec client ping -c 10 … | grep ', 0.0% packet loss'  (the path works before the test)
        const warm = await ping(vnet, client, '198.18.0.10', ['-c', '3', '-i', '0.2']);
        assert.equal(warm.exitCode, 0, warm.stdout);
        // (jexec client ping -c 10 …) & — here 600 pings 5 ms apart (over 100/s; the achieved rate is in the diagnostic), a stricter version of upstream's 1/s.
        const count = 600;
        const p = vnet.spawn(client, ['ping', '-n', '-i', '0.005', '-c', String(count), '-W', '1', '198.18.0.10']);
        const out: string[] = [];
        createInterface({ input: p.stdout! }).on('line', (l) => out.push(l));
        const done = new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
        // sleep 1; jexec gw_route_to_backup ifconfig if_br0 vhid 10 advskew 0 — here the rc.conf is
        // edited and carpd reloads it on SIGHUP, as an admin would make the change stick.
        await sleep(1_000);
        vnet.etc(backup, files(epairTwo.b, '198.18.0.9', 0));
        nb.signal('SIGHUP');
        await waitFor(() => nb.isMaster(epairTwo.b), { timeoutMs: 5_000, intervalMs: 50, what: 'the backup to preempt' });
        const code = await Promise.race([done, sleep(15_000).then(() => 'timeout' as const)]);
        assert.notEqual(code, 'timeout', 'ping finished');
        const summary = out.find((l) => l.includes('packet loss')) ?? out.join('\n');
        // atf_check … grep ', 0.0% packet loss' ping.stdout
        assert.match(summary, new RegExp(`^${count} packets transmitted, ${count} received, 0% packet loss`), summary);
        const ms = Number(/time (\d+)ms/.exec(summary)?.[1]);
        t.diagnostic(`pfsync_pbr: ${summary}; ${Math.round((count * 1000) / ms)} pings/s on average`);
        assert.equal(await nm.state(epairOne.b), 'BACKUP', 'the old master stepped down');
      });
    },
  );
});
