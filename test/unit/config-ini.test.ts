import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCarpdIni } from '../../src/config/carpd-ini.js';
import { tokenizeIni } from '../../src/config/ini-lexer.js';
import { formatDiagnostic, type Diagnostic } from '../../src/config/errors.js';
import { detectFormat } from '../../src/config/load.js';
import { loadConfigFiles, readPassfile } from '../../src/adapters/config-files.js';
import { validCron } from '../../src/adapters/cron.js';
import type { CarpModel } from '../../src/config/model.js';
import { validateModel } from '../../src/config/validate.js';
import { assertOneError, configFiles, errorsOf, withoutFieldSources } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-config-ini-');

const REALISTIC = `# carpd.conf for fw1
;  two firewalls, two segments

[carpd]                 ; globals
preempt=YES
log =   3
  control   =   /run/carpd.sock   # where carpctl talks
master_down = openbsd
ifdown_demotion = 240

[ vhid.lan ]            ; the inside
vhid = 1
\tinterface = eth0
address = 192.168.1.254/24
address = 192.168.1.253 , 2001:db8::fe/64   ; second and third
address=fe80::1
advbase = 1
advskew = 100
passfile = lan.pass      ; relative to this file
group = uplink,dmz

[vhid.wan]
vhid=7
interface=eth1
address = 203.0.113.10
pass = "se;cret#7"       ; quoted, so ; and # are part of it
peer = 203.0.113.3
srcip = 203.0.113.2
upscript = /etc/carpd/up.sh
downscript = /etc/carpd/down.sh
xparam = wan

[plugin.httpd]
follow = lan
port = 8080
[maintenance]
`;

test('a realistic carpd.conf becomes the expected model', (t) => {
  const tmp = tempDir(t);
  tmp.write('lan.pass', 'lanpass\r\nignored second line\n');
  const file = tmp.write('carpd.conf', REALISTIC);
  const { model, diagnostics } = loadConfigFiles([file]);
  assert.deepEqual(diagnostics, []);
  const expected: CarpModel = {
    global: {
      allow: true,
      preempt: true,
      log: 3,
      control: '/run/carpd.sock',
      masterDown: 'openbsd',
      ifdownDemotion: 240,
    },
    vhids: [
      {
        key: '1@eth0',
        vhid: 1,
        interface: 'eth0',
        addresses: ['192.168.1.254/24', '192.168.1.253/32', '2001:db8::fe/64', 'fe80::1/128'],
        advbase: 1,
        advskew: 100,
        password: 'lanpass',
        source: 'carpd.conf:11',
        groups: ['carp', 'uplink', 'dmz'],
      },
      {
        key: '7@eth1',
        vhid: 7,
        interface: 'eth1',
        addresses: ['203.0.113.10/32'],
        advbase: 1,
        advskew: 0,
        password: 'se;cret#7',
        source: 'carpd.conf:22',
        groups: ['carp'],
        peer: '203.0.113.3',
        srcip: '203.0.113.2',
        upscript: '/etc/carpd/up.sh',
        downscript: '/etc/carpd/down.sh',
        xparam: 'wan',
      },
    ],
    extra: [
      {
        name: 'plugin.httpd',
        source: `${file}:33`,
        entries: [
          { key: 'follow', value: 'lan', source: `${file}:34` },
          { key: 'port', value: '8080', source: `${file}:35` },
        ],
      },
      { name: 'maintenance', source: `${file}:36`, entries: [] },
    ],
    plugins: [{ name: 'httpd', follow: { kind: 'vhid', ref: '1@eth0' }, options: { port: '8080' }, source: `${file}:33` }],
    maintenance: { source: `${file}:36` },
  };
  assert.deepEqual(withoutFieldSources(model), expected);
  assert.deepEqual(model.vhids[0]!.fieldSources?.['addresses.2'], { file, line: 15 });
  assert.deepEqual(model.vhids[1]!.fieldSources?.password, { file, line: 26 });
});

