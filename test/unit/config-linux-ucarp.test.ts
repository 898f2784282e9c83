import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { detectFormat } from '../../src/config/load.js';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import type { CarpModel } from '../../src/config/model.js';
import { assertOneError, brief, configFiles, withoutFieldSources } from '../helpers/config-files.js';

const { tempDir, fixtures } = configFiles('carpd-config-linux-', { makeParents: true });

// Debian /etc/network/interfaces

test('Debian interfaces with ucarp stanzas, and a sourced file, become the expected model', (t) => {
  const dir = fixtures(t, 'debian');
  const file = join(dir, 'interfaces');
  const eth1 = join(dir, 'interfaces.d', 'eth1');
  const { model, diagnostics } = loadConfigFiles([file]);
  assert.deepEqual(diagnostics, []);
  const expected: CarpModel = {
    // ucarp-master yes is ucarp's -P.
    global: { allow: true, preempt: true, log: 2 },
    vhids: [
      {
        // From interfaces.d/eth1 (source interfaces.d/* comes first); the netmask from eth1:ucarp.
        key: '4@eth1',
        vhid: 4,
        interface: 'eth1',
        addresses: ['192.168.10.1/24'],
        advbase: 1,
        advskew: 20,
        password: 's3cr3t',
        source: 'eth1:2',
        groups: ['carp'],
        srcip: '192.168.10.2',
      },
      {
        key: '3@eth0',
        vhid: 3,
        interface: 'eth0',
        addresses: ['10.0.0.1/24'],
        advbase: 1,
        advskew: 10,
        password: 'secret',
        source: 'interfaces:12',
        groups: ['carp'],
        srcip: '10.0.0.2',
        upscript: '/etc/ucarp/vip-up.sh',
        downscript: '/etc/ucarp/vip-down.sh',
        xparam: 'eth0-vip',
      },
    ],
  };
  assert.deepEqual(withoutFieldSources(model), expected);
  const fs = model.vhids[1]!.fieldSources!;
  assert.deepEqual(
    [fs.vhid, fs.password, fs.advskew, fs['addresses.0'], fs.xparam],
    [
      { file, line: 18 },
      { file, line: 20 },
      { file, line: 21 },
      { file, line: 30 },
      { file, line: 26 },
    ],
  );
  assert.deepEqual(model.vhids[0]!.fieldSources!.password, { file: eth1, line: 6 });
});

test('interfaces files are told by name, directory and content', () => {
  assert.equal(detectFormat('/etc/network/interfaces', ''), 'interfaces');
  assert.equal(detectFormat('/etc/network/interfaces.d/eth1', ''), 'interfaces');
  assert.equal(detectFormat('/tmp/x', 'auto eth0\niface eth0 inet static\n'), 'interfaces');
});

/** An interfaces file with `text`, and its diagnostics. */
function ifaces(t: { after(fn: () => void): void }, text: string, mode = 0o600) {
  const tmp = tempDir(t);
  const file = tmp.write('interfaces', text, mode);
  const r = loadConfigFiles([file]);
  return { tmp, file, diags: r.diagnostics, model: r.model };
}

const STANZA = 'iface eth0 inet static\n  address 10.0.0.2/24\n';

