import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Diagnostic } from '../../src/config/errors.js';
import { detectFormat } from '../../src/config/load.js';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import type { CarpModel } from '../../src/config/model.js';
import { parseRcConf } from '../../src/config/rc-conf.js';
import { assertOneError, brief, configFiles, withoutFieldSources } from '../helpers/config-files.js';

const { tempDir, fixtures } = configFiles('carpd-config-rc-');

// The shell-variable reader.

test('rc.conf values: quotes, comments, continuations, += and later assignments', () => {
  const text = [
    '# a comment',
    'a="double # not a comment"  # a comment',
    "b='single $a \\n'",
    'c=bare\\ word',
    'd="one \\',
    '  two"',
    'e=first',
    'e=second',
    'f="x"',
    'f+="y"',
    'g="$f-${e}-$nope-\\$"',
    'h="multi',
    'line" i=2; j=3',
    'k=a#b',
  ].join('\n');
  const rc = parseRcConf(text);
  assert.deepEqual(rc.errors, []);
  const v = (n: string) => rc.vars.get(n);
  assert.equal(v('a')!.value, 'double # not a comment');
  assert.equal(v('b')!.value, 'single $a \\n');
  assert.equal(v('c')!.value, 'bare word');
  assert.equal(v('d')!.value, 'one   two');
  assert.deepEqual(v('e'), { value: 'second', line: 8, lines: [7, 8] });
  // += appends with a space (sysrc) and keeps the line of the assignment it extends.
  assert.deepEqual(v('f'), { value: 'x y', line: 9, lines: [9, 10] });
  assert.equal(v('g')!.value, 'x y-second--$');
  assert.equal(v('h')!.value, 'multi\nline');
  assert.equal(v('h')!.line, 12);
  assert.deepEqual([v('i')!.line, v('j')!.line], [13, 13]);
  assert.equal(v('k')!.value, 'a#b');
});

test('rc.conf syntax errors name their line and never echo the text', () => {
  const rc = parseRcConf('ok=1\nsecret-word\nx="unterminated\n\ny=2\n');
  assert.deepEqual(rc.errors, [
    { line: 2, message: 'expected a variable assignment (NAME="value")' },
    { line: 3, message: 'unterminated double quote in the value of x' },
  ]);
  assert.equal(rc.vars.get('ok')!.value, '1');
  const sub = parseRcConf('y=$(cat /etc/pw)\nz=`id`\nw="${a:-b}"\n');
  assert.deepEqual(
    sub.errors.map((e) => [e.line, e.message]),
    [
      [1, 'command substitution is not supported in the value of y'],
      [2, 'command substitution is not supported in the value of z'],
      [3, 'only ${NAME} parameter expansion is supported in the value of w'],
    ],
  );
});

// FreeBSD rc.conf, loader.conf and sysctl.conf, from the Handbook.

