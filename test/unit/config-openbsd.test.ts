import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Diagnostic } from '../../src/config/errors.js';
import { detectFormat } from '../../src/config/load.js';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import type { CarpModel } from '../../src/config/model.js';
import { assertOneError, brief, configFiles, withoutFieldSources } from '../helpers/config-files.js';

const { tempDir, fixtures } = configFiles('carpd-config-obsd-');

test('OpenBSD hostname.carp0..3 and sysctl.conf become the expected model', (t) => {
  const dir = fixtures(t, 'openbsd');
  const f = (n: string) => join(dir, n);
  const { model, diagnostics } = loadConfigFiles(['hostname.carp0', 'hostname.carp1', 'hostname.carp2', 'hostname.carp3', 'sysctl.conf'].map(f));
  // The !command line is named and ignored.
  assert.deepEqual(brief(diagnostics), [['warning', 'CARPD_WARN_IGNORED', f('hostname.carp1'), 3]]);
  const expected: CarpModel = {
    global: { allow: true, preempt: true, log: 3 },
    vhids: [
      {
        // The modern form, with an old-form alias line and an inet6 line.
        key: '1@em0',
        vhid: 1,
        interface: 'em0',
        addresses: ['192.0.2.30/27', '192.0.2.29/27', '2001:db8:2::30/64'],
        advbase: 1,
        advskew: 1,
        password: 'mekmitasdigoat',
        source: 'hostname.carp0:2',
        name: 'carp0',
        groups: ['carp', 'uplink'],
      },
      {
        // The old positional form, a quoted password, carppeer on its own line.
        key: '2@em1',
        vhid: 2,
        interface: 'em1',
        addresses: ['10.1.1.1/24'],
        advbase: 2,
        advskew: 100,
        password: 's3cret with space',
        source: 'hostname.carp1:1',
        name: 'carp1',
        groups: ['carp'],
        peer: '10.1.1.3',
        unicast: 'openbsd',
      },
      {
        // carpdev vlan42: hostname.vlan42 says what it is tagged on.
        key: '3@vlan42',
        vhid: 3,
        interface: 'vlan42',
        addresses: ['198.51.100.1/24'],
        advbase: 1,
        advskew: 0,
        password: 'vlanpass',
        source: 'hostname.carp2:1',
        name: 'carp2',
        groups: ['carp'],
        vlan: { device: 'em1', tag: 42 },
      },
      {
        // No carpdev: em1 by subnet (hostname.em1), netmask in hex.
        key: '4@em1',
        vhid: 4,
        interface: 'em1',
        addresses: ['10.1.1.254/24'],
        advbase: 1,
        advskew: 0,
        password: 'x',
        source: 'hostname.carp3:2',
        name: 'carp3',
        groups: ['carp'],
      },
    ],
  };
  assert.deepEqual(withoutFieldSources(model), expected);
  const fs = model.vhids[0]!.fieldSources!;
  assert.deepEqual([fs['addresses.0']!.line, fs['addresses.1']!.line, fs['addresses.2']!.line, fs.groups!.line], [2, 3, 4, 6]);
  assert.deepEqual(model.vhids[1]!.fieldSources!.password, { file: f('hostname.carp1'), line: 1 });
  assert.deepEqual(model.vhids[3]!.fieldSources!.interface, { file: f('hostname.em1'), line: 1 });
});

test('hostname.IF files are told by name; a bundle by its headers', () => {
  assert.equal(detectFormat('/etc/hostname.carp0', ''), 'hostname');
  assert.equal(detectFormat('/etc/hostname.em0', 'inet 10.0.0.2/24\n'), 'hostname');
  assert.equal(detectFormat('/tmp/converted', '# x\n# ==> hostname.carp0 <==\nvhid 1\n'), 'hostname');
});

test("a parent interface's hostname.IF given with -c only tells its subnet", (t) => {
  const dir = fixtures(t, 'openbsd');
  const r = loadConfigFiles([join(dir, 'hostname.em0'), join(dir, 'hostname.carp0')]);
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(
    r.model.vhids.map((v) => v.key),
    ['1@em0'],
  );
});

