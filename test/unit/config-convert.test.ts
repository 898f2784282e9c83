import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { convertCommand } from '../../src/cli/convert.js';
import { convertModel, CONVERT_TARGETS, type ConvertTarget } from '../../src/config/convert.js';
import { formatDiagnostic } from '../../src/config/errors.js';
import { BUNDLE_HEADER } from '../../src/config/hostname-carp.js';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import type { CarpModel, VhidConfig } from '../../src/config/model.js';
import { capture, configFiles } from '../helpers/config-files.js';

const { tempDir, fixtures } = configFiles('carpd-config-convert-');

/** What a conversion must keep: every vhid, address, advbase, advskew and password. */
function essentials(m: CarpModel): string[] {
  return m.vhids.map((v) => `${v.key} ${v.addresses.join(',')} advbase ${v.advbase} advskew ${v.advskew} pass ${JSON.stringify(v.password)}`).sort();
}

/** Loads `files` and fails on any error. */
function loadOk(files: string[], format?: string): CarpModel {
  const r = loadConfigFiles(files, format ? { format } : {});
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors.map(formatDiagnostic), []);
  return r.model;
}

const SOURCES: { name: string; files: string[] }[] = [
  { name: 'FreeBSD rc.conf + sysctl.conf', files: ['freebsd/rc.conf', 'freebsd/sysctl.conf'] },
  {
    name: 'OpenBSD hostname.carpN + sysctl.conf',
    files: ['openbsd/hostname.carp0', 'openbsd/hostname.carp1', 'openbsd/hostname.carp2', 'openbsd/hostname.carp3', 'openbsd/sysctl.conf'],
  },
  { name: 'Debian interfaces', files: ['debian/interfaces'] },
  { name: 'CentOS vip-NNN.conf', files: ['centos/etc/sysconfig/carp/vip-001.conf', 'centos/etc/ucarp/vip-002.conf'] },
];

for (const src of SOURCES) {
  for (const to of CONVERT_TARGETS) {
    test(`${src.name} → ${to} → parse keeps every vhid, address, skew and password`, (t) => {
      const root = fixtures(t);
      const model = loadOk(src.files.map((f) => join(root, f)));
      const r = convertModel(model, to);
      // hostname.carp1's password has a space, which rc.conf's unquoted ifconfig words cannot hold.
      const refused = to === 'rc.conf' && src.name.startsWith('OpenBSD') ? ['2@em1'] : [];
      assert.deepEqual(
        r.errors.map((e) => e.split(':')[0]),
        refused.map((k) => `vhid ${k}`),
      );
      const out = tempDir(t);
      const back = loadOk([out.write(to === 'hostname.carp' ? 'converted' : to, r.text)]);
      const kept = { ...model, vhids: model.vhids.filter((v) => !refused.includes(v.key)) };
      assert.deepEqual(essentials(back), essentials(kept));
      if (to === 'rc.conf') {
        // rc.conf has no sysctls: they are written as comments to copy into sysctl.conf.
        if (model.global.log !== 2) assert.ok(r.text.includes(`#   net.inet.carp.log=${model.global.log}\n`));
        return;
      }
      assert.equal(back.global.preempt, model.global.preempt);
      assert.equal(back.global.allow, model.global.allow);
      assert.equal(back.global.log, model.global.log);
    });
  }
}

test('hostname.carp output split into its files parses the same, with vlan and groups kept', (t) => {
  const root = fixtures(t);
  const model = loadOk(['hostname.carp0', 'hostname.carp1', 'hostname.carp2', 'hostname.carp3'].map((f) => join(root, 'openbsd', f)));
  const r = convertModel(model, 'hostname.carp');
  const out = tempDir(t);
  let current: string[] | undefined;
  const files = new Map<string, string[]>();
  for (const line of r.text.split('\n')) {
    const m = BUNDLE_HEADER.exec(line);
    if (m) files.set(m[1]!, (current = []));
    else current?.push(line);
  }
  assert.deepEqual([...files.keys()], ['hostname.carp0', 'hostname.carp1', 'hostname.carp2', 'hostname.carp3', 'hostname.vlan42']);
  for (const [name, lines] of files) out.write(name, lines.join('\n'));
  const back = loadOk([...files.keys()].filter((n) => n.startsWith('hostname.carp')).map((n) => join(out.dir, n)));
  const shape = (m: CarpModel) => m.vhids.map((v) => [v.key, v.name, v.groups, v.peer, v.vlan]);
  assert.deepEqual(shape(back), shape(model));
  assert.deepEqual(essentials(back), essentials(model));
});