test('a FreeBSD rc.conf, loader.conf and sysctl.conf become the expected model', (t) => {
  const dir = fixtures(t, 'freebsd');
  const rc = join(dir, 'rc.conf');
  const loader = join(dir, 'loader.conf');
  const sysctl = join(dir, 'sysctl.conf');
  const { model, diagnostics } = loadConfigFiles([rc, loader, sysctl]);
  // The fixture re-assigns ifconfig_em2_alias0 on purpose (line 27 replaces line 26): a warning.
  assert.deepEqual(brief(diagnostics), [
    ['warning', 'CARPD_WARN_REASSIGNED', rc, 27],
    ['warning', 'CARPD_WARN_KERNEL_CARP', loader, 4],
  ]);
  assert.match(diagnostics[0]!.message, /line 26/);
  assert.match(diagnostics[1]!.message, /protocol 112/);
  const expected: CarpModel = {
    global: { allow: true, preempt: true, log: 1, demotion: 0, ifdownDemotion: 240, senderrDemotion: 240 },
    vhids: [
      {
        key: '1@em0',
        vhid: 1,
        interface: 'em0',
        addresses: ['192.168.1.50/32', '2001:db8:1::50/64', '192.168.1.51/32'],
        advbase: 1,
        advskew: 100,
        password: 'testpass',
        source: 'rc.conf:16',
        groups: ['carp'],
      },
      {
        key: '2@em1',
        vhid: 2,
        interface: 'em1',
        addresses: ['10.0.0.50/24'],
        advbase: 2,
        advskew: 50,
        password: 's3cr3t#2',
        source: 'rc.conf:21',
        groups: ['carp'],
        peer: '10.0.0.4',
        unicast: 'freebsd',
      },
      {
        key: '3@em2',
        vhid: 3,
        interface: 'em2',
        addresses: ['172.16.0.50/16'],
        advbase: 1,
        advskew: 10,
        password: 'new',
        source: 'rc.conf:27',
        groups: ['carp'],
      },
      {
        key: '4@em2',
        vhid: 4,
        interface: 'em2',
        addresses: ['172.16.1.1/16', '172.16.1.2/16', '172.16.1.3/16'],
        advbase: 1,
        advskew: 0,
        password: 'pw4',
        source: 'rc.conf:29',
        groups: ['carp'],
      },
      {
        key: '5@em2',
        vhid: 5,
        interface: 'em2',
        addresses: ['172.16.2.1/16'],
        advbase: 1,
        advskew: 0,
        password: 'pw5',
        source: 'rc.conf:29',
        groups: ['carp'],
      },
      {
        key: '6@em0',
        vhid: 6,
        interface: 'em0',
        addresses: ['192.168.1.254/24'],
        advbase: 1,
        advskew: 100,
        password: 'cl0ned',
        source: 'rc.conf:33',
        name: 'carp0',
        groups: ['carp'],
      },
      {
        key: '7@em1',
        vhid: 7,
        interface: 'em1',
        addresses: ['10.0.0.100/32'],
        advbase: 1,
        advskew: 20,
        password: 'ucarppass',
        source: 'rc.conf:37',
        groups: ['carp'],
        srcip: '10.0.0.3',
        upscript: '/usr/local/etc/ucarp/vip-up.sh',
        downscript: '/usr/local/etc/ucarp/vip-down.sh',
        xparam: 'lan',
        deadRatio: 3,
      },
    ],
  };
  assert.deepEqual(withoutFieldSources(model), expected);
  const fs = (i: number) => model.vhids[i]!.fieldSources!;
  assert.deepEqual(
    [fs(0)['addresses.0'], fs(0)['addresses.1'], fs(0)['addresses.2']].map((w) => w!.line),
    [16, 17, 18],
  );
  assert.deepEqual(fs(1).password, { file: rc, line: 21 });
  // carp0's parent came from ifconfig_em0's subnet.
  assert.deepEqual(fs(5).interface, { file: rc, line: 10 });
  assert.deepEqual(fs(6).password, { file: rc, line: 41 });
});

test('the formats are told apart by name and content', () => {
  assert.equal(detectFormat('/etc/rc.conf', ''), 'rc.conf');
  assert.equal(detectFormat('/etc/rc.conf.local', ''), 'rc.conf');
  assert.equal(detectFormat('/etc/rc.conf.d/carpd', ''), 'rc.conf');
  assert.equal(detectFormat('/boot/loader.conf', ''), 'loader.conf');
  assert.equal(detectFormat('/etc/sysctl.conf', ''), 'sysctl.conf');
  assert.equal(detectFormat('/tmp/fw1-settings', 'ifconfig_em0_alias0="inet vhid 1 alias 10.0.0.1/32"\n'), 'rc.conf');
  assert.equal(detectFormat('/tmp/fw1-settings', '# x\nucarp_vhid="3"\n'), 'rc.conf');
  assert.equal(detectFormat('/tmp/fw1-boot', 'carp_load="YES"\n'), 'loader.conf');
  assert.equal(detectFormat('/tmp/fw1-knobs', 'net.inet.carp.preempt=1\n'), 'sysctl.conf');
});

