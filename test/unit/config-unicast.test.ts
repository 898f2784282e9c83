/**
 * Unicast peers in every configuration format (issue 11 §3): FreeBSD rc.conf / ifconfig words
 * `peer`, `peer6`, `mcast`, `mcast6`; OpenBSD hostname.carpN `carppeer` / `-carppeer`; carpd.conf
 * `peer6` and `unicast`; `carpd check`'s rules; `convert` writing them back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import { toCarpdConf, toHostnameCarp, toRcConf } from '../../src/config/convert.js';
import { formatDiagnostic } from '../../src/config/errors.js';
import { configFiles } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-config-unicast-');

function load(files: string[], format?: string) {
  const r = loadConfigFiles(files, format ? { format } : {});
  return { model: r.model, errors: r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic), all: r.diagnostics.map(formatDiagnostic) };
}

test('freebsd rc.conf: peer sets unicast freebsd; peer6 (link-local with scope) too; 198.51.100.224 is a unicast peer (PR 284872)', (t) => {
  const tmp = tempDir(t);
  const rc = tmp.write(
    'rc.conf',
    [
      'ifconfig_em0="inet 198.51.100.2/25"',
      'ifconfig_em0_alias0="inet vhid 1 pass s3cret peer 198.51.100.224 alias 192.0.2.1/32"',
      'ifconfig_em0_ipv6="inet6 2001:db8:1::2/64"',
      'ifconfig_em0_alias1="inet6 vhid 2 pass s3cret peer6 fe80::1%em0 alias 2001:db8::1/64"',
      '',
    ].join('\n'),
  );
  const { model, errors } = load([rc], 'rc.conf');
  assert.deepEqual(errors, []);
  const v1 = model.vhids.find((v) => v.vhid === 1)!;
  const v2 = model.vhids.find((v) => v.vhid === 2)!;
  assert.deepEqual([v1.peer, v1.unicast], ['198.51.100.224', 'freebsd']);
  assert.deepEqual([v2.peer6, v2.unicast], ['fe80::1%em0', 'freebsd']);
});

test('freebsd rc.conf: mcast / mcast6 restore the group (no peer)', (t) => {
  const tmp = tempDir(t);
  const rc = tmp.write(
    'rc.conf',
    ['ifconfig_em0="inet 198.51.100.2/25"', 'ifconfig_em0_alias0="inet vhid 1 pass s3cret peer 198.51.100.9 mcast mcast6 alias 198.51.100.10/32"', ''].join(
      '\n',
    ),
  );
  const { model, errors } = load([rc], 'rc.conf');
  assert.deepEqual(errors, []);
  assert.equal(model.vhids[0]!.peer, undefined);
  assert.equal(model.vhids[0]!.peer6, undefined);
});

test('openbsd hostname.carpN: carppeer sets unicast openbsd; -carppeer restores multicast', (t) => {
  const tmp = tempDir(t);
  tmp.write('hostname.em0', 'inet 192.168.0.2 255.255.255.0\n');
  const c0 = tmp.write('hostname.carp0', 'vhid 1 carpdev em0 pass s3cret carppeer 192.168.0.3\ninet 192.168.0.1/24\nup\n');
  const { model, errors } = load([c0], 'hostname.if');
  assert.deepEqual(errors, []);
  assert.deepEqual([model.vhids[0]!.peer, model.vhids[0]!.unicast], ['192.168.0.3', 'openbsd']);
  const c1 = tmp.write('hostname.carp1', 'vhid 2 carpdev em0 pass s3cret carppeer 192.168.0.3 -carppeer\ninet 192.168.0.5/24\nup\n');
  const r1 = load([c1], 'hostname.if');
  assert.deepEqual(r1.errors, []);
  assert.equal(r1.model.vhids[0]!.peer, undefined);
});

const ini = (extra: string) => `[vhid.v1]\nvhid = 1\ninterface = eth0\naddress = 2001:db8::1/64\naddress = 192.0.2.1/32\npass = s3cret\n${extra}`;

test('carpd.conf: peer6 and unicast rows', (t) => {
  const tmp = tempDir(t);
  const f = tmp.write('carpd.conf', ini('peer = 198.51.100.224\npeer6 = 2001:db8:2::2\nunicast = freebsd\n'));
  const { model, errors } = load([f]);
  assert.deepEqual(errors, []);
  assert.deepEqual([model.vhids[0]!.peer, model.vhids[0]!.peer6, model.vhids[0]!.unicast], ['198.51.100.224', '2001:db8:2::2', 'freebsd']);
  const bad = tmp.write('bad.conf', ini('unicast = netbsd\n'));
  assert.equal(load([bad]).errors.length, 1);
});

test('carpd check: a multicast peer, a non-IPv6 peer6, and openbsd with peer6 are errors; 198.51.100.224 is not multicast', (t) => {
  const tmp = tempDir(t);
  const cases: Array<[string, RegExp | undefined]> = [
    ['peer = 224.0.0.18\n', /peer 224\.0\.0\.18 is a multicast address/],
    ['peer = 239.1.2.3\n', /multicast/],
    ['peer6 = ff02::12\n', /peer6 ff02::12 is a multicast address/],
    ['peer6 = 192.0.2.9\n', /is not an IPv6 address/],
    ['peer = 192.0.2.9\npeer6 = 2001:db8::9\nunicast = openbsd\n', /openbsd \(carppeer\) is IPv4 only/],
    ['peer = 198.51.100.224\n', undefined],
  ];
  for (const [extra, want] of cases) {
    const f = tmp.write('c.conf', ini(extra));
    const { errors } = load([f]);
    if (want)
      assert.ok(
        errors.some((e) => want.test(e)),
        `${extra}: ${errors.join('; ')}`,
      );
    else assert.deepEqual(errors, [], extra);
  }
});

test('convert writes peer6 / unicast back: carpd.conf keeps both, rc.conf says peer6, hostname.carpN says carppeer and warns about peer6', (t) => {
  const tmp = tempDir(t);
  const f = tmp.write('carpd.conf', ini('peer = 198.51.100.224\npeer6 = 2001:db8:2::2\nunicast = freebsd\n'));
  const { model } = load([f]);
  const c = toCarpdConf(model).text;
  assert.match(c, /^peer6 = 2001:db8:2::2$/m);
  assert.match(c, /^unicast = freebsd$/m);
  const again = tmp.write('again.conf', c);
  const m2 = load([again]).model;
  assert.deepEqual([m2.vhids[0]!.peer, m2.vhids[0]!.peer6, m2.vhids[0]!.unicast], ['198.51.100.224', '2001:db8:2::2', 'freebsd']);
  assert.match(toRcConf(model).text, /peer 198\.51\.100\.224 peer6 2001:db8:2::2/);
  const h = toHostnameCarp(model);
  assert.match(h.text, /^carppeer 198\.51\.100\.224$/m);
  assert.ok(h.warnings.some((w) => /no IPv6 unicast peer/.test(w)));
});
