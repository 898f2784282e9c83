/**
 * Virtual MAC (`vmac = yes`): the config key and its checks, the engine's per-vhid wire interface
 * on the fake wire, and the macvlan adapter against a recording `ip` and a /proc/sys of its own.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { LinuxVmac, parseLink, VMAC_STATE_FILE } from '../../src/adapters/vmac.js';
import { validCron } from '../../src/adapters/cron.js';
import { parseCarpdIni } from '../../src/config/carpd-ini.js';
import { toCarpdConf } from '../../src/config/convert.js';
import type { CarpModel } from '../../src/config/model.js';
import { validateModel } from '../../src/config/validate.js';
import { vmacAddress, vmacName, wireInterface } from '../../src/config/vmac.js';
import type { RunResult } from '../../src/ports/exec.js';
import { Sim, vhidCfg } from '../helpers/fake-wire.js';

/** Lets the per-vhid VIP queues (promises) run; no real time passes. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

const readPassfile = () => ({ ok: true as const, password: 'p' });

function ini(body: string) {
  return parseCarpdIni(`[vhid.a]\nvhid = 7\ninterface = eth0\naddress = 192.0.2.7/24\npass = x\n${body}`, 'v.conf', { readPassfile, validCron });
}

test('vmac names: carpv<VHID> and 00:00:5e:00:01:VHID (FreeBSD carp_alloc), the wire interface follows vmac', () => {
  assert.equal(vmacName(1), 'carpv1');
  assert.equal(vmacName(255), 'carpv255');
  assert.ok(vmacName(255).length <= 15);
  assert.equal(vmacAddress(1), '00:00:5e:00:01:01');
  assert.equal(vmacAddress(200), '00:00:5e:00:01:c8');
  assert.equal(wireInterface({ vhid: 3, interface: 'eth0', vmac: true }), 'carpv3');
  assert.equal(wireInterface({ vhid: 3, interface: 'eth0' }), 'eth0');
  assert.equal(wireInterface({ vhid: 3, interface: 'eth0', vmac: false }), 'eth0');
});

test('carpd.conf vmac = yes|no; a bad value is an error on its line; convert writes it back', () => {
  const yes = ini('vmac = yes\n');
  assert.deepEqual(yes.diagnostics, []);
  assert.equal(yes.model.vhids[0]!.vmac, true);
  assert.equal(ini('vmac = no\n').model.vhids[0]!.vmac, false);
  assert.equal(ini('').model.vhids[0]!.vmac, undefined);
  const bad = ini('vmac = maybe\n');
  assert.equal(bad.diagnostics.length, 1);
  assert.equal(bad.diagnostics[0]!.line, 6);
  assert.match(bad.diagnostics[0]!.message, /vmac must be yes or no/);
  const text = toCarpdConf(yes.model).text;
  assert.match(text, /^vmac = yes$/m);
  assert.doesNotMatch(toCarpdConf(ini('vmac = no\n').model).text, /vmac/);
  // Round trip.
  const again = parseCarpdIni(text, 'c.conf', { readPassfile, validCron });
  assert.equal(again.model.vhids[0]!.vmac, true);
});

test('carpd check: one vhid number with vmac on two interfaces, and vmac with a unicast peer, are refused', () => {
  const model = (vhids: CarpModel['vhids']): CarpModel => ({ global: { allow: true, preempt: false, log: 0 }, vhids });
  const two = validateModel(
    model([
      vhidCfg(5, 0, { vmac: true, addresses: ['192.0.2.5/24'] }),
      vhidCfg(5, 0, { interface: 'eth1', key: '5@eth1', vmac: true, addresses: ['198.51.100.5/24'] }),
    ]),
  ).filter((d) => d.message.startsWith('vmac'));
  assert.equal(two.length, 1);
  assert.match(two[0]!.message, /carpv5/);
  // Without vmac on one of them, fine.
  assert.deepEqual(
    validateModel(
      model([vhidCfg(5, 0, { vmac: true, addresses: ['192.0.2.5/24'] }), vhidCfg(5, 0, { interface: 'eth1', key: '5@eth1', addresses: ['198.51.100.5/24'] })]),
    ).filter((d) => d.message.startsWith('vmac')),
    [],
  );
  const peer = validateModel(model([vhidCfg(6, 0, { vmac: true, peer: '192.0.2.9' })])).filter((d) => d.message.startsWith('vmac'));
  assert.equal(peer.length, 1);
  assert.match(peer[0]!.message, /unicast peer/);
  assert.equal(peer[0]!.severity, 'error');
});

test('engine: a vmac vhid sends, holds its VIPs and announces on carpv<VHID> from the parent address; status still says eth0', async () => {
  const sim = new Sim();
  const a = sim.add('a', 1, [vhidCfg(1, 0, { vmac: true }), vhidCfg(2, 0)]);
  const b = sim.add('b', 2, [vhidCfg(1, 100, { vmac: true }), vhidCfg(2, 100)]);
  a.engine.start();
  b.engine.start();
  sim.time.advance(5_000);
  await settle();
  sim.time.advance(1_000);
  await settle();
  assert.deepEqual(sim.masters('1@eth0'), ['a']);
  assert.deepEqual(sim.masters('2@eth0'), ['a']);
  // Sockets: the vmac vhid on its macvlan, the other on eth0; the source is eth0's address.
  const ports = sim.wire.ports.filter((p) => p.node === 'a').map((p) => `${p.ifname} ${p.srcip}`);
  assert.deepEqual(ports.sort(), ['carpv1 198.18.0.1', 'eth0 198.18.0.1']);
  assert.ok(a.net.actions.includes('add 198.18.0.101/24 carpv1'), a.net.actions.join('\n'));
  assert.ok(a.net.actions.includes('garp 198.18.0.101/24 carpv1'));
  assert.ok(a.net.actions.includes('add 198.18.0.102/24 eth0'));
  assert.ok(!a.net.actions.some((x) => x.includes('198.18.0.101/24 eth0')));
  const st = a.engine.status().find((s) => s.key === '1@eth0')!;
  assert.equal(st.interface, 'eth0');
  assert.equal(st.state, 'MASTER');
  // The VIP reconcile looks at the macvlan: a VIP deleted there by hand comes back.
  a.net.kernelDel('carpv1', '198.18.0.101/24');
  await settle();
  sim.time.advance(6_000);
  await settle();
  assert.ok(a.net.kernel.get('carpv1')!.includes('198.18.0.101/24'), JSON.stringify([...a.net.kernel]));
  // The backup hears the master on carpv1 and stays BACKUP; kill -9 the master and it takes over there.
  sim.crash('a');
  sim.time.advance(5_000);
  await settle();
  assert.equal(sim.state('b', '1@eth0'), 'MASTER');
  assert.ok(b.net.actions.includes('add 198.18.0.101/24 carpv1'));
});

test('engine: a reload that turns vmac off moves the vhid back to eth0 and closes the macvlan socket', async () => {
  const sim = new Sim();
  const a = sim.add('a', 1, [vhidCfg(1, 0, { vmac: true })]);
  a.engine.start();
  sim.time.advance(5_000);
  const before = sim.wire.ports.find((p) => p.ifname === 'carpv1')!;
  a.engine.reconfigure({ global: { allow: true, preempt: false, log: 7 }, vhids: [vhidCfg(1, 0)] });
  await settle();
  sim.time.advance(5_000);
  await settle();
  assert.equal(before.closed, true);
  assert.ok(sim.wire.ports.some((p) => p.ifname === 'eth0' && !p.closed));
  assert.equal(sim.state('a', '1@eth0'), 'MASTER');
  assert.ok(a.net.actions.includes('add 198.18.0.101/24 eth0'), a.net.actions.join('\n'));
});

// --- the adapter ---

interface FakeIp {
  calls: string[];
  /** `nft` fails (not installed). */
  noNft?: boolean;
  /** What `nft -f -` was given. */
  nftInput: string[];
  /** What `ip -d -j link show dev carpvN` prints; undefined: no such device. */
  existing: Map<string, object>;
  run: (argv: readonly string[], opts?: { input?: string }) => Promise<RunResult>;
}

