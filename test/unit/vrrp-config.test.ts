/** VRRPv3 in the configuration: carpd.conf keys, FreeBSD rc.conf words, convert both ways, carpd check. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCarpdIni } from '../../src/config/carpd-ini.js';
import { convertModel } from '../../src/config/convert.js';
import { formatDiagnostic, type Diagnostic } from '../../src/config/errors.js';
import { passwordWarnings, validateModel } from '../../src/config/validate.js';
import { loadConfigFiles, readPassfile } from '../../src/adapters/config-files.js';
import { validCron } from '../../src/adapters/cron.js';
import type { CarpModel } from '../../src/config/model.js';
import { configFiles } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-vrrp-config-');

function ini(text: string): { model: CarpModel; diags: Diagnostic[] } {
  const r = parseCarpdIni(text, 'f.conf', { readPassfile, validCron });
  return { model: r.model, diags: [...r.diagnostics, ...validateModel(r.model)] };
}
const errors = (d: Diagnostic[]) => d.filter((x) => x.severity === 'error').map(formatDiagnostic);
const warnings = (d: Diagnostic[]) => d.filter((x) => x.severity === 'warning').map(formatDiagnostic);

const V = '[vhid.a]\nvhid = 1\ninterface = eth0\naddress = 192.0.2.1/29\n';

test('carpd.conf: version = 3 with priority and interval (a duration, stored in centiseconds)', () => {
  for (const [interval, cs] of [
    ['1s', 100],
    ['500ms', 50],
    ['1', 100],
    ['0.25', 25],
    ['10ms', 1],
    ['40.95s', 4095],
  ] as const) {
    const { model, diags } = ini(`${V}version = 3\npriority = 200\ninterval = ${interval}\n`);
    assert.deepEqual(errors(diags), [], interval);
    const v = model.vhids[0]!;
    assert.deepEqual([v.version, v.priority, v.intervalCs], [3, 200, cs], interval);
  }
  // Without priority and interval: the FreeBSD/RFC defaults are applied by the engine (unset here).
  const { model } = ini(`${V}version = 3\n`);
  assert.equal(model.vhids[0]!.version, 3);
  assert.equal(model.vhids[0]!.priority, undefined);
});

test('carpd.conf: what the 12-bit field or the protocol cannot carry is refused at its line', () => {
  const cases: [string, RegExp][] = [
    ['version = 4', /f\.conf:5: .*version must be 2\.\.3/],
    ['version = 3\npriority = 0', /f\.conf:6: .*priority must be 1\.\.255/],
    ['version = 3\npriority = 256', /f\.conf:6: .*priority must be 1\.\.255/],
    ['version = 3\ninterval = 41s', /f\.conf:6: .*interval must be a duration of 10ms\.\.40\.95s/],
    ['version = 3\ninterval = 0', /f\.conf:6: .*interval must be a duration/],
    ['version = 3\ninterval = 15ms', /f\.conf:6: .*in steps of 10ms/],
    ['priority = 100', /f\.conf:5: .*priority is VRRPv3's; set version = 3/],
    ['version = 2\ninterval = 1s', /f\.conf:6: .*interval is VRRPv3's/],
  ];
  for (const [extra, want] of cases) {
    const e = errors(ini(`${V}${extra}\n`).diags);
    assert.equal(e.length, 1, `${extra}: ${e.join('; ')}`);
    assert.match(e[0]!, want, extra);
  }
});

test('carpd.conf: advbase, advskew and pass are warned about and ignored with version = 3; no password warning', () => {
  const { model, diags } = ini(`${V}version = 3\nadvskew = 100\npass = secret\n`);
  assert.deepEqual(errors(diags), []);
  const w = warnings(diags);
  assert.equal(w.length, 2, w.join('\n'));
  assert.match(w[0]!, /f\.conf:6: .*advskew is CARP's and is ignored with version = 3/);
  assert.match(w[1]!, /f\.conf:7: .*pass is CARP's/);
  // CARP's no-password warning does not apply to a protocol without authentication.
  assert.deepEqual(passwordWarnings(ini(`${V}version = 3\n`).model), []);
  assert.equal(passwordWarnings(ini(V).model).length, 1);
  assert.equal(model.vhids[0]!.version, 3);
  const peer = warnings(ini(`${V}version = 3\npeer = 10.0.0.9\n`).diags);
  assert.equal(peer.length, 1);
  assert.match(peer[0]!, /f\.conf:6: .*peer is CARP's and is ignored with version = 3/);
});

test('freebsd carp.sh vrrp_v4 config: ifconfig_X_alias0="inet vhid 1 carpver 3 192.0.2.1/29" reads as a VRRP vhid', (t) => {
  const dir = tempDir(t);
  const rc = dir.write(
    'rc.conf',
    [
      'ifconfig_epair0b="inet 192.0.2.202/29"',
      'ifconfig_epair0b_alias0="inet vhid 1 carpver 3 192.0.2.1/29"',
      'ifconfig_epair0b_alias1="inet vhid 2 carpver 3 vrrpprio 200 vrrpinterval 50 192.0.2.2/29"',
      'ifconfig_epair0b_alias2="inet vhid 3 carpver 2 advskew 100 192.0.2.3/29"',
      '',
    ].join('\n'),
  );
  const r = loadConfigFiles([rc], { format: 'rc.conf' });
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic), []);
  const got = r.model.vhids.map((v) => [v.key, v.version ?? 2, v.priority, v.intervalCs, v.addresses.join(',')]);
  assert.deepEqual(got, [
    ['1@epair0b', 3, 100, 100, '192.0.2.1/29'],
    ['2@epair0b', 3, 200, 50, '192.0.2.2/29'],
    ['3@epair0b', 2, undefined, undefined, '192.0.2.3/29'],
  ]);
});

test('rc.conf: advskew or pass on a carpver 3 vhid is warned about, as FreeBSD ignores them', (t) => {
  const rc = tempDir(t).write('rc.conf', 'ifconfig_em0="inet 192.0.2.202/29"\nifconfig_em0_alias0="inet vhid 1 carpver 3 advskew 10 pass x 192.0.2.1/29"\n');
  const r = loadConfigFiles([rc], { format: 'rc.conf' });
  const w = r.diagnostics.filter((d) => d.severity === 'warning').map(formatDiagnostic);
  assert.ok(
    w.some((l) => /rc\.conf:2: .*advskew, pass ignored on vhid 1: with carpver 3/.test(l)),
    w.join('\n'),
  );
});

test('convert: a VRRP vhid round-trips through carpd.conf and rc.conf; hostname.carp refuses it', (t) => {
  const dir = tempDir(t);
  const { model } = ini(`${V}version = 3\npriority = 200\ninterval = 500ms\n[vhid.b]\nvhid = 2\ninterface = eth0\naddress = 192.0.2.2/29\nversion = 3\n`);
  const conf = convertModel(model, 'carpd.conf');
  assert.deepEqual(conf.errors, []);
  assert.match(conf.text, /\[vhid\.vhid1\][^[]*version = 3\npriority = 200\ninterval = 500ms\n/);
  assert.ok(!/advskew/.test(conf.text.split('[vhid.vhid1]')[1]!), 'no CARP keys for a VRRP vhid');
  const back = ini(conf.text);
  assert.deepEqual(errors(back.diags), []);
  assert.deepEqual(
    back.model.vhids.map((v) => [v.vhid, v.version, v.priority, v.intervalCs]),
    [
      [1, 3, 200, 50],
      [2, 3, 100, 100],
    ],
  );
  const rc = convertModel(model, 'rc.conf');
  assert.deepEqual(rc.errors, []);
  assert.match(rc.text, /ifconfig_eth0_alias0="inet vhid 1 carpver 3 vrrpprio 200 vrrpinterval 50 alias 192\.0\.2\.1\/29"/);
  assert.match(rc.text, /ifconfig_eth0_alias1="inet vhid 2 carpver 3 alias 192\.0\.2\.2\/29"/);
  const rcFile = dir.write('rc.conf', `ifconfig_eth0="inet 192.0.2.200/29"\n${rc.text}`);
  const reread = loadConfigFiles([rcFile], { format: 'rc.conf' });
  assert.deepEqual(reread.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic), []);
  assert.deepEqual(
    reread.model.vhids.map((v) => [v.vhid, v.version, v.priority, v.intervalCs]),
    [
      [1, 3, 200, 50],
      [2, 3, 100, 100],
    ],
  );
  const obsd = convertModel(model, 'hostname.carp');
  assert.deepEqual(obsd.errors, ['vhid 1@eth0: OpenBSD carp(4) has no VRRPv3 (version = 3)', 'vhid 2@eth0: OpenBSD carp(4) has no VRRPv3 (version = 3)']);
});

test('hostname.carpN: FreeBSD’s VRRP words are refused, OpenBSD carp(4) has no VRRPv3', (t) => {
  const f = tempDir(t).write('hostname.carp0', 'vhid 1 carpdev em0 carpver 3\ninet 192.0.2.1 255.255.255.248\n');
  const r = loadConfigFiles([f]);
  const e = r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
  assert.equal(e.length, 1, e.join('\n'));
  assert.match(e[0]!, /hostname\.carp0:1: .*OpenBSD carp\(4\) has no VRRPv3/);
});

test('carpd check --peer: CARP against VRRPv3 is an error; VRRP pairs are judged by priority and interval, not password', async () => {
  const { comparePeers } = await import('../../src/config/peer-check.js');
  const here = ini(`${V}version = 3\npriority = 150\n`).model;
  const carp = ini(`${V}pass = x\n`).model;
  const e = comparePeers(here, carp).map(formatDiagnostic);
  assert.equal(e.length, 1, e.join('\n'));
  assert.match(e[0]!, /vhid 1: VRRPv3 here, CARP on the peer/);
  assert.deepEqual(comparePeers(here, ini(`${V}version = 3\npriority = 100\n`).model), [], 'a good pair: nothing to say');
  const same = comparePeers(here, ini(`${V}version = 3\npriority = 150\ninterval = 2s\n`).model).map(formatDiagnostic);
  assert.equal(same.length, 2, same.join('\n'));
  assert.match(same[0]!, /warning: vhid 1: priority 150 is the same on the peer/);
  assert.match(same[1]!, /warning: vhid 1: interval 100 cs here, 200 cs on the peer/);
});

test('vmac with a VRRPv3 vhid that has IPv6 VIPs is refused: its vMAC would be 00:00:5e:00:02:VRID (RFC 5798 §7.3)', () => {
  const base = '[vhid.a]\nvhid = 7\ninterface = eth0\nversion = 3\nvmac = yes\n';
  for (const addrs of [['2001:db8::1/64'], ['192.0.2.1/24', '2001:db8::1/64']]) {
    const { diags } = ini(base + addrs.map((a) => `address = ${a}\n`).join(''));
    const errs = diags.filter((d) => d.severity === 'error').map(formatDiagnostic);
    assert.equal(errs.length, 1, errs.join('\n'));
    assert.match(errs[0]!, /VRRPv3 with IPv6 addresses, whose virtual MAC is 00:00:5e:00:02:07/);
  }
  // IPv4-only VRRP with vmac, and CARP with IPv6 and vmac, stay allowed.
  for (const text of [base + 'address = 192.0.2.1/24\n', '[vhid.a]\nvhid = 7\ninterface = eth0\nvmac = yes\npass = x\naddress = 2001:db8::1/64\n']) {
    const { diags } = ini(text);
    assert.deepEqual(
      diags.filter((d) => d.severity === 'error' && /virtual MAC/.test(d.message)),
      [],
    );
  }
});