test('a pass in a world-readable rc.conf is an error on its line, without the password', (t) => {
  const tmp = tempDir(t);
  const rc = tmp.write('rc.conf', 'ifconfig_em0="inet 10.0.0.2/24"\nifconfig_em0_alias0="inet vhid 1 pass hunter2 alias 10.0.0.1/32"\n', 0o644);
  const d = assertOneError(loadConfigFiles([rc]).diagnostics, 'CARPD_ERR_CONFIG_MODE', rc, 2);
  assert.ok(!d.message.includes('hunter2'));
  assert.match(d.message, /world-readable \(mode 0644\)/);
  const ucarp = tmp.write('rc2.conf', 'ucarp_if="em0"\nucarp_vhid="1"\nucarp_addr="10.0.0.1"\nucarp_pass="hunter2"\n', 0o604);
  assertOneError(loadConfigFiles([ucarp]).diagnostics, 'CARPD_ERR_CONFIG_MODE', ucarp, 4);
  const nopass = tmp.write('rc3.conf', 'ifconfig_em0_alias0="inet vhid 1 alias 10.0.0.1/32"\n', 0o644);
  assert.deepEqual(loadConfigFiles([nopass]).diagnostics, []);
});

/** rc.conf text → its diagnostics, via the loader. */
function rcCheck(t: { after(fn: () => void): void }, text: string, name = 'rc.conf'): { file: string; diags: Diagnostic[]; model: CarpModel } {
  const file = tempDir(t).write(name, text);
  const r = loadConfigFiles([file]);
  return { file, diags: r.diagnostics, model: r.model };
}

const EM0 = 'ifconfig_em0="inet 192.168.1.3 netmask 255.255.255.0"\n';