function procSys(): string {
  const root = mkdtempSync(join(tmpdir(), 'carpd-vmac-'));
  const put = (rel: string, v: string) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), `${v}\n`);
  };
  put('net/ipv4/igmp_link_local_mcast_reports', '1');
  for (const i of ['all', 'default', 'eth0', 'lo']) {
    for (const k of ['arp_ignore', 'arp_filter', 'arp_announce', 'rp_filter', 'accept_local', 'promote_secondaries']) put(`net/ipv4/conf/${i}/${k}`, '0');
  }
  return root;
}

function get(root: string, rel: string): string {
  return readFileSync(join(root, rel), 'utf8').trim();
}

function fakeIp(root: string): FakeIp {
  const ok = (stdout = ''): RunResult => ({ exitCode: 0, stdout, stderr: '', timedOut: false, canceled: false });
  const fail = (stderr: string): RunResult => ({ exitCode: 1, stdout: '', stderr, timedOut: false, canceled: false });
  const f: FakeIp = {
    calls: [],
    nftInput: [],
    existing: new Map(),
    run: async (argv, opts) => {
      f.calls.push(argv.join(' '));
      if (argv[0] === 'nft') {
        if (f.noNft) return { exitCode: null, stdout: '', stderr: '', timedOut: false, canceled: false, spawnError: 'ENOENT' };
        if (opts?.input !== undefined) f.nftInput.push(opts.input);
        return ok();
      }
      const a = argv.slice(1);
      if (a[0] === '-d' && a[3] === 'show') {
        const e = f.existing.get(a[5]!);
        return e ? ok(JSON.stringify([e])) : fail(`Device "${a[5]}" does not exist.`);
      }
      if (a[0] === 'link' && a[1] === 'add') {
        const name = a[a.indexOf('name') + 1]!;
        // The kernel makes the new device's sysctl directories.
        for (const fam of ['ipv4', 'ipv6']) mkdirSync(join(root, `net/${fam}/conf/${name}`), { recursive: true });
        for (const k of ['arp_ignore', 'accept_local', 'rp_filter', 'promote_secondaries']) writeFileSync(join(root, `net/ipv4/conf/${name}/${k}`), '0\n');
        for (const k of ['accept_dad', 'dad_transmits', 'router_solicitations', 'accept_ra']) writeFileSync(join(root, `net/ipv6/conf/${name}/${k}`), '1\n');
        f.existing.set(name, { link: a[3], address: a[a.indexOf('address') + 1], linkinfo: { info_kind: 'macvlan', info_data: { mode: 'private' } } });
        return ok();
      }
      if (a[0] === 'link' && a[1] === 'del') {
        const name = a[3]!;
        if (!f.existing.delete(name)) return fail(`Cannot find device "${name}"`);
        rmSync(join(root, `net/ipv4/conf/${name}`), { recursive: true, force: true });
        rmSync(join(root, `net/ipv6/conf/${name}`), { recursive: true, force: true });
        return ok();
      }
      return ok();
    },
  };
  return f;
}