/** One hostname.carp0 with `text` in a directory holding hostname.em0 (192.0.2.2/27). */
function carp0(t: { after(fn: () => void): void }, text: string, mode = 0o600): { file: string; diags: Diagnostic[]; model: CarpModel } {
  const tmp = tempDir(t);
  tmp.write('hostname.em0', 'inet 192.0.2.2 255.255.255.224 NONE\n');
  const file = tmp.write('hostname.carp0', text, mode);
  const r = loadConfigFiles([file]);
  return { file, diags: r.diagnostics, model: r.model };
}

const obsdErrors: { name: string; text: string; code: string; line: number }[] = [
  { name: 'a vhid above 255', text: 'inet 192.0.2.30 255.255.255.224 NONE vhid 300 carpdev em0\n', code: 'CARPD_ERR_VHID', line: 1 },
  { name: 'advskew 255', text: '# c\n192.0.2.30/27 carpdev em0 vhid 1 advskew 255\n', code: 'CARPD_ERR_ADVSKEW', line: 2 },
  { name: 'an unknown keyword', text: 'vhid 1 carpdev em0\ninet 192.0.2.30/27 balance 3\n', code: 'CARPD_ERR_CONFIG_KEY', line: 2 },
  { name: 'no address', text: 'vhid 1 carpdev em0 pass x\nup\n', code: 'CARPD_ERR_NO_ADDRESS', line: 1 },
  { name: 'no vhid', text: '\ninet 192.0.2.30/27 carpdev em0\n', code: 'CARPD_ERR_CONFIG_MISSING', line: 2 },
  { name: 'a file without configuration', text: '# nothing\n', code: 'CARPD_ERR_CONFIG_MISSING', line: 1 },
  { name: 'two different advskews', text: 'vhid 1 carpdev em0 advskew 10\ninet 192.0.2.30/27\nadvskew 20\n', code: 'CARPD_ERR_CONFIG_CONFLICT', line: 3 },
  { name: 'dhcp on a carp interface', text: 'vhid 1 carpdev em0\ninet 192.0.2.30/27\ndhcp\n', code: 'CARPD_ERR_UNSUPPORTED', line: 3 },
  { name: 'carpnodes', text: 'carpnodes 1:0,2:100 carpdev em0\ninet 192.0.2.30/27\nvhid 1\n', code: 'CARPD_ERR_UNSUPPORTED', line: 1 },
  { name: 'an unterminated quote', text: 'vhid 1 carpdev em0 192.0.2.30/27\ndescription "outside\n', code: 'CARPD_ERR_CONFIG_SYNTAX', line: 2 },
  { name: 'no carpdev and no sibling subnet', text: 'inet 10.9.9.9 255.255.255.0 NONE vhid 1\n', code: 'CARPD_ERR_PARENT', line: 1 },
  { name: 'an inet line with an IPv6 address', text: 'vhid 1 carpdev em0\ninet 2001:db8::1\n', code: 'CARPD_ERR_ADDRESS', line: 2 },
  {
    name: 'a password longer than 19 bytes',
    text: '192.0.2.30/27 carpdev em0 vhid 1\npass twenty-bytes-secret!\n',
    code: 'CARPD_ERR_PASSWORD_LENGTH',
    line: 2,
  },
];

for (const c of obsdErrors) {
  test(`hostname.carp0: ${c.name} is an error at its line`, (t) => {
    const { file, diags } = carp0(t, c.text);
    assertOneError(diags, c.code, file, c.line);
  });
}

test('hostname.carp0: a pass in a world-readable file is an error on the pass line', (t) => {
  const { file, diags } = carp0(t, '192.0.2.30/27 carpdev em0 vhid 1\npass hunter2\n', 0o644);
  const d = assertOneError(diags, 'CARPD_ERR_CONFIG_MODE', file, 2);
  assert.ok(!d.message.includes('hunter2'));
});

test("hostname.carp0: a VIP outside carpdev's subnet is a warning", (t) => {
  const { file, diags } = carp0(t, 'vhid 1 carpdev em0\ninet 192.0.2.30/27\ninet alias 203.0.113.9/32\n');
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_SUBNET', file, 3]]);
});