const debianErrors: { name: string; text: string; code: string; line: number }[] = [
  {
    name: 'an unknown ucarp option',
    text: `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.1\n  ucarp-password x\n  ucarp-advskw 3\n`,
    code: 'CARPD_ERR_CONFIG_KEY',
    line: 6,
  },
  { name: 'a vid above 255', text: `${STANZA}  ucarp-vid 256\n  ucarp-vip 10.0.0.1\n  ucarp-password x\n`, code: 'CARPD_ERR_VHID', line: 3 },
  { name: 'advskew 255', text: `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.1\n  ucarp-password x\n  ucarp-advskew 255\n`, code: 'CARPD_ERR_ADVSKEW', line: 6 },
  { name: 'no ucarp-password', text: `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.1\n`, code: 'CARPD_ERR_CONFIG_MISSING', line: 1 },
  { name: 'no ucarp-vip', text: `\n${STANZA}  ucarp-vid 1\n  ucarp-password x\n`, code: 'CARPD_ERR_CONFIG_MISSING', line: 2 },
  {
    name: 'a repeated ucarp option',
    text: `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.1\n  ucarp-password x\n  ucarp-vid 2\n`,
    code: 'CARPD_ERR_CONFIG_DUPLICATE',
    line: 6,
  },
  {
    name: 'a password longer than 19 bytes',
    text: `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.1\n  ucarp-password twenty-bytes-secret!\n`,
    code: 'CARPD_ERR_PASSWORD_LENGTH',
    line: 5,
  },
  { name: 'a ucarp-vip that is not IPv4', text: `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.300\n  ucarp-password x\n`, code: 'CARPD_ERR_ADDRESS', line: 4 },
  { name: 'a missing sourced file', text: `source /nonexistent/carpd-interfaces\n${STANZA}`, code: 'CARPD_ERR_CONFIG_READ', line: 1 },
];

for (const c of debianErrors) {
  test(`interfaces: ${c.name} is an error at its line`, (t) => {
    const { file, diags } = ifaces(t, c.text);
    assertOneError(diags, c.code, file, c.line);
  });
}

test('interfaces: a ucarp-password in a world-readable file is an error on its line', (t) => {
  const { file, diags } = ifaces(t, `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.1\n  ucarp-password hunter2\n`, 0o644);
  const d = assertOneError(diags, 'CARPD_ERR_CONFIG_MODE', file, 5);
  assert.ok(!d.message.includes('hunter2'));
});

test("interfaces: a VIP outside the interface's subnet is a warning", (t) => {
  const { file, diags } = ifaces(t, `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.9.0.1\n  ucarp-password x\n`);
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_SUBNET', file, 4]]);
});

test('interfaces: sourced files follow relative paths, source-directory and loops are reported', (t) => {
  const tmp = tempDir(t);
  tmp.write('d/a', `${STANZA}  ucarp-vid 1\n  ucarp-vip 10.0.0.1\n  ucarp-password x\n`);
  tmp.write('d/not.this', 'iface bogus inet static\n  ucarp-vid 9\n');
  tmp.write('loop', 'source interfaces\n');
  const file = tmp.write('interfaces', 'source-directory d\nsource loop\n');
  const r = loadConfigFiles([file]);
  assert.deepEqual(
    r.model.vhids.map((v) => v.key),
    ['1@eth0'],
  );
  assertOneError(r.diagnostics, 'CARPD_ERR_CONFIG_SYNTAX', join(tmp.dir, 'loop'), 1);
});

test('interfaces: ucarp-master that differs between stanzas warns; the last one wins', (t) => {
  const { file, diags, model } = ifaces(
    t,
    [
      'iface eth0 inet static',
      ' address 10.0.0.2/24',
      ' ucarp-vid 1',
      ' ucarp-vip 10.0.0.1',
      ' ucarp-password x',
      ' ucarp-master yes',
      'iface eth1 inet static',
      ' address 10.1.0.2/24',
      ' ucarp-vid 2',
      ' ucarp-vip 10.1.0.1',
      ' ucarp-password x',
      ' ucarp-master off',
      '',
    ].join('\n'),
  );
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_PREEMPT', file, 12]]);
  assert.equal(model.global.preempt, false);
});

// CentOS/RHEL vip-NNN.conf