const logger = { log: () => undefined };
const vmacModel = (vhids = [vhidCfg(1, 0, { vmac: true })]): CarpModel => ({ global: { allow: true, preempt: false, log: 0 }, vhids });

test('adapter: apply makes a private macvlan with the vMAC, sets keepalived use_vmac sysctls and more, remove puts everything back', async () => {
  const root = procSys();
  const state = join(root, 'state');
  const ip = fakeIp(root);
  const v = new LinuxVmac({ run: ip.run, logger, procSys: root, stateDir: state });
  writeFileSync(join(root, 'net/ipv4/conf/eth0/arp_ignore'), '2\n');
  await v.apply(vmacModel([vhidCfg(1, 0, { vmac: true }), vhidCfg(2, 0)]));
  assert.deepEqual(ip.calls, [
    'nft -f -',
    'ip -d -j link show dev carpv1',
    'ip link add link eth0 name carpv1 address 00:00:5e:00:01:01 type macvlan mode private',
    'ip link set dev carpv1 addrgenmode none',
    'ip link set dev carpv1 up',
  ]);
  assert.deepEqual(v.names(), ['carpv1']);
  for (const [rel, want] of [
    ['net/ipv4/conf/carpv1/arp_ignore', '1'],
    ['net/ipv4/conf/carpv1/accept_local', '1'],
    ['net/ipv4/conf/carpv1/rp_filter', '0'],
    ['net/ipv4/conf/carpv1/promote_secondaries', '1'],
    ['net/ipv6/conf/carpv1/accept_dad', '0'],
    ['net/ipv6/conf/carpv1/dad_transmits', '0'],
    ['net/ipv6/conf/carpv1/router_solicitations', '0'],
    ['net/ipv6/conf/carpv1/accept_ra', '0'],
    ['net/ipv4/conf/eth0/arp_ignore', '1'],
    ['net/ipv4/conf/eth0/arp_filter', '1'],
    ['net/ipv4/conf/eth0/arp_announce', '2'],
  ] as const) {
    assert.equal(get(root, rel), want, rel);
  }
  // The values before are on disk for a restart after kill -9.
  const saved = JSON.parse(readFileSync(join(state, VMAC_STATE_FILE), 'utf8')) as Record<string, string>;
  assert.equal(saved['net/ipv4/conf/eth0/arp_ignore'], '2');
  // IGMP and MLD from the macvlans are dropped by carpd's table; the netns-wide knob stays.
  assert.match(ip.nftInput[0]!, /oifname "carpv\*" ip protocol igmp drop/);
  assert.match(ip.nftInput[0]!, /mld-listener-report, mld-listener-done, mld2-listener-report/);
  assert.match(ip.nftInput[0]!, /^table inet carpd_vmac\ndelete table inet carpd_vmac\n/);
  assert.equal(get(root, 'net/ipv4/igmp_link_local_mcast_reports'), '1');
  // Applying the same model again changes nothing.
  ip.calls.length = 0;
  await v.apply(vmacModel([vhidCfg(1, 0, { vmac: true }), vhidCfg(2, 0)]));
  assert.deepEqual(ip.calls, []);

  await v.remove();
  assert.deepEqual(ip.calls, ['ip link del dev carpv1', 'nft delete table inet carpd_vmac']);
  assert.equal(get(root, 'net/ipv4/conf/eth0/arp_ignore'), '2');
  assert.equal(get(root, 'net/ipv4/conf/eth0/arp_filter'), '0');
  assert.equal(get(root, 'net/ipv4/conf/eth0/arp_announce'), '0');
  assert.equal(get(root, 'net/ipv4/igmp_link_local_mcast_reports'), '1');
  assert.equal(existsSync(join(state, VMAC_STATE_FILE)), false);
  rmSync(root, { recursive: true, force: true });
});