test('the sample configuration in etc/ parses once its passfile exists', () => {
  // dist/test/unit → the repository root
  const text = readFileSync(new URL('../../../etc/carpd.conf.sample', import.meta.url), 'utf8');
  const r = parseCarpdIni(text, 'carpd.conf.sample', { readPassfile: () => ({ ok: true, password: 'lanpass' }), validCron });
  assert.deepEqual(errorsOf([...r.diagnostics, ...validateModel(r.model)]), []);
  assert.deepEqual(
    r.model.vhids.map((v) => v.key),
    ['1@eth0', '2@eth1'],
  );
  assert.deepEqual(
    r.model.extra?.map((s) => s.name),
    ['group.uplink', 'plugin.httpd', 'plugin.script', 'health.web', 'health.bgp', 'maintenance'],
  );
  assert.deepEqual(
    r.model.plugins?.map((p) => p.name),
    ['httpd', 'script'],
  );
  assert.deepEqual(
    r.model.health?.map((h) => h.name),
    ['web', 'bgp'],
  );
  assert.deepEqual(
    r.model.groups?.map((g) => g.name),
    ['uplink'],
  );
  assert.ok(r.model.maintenance?.enter !== undefined);
  // Every key the sample documents is one carpd.conf knows: nothing unknown was reported above,
  // and every [carpd] key is set.
  assert.deepEqual(Object.keys(r.globalSet).sort(), [
    'allow',
    'control',
    'demotion',
    'garpRefresh',
    'hookTimeoutMs',
    'ifdownDemotion',
    'log',
    'masterDown',
    'metrics',
    'pluginDir',
    'prePhaseBudgetMs',
    'preempt',
    'replayProtection',
    'senderrDemotion',
    'stateDir',
    'templateDir',
  ]);
});

test('CRLF line endings keep line numbers', () => {
  const r = parseCarpdIni('[carpd]\r\npreempt = maybe\r\n', 'crlf.conf', { readPassfile, validCron });
  assertOneError(r.diagnostics, 'CARPD_ERR_CONFIG_VALUE', 'crlf.conf', 2);
});

test('the tokenizer reports header comments, quoting and bad lines with their line numbers', () => {
  const toks = tokenizeIni("[a] ; c\nk = 'x;y' # c\nk2 = \"unterminated\nnot a pair\n[b\n");
  assert.deepEqual(toks, [
    { kind: 'section', name: 'a', line: 1 },
    { kind: 'entry', key: 'k', value: 'x;y', line: 2 },
    { kind: 'error', message: 'unterminated quoted value for "k2"', line: 3 },
    { kind: 'error', message: 'expected "key = value"', line: 4 },
    { kind: 'error', message: 'unterminated section header', line: 5 },
  ]);
});

/** Parses and validates `text` as `f.conf`, the way loadConfig would. */
function check(text: string): Diagnostic[] {
  const r = parseCarpdIni(text, 'f.conf', { readPassfile, validCron });
  return [...r.diagnostics, ...validateModel(r.model)];
}

const VHID_OK = '[vhid.a]\nvhid = 1\ninterface = eth0\naddress = 10.0.0.1\n';