test('CentOS vip-001.conf (sysconfig/carp) and vip-002.conf (ucarp, with vip-common.conf) become the expected model', (t) => {
  const dir = fixtures(t, 'centos');
  const vip1 = join(dir, 'etc/sysconfig/carp/vip-001.conf');
  const vip2 = join(dir, 'etc/ucarp/vip-002.conf');
  const { model, diagnostics } = loadConfigFiles([vip1, vip2]);
  assert.deepEqual(diagnostics, []);
  const expected: CarpModel = {
    // OPTIONS --preempt.
    global: { allow: true, preempt: true, log: 2 },
    vhids: [
      {
        // The VIP from ../network-scripts/ifcfg-eth0:0 (IPADDR, NETMASK); -b 2 and --advskew=50 from OPTIONS.
        key: '1@eth0',
        vhid: 1,
        interface: 'eth0',
        addresses: ['192.168.1.15/24'],
        advbase: 2,
        advskew: 50,
        password: 'love',
        source: 'vip-001.conf:1',
        groups: ['carp'],
        srcip: '192.168.1.11',
      },
      {
        // BIND_INTERFACE and PASSWORD from vip-common.conf; the VIP from ifcfg-eth1:1 beside it (PREFIX).
        key: '2@eth1',
        vhid: 2,
        interface: 'eth1',
        addresses: ['10.20.0.100/16'],
        advbase: 1,
        advskew: 0,
        password: 'commonpw',
        source: 'vip-002.conf:1',
        groups: ['carp'],
        upscript: '/usr/libexec/ucarp/vip-up',
        downscript: '/usr/libexec/ucarp/vip-down',
        xparam: 'db',
      },
    ],
  };
  assert.deepEqual(withoutFieldSources(model), expected);
  assert.deepEqual(model.vhids[0]!.fieldSources!['addresses.0'], { file: join(dir, 'etc/sysconfig/carp/../network-scripts/ifcfg-eth0:0'), line: 4 });
  assert.deepEqual(model.vhids[0]!.fieldSources!.password, { file: vip1, line: 18 });
  assert.deepEqual(model.vhids[1]!.fieldSources!.password, { file: join(dir, 'etc/ucarp/vip-common.conf'), line: 2 });
});

test('vip-NNN.conf is told by name and content', () => {
  assert.equal(detectFormat('/etc/ucarp/vip-001.conf', ''), 'sysconfig');
  assert.equal(detectFormat('/tmp/x', 'BIND_INTERFACE=eth0\n'), 'sysconfig');
});

test('the network-scripts directory is found under a root, for ucarp under /etc/ucarp', (t) => {
  const tmp = tempDir(t);
  tmp.write('etc/sysconfig/network-scripts/ifcfg-eth0:9', 'IPADDR=10.9.0.1\nPREFIX=24\n');
  const vip = tmp.write('etc/ucarp/vip-009.conf', 'BIND_INTERFACE=eth0\nVIP_INTERFACE=eth0:9\nPASSWORD=x\n');
  const r = loadConfigFiles([vip], { root: tmp.dir });
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(r.model.vhids[0]!.addresses, ['10.9.0.1/24']);
});

/** A vip-NNN.conf named `name` with `text` beside an ifcfg-eth0:0 (10.0.0.1/24) and ifcfg-eth0. */
function vip(t: { after(fn: () => void): void }, text: string, name = 'vip-003.conf', mode = 0o600) {
  const tmp = tempDir(t);
  tmp.write('ifcfg-eth0:0', 'IPADDR=10.0.0.1\nNETMASK=255.255.255.0\n');
  tmp.write('ifcfg-eth0', 'IPADDR=10.0.0.2\nPREFIX=24\n');
  const file = tmp.write(name, text, mode);
  const r = loadConfigFiles([file]);
  return { tmp, file, diags: r.diagnostics, model: r.model };
}

const GOOD_VIP = 'BIND_INTERFACE=eth0\nVIP_INTERFACE=eth0:0\nPASSWORD=pw\n';