test('adapter: no vmac vhid, nothing done; a model without vmac after a kill -9 puts the saved values back', async () => {
  const root = procSys();
  const state = join(root, 'state');
  const ip = fakeIp(root);
  await new LinuxVmac({ run: ip.run, logger, procSys: root, stateDir: state }).apply(vmacModel([vhidCfg(1, 0)]));
  assert.deepEqual(ip.calls, []);
  assert.equal(get(root, 'net/ipv4/igmp_link_local_mcast_reports'), '1');
  mkdirSync(state, { recursive: true });
  writeFileSync(join(state, VMAC_STATE_FILE), JSON.stringify({ 'net/ipv4/conf/eth0/arp_filter': '0' }));
  writeFileSync(join(root, 'net/ipv4/conf/eth0/arp_filter'), '1\n');
  await new LinuxVmac({ run: ip.run, logger, procSys: root, stateDir: state }).apply(vmacModel([vhidCfg(1, 0)]));
  assert.equal(get(root, 'net/ipv4/conf/eth0/arp_filter'), '0');
  assert.equal(existsSync(join(state, VMAC_STATE_FILE)), false);
  rmSync(root, { recursive: true, force: true });
});

test('adapter after kill -9: a matching leftover macvlan is reused, a wrong one replaced, and the first values come back at the end', async () => {
  const root = procSys();
  const state = join(root, 'state');
  // What the killed run left: eth0 set to 1, its file saying 0 was there before.
  mkdirSync(state, { recursive: true });
  writeFileSync(join(state, VMAC_STATE_FILE), JSON.stringify({ 'net/ipv4/conf/eth0/arp_ignore': '0' }));
  writeFileSync(join(root, 'net/ipv4/conf/eth0/arp_ignore'), '1\n');
  const ip = fakeIp(root);
  await ip.run(['ip', 'link', 'add', 'link', 'eth0', 'name', 'carpv1', 'address', '00:00:5e:00:01:01', 'type', 'macvlan', 'mode', 'private']);
  await ip.run(['ip', 'link', 'add', 'link', 'eth1', 'name', 'carpv2', 'address', '00:00:5e:00:01:02', 'type', 'macvlan', 'mode', 'private']);
  ip.calls.length = 0;
  const v = new LinuxVmac({ run: ip.run, logger, procSys: root, stateDir: state });
  await v.apply(vmacModel([vhidCfg(1, 0, { vmac: true }), vhidCfg(2, 0, { vmac: true })]));
  assert.deepEqual(ip.calls, [
    'nft -f -',
    'ip -d -j link show dev carpv1',
    'ip link set dev carpv1 up',
    'ip -d -j link show dev carpv2',
    'ip link del dev carpv2',
    'ip link add link eth0 name carpv2 address 00:00:5e:00:01:02 type macvlan mode private',
    'ip link set dev carpv2 addrgenmode none',
    'ip link set dev carpv2 up',
  ]);
  await v.remove();
  assert.equal(get(root, 'net/ipv4/conf/eth0/arp_ignore'), '0', 'the value from before the killed run');
  rmSync(root, { recursive: true, force: true });
});

