/**
 * Virtual MAC (`vmac = yes`, issue 11 §4) on a real kernel: two carpd nodes and an observer on a
 * bridge in network namespaces. The vhid's VIPs live on a private-mode macvlan `carpv1` with MAC
 * 00:00:5e:00:01:01, which also sends the adverts (src/adapters/vmac.ts).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StatusData } from '../../src/daemon/reports.js';
import { CARPD_JS, labNodes, spawnCarpd, writePassfile } from '../../src/lab/lab.js';
import { parseEthernet, readPcap, sleep, waitFor, withLab, type Lab, type LabNode } from '../helpers/netns.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const VMAC = '00:00:5e:00:01:01';
const VIP = '198.18.1.1';
const VIP6 = '2001:db8::1';
const OBS6 = '2001:db8::ff';

interface Daemon {
  node: LabNode;
  child: ChildProcess;
  sock: string;
  lines: string[];
}

function conf(advskew: number, passfile: string): string {
  return [
    '[carpd]',
    'preempt = no',
    'log = 5',
    '',
    '[vhid.web]',
    'vhid = 1',
    'interface = eth0',
    // In the parent's own /16: the macvlan then has a connected route of its own, the case where
    // the parent's address stops answering ARP if the sysctls are wrong (keepalived #364/#2282).
    `address = ${VIP}/16`,
    `address = ${VIP6}/64`,
    `advskew = ${advskew}`,
    `passfile = ${passfile}`,
    'vmac = yes',
    '',
  ].join('\n');
}

function start(lab: Lab, name: string, text: string): Daemon {
  const node = lab.node(name);
  const file = join(lab.dir, `${name}.conf`);
  writeFileSync(file, text, { mode: 0o600 });
  const d: Daemon = { node, child: undefined as unknown as ChildProcess, sock: join(lab.dir, `${name}.sock`), lines: [] };
  d.child = spawnCarpd(lab, node, file, (l) => d.lines.length < 10_000 && d.lines.push(l));
  return d;
}

async function state(lab: Lab, d: Daemon, key = '1@eth0'): Promise<string | undefined> {
  const r = await lab.exec(d.node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, 'status', '--json'], { timeoutMs: 10_000 });
  if (r.exitCode !== 0) return undefined;
  const st = JSON.parse(r.stdout) as StatusData;
  const v = st.vhids.find((x) => x.key === key);
  return v?.state;
}

async function ctl(lab: Lab, d: Daemon, ...args: string[]): Promise<string> {
  const r = await lab.exec(d.node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, ...args], { timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new Error(`carpctl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function sh(lab: Lab, ns: string, argv: string[]): Promise<string> {
  const r = await lab.exec(ns, argv, { timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

async function sysctl(lab: Lab, ns: string, name: string): Promise<string> {
  return (await sh(lab, ns, ['sysctl', '-n', name])).trim();
}

/** The observer's neighbour entry for `ip`: its MAC, or undefined. */
async function neighMac(lab: Lab, ns: string, ip: string): Promise<string | undefined> {
  const out = await sh(lab, ns, ['ip', '-j', 'neigh', 'show', 'to', ip, 'dev', 'eth0']);
  const e = (JSON.parse(out) as { lladdr?: string }[])[0];
  return e?.lladdr;
}

async function linkExists(lab: Lab, ns: string, ifname: string): Promise<boolean> {
  return (await lab.exec(ns, ['ip', 'link', 'show', 'dev', ifname])).exitCode === 0;
}

async function waitState(lab: Lab, d: Daemon, want: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => (await state(lab, d)) === want, { timeoutMs, what: `${d.node.name} ${want}; log:\n${d.lines.slice(-20).join('\n')}` });
}

async function stopDaemon(lab: Lab, d: Daemon): Promise<number | null> {
  lab.kill(d.child, 'SIGTERM');
  return lab.waitExit(d.child, 10_000);
}