const rcErrors: { name: string; text: string; code: string; line: number }[] = [
  { name: 'a vhid above 255', text: `${EM0}ifconfig_em0_alias0="inet vhid 256 pass x alias 192.168.1.50/32"\n`, code: 'CARPD_ERR_VHID', line: 2 },
  { name: 'vhid 0', text: `${EM0}\nifconfig_em0_alias0="inet vhid 0 alias 192.168.1.50/32"\n`, code: 'CARPD_ERR_VHID', line: 3 },
  { name: 'advskew 255', text: `${EM0}ifconfig_em0_alias0="inet vhid 1 advskew 255 alias 192.168.1.50/32"\n`, code: 'CARPD_ERR_ADVSKEW', line: 2 },
  { name: 'an unknown keyword', text: `${EM0}ifconfig_em0_alias0="inet vhid 1 advskw 10 alias 192.168.1.50/32"\n`, code: 'CARPD_ERR_CONFIG_KEY', line: 2 },
  {
    name: 'an unknown ucarp variable',
    text: 'ucarp_if="em0"\nucarp_vhid="1"\nucarp_addr="10.0.0.1"\nucarp_pasword="x"\n',
    code: 'CARPD_ERR_CONFIG_KEY',
    line: 4,
  },
  { name: 'an unknown carpd variable', text: 'carpd_enable="YES"\ncarpd_conf="/x"\n', code: 'CARPD_ERR_CONFIG_KEY', line: 2 },
  { name: 'a carpd_flags option carpd run does not have', text: 'carpd_flags="--log-level 5 --daemon"\n', code: 'CARPD_ERR_CONFIG_VALUE', line: 1 },
  { name: 'a CARP alias without a vhid', text: `${EM0}ifconfig_em0_alias0="inet pass x alias 192.168.1.50/32"\n`, code: 'CARPD_ERR_CONFIG_MISSING', line: 2 },
  { name: 'a carp0 without an address', text: `${EM0}cloned_interfaces="carp0"\nifconfig_carp0="vhid 1 pass x"\n`, code: 'CARPD_ERR_PARENT', line: 3 },
  {
    name: 'a carp0 whose parent cannot be told by subnet',
    text: `${EM0}cloned_interfaces="carp0"\n\nifconfig_carp0="vhid 1 advskew 100 pass x 10.9.9.9/24"\n`,
    code: 'CARPD_ERR_PARENT',
    line: 4,
  },
  {
    name: 'two aliases of one vhid with different advskews',
    text: `${EM0}ifconfig_em0_alias0="inet vhid 1 advskew 100 alias 192.168.1.50/32"\nifconfig_em0_alias1="inet vhid 1 advskew 50 alias 192.168.1.51/32"\n`,
    code: 'CARPD_ERR_CONFIG_CONFLICT',
    line: 3,
  },
  {
    name: 'the same vhid on the legacy carp0 and as an alias of its parent',
    text: `${EM0}ifconfig_em0_alias0="inet vhid 1 alias 192.168.1.50/32"\ncloned_interfaces="carp0"\nifconfig_carp0="vhid 1 192.168.1.254/24"\n`,
    code: 'CARPD_ERR_VHID_DUPLICATE',
    line: 4,
  },
  { name: 'a vhid with no address', text: `${EM0}ifconfig_em0_alias0="inet vhid 1 pass x"\n`, code: 'CARPD_ERR_NO_ADDRESS', line: 2 },
  { name: 'a bad netmask', text: `${EM0}ifconfig_em0_alias0="inet vhid 1 alias 192.168.1.50 netmask 255.0.255.0"\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  // carpver 3 (VRRPv3) is supported since issue 11 (test/unit/vrrp-config.test.ts); ifconfig's own ranges stay errors.
  { name: 'carpver 4', text: `${EM0}ifconfig_em0_alias0="inet vhid 1 carpver 4 alias 192.168.1.50/32"\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  {
    name: 'vrrpinterval 4096',
    text: `${EM0}ifconfig_em0_alias0="inet vhid 1 carpver 3 vrrpinterval 4096 alias 192.168.1.50/32"\n`,
    code: 'CARPD_ERR_CONFIG_VALUE',
    line: 2,
  },
  {
    name: 'vrrpprio without carpver 3',
    text: `${EM0}ifconfig_em0_alias0="inet vhid 1 vrrpprio 200 alias 192.168.1.50/32"\n`,
    code: 'CARPD_ERR_CONFIG_CONFLICT',
    line: 2,
  },
  {
    // peer6 is supported since issue 11; a multicast one is a mistake (mcast6 is the word for that).
    name: 'a multicast IPv6 peer',
    text: `${EM0}ifconfig_em0_alias0="inet vhid 1 peer6 ff02::12 alias 192.168.1.50/32"\n`,
    code: 'CARPD_ERR_PEER',
    line: 2,
  },
  { name: 'a peer that is not an address', text: `${EM0}ifconfig_em0_alias0="inet vhid 1 peer fw2 alias 192.168.1.50/32"\n`, code: 'CARPD_ERR_PEER', line: 2 },
  { name: 'an unterminated quote', text: `${EM0}ifconfig_em0_alias0="inet vhid 1 alias 192.168.1.50/32\n`, code: 'CARPD_ERR_CONFIG_SYNTAX', line: 2 },
  {
    name: 'ucarp_pass and ucarp_passfile together',
    text: 'ucarp_if="em0"\nucarp_vhid="1"\nucarp_addr="10.0.0.1"\nucarp_pass="x"\nucarp_passfile="/nonexistent"\n',
    code: 'CARPD_ERR_CONFIG_CONFLICT',
    line: 5,
  },
  { name: 'a ucarp_addr that is not IPv4', text: 'ucarp_if="em0"\nucarp_vhid="1"\nucarp_addr="2001:db8::1"\n', code: 'CARPD_ERR_ADDRESS', line: 3 },
  { name: 'ucarp variables without ucarp_if', text: '\nucarp_vhid="1"\nucarp_addr="10.0.0.1"\n', code: 'CARPD_ERR_CONFIG_MISSING', line: 2 },
  {
    name: 'a password longer than 19 bytes',
    text: `${EM0}ifconfig_em0_alias0="inet vhid 1 pass twenty-bytes-secret! alias 192.168.1.50/32"\n`,
    code: 'CARPD_ERR_PASSWORD_LENGTH',
    line: 2,
  },
];

for (const c of rcErrors) {
  test(`rc.conf: ${c.name} is an error at its line`, (t) => {
    const { file, diags } = rcCheck(t, c.text);
    assertOneError(diags, c.code, file, c.line);
  });
}

test('rc.conf: a password over 19 bytes says the kernels truncate it, without showing it', (t) => {
  const { diags } = rcCheck(t, `${EM0}ifconfig_em0_alias0="inet vhid 1 pass twenty-bytes-secret! alias 192.168.1.50/32"\n`);
  assert.match(diags[0]!.message, /silently truncate it to 19 bytes/);
  assert.ok(!diags[0]!.message.includes('twenty-bytes-secret!'));
});

test('rc.conf: an unknown word on a line with a pass is not echoed', (t) => {
  const { diags } = rcCheck(t, `${EM0}ifconfig_em0_alias0="inet vhid 1 pass my secret alias 192.168.1.50/32"\n`);
  assert.equal(diags[0]!.code, 'CARPD_ERR_CONFIG_KEY');
  assert.ok(!diags[0]!.message.includes('secret'), diags[0]!.message);
});

test("rc.conf: a VIP outside its interface's subnet is a warning at the alias", (t) => {
  const { file, diags } = rcCheck(t, `${EM0}ifconfig_em0_alias0="inet vhid 1 alias 192.168.1.50/32"\nifconfig_em0_alias1="inet vhid 1 alias 10.9.9.9/32"\n`);
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_SUBNET', file, 3]]);
  assert.equal(diags[0]!.message, `10.9.9.9 is outside the subnet of em0 (192.168.1.3/24 at ${file}:1)`);
});

test('rc.conf: an alias after a gap in the numbering is ignored, as FreeBSD ignores it', (t) => {
  const { file, diags, model } = rcCheck(
    t,
    `${EM0}ifconfig_em0_alias0="inet vhid 1 alias 192.168.1.50/32"\nifconfig_em0_alias2="inet vhid 1 alias 192.168.1.52/32"\n`,
  );
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_IGNORED', file, 3]]);
  assert.match(diags[0]!.message, /ifconfig_em0_alias1/);
  assert.deepEqual(model.vhids[0]!.addresses, ['192.168.1.50/32']);
});

test('rc.conf: kld_list loading carp is a warning about protocol 112', (t) => {
  const { file, diags } = rcCheck(t, 'kld_list="pf carp"\n');
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_KERNEL_CARP', file, 1]]);
});

test('rc.conf: the same vhid on one segment through two interfaces is an error', (t) => {
  const { file, diags } = rcCheck(
    t,
    [
      'ifconfig_em0="inet 192.168.1.3/24"',
      'ifconfig_em1="inet 192.168.1.4/24"',
      'ifconfig_em0_alias0="inet vhid 1 alias 192.168.1.50/32"',
      'ifconfig_em1_alias0="inet vhid 1 alias 192.168.1.60/32"',
      '',
    ].join('\n'),
  );
  const d = assertOneError(diags, 'CARPD_ERR_VHID_SEGMENT', file, 4);
  assert.match(d.message, /same segment \(192\.168\.1\.[34]\/24\) as vhid 1 on em0/);
});

test('rc.conf: a legacy carp0 outside cloned_interfaces, and a clone without lines, are warnings', (t) => {
  const { file, diags } = rcCheck(t, `${EM0}cloned_interfaces="carp1"\nifconfig_carp0="vhid 1 192.168.1.254/24"\n`);
  assert.deepEqual(brief(diags), [
    ['warning', 'CARPD_WARN_IGNORED', file, 2],
    ['warning', 'CARPD_WARN_IGNORED', file, 3],
  ]);
});

test('rc.conf: ucarp_passfile is read like ucarp -o, relative to the rc.conf', (t) => {
  const tmp = tempDir(t);
  tmp.write('ucarp.pass', 'frompassfile\n');
  const rc = tmp.write('rc.conf', 'ucarp_if="em0"\nucarp_vhid="9"\nucarp_addr="10.0.0.9"\nucarp_passfile="ucarp.pass"\n', 0o644);
  const r = loadConfigFiles([rc]);
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.model.vhids[0]!.password, 'frompassfile');
  tmp.write('world.pass', 'x\n', 0o644);
  const rc2 = tmp.write('rc2.conf', 'ucarp_if="em0"\nucarp_vhid="9"\nucarp_addr="10.0.0.9"\nucarp_passfile="world.pass"\n');
  assertOneError(loadConfigFiles([rc2]).diagnostics, 'CARPD_ERR_PASSFILE_MODE', rc2, 4);
});

