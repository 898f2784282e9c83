/**
 * NetBSD's CARP tests, `tests/net/carp/t_basic.sh` (NetBSD/src, rev 1.3 2017/02/27), ported to
 * carpd in network namespaces: `carp_handover_halt` and `carp_handover_ifdown`. (The IPv6
 * variants are `atf_expect_fail` upstream and wait for carpd's IPv6 adverts.)
 *
 * Upstream: three rump kernels on one shmif bus: client 10.1.1.240, master 10.1.1.1, backup
 * 10.1.1.2; `ifconfig carp0 create; ifconfig shmif0 $ip/24 up; ifconfig carp0 vhid 175 advskew
 * 0|200 advbase 1 pass s3cret 10.1.1.100 netmask 255.255.255.0`. Here: the client namespace holds
 * the bus (a bridge with the client's address), master and backup each hold a veth named
 * `shmif0` on it, and each carp interface is NetBSD's permanent form of the same command, an
 * `/etc/ifconfig.carpN` (ifconfig.if(5)) beside an `/etc/ifconfig.shmif0`, read by `carpd run -c`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ping, sleep, withVnet, type CarpdNode, type Jail, type Vnet } from '../helpers/bsd-topology.js';

const TEST = { timeout: 40_000 };
const IP_CLIENT = '10.1.1.240';
const IP_MASTER = '10.1.1.1';
const IP_BACKUP = '10.1.1.2';
const IP_CARP = '10.1.1.100';
const TIMEOUT = '3';

/** setup_carp SOCK true|false: carp0 (advskew 0) on the master, carp1 (advskew 200) on the backup. */
function netbsdFiles(master: boolean): Record<string, string> {
  const carpif = master ? 'carp0' : 'carp1';
  const ip = master ? IP_MASTER : IP_BACKUP;
  const advskew = master ? 0 : 200;
  return {
    'ifconfig.shmif0': `inet ${ip}/24 up\n`,
    [`ifconfig.${carpif}`]: `create\nvhid 175 advskew ${advskew} advbase 1 pass s3cret ${IP_CARP} netmask 255.255.255.0\nup\n`,
  };
}

/** wait_handover: up to 5 × `ping -n -w 1 -c 1 $IP_CARP` from the client, else "Failed to failover (5 sec)". */
async function waitHandover(vnet: Vnet, client: Jail): Promise<number> {
  for (let i = 0; i < 5; i++) {
    const r = await ping(vnet, client, IP_CARP, ['-w', '1', '-c', '1']);
    if (r.exitCode === 0) return i + 1;
  }
  assert.fail('Failed to failover (5 sec)');
}

async function testCarpHandover(op: 'halt' | 'ifdown', diag: (msg: string) => void): Promise<void> {
  await withVnet('bsdnb', async (vnet) => {
    // rump_server_start × 3; rump_server_add_iface … shmif0 bus_carp
    const client = await vnet.mkjail('client');
    const master = await vnet.mkjail('master');
    const backup = await vnet.mkjail('backup');
    const em = await vnet.mkepair(client, master, { a: 'epair0a', b: 'shmif0' });
    const eb = await vnet.mkepair(client, backup, { a: 'epair1a', b: 'shmif0' });
    await vnet.mkbridge(client, [em.a, eb.a]);
    // setup_carp $SOCK_MASTER true; setup_carp $SOCK_BACKUP false
    const fm = netbsdFiles(true);
    const fb = netbsdFiles(false);
    await vnet.netif(master, fm);
    await vnet.netif(backup, fb);
    const nm: CarpdNode = await vnet.carpd(master, fm);
    const nb: CarpdNode = await vnet.carpd(backup, fb);
    // rump.ifconfig shmif0 $IP_CLIENT/24 up
    await vnet.check(client, ['ip', 'addr', 'add', `${IP_CLIENT}/24`, 'dev', 'bridge0']);
    // Check that the primary addresses are up
    for (const ip of [IP_MASTER, IP_BACKUP]) {
      const r = await ping(vnet, client, ip, ['-w', TIMEOUT, '-c', '1']);
      assert.equal(r.exitCode, 0, `ping ${ip}: ${r.stdout}`);
    }
    // Give carp a while to croak
    await sleep(4_000);
    // Check state: 'carp: MASTER carpdev shmif0' / 'carp: BACKUP carpdev shmif0'
    assert.match(await nm.status(), /^shmif0: carp: MASTER /m);
    assert.match(await nb.status(), /^shmif0: carp: BACKUP /m);
    // Check that the shared IP works
    const vip = await ping(vnet, client, IP_CARP, ['-w', TIMEOUT, '-c', '1']);
    assert.equal(vip.exitCode, 0, `ping ${IP_CARP}: ${vip.stdout}`);

    // KILLING SPREE
    const killedAt = Date.now();
    if (op === 'halt') {
      // rump.halt stops the whole rump kernel: carpd dies without a word (kill -9, no bow-out)
      // and the host's stack with it, which we model by taking its interface down too (the
      // VIP left behind on a dead host must not be what answers the pings below).
      nm.signal('SIGKILL');
      await vnet.check(master, ['ip', 'link', 'set', 'shmif0', 'down']);
    } else {
      // rump.ifconfig shmif0 down: carpd keeps running and must notice its link went away.
      await vnet.check(master, ['ip', 'link', 'set', 'shmif0', 'down']);
    }
    await sleep(1_000);
    // Check that primary is now dead
    const dead = await ping(vnet, client, IP_MASTER, ['-w', TIMEOUT, '-c', '1']);
    assert.notEqual(dead.exitCode, 0, 'the master address must be dead');
    // Do it in installments. carp will cluck meanwhile
    const tries = await waitHandover(vnet, client);
    diag(`${op}: the VIP answered on ping ${tries} of 5 of wait_handover, ${Date.now() - killedAt} ms after the ${op}`);
    // Check state
    assert.match(await nb.status(), /^shmif0: carp: MASTER /m);
    if (op === 'ifdown') {
      // Not upstream: carpd saw the link go and left MASTER (FreeBSD/OpenBSD: link down → INIT).
      assert.doesNotMatch(await nm.status(), /^shmif0: carp: MASTER /m);
    }
  });
}

// The two cases share nothing (own namespaces, sockets and dirs), so they run side by side.
describe('netbsd t_basic.sh', { concurrency: true }, () => {
  test('netbsd t_basic.sh carp_handover_halt: the master halts (kill -9, link gone); the VIP answers from the backup within 5 × 1 s pings', TEST, async (t) => {
    await testCarpHandover('halt', (m) => t.diagnostic(m));
  });

  test('netbsd t_basic.sh carp_handover_ifdown: the master interface goes down; the VIP answers from the backup within 5 × 1 s pings', TEST, async (t) => {
    await testCarpHandover('ifdown', (m) => t.diagnostic(m));
  });
});