const vipErrors: { name: string; text: string; file?: string; code: string; line: number }[] = [
  { name: 'an unknown variable', text: `${GOOD_VIP}VIP_ADRESS=10.0.0.1\n`, code: 'CARPD_ERR_CONFIG_KEY', line: 4 },
  { name: 'a vhid above 255 in the name', text: GOOD_VIP, file: 'vip-300.conf', code: 'CARPD_ERR_VHID', line: 1 },
  { name: 'a name without a vhid', text: GOOD_VIP, file: 'vip-x.conf', code: 'CARPD_ERR_CONFIG_VALUE', line: 1 },
  { name: 'no BIND_INTERFACE', text: 'VIP_INTERFACE=eth0:0\nPASSWORD=pw\n', code: 'CARPD_ERR_CONFIG_MISSING', line: 1 },
  { name: 'no PASSWORD', text: 'BIND_INTERFACE=eth0\nVIP_INTERFACE=eth0:0\n', code: 'CARPD_ERR_CONFIG_MISSING', line: 1 },
  { name: 'a VIP_INTERFACE without its ifcfg', text: 'BIND_INTERFACE=eth0\n\nVIP_INTERFACE=eth0:7\nPASSWORD=pw\n', code: 'CARPD_ERR_CONFIG_READ', line: 3 },
  { name: 'an OPTIONS ucarp does not know', text: `${GOOD_VIP}OPTIONS="--preempt --bogus"\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 4 },
  { name: 'advskew 255 in OPTIONS', text: `${GOOD_VIP}OPTIONS="-k 255"\n`, code: 'CARPD_ERR_ADVSKEW', line: 4 },
  { name: 'a password in OPTIONS', text: `${GOOD_VIP}OPTIONS="-p other"\n`, code: 'CARPD_ERR_CONFIG_CONFLICT', line: 4 },
  {
    name: 'a password longer than 19 bytes',
    text: 'BIND_INTERFACE=eth0\nVIP_INTERFACE=eth0:0\nPASSWORD="twenty-bytes-secret!"\n',
    code: 'CARPD_ERR_PASSWORD_LENGTH',
    line: 3,
  },
];

for (const c of vipErrors) {
  test(`vip-NNN.conf: ${c.name} is an error at its line`, (t) => {
    const { file, diags } = vip(t, c.text, c.file);
    assertOneError(diags, c.code, file, c.line);
  });
}

test('vip-NNN.conf: -p in OPTIONS is refused without echoing the password', (t) => {
  const { diags } = vip(t, `${GOOD_VIP}OPTIONS="-p other-secret"\n`);
  assert.ok(diags.every((d) => !d.message.includes('other-secret')));
});

test('vip-NNN.conf: a PASSWORD in a world-readable file is an error on its line', (t) => {
  const { file, diags } = vip(t, GOOD_VIP, 'vip-003.conf', 0o644);
  assertOneError(diags, 'CARPD_ERR_CONFIG_MODE', file, 3);
});

test("vip-NNN.conf: VIP_ADDRESS (newer packages) is a /32; the bound interface's ifcfg tells the subnet", (t) => {
  const { file, diags, model } = vip(t, 'BIND_INTERFACE=eth0\nVIP_ADDRESS=10.7.7.7\nPASSWORD=pw\n');
  assert.deepEqual(model.vhids[0]!.addresses, ['10.7.7.7/32']);
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_SUBNET', file, 2]]);
});

test('vip-NNN.conf: ifcfg PREFIX wins over a NETMASK that disagrees, with a warning', (t) => {
  const tmp = tempDir(t);
  const ifcfg = tmp.write('ifcfg-eth0:0', 'IPADDR=10.0.0.1\nPREFIX=24\nNETMASK=255.255.0.0\n');
  const file = tmp.write('vip-003.conf', GOOD_VIP);
  const r = loadConfigFiles([file]);
  assert.deepEqual(brief(r.diagnostics), [['warning', 'CARPD_WARN_IGNORED', ifcfg, 3]]);
  assert.deepEqual(r.model.vhids[0]!.addresses, ['10.0.0.1/24']);
});