test('rc.conf: ucarp_enable and carpd_enable both on is a warning', (t) => {
  const { file, diags } = rcCheck(t, 'ucarp_enable="YES"\nucarp_if="em0"\nucarp_vhid="1"\nucarp_addr="10.0.0.1"\ncarpd_enable="YES"\n');
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_IGNORED', file, 5]]);
});

test('rc.conf: state is accepted and said to be ignored', (t) => {
  const { file, diags } = rcCheck(t, `${EM0}ifconfig_em0_alias0="inet vhid 1 state master alias 192.168.1.50/32"\n`);
  assert.deepEqual(brief(diags), [['warning', 'CARPD_WARN_IGNORED', file, 2]]);
});

test('loader.conf: carp_load and if_carp_load="YES" warn; "NO" does not', (t) => {
  const tmp = tempDir(t);
  const a = tmp.write('loader.conf', 'pf_load="YES"\nif_carp_load="YES"\n');
  assert.deepEqual(brief(loadConfigFiles([a]).diagnostics), [['warning', 'CARPD_WARN_KERNEL_CARP', a, 2]]);
  const b = tmp.write('loader.conf.local', 'carp_load="NO"\n');
  assert.deepEqual(loadConfigFiles([b]).diagnostics, []);
  const c = tmp.write('x.loader.conf', 'carp_load="maybe"\n');
  assertOneError(loadConfigFiles([c]).diagnostics, 'CARPD_ERR_CONFIG_VALUE', c, 1);
});