test('carpd.conf → carpd.conf keeps the whole model: globals, scripts, groups, plugins, health, maintenance', (t) => {
  const tmp = tempDir(t);
  const src = tmp.write(
    'carpd.conf',
    `[carpd]
preempt = yes
log = 6
control = /run/carpd.sock
master_down = openbsd
demotion = 3
garp_refresh = 90s
pre_phase_budget = 750ms
hook_timeout = 1500ms
metrics = 9112
[vhid.lan]
vhid = 1
interface = eth0
address = 10.0.0.1/24, 2001:db8::1/64
advskew = 100
pass = "a;b#c 'd\\"e"
group = uplink
[vhid.dmz]
vhid = 2
interface = eth1
address = 10.1.0.1
advbase = 3
peer = 10.1.0.3
srcip = 10.1.0.2
upscript = /bin/up
downscript = /bin/down
xparam = x y
deadratio = 4
[group.edge]
vhid = dmz
demote = 2
[plugin.httpd]
follow = lan
on_failure = demote 50
timeout = 20s
config = "/etc/h;ttpd.conf"
[plugin.bgpd]
follow = group:edge
[health.web]
command = /usr/bin/curl -fsS "http://127.0.0.1/a b"
interval = 5s
timeout = 2s
rise = 2
fall = 3
demote = 30
group = uplink
[health.cron]
command = /bin/true
schedule = */2 * * * *
[maintenance]
enter = 0 3 * * sun
duration = 90m
demote = 200
`,
  );
  const model = loadOk([src]);
  const r = convertModel(model, 'carpd.conf');
  const back = loadOk([tmp.write('converted.conf', r.text)]);
  const strip = (m: CarpModel) => ({
    ...m,
    extra: undefined,
    vhids: m.vhids.map(({ fieldSources: _f, source: _s, ...v }: VhidConfig) => v),
    plugins: m.plugins?.map(({ source: _s, ...p }) => p),
    health: m.health?.map(({ source: _s, ...h }) => h),
    groups: m.groups?.map(({ source: _s, ...g }) => g),
    maintenance: m.maintenance && { ...m.maintenance, source: '' },
  });
  assert.deepEqual(strip(back), strip(model));
});

test('rc.conf output: one /32 ucarp-style vhid keeps its scripts in ucarp_* variables', (t) => {
  const root = fixtures(t);
  const model = loadOk([join(root, 'freebsd/rc.conf')]);
  const r = convertModel(model, 'rc.conf');
  assert.deepEqual(r.warnings, []);
  const back = loadOk([tempDir(t).write('rc.conf', r.text)]);
  const v7 = back.vhids.find((v) => v.vhid === 7)!;
  assert.deepEqual(
    [v7.srcip, v7.upscript, v7.downscript, v7.xparam, v7.deadRatio],
    ['10.0.0.3', '/usr/local/etc/ucarp/vip-up.sh', '/usr/local/etc/ucarp/vip-down.sh', 'lan', 3],
  );
});

test('what a target cannot carry is a warning; a password rc.conf cannot hold is an error', (t) => {
  const root = fixtures(t);
  const debian = loadOk([join(root, 'debian/interfaces')]);
  // eth0's VIP is a /24 with scripts: the kernel lines keep the address and drop the scripts.
  const rc = convertModel(debian, 'rc.conf');
  assert.equal(rc.warnings.length, 2);
  assert.match(rc.warnings[0]!, /^vhid 4@eth1: rc\.conf's kernel CARP lines have no srcip; left out/);
  assert.match(rc.warnings[1]!, /^vhid 3@eth0: rc\.conf's kernel CARP lines have no upscript, downscript, xparam, srcip; left out/);
  const obsd = loadOk([join(root, 'openbsd/hostname.carp1')]);
  const bad = convertModel(obsd, 'rc.conf');
  assert.deepEqual(bad.errors, ["vhid 2@em1: the password contains white space, which rc.conf's ifconfig lines cannot carry"]);
});

/** convertCommand's exit code, stdout as one string, and stderr lines. */
async function convert(args: string[]) {
  const { code, out, err } = await capture(convertCommand, args);
  return { code, out: out.join('\n'), err };
}

test('carpd convert prints the converted file on stdout and what it left out on stderr', async (t) => {
  const root = fixtures(t);
  const r = await convert(['--to', 'hostname.carp', '-c', join(root, 'debian/interfaces')]);
  assert.equal(r.code, 0);
  assert.match(r.out, /^# OpenBSD hostname\.carpN files, one "# ==> FILE <==" block each, written by carpd convert from interfaces\./);
  assert.match(r.out, /\n# ==> hostname\.carp0 <==\n# vhid 4 on eth1, from eth1:2\nvhid 4 carpdev eth1 advskew 20 pass s3cr3t\ninet 192\.168\.10\.1\/24\nup\n/);
  assert.deepEqual(r.err, [
    'carpd convert: warning: vhid 4@eth1: hostname.if has no srcip; left out (ifstated(8) can run commands on state changes)',
    'carpd convert: warning: vhid 3@eth0: hostname.if has no upscript, downscript, xparam, srcip; left out (ifstated(8) can run commands on state changes)',
  ]);
});

test('carpd convert refuses a config with errors, and bad arguments (exit 2)', async (t) => {
  const tmp = tempDir(t);
  const bad = tmp.write('hostname.carp0', 'vhid 1 carpdev em0 advskew 300\ninet 10.0.0.1/24\n');
  const r = await convert(['--to', 'rc.conf', '-c', bad]);
  assert.deepEqual(r, { code: 1, out: '', err: [`${bad}:1: advskew must be 0..254, not 300`] });
  assert.equal((await convert(['--to', 'pf.conf', '-c', bad])).code, 2);
  assert.equal((await convert(['-c', bad])).code, 2);
  assert.equal((await convert(['--to', 'rc.conf'])).code, 2);
  const ob = tmp.write('hostname.carp1', 'vhid 2 carpdev em0 pass "a b"\ninet 10.0.0.2/24\n');
  const e = await convert(['--to', 'rc.conf', '-c', ob]);
  assert.equal(e.code, 1);
  assert.equal(e.out, '');
});

test('the converted file carries passwords, so the header says to keep it private', async (t) => {
  const root = fixtures(t);
  for (const to of CONVERT_TARGETS as readonly ConvertTarget[]) {
    const r = await convert(['--to', to, '-c', join(root, 'freebsd/rc.conf')]);
    assert.equal(r.code, 0);
    assert.match(r.out.split('\n').slice(0, 3).join('\n'), /chmod 600/);
  }
});