test("hostname.carp0: state, down and lladdr are not carpd's; the first two warn, lladdr is an error", (t) => {
  const a = carp0(t, '192.0.2.30/27 carpdev em0 vhid 1 state backup\ndown\n');
  assert.deepEqual(brief(a.diags), [
    ['warning', 'CARPD_WARN_IGNORED', a.file, 1],
    ['warning', 'CARPD_WARN_IGNORED', a.file, 2],
  ]);
  const b = carp0(t, '192.0.2.30/27 carpdev em0 vhid 1\nlladdr 00:00:5e:00:01:09\n');
  assertOneError(b.diags, 'CARPD_ERR_UNSUPPORTED', b.file, 2);
});

test("hostname.carp0: lladdr set to the parent's MAC (OpenBSD regress carp_2) is read, with a warning; a malformed one is an error", (t) => {
  const a = carp0(t, '192.0.2.30/27 vhid 251 carpdev em0 lladdr fe:e1:ba:d0:12:34 -group carp group regress1234a\n');
  assert.deepEqual(brief(a.diags), [['warning', 'CARPD_WARN_IGNORED', a.file, 1]]);
  assert.match(a.diags[0]!.message, /parent's own MAC/);
  const b = carp0(t, '192.0.2.30/27 vhid 251 carpdev em0 lladdr fe:e1:ba:d0:12\n');
  assertOneError(b.diags, 'CARPD_ERR_CONFIG_VALUE', b.file, 1);
});

test("NetBSD ifconfig.carp0 (t_basic.sh's carp1: create, then vhid 175 … netmask) is read like hostname.carp0, its parent by subnet from ifconfig.shmif0", (t) => {
  const tmp = tempDir(t);
  tmp.write('ifconfig.shmif0', '10.1.1.2/24 up\n');
  const file = tmp.write('ifconfig.carp1', 'create\nvhid 175 advskew 200 advbase 1 pass s3cret 10.1.1.100 netmask 255.255.255.0\nup\n');
  const r = loadConfigFiles([file]);
  assert.deepEqual(r.diagnostics, []);
  const [v] = r.model.vhids;
  assert.deepEqual(
    { key: v!.key, name: v!.name, addresses: v!.addresses, advskew: v!.advskew, advbase: v!.advbase, password: v!.password },
    { key: '175@shmif0', name: 'carp1', addresses: ['10.1.1.100/24'], advskew: 200, advbase: 1, password: 's3cret' },
  );
});

test('the same vhid in rc.conf and hostname.carp0, differently: an error in the later file', (t) => {
  const tmp = tempDir(t);
  const rc = tmp.write('rc.conf', 'ifconfig_em0_alias0="inet vhid 1 pass one alias 192.0.2.30/27"\n');
  const hn = tmp.write('hostname.carp0', '# moved\n192.0.2.30/27 carpdev em0 vhid 1 pass two\n');
  const d = assertOneError(loadConfigFiles([rc, hn]).diagnostics, 'CARPD_ERR_CONFIG_CONFLICT', hn, 2);
  assert.equal(d.message, `vhid 1 on em0 is already defined at ${rc}:1, differently (password)`);
});

test("a bundle of hostname.carpN and sysctl.conf blocks keeps the bundle's line numbers", (t) => {
  const tmp = tempDir(t);
  const bundle = tmp.write(
    'fw1.hostname',
    [
      '# from carpd convert',
      '',
      '# ==> hostname.carp0 <==',
      'vhid 1 carpdev vlan7 pass a',
      'inet 10.7.0.1/24',
      '',
      '# ==> hostname.vlan7 <==',
      'vnetid 7 parent em2',
      'inet 10.7.0.2/24',
      '',
      '# ==> hostname.carp1 <==',
      'vhid 2 carpdev em0 advskew 300',
      'inet 192.0.2.30/27',
      '# ==> sysctl.conf <==',
      'net.inet.carp.preempt=1',
      '',
    ].join('\n'),
  );
  const r = loadConfigFiles([bundle]);
  assertOneError(r.diagnostics, 'CARPD_ERR_ADVSKEW', bundle, 12);
  assert.deepEqual(
    r.model.vhids.map((v) => [v.key, v.name, v.source, v.vlan]),
    [
      ['1@vlan7', 'carp0', 'fw1.hostname:4', { device: 'em2', tag: 7 }],
      ['2@em0', 'carp1', 'fw1.hostname:12', undefined],
    ],
  );
  assert.equal(r.model.global.preempt, true);
});