const errorCases: { name: string; text: string; code: string; line: number }[] = [
  { name: 'an unknown section', text: `${VHID_OK}[vrrp]\nx = 1\n`, code: 'CARPD_ERR_CONFIG_SECTION', line: 5 },
  { name: 'an unknown key in a vhid', text: `${VHID_OK}advskw = 10\n`, code: 'CARPD_ERR_CONFIG_KEY', line: 5 },
  { name: 'an unknown key in [carpd]', text: `[carpd]\npreempt = no\nfoo = 1\n`, code: 'CARPD_ERR_CONFIG_KEY', line: 3 },
  { name: 'a key before any section', text: `vhid = 1\n${VHID_OK}`, code: 'CARPD_ERR_CONFIG_SYNTAX', line: 1 },
  { name: 'a line without "="', text: `${VHID_OK}justaword\n`, code: 'CARPD_ERR_CONFIG_SYNTAX', line: 5 },
  { name: 'preempt that is not a boolean', text: `[carpd]\npreempt = maybe\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  { name: 'log above 7', text: `[carpd]\n\nlog = 8\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 3 },
  { name: 'an unknown master_down', text: `[carpd]\nmaster_down = linux\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  { name: 'ifdown_demotion above 255', text: `[carpd]\nifdown_demotion = 256\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  { name: 'vhid 0', text: '[vhid.a]\ninterface = eth0\nvhid = 0\naddress = 10.0.0.1\n', code: 'CARPD_ERR_VHID', line: 3 },
  { name: 'vhid 256', text: '[vhid.a]\nvhid = 256\ninterface = eth0\naddress = 10.0.0.1\n', code: 'CARPD_ERR_VHID', line: 2 },
  { name: 'a vhid that is not a number', text: '[vhid.a]\nvhid = one\ninterface = eth0\naddress = 10.0.0.1\n', code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  { name: 'advskew 255', text: `${VHID_OK}advskew = 255\n`, code: 'CARPD_ERR_ADVSKEW', line: 5 },
  { name: 'advbase 0', text: `${VHID_OK}\nadvbase = 0\n`, code: 'CARPD_ERR_ADVBASE', line: 6 },
  { name: 'a missing vhid', text: '\n[vhid.a]\ninterface = eth0\naddress = 10.0.0.1\n', code: 'CARPD_ERR_CONFIG_MISSING', line: 2 },
  { name: 'a missing interface', text: '[vhid.a]\nvhid = 3\naddress = 10.0.0.1\n', code: 'CARPD_ERR_CONFIG_MISSING', line: 1 },
  { name: 'a vhid without address', text: '[carpd]\n[vhid.a]\nvhid = 3\ninterface = eth0\n', code: 'CARPD_ERR_NO_ADDRESS', line: 2 },
  { name: 'an invalid address', text: `${VHID_OK}address = 10.0.0.2/24\naddress = 10.0.0.300/24\n`, code: 'CARPD_ERR_ADDRESS', line: 6 },
  { name: 'a prefix too long', text: `${VHID_OK}address = 10.0.0.2/33\n`, code: 'CARPD_ERR_ADDRESS', line: 5 },
  { name: 'an empty item in an address list', text: `${VHID_OK}address = 10.0.0.2,,10.0.0.3\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 5 },
  { name: 'a repeated single key', text: `${VHID_OK}advskew = 1\nadvskew = 2\n`, code: 'CARPD_ERR_CONFIG_DUPLICATE', line: 6 },
  { name: 'a repeated section', text: `${VHID_OK}[vhid.a]\nvhid = 2\n`, code: 'CARPD_ERR_CONFIG_DUPLICATE', line: 5 },
  { name: 'pass and passfile together', text: `${VHID_OK}pass = x\npassfile = /nonexistent\n`, code: 'CARPD_ERR_CONFIG_CONFLICT', line: 6 },
  { name: 'a peer that is not IPv4', text: `${VHID_OK}peer = 2001:db8::1\n`, code: 'CARPD_ERR_PEER', line: 5 },
  { name: 'a group ending in a digit', text: `${VHID_OK}group = lan1\n`, code: 'CARPD_ERR_GROUP', line: 5 },
  { name: 'an empty value', text: `${VHID_OK}upscript =\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 5 },
  {
    name: 'an interface name too long',
    text: '[vhid.a]\nvhid = 1\ninterface = averyveryverylongname0\naddress = 10.0.0.1\n',
    code: 'CARPD_ERR_INTERFACE',
    line: 3,
  },
  {
    name: 'the same vhid twice on one interface',
    text: `${VHID_OK}[vhid.b]\nvhid = 1\ninterface = eth1\naddress = 10.1.0.1\n[vhid.c]\nvhid = 1\ninterface = eth0\naddress = 10.0.0.9\n`,
    code: 'CARPD_ERR_VHID_DUPLICATE',
    line: 9,
  },
];

for (const c of errorCases) {
  test(`${c.name} is an error at its file and line`, () => {
    assertOneError(check(c.text), c.code, 'f.conf', c.line);
  });
}

test('an IPv4/IPv6 mix in one vhid is fine', () => {
  assert.deepEqual(check(`${VHID_OK}address = 2001:db8::1/64, 10.0.0.2/24\n`), []);
});

test('a password longer than 19 bytes is an error that does not echo it', () => {
  const secret = 'twenty-bytes-secret!';
  assert.equal(Buffer.byteLength(secret), 20);
  const d = assertOneError(check(`${VHID_OK}pass = ${secret}\n`), 'CARPD_ERR_PASSWORD_LENGTH', 'f.conf', 5);
  assert.ok(!d.message.includes(secret));
  assert.match(d.message, /19 bytes/);
  assert.deepEqual(check(`${VHID_OK}pass = ${secret.slice(0, 19)}\n`), []);
});

test('a multi-byte password is measured in bytes, not characters', () => {
  // 10 characters, 20 bytes in UTF-8.
  assertOneError(check(`${VHID_OK}pass = ${'é'.repeat(10)}\n`), 'CARPD_ERR_PASSWORD_LENGTH', 'f.conf', 5);
});

test('an address listed twice, or in two vhids, is a warning only', () => {
  const diags = check(`${VHID_OK}address = 10.0.0.1/24\n[vhid.b]\nvhid = 2\ninterface = eth0\naddress = 10.0.0.1\n`);
  assert.deepEqual(errorsOf(diags), []);
  assert.deepEqual(
    diags.map((d) => [d.code, d.line]),
    [
      ['CARPD_WARN_ADDRESS_DUPLICATE', 5],
      ['CARPD_WARN_ADDRESS_DUPLICATE', 9],
    ],
  );
});

test('a relative upscript is a warning', () => {
  const diags = check(`${VHID_OK}upscript = up.sh\n`);
  assert.deepEqual(
    diags.map((d) => [d.severity, d.code, d.line]),
    [['warning', 'CARPD_WARN_SCRIPT_PATH', 5]],
  );
  assert.equal(formatDiagnostic(diags[0]!), 'f.conf:5: warning: upscript "up.sh" is not an absolute path; it is looked up from carpd\'s working directory');
});

test('an inline pass in a world-readable file is an error on the pass line', (t) => {
  const tmp = tempDir(t);
  const file = tmp.write('carpd.conf', `${VHID_OK}pass = hunter2\n`, 0o644);
  const d = assertOneError(loadConfigFiles([file]).diagnostics, 'CARPD_ERR_CONFIG_MODE', file, 5);
  assert.ok(!d.message.includes('hunter2'));
  assert.match(d.message, /0644/);
  chmodSync(file, 0o640);
  assert.deepEqual(loadConfigFiles([file]).diagnostics, []);
});

test('a world-readable file without a pass is fine', (t) => {
  const tmp = tempDir(t);
  const file = tmp.write('carpd.conf', VHID_OK, 0o644);
  assert.deepEqual(loadConfigFiles([file]).diagnostics, []);
});

test('a world-readable passfile is refused on the passfile line, without its content', (t) => {
  const tmp = tempDir(t);
  const pf = tmp.write('p.pass', 'topsecret\n', 0o644);
  const file = tmp.write('carpd.conf', `${VHID_OK}passfile = ${pf}\n`);
  const d = assertOneError(loadConfigFiles([file]).diagnostics, 'CARPD_ERR_PASSFILE_MODE', file, 5);
  assert.ok(d.message.includes(pf));
  assert.ok(!d.message.includes('topsecret'));
});

test('a missing passfile is an error on the passfile line', (t) => {
  const tmp = tempDir(t);
  const file = tmp.write('carpd.conf', `${VHID_OK}\npassfile = nope.pass\n`);
  assertOneError(loadConfigFiles([file]).diagnostics, 'CARPD_ERR_PASSFILE', file, 6);
});

test('an empty passfile is an error', (t) => {
  const tmp = tempDir(t);
  tmp.write('empty.pass', '\n');
  const file = tmp.write('carpd.conf', `${VHID_OK}passfile = empty.pass\n`);
  assertOneError(loadConfigFiles([file]).diagnostics, 'CARPD_ERR_CONFIG_VALUE', file, 5);
});

test('no pass and no passfile means the empty password', () => {
  const r = parseCarpdIni(VHID_OK, 'f.conf', { readPassfile, validCron });
  assert.equal(r.model.vhids[0]!.password, '');
});

test('several files merge: [carpd] keys from the last that sets them, vhids concatenated', (t) => {
  const tmp = tempDir(t);
  const a = tmp.write('a.conf', `[carpd]\npreempt = yes\nlog = 5\n${VHID_OK}`);
  const b = tmp.write('b.conf', '[carpd]\nlog = 1\n[vhid.b]\nvhid = 2\ninterface = eth0\naddress = 10.0.0.2\n');
  const { model, diagnostics } = loadConfigFiles([a, b]);
  // A changed value is said, at the line that changes it.
  assert.deepEqual(
    diagnostics.map((d) => [d.severity, d.code, d.file, d.line]),
    [['warning', 'CARPD_WARN_OVERRIDE', b, 2]],
  );
  assert.equal(diagnostics[0]!.message, `log overrides the value set at ${a}:3`);
  assert.deepEqual(model.global, { allow: true, preempt: true, log: 1 });
  assert.deepEqual(
    model.vhids.map((v) => [v.key, v.source]),
    [
      ['1@eth0', 'a.conf:4'],
      ['2@eth0', 'b.conf:3'],
    ],
  );
});

test('the same vhid defined differently in two files is an error in the second file', (t) => {
  const tmp = tempDir(t);
  const a = tmp.write('a.conf', VHID_OK);
  const b = tmp.write('b.conf', `\n\n${VHID_OK}advskew = 100\n`);
  const d = assertOneError(loadConfigFiles([a, b]).diagnostics, 'CARPD_ERR_CONFIG_CONFLICT', b, 3);
  assert.equal(d.message, `vhid 1 on eth0 is already defined at ${a}:1, differently (advskew)`);
});

test('the same vhid defined identically in two files is a warning, and counted once', (t) => {
  const tmp = tempDir(t);
  const a = tmp.write('a.conf', VHID_OK);
  const b = tmp.write('b.conf', `\n\n${VHID_OK}`);
  const r = loadConfigFiles([a, b]);
  assert.deepEqual(
    r.diagnostics.map((d) => [d.severity, d.code, d.file, d.line]),
    [['warning', 'CARPD_WARN_DUPLICATE', b, 3]],
  );
  assert.equal(r.model.vhids.length, 1);
});

test('a file that is not carpd.conf is an unknown format at line 1', (t) => {
  const tmp = tempDir(t);
  const rc = tmp.write('notes.txt', 'hello\n');
  const d = assertOneError(loadConfigFiles([rc]).diagnostics, 'CARPD_ERR_CONFIG_FORMAT', rc, 1);
  assert.equal(formatDiagnostic(d), `${rc}:1: unknown configuration format`);
  const forced = assertOneError(loadConfigFiles([rc], { format: 'pfsense' }).diagnostics, 'CARPD_ERR_CONFIG_FORMAT', rc, 1);
  assert.equal(forced.message, 'unknown configuration format "pfsense"');
});

test('a missing file is a whole-file error (FILE: cannot read: …, line 0)', (t) => {
  const tmp = tempDir(t);
  const missing = join(tmp.dir, 'missing.conf');
  assertOneError(loadConfigFiles([missing]).diagnostics, 'CARPD_ERR_CONFIG_READ', missing, 0);
});

test('the format is detected by sections or by extension', () => {
  assert.equal(detectFormat('/etc/carpd/cluster', '# x\n[vhid.a]\n'), 'carpd');
  assert.equal(detectFormat('x.ini', '[plugin.a]\n'), 'carpd');
  assert.equal(detectFormat('x.conf', '; only comments\n'), 'carpd');
  assert.equal(detectFormat('notes.txt', 'hello\n'), undefined);
  assert.equal(detectFormat('x.conf', 'a = b\n'), undefined);
});

test('diagnostics come in file and line order', (t) => {
  const tmp = tempDir(t);
  const file = tmp.write('c.conf', '[vhid.a]\nvhid = 1\ninterface = eth0\nbogus = 1\nadvskew = 999\n');
  const lines = loadConfigFiles([file]).diagnostics.map((d) => d.line);
  assert.deepEqual(lines, [1, 4, 5]);
});