test('adapter: conf.all.rp_filter moves to the interfaces and to default, all goes to 0; prune drops a vhid that went', async () => {
  const root = procSys();
  writeFileSync(join(root, 'net/ipv4/conf/all/rp_filter'), '1\n');
  writeFileSync(join(root, 'net/ipv4/conf/lo/rp_filter'), '2\n');
  const ip = fakeIp(root);
  const v = new LinuxVmac({ run: ip.run, logger, procSys: root });
  await v.apply(vmacModel([vhidCfg(1, 0, { vmac: true }), vhidCfg(2, 0, { vmac: true, interface: 'eth1', key: '2@eth1' })]));
  assert.equal(get(root, 'net/ipv4/conf/all/rp_filter'), '0');
  assert.equal(get(root, 'net/ipv4/conf/eth0/rp_filter'), '1');
  assert.equal(get(root, 'net/ipv4/conf/default/rp_filter'), '1');
  assert.equal(get(root, 'net/ipv4/conf/lo/rp_filter'), '2', 'a stricter value stays');
  assert.equal(get(root, 'net/ipv4/conf/carpv1/rp_filter'), '0');
  // vhid 1 goes on reload: its macvlan goes; eth0 carries none now and gets its values back.
  ip.calls.length = 0;
  await v.prune(vmacModel([vhidCfg(2, 0, { vmac: true, interface: 'eth1', key: '2@eth1' })]));
  assert.deepEqual(ip.calls, ['ip link del dev carpv1']);
  assert.equal(get(root, 'net/ipv4/conf/eth0/arp_ignore'), '0');
  assert.deepEqual(v.names(), ['carpv2']);
  await v.remove();
  assert.equal(get(root, 'net/ipv4/conf/all/rp_filter'), '1');
  assert.equal(get(root, 'net/ipv4/conf/eth0/rp_filter'), '0');
  assert.equal(get(root, 'net/ipv4/conf/default/rp_filter'), '0');
  rmSync(root, { recursive: true, force: true });
});

test('adapter: parseLink reads ip -d -j link show', () => {
  const facts = parseLink(
    JSON.stringify([{ ifname: 'carpv1', link: 'eth0', address: '00:00:5e:00:01:01', linkinfo: { info_kind: 'macvlan', info_data: { mode: 'private' } } }]),
  );
  assert.deepEqual(facts, { kind: 'macvlan', mode: 'private', mac: '00:00:5e:00:01:01', parent: 'eth0' });
  assert.equal(parseLink('not json'), undefined);
  assert.equal(parseLink('[]'), undefined);
});

test('adapter without nft: IGMP reports for 224.0.0.X go off netns-wide instead, said once, and come back at the end', async () => {
  const root = procSys();
  const ip = fakeIp(root);
  ip.noNft = true;
  const lines: string[] = [];
  const v = new LinuxVmac({ run: ip.run, logger: { log: (_l, m) => lines.push(m) }, procSys: root });
  await v.apply(vmacModel());
  assert.equal(get(root, 'net/ipv4/igmp_link_local_mcast_reports'), '0');
  assert.equal(lines.filter((l) => l.includes('cannot load the nftables table')).length, 1);
  await v.remove();
  assert.equal(get(root, 'net/ipv4/igmp_link_local_mcast_reports'), '1');
  assert.ok(!ip.calls.includes('nft delete table inet carpd_vmac'));
  rmSync(root, { recursive: true, force: true });
});
