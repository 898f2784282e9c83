/**
 * OpenBSD's CARP regress tests, `regress/sys/netinet/carp` in openbsd/src (carp_1.sh and
 * carp_2.sh rev 1.2, 2023/10/19, with the carp_subr `wait_until` of 8 × 0.5 s that rev 1.3 of
 * the cases uses instead of fixed sleeps), ported to carpd in network namespaces.
 *
 * Upstream runs `ksh carp_N.sh -R "11 12" -I "11 12"`: two rdomains joined by a patched pair
 * (`ifconfig pair11 rdomain 11 192.168.0.2/24`, `ifconfig pair12 rdomain 12 192.168.0.3/24 patch
 * pair11`) and a carp interface in each. Here: two namespaces `rd11`/`rd12` joined by a veth
 * `pair11`/`pair12`, and each carp interface written as the admin makes it permanent, an
 * `/etc/hostname.carp11` (with the `hostname.pair11` beside it) read by `carpd run -c`.
 *
 * carp_3/carp_4 (`carppeer`) are added on this harness with the unicast work.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseEthernet, readPcap } from '../helpers/netns.js';
import { pair, waitUntil, withVnet, type CarpdNode, type Vnet } from '../helpers/bsd-topology.js';

const TEST = { timeout: 40_000 };
/** carp_N.sh: IFGPREFIX=$(printf "regress%04x" $$) */
const IFGPREFIX = `regress${(process.pid & 0xffff).toString(16).padStart(4, '0')}`;

interface Cluster {
  vnet: Vnet;
  n1: CarpdNode;
  n2: CarpdNode;
  lladdr1: string;
  lladdr2: string;
}

/**
 * The common part of carp_1..carp_4: the pair, then carp11 (vhid 251, group ${IFGPREFIX}a) and
 * carp12 (group ${IFGPREFIX}b, advskew 100). `extra(n)` adds the case's words (`lladdr …`).
 */
async function setup(vnet: Vnet, extra: (lladdr: string) => string): Promise<Cluster> {
  const { a: rd11, b: rd12 } = await pair(vnet, ['rd11', 'rd12'], { a: 'pair11', b: 'pair12' });
  const f1 = { 'hostname.pair11': 'rdomain 11\ninet 192.168.0.2/24\nup\n' };
  const f2 = { 'hostname.pair12': 'rdomain 12\ninet 192.168.0.3/24\npatch pair11\nup\n' };
  await vnet.netif(rd11, f1);
  await vnet.netif(rd12, f2);
  // lladdr1=$(ifconfig pair11 | sed -n '/^.*lladdr \(.*\)/s//\1/p')
  const lladdr1 = await vnet.mac(rd11, 'pair11');
  const lladdr2 = await vnet.mac(rd12, 'pair12');
  // ifconfig carp11 rdomain 11 [lladdr …] 192.168.0.1/24 vhid 251 carpdev pair11 -group carp group ${IFGPREFIX}a
  const c1 = `rdomain 11 ${extra(lladdr1)}192.168.0.1/24 vhid 251 carpdev pair11 -group carp group ${IFGPREFIX}a\nup\n`;
  const c2 = `rdomain 12 ${extra(lladdr2)}192.168.0.1/24 vhid 251 carpdev pair12 -group carp group ${IFGPREFIX}b advskew 100\nup\n`;
  const n1 = await vnet.carpd(rd11, { ...f1, 'hostname.carp11': c1 }).then((n) => n);
  const n2 = await vnet.carpd(rd12, { ...f2, 'hostname.carp12': c2 });
  return { vnet, n1, n2, lladdr1, lladdr2 };
}

/**
 * The assertions, identical in carp_1..carp_4: carp11 becomes master (wait_until), carp12 is
 * backup; `ifconfig -g ${IFGPREFIX}a carpdemote` (group demote +1); within wait_until carp11 is
 * backup and carp12 master.
 */
async function demoteSwap(c: Cluster): Promise<void> {
  const status = async (n: CarpdNode, ifname: string) => (await n.state(ifname))?.toLowerCase();
  // IFNO1 must become master
  assert.ok(await waitUntil(async () => (await status(c.n1, 'pair11')) === 'master'), `carp11 status: master within wait_until: ${await c.n1.status()}`);
  assert.equal(await status(c.n1, 'pair11'), 'master', 'carp11 status: master');
  assert.equal(await status(c.n2, 'pair12'), 'backup', 'carp12 status: backup');
  // carpdemote must work: ifconfig -g ${IFGPREFIX}a carpdemote (the default is +1)
  const d = await c.n1.ctl('demote', '-g', `${IFGPREFIX}a`, '+1');
  assert.equal(d.exitCode, 0, `carpctl demote -g ${IFGPREFIX}a +1: ${d.stderr}`);
  assert.ok(
    await waitUntil(async () => (await status(c.n1, 'pair11')) === 'backup' && (await status(c.n2, 'pair12')) === 'master'),
    `swap within wait_until (4 s): ${await c.n1.status()}\n${await c.n2.status()}`,
  );
  assert.equal(await status(c.n1, 'pair11'), 'backup', 'carp11 status: backup');
  assert.equal(await status(c.n2, 'pair12'), 'master', 'carp12 status: master');
}

// The cases share nothing (own namespaces, sockets and dirs), so they run side by side.
describe('openbsd regress carp', { concurrency: true }, () => {
  test('openbsd regress carp_1: multicast, default MAC: carpdemote on the master group swaps master and backup within wait_until', TEST, async () => {
    await withVnet('bsdob', async (vnet) => {
      await demoteSwap(await setup(vnet, () => ''));
    });
  });

  test("openbsd regress carp_2: lladdr set to the parent's MAC: the same swap, and every advert leaves from the parent's MAC", TEST, async () => {
    await withVnet('bsdob', async (vnet) => {
      const rd12 = () => vnet.jails.find((j) => j.name === 'rd12')!;
      const c = await setup(vnet, (mac) => `lladdr ${mac} `);
      const cap = await vnet.capture(rd12(), 'pair12', ['ip', 'proto', '112']);
      await demoteSwap(c);
      await cap.stop();
      // With lladdr = the parent's MAC OpenBSD sets sc_realmac and sends from it (ip_carp.c
      // carp_setrun / carp_hmac_prepare_ctx leave the MAC out of the HMAC); carpd always does.
      const frames = readPcap(cap.file).frames.map((f) => parseEthernet(f.data));
      const adverts = frames.filter((f) => f.ipv4?.proto === 112);
      const from = (mac: string) => adverts.filter((f) => f.src === mac);
      assert.ok(from(c.lladdr1).length >= 1, `adverts from carp11's parent MAC ${c.lladdr1}`);
      assert.ok(from(c.lladdr2).length >= 1, `adverts from carp12's parent MAC ${c.lladdr2}`);
      for (const f of adverts) assert.ok([c.lladdr1, c.lladdr2].includes(f.src), `advert from ${f.src}, not a parent's MAC`);
    });
  });
});