test(
  'vmac: two nodes and an observer on a bridge — source MAC, ARP/NA with the vMAC, the parent still answers, no vMAC from a BACKUP, failover without GARP keeps the MAC',
  { timeout: 120_000 },
  async (t) => {
    await withLab({ prefix: 'carpdvmac', nodes: labNodes(['n1', 'n2', 'obs']) }, async (lab) => {
      const pass = writePassfile(lab.dir);
      const n1node = lab.node('n1');
      const n2node = lab.node('n2');
      const obs = lab.node('obs');
      await sh(lab, obs.ns, ['ip', '-6', 'addr', 'add', `${OBS6}/64`, 'dev', 'eth0', 'nodad']);
      const before = {
        igmp: await sysctl(lab, n2node.ns, 'net.ipv4.igmp_link_local_mcast_reports'),
        arpIgnore: await sysctl(lab, n2node.ns, 'net.ipv4.conf.eth0.arp_ignore'),
        arpFilter: await sysctl(lab, n2node.ns, 'net.ipv4.conf.eth0.arp_filter'),
      };

      const n1 = start(lab, 'n1', conf(0, pass));
      t.after(() => lab.kill(n1.child, 'SIGKILL'));
      await waitState(lab, n1, 'MASTER');

      // n2 starts while n1 is MASTER; everything n2 sends from here on is captured at its switch port.
      const fromN2 = await lab.capture(lab.switchNs!, n2node.peerIfname, ['-Q', 'in']);
      const n2 = start(lab, 'n2', conf(100, pass));
      t.after(() => lab.kill(n2.child, 'SIGKILL'));
      await waitState(lab, n2, 'BACKUP');

      await t.test('the macvlan: private mode, the vMAC, the sysctls of keepalived use_vmac', async () => {
        const link = (JSON.parse(await sh(lab, n2node.ns, ['ip', '-d', '-j', 'link', 'show', 'dev', 'carpv1'])) as Record<string, unknown>[])[0]!;
        assert.equal(link.address, VMAC);
        assert.equal(link.link, 'eth0');
        const info = link.linkinfo as { info_kind: string; info_data: { mode: string } };
        assert.equal(info.info_kind, 'macvlan');
        assert.equal(info.info_data.mode, 'private');
        for (const [k, v] of [
          ['net.ipv4.conf.carpv1.arp_ignore', '1'],
          ['net.ipv4.conf.carpv1.accept_local', '1'],
          ['net.ipv4.conf.carpv1.rp_filter', '0'],
          ['net.ipv4.conf.carpv1.promote_secondaries', '1'],
          ['net.ipv4.conf.eth0.arp_ignore', '1'],
          ['net.ipv4.conf.eth0.arp_filter', '1'],
          ['net.ipv6.conf.carpv1.accept_dad', '0'],
        ]) {
          assert.equal(await sysctl(lab, n2node.ns, k!), v, k);
        }
        // carpd's table drops IGMP and MLD reports on their way out of the macvlans.
        const table = await sh(lab, n2node.ns, ['nft', 'list', 'table', 'inet', 'carpd_vmac']);
        assert.match(table, /oifname "carpv\*" ip protocol igmp drop/);
        // No link-local address on the macvlan (addrgenmode none): nothing to DAD, RS or MLD from.
        assert.equal((await sh(lab, n2node.ns, ['ip', '-6', 'addr', 'show', 'dev', 'carpv1'])).trim(), '');
        // The BACKUP holds no VIP; the MASTER holds them on the macvlan, not on eth0.
        assert.doesNotMatch(await sh(lab, n2node.ns, ['ip', 'addr', 'show', 'dev', 'carpv1']), /198\.18\.1\.1/);
        assert.match(await sh(lab, n1node.ns, ['ip', 'addr', 'show', 'dev', 'carpv1']), /198\.18\.1\.1\/16/);
        assert.doesNotMatch(await sh(lab, n1node.ns, ['ip', 'addr', 'show', 'dev', 'eth0']), /198\.18\.1\.1/);
      });

      await t.test('freebsd carp.py test_source_mac: every proto-112 frame from the master has source MAC 00:00:5e:00:01:01', async () => {
        const cap = await lab.capture(obs.ns, 'eth0', ['ip', 'proto', '112']);
        await sleep(3_200);
        await cap.stop();
        const frames = readPcap(cap.file).frames.map((f) => parseEthernet(f.data));
        assert.ok(frames.length >= 2, `adverts seen: ${frames.length}`);
        for (const f of frames) {
          assert.equal(f.src, VMAC);
          assert.equal(f.ipv4?.src, n1node.address, 'the advert is sourced from the parent address');
          assert.equal(f.ipv4?.ttl, 255);
        }
      });

      await t.test('freebsd carp.sh nd6_ns_source_mac, IPv4 and IPv6: the VIP resolves to the vMAC, and only the MASTER answers', async () => {
        const cap = await lab.capture(obs.ns, 'eth0', ['arp']);
        const arping = await lab.exec(obs.ns, ['arping', '-c', '2', '-w', '3', '-I', 'eth0', VIP], { timeoutMs: 10_000 });
        await cap.stop();
        assert.equal(arping.exitCode, 0, arping.stdout + arping.stderr);
        const replies = readPcap(cap.file)
          .frames.map((f) => parseEthernet(f.data))
          .filter((f) => f.arp?.op === 2 && f.arp.spa === VIP);
        assert.ok(replies.length >= 1, 'an ARP reply for the VIP');
        // Neither parent answers for the VIP with its own MAC (arp_ignore/arp_filter on eth0).
        for (const r of replies) assert.equal(r.arp!.sha, VMAC);

        await sh(lab, obs.ns, ['ping', '-c', '2', '-W', '2', VIP]);
        assert.equal(await neighMac(lab, obs.ns, VIP), VMAC);
        await sh(lab, obs.ns, ['ping', '-6', '-c', '2', '-W', '2', VIP6]);
        assert.equal(await neighMac(lab, obs.ns, VIP6), VMAC);
        // carp.sh: the BACKUP cannot source from the VIP (it does not hold it).
        const fromBackup = await lab.exec(n2node.ns, ['ping', '-c', '1', '-W', '1', '-I', VIP, obs.address], { timeoutMs: 5_000 });
        assert.notEqual(fromBackup.exitCode, 0);
      });

      await t.test('the parent address still answers ARP and ping with vmac on (keepalived #364, #2282, #2512)', async () => {
        for (const n of [n1node, n2node]) {
          await sh(lab, obs.ns, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
          const r = await lab.exec(obs.ns, ['arping', '-c', '2', '-w', '3', '-I', 'eth0', n.address], { timeoutMs: 10_000 });
          assert.equal(r.exitCode, 0, `${n.name}: ${r.stdout}${r.stderr}`);
          assert.match(r.stdout.toLowerCase(), new RegExp(n.mac.toLowerCase()), 'answered with the parent MAC');
          assert.doesNotMatch(r.stdout.toLowerCase(), new RegExp(VMAC), 'not with the vMAC');
          await sh(lab, obs.ns, ['ping', '-c', '2', '-W', '2', n.address]);
          assert.equal(await neighMac(lab, obs.ns, n.address), n.mac.toLowerCase());
        }
      });

      await t.test('no frame with the vMAC as source leaves a BACKUP (IGMP, MLD, DAD, RS, adverts)', async () => {
        // n2 has been up as BACKUP for the subtests above (well over 5 s); its start is in the capture.
        await fromN2.stop();
        const frames = readPcap(fromN2.file).frames.map((f) => parseEthernet(f.data));
        assert.ok(frames.length > 0, 'the capture saw n2 at all');
        const bad = frames.filter((f) => f.src === VMAC);
        assert.deepEqual(
          bad.map((f) => `${f.src} > ${f.dst} type ${f.ethertype.toString(16)} ${f.ipv4 ? `proto ${f.ipv4.proto}` : ''}`),
          [],
        );
      });

      await t.test('an old MASTER that yields sends no report from the vMAC when its IPv6 VIP goes (MLD, keepalived #175/#2452)', async () => {
        // Hand vhid 1 to n2 (n1 forced BACKUP), then back (n1 forced MASTER): n2 then yields and
        // deletes its VIPs; the solicited-node group of the IPv6 VIP is left with an MLD report.
        await ctl(lab, n1, 'state', '1@eth0', 'BACKUP');
        await waitState(lab, n2, 'MASTER', 10_000);
        await waitFor(async () => (await lab.exec(n2node.ns, ['ip', '-6', 'addr', 'show', 'dev', 'carpv1'])).stdout.includes(VIP6), {
          timeoutMs: 5_000,
          what: 'VIP6 on n2',
        });
        const cap = await lab.capture(lab.switchNs!, n2node.peerIfname, ['-Q', 'in']);
        await ctl(lab, n1, 'state', '1@eth0', 'MASTER');
        await waitState(lab, n2, 'BACKUP', 10_000);
        await waitFor(async () => !(await lab.exec(n2node.ns, ['ip', '-6', 'addr', 'show', 'dev', 'carpv1'])).stdout.includes(VIP6), {
          timeoutMs: 5_000,
          what: 'VIP6 gone from n2',
        });
        await sleep(2_500); // MLD repeats its change report within the unsolicited report interval (1 s)
        await cap.stop();
        const frames = readPcap(cap.file).frames.map((f) => parseEthernet(f.data));
        const reports = frames.filter((f) => f.src === VMAC && (f.ipv4?.proto === 2 || f.ipv6?.next === 0));
        assert.deepEqual(
          reports.map((f) => `${f.src} > ${f.dst}`),
          [],
        );
        assert.equal(await state(lab, n1), 'MASTER');
      });

      await t.test('failover keeps the neighbour MAC: kill -9 the master, no GARP reaches the observer, the VIP still answers', async () => {
        // The new master's gratuitous ARPs (spa = tpa = VIP) are dropped at egress of its macvlan and
        // its parent, where packet sockets (arping, AF_PACKET) pass too; the counter shows they were sent.
        const rules = ['carpv1', 'eth0']
          .map(
            (dev) =>
              `  chain e_${dev} {\n    type filter hook egress device "${dev}" priority 0;\n    arp saddr ip ${VIP} arp daddr ip ${VIP} counter drop\n  }\n`,
          )
          .join('');
        const nft = await lab.exec(n2node.ns, ['nft', '-f', '-'], { input: `table netdev nogarp {\n${rules}}\n` });
        assert.equal(nft.exitCode, 0, nft.stderr);
        assert.equal(
          await neighMac(lab, obs.ns, VIP).then((m) => m ?? sh(lab, obs.ns, ['ping', '-c', '1', '-W', '2', VIP]).then(() => neighMac(lab, obs.ns, VIP))),
          VMAC,
        );
        const arpSeen = await lab.capture(obs.ns, 'eth0', ['arp']);
        // A dead host, not just a dead daemon: its VIP must not keep answering from its macvlan.
        lab.kill(n1.child, 'SIGKILL');
        await lab.waitExit(n1.child, 5_000);
        await lab.linkDown(n1node);
        await waitState(lab, n2, 'MASTER', 10_000);
        await waitFor(async () => (await lab.exec(n2node.ns, ['ip', 'addr', 'show', 'dev', 'carpv1'])).stdout.includes(VIP), {
          timeoutMs: 5_000,
          what: 'VIP on n2',
        });
        const ping = await lab.exec(obs.ns, ['ping', '-c', '3', '-W', '2', VIP], { timeoutMs: 15_000 });
        assert.equal(ping.exitCode, 0, ping.stdout);
        assert.equal(await neighMac(lab, obs.ns, VIP), VMAC, 'the same MAC after the failover');
        await sleep(1_500); // the machine's second GARP, after the second advert
        await arpSeen.stop();
        const garps = readPcap(arpSeen.file)
          .frames.map((f) => parseEthernet(f.data))
          .filter((f) => f.arp && f.arp.spa === VIP && f.arp.tpa === VIP);
        assert.deepEqual(garps, [], 'no gratuitous ARP reached the observer');
        const counters = await sh(lab, n2node.ns, ['nft', 'list', 'table', 'netdev', 'nogarp']);
        assert.match(counters, /counter packets [1-9]/, `the new master did send a GARP, and the filter took it:\n${counters}`);
      });

      await t.test('stop removes the macvlan and puts the sysctls back', async () => {
        assert.equal(await stopDaemon(lab, n2), 0);
        assert.equal(await linkExists(lab, n2node.ns, 'carpv1'), false);
        assert.equal(await sysctl(lab, n2node.ns, 'net.ipv4.igmp_link_local_mcast_reports'), before.igmp);
        assert.equal(await sysctl(lab, n2node.ns, 'net.ipv4.conf.eth0.arp_ignore'), before.arpIgnore);
        assert.equal(await sysctl(lab, n2node.ns, 'net.ipv4.conf.eth0.arp_filter'), before.arpFilter);
        assert.equal(existsSync(join(lab.dir, 'n2-state', 'vmac-sysctl.json')), false);
        assert.notEqual((await lab.exec(n2node.ns, ['nft', 'list', 'table', 'inet', 'carpd_vmac'])).exitCode, 0, 'the table is gone');
      });
    });
  },
);

test(
  'vmac: kill -9 leaves the macvlan; the restart reuses it and the stop puts back the values from before the first start',
  { timeout: 60_000 },
  async (t) => {
    await withLab({ prefix: 'carpdvmk', nodes: labNodes(['n1', 'obs']) }, async (lab) => {
      const pass = writePassfile(lab.dir);
      const n1node = lab.node('n1');
      const obs = lab.node('obs');
      // Not the kernel default, so that "put back" is told apart from "reset".
      await sh(lab, n1node.ns, ['sysctl', '-qw', 'net.ipv4.conf.eth0.arp_ignore=2']);
      await sh(lab, obs.ns, ['ip', '-6', 'addr', 'add', `${OBS6}/64`, 'dev', 'eth0', 'nodad']);
      let d = start(lab, 'n1', conf(0, pass));
      t.after(() => lab.kill(d.child, 'SIGKILL'));
      await waitState(lab, d, 'MASTER');
      assert.equal(await sysctl(lab, n1node.ns, 'net.ipv4.conf.eth0.arp_ignore'), '1');
      lab.kill(d.child, 'SIGKILL');
      await lab.waitExit(d.child, 5_000);
      assert.equal(await linkExists(lab, n1node.ns, 'carpv1'), true, 'kill -9 leaves the macvlan');
      assert.equal(existsSync(join(lab.dir, 'n1-state', 'vmac-sysctl.json')), true);

      d = start(lab, 'n1', conf(0, pass));
      await waitState(lab, d, 'MASTER');
      assert.ok(
        d.lines.some((l) => l.includes('reusing carpv1')),
        d.lines.join('\n'),
      );
      await sh(lab, obs.ns, ['ping', '-c', '2', '-W', '2', VIP]);
      assert.equal(await neighMac(lab, obs.ns, VIP), VMAC);

      // SIGHUP adding a vmac vhid makes its macvlan before the engine opens a socket on it; one removing it deletes it.
      const file = join(lab.dir, 'n1.conf');
      const vhid2 = ['[vhid.two]', 'vhid = 2', 'interface = eth0', 'address = 198.18.1.2/16', `passfile = ${pass}`, 'vmac = yes', ''].join('\n');
      writeFileSync(file, `${conf(0, pass)}\n${vhid2}`, { mode: 0o600 });
      lab.kill(d.child, 'SIGHUP');
      await waitFor(async () => (await state(lab, d, '2@eth0')) === 'MASTER', {
        timeoutMs: 10_000,
        what: `2@eth0 MASTER; log:\n${d.lines.slice(-10).join('\n')}`,
      });
      await sh(lab, obs.ns, ['ping', '-c', '1', '-W', '2', '198.18.1.2']);
      assert.equal(await neighMac(lab, obs.ns, '198.18.1.2'), '00:00:5e:00:01:02');
      writeFileSync(file, conf(0, pass), { mode: 0o600 });
      lab.kill(d.child, 'SIGHUP');
      await waitFor(async () => !(await linkExists(lab, n1node.ns, 'carpv2')), { timeoutMs: 5_000, what: 'carpv2 deleted after the reload' });
      assert.equal(await linkExists(lab, n1node.ns, 'carpv1'), true);
      assert.equal(await state(lab, d), 'MASTER');

      assert.equal(await stopDaemon(lab, d), 0);
      assert.equal(await linkExists(lab, n1node.ns, 'carpv1'), false);
      assert.equal(
        await sysctl(lab, n1node.ns, 'net.ipv4.conf.eth0.arp_ignore'),
        '2',
        'the value from before the first start, not the one the killed run left',
      );
      assert.equal(await sysctl(lab, n1node.ns, 'net.ipv4.igmp_link_local_mcast_reports'), '1');
    });
  },
);

test('vmac: a macvlan that cannot be made fails the start, and the ones already made are removed with their sysctls', { timeout: 30_000 }, async () => {
  await withLab({ prefix: 'carpdvmf', nodes: labNodes(['n1']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const n1node = lab.node('n1');
    // The kernel refuses a macvlan on loopback; vhid 1's on eth0 is made first.
    const lo = ['[vhid.lo]', 'vhid = 2', 'interface = lo', 'address = 127.0.0.200/8', `passfile = ${pass}`, 'vmac = yes', ''].join('\n');
    const d = start(lab, 'n1', `${conf(0, pass)}\n${lo}`);
    assert.equal(await lab.waitExit(d.child, 15_000), 1);
    assert.ok(
      d.lines.some((l) => l.includes('cannot start: vmac: ip link add link lo name carpv2')),
      d.lines.join('\n'),
    );
    assert.equal(await linkExists(lab, n1node.ns, 'carpv1'), false);
    assert.equal(await sysctl(lab, n1node.ns, 'net.ipv4.conf.eth0.arp_ignore'), '0');
    assert.notEqual((await lab.exec(n1node.ns, ['nft', 'list', 'table', 'inet', 'carpd_vmac'])).exitCode, 0);
    assert.equal(existsSync(join(lab.dir, 'n1-state', 'vmac-sysctl.json')), false);
  });
});