test('sysctl.conf: unknown CARP knobs and bad values are errors at their line; other sysctls are left alone', (t) => {
  const tmp = tempDir(t);
  const a = tmp.write('sysctl.conf', 'kern.foo=1\nnet.inet.carp.preemt=1\n');
  assertOneError(loadConfigFiles([a]).diagnostics, 'CARPD_ERR_CONFIG_KEY', a, 2);
  const b = tmp.write('b.sysctl.conf', '\nnet.inet.carp.preempt=2\n');
  assertOneError(loadConfigFiles([b]).diagnostics, 'CARPD_ERR_CONFIG_VALUE', b, 2);
  const c = tmp.write('c.sysctl.conf', 'net.inet.carp.log=9\n');
  assertOneError(loadConfigFiles([c]).diagnostics, 'CARPD_ERR_CONFIG_VALUE', c, 1);
  const d = tmp.write('d.sysctl.conf', 'net.inet.carp.allow=0 # off\nnet.inet.carp.dscp=56\n');
  const r = loadConfigFiles([d]);
  assert.deepEqual(brief(r.diagnostics), [
    ['warning', 'CARPD_WARN_KERNEL_CARP', d, 1],
    ['warning', 'CARPD_WARN_IGNORED', d, 2],
  ]);
  assert.equal(r.model.global.allow, false);
  // A carpd.conf after it turns carpd back on; the override is said.
  const e = tmp.write('carpd.conf', '[carpd]\nallow = yes\n');
  const both = loadConfigFiles([d, e]);
  assert.equal(both.model.global.allow, true);
  assert.deepEqual(
    brief(both.diagnostics).map((x) => x[1]),
    ['CARPD_WARN_KERNEL_CARP', 'CARPD_WARN_IGNORED', 'CARPD_WARN_OVERRIDE'],
  );
});

test('a sysctl.conf and an rc.conf that disagree: the later file wins, with a warning', (t) => {
  const tmp = tempDir(t);
  const s = tmp.write('sysctl.conf', 'net.inet.carp.preempt=0\n');
  const rc = tmp.write('rc.conf', 'ucarp_if="em0"\nucarp_vhid="1"\nucarp_addr="10.0.0.1"\nucarp_preempt="YES"\n');
  const r = loadConfigFiles([s, rc]);
  assert.deepEqual(brief(r.diagnostics), [['warning', 'CARPD_WARN_OVERRIDE', rc, 4]]);
  assert.equal(r.model.global.preempt, true);
});
