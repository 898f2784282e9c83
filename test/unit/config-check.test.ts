import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCommand, configCommand } from '../../src/cli/check.js';
import { redactModel } from '../../src/config/redact.js';
import type { CarpModel } from '../../src/config/model.js';
import { capture, configFiles, type Command } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-config-check-');

const SECRET = 'Sw0rdfish!';
const GOOD = `[carpd]
preempt = yes
log = 2

[vhid.lan]
vhid = 1
interface = em0
address = 1.1.1.1
advskew = 100
pass = ${SECRET}

[vhid.open]
vhid = 2
interface = em0
address = 2.2.2.2/24
`;

test('check prints "configuration OK" and exits 0 for a good file', async (t) => {
  const file = tempDir(t).write('carpd.conf', GOOD.replace('address = 2.2.2.2/24\n', 'address = 2.2.2.2/24\npass = other\n'));
  assert.deepEqual(await capture(checkCommand, ['-c', file]), { code: 0, out: ['configuration OK'], err: [] });
});

test('check warns about a vhid without a password (anyone can forge its adverts) and still exits 0', async (t) => {
  const file = tempDir(t).write('carpd.conf', GOOD);
  assert.deepEqual(await capture(checkCommand, ['-c', file]), {
    code: 0,
    out: ['configuration OK'],
    err: [`${file}:12: warning: vhid 2 on em0 has no password: anyone on the segment can forge its adverts and take its addresses; set pass or passfile`],
  });
});

test('check prints FILE:LINE: message lines and exits 1 on errors', async (t) => {
  const file = tempDir(t).write('carpd.conf', '[vhid.a]\nvhid = 300\ninterface = em0\naddress = 10.0.0.1\nbogus = 1\n');
  const r = await capture(checkCommand, ['-c', file]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.out, []);
  assert.deepEqual(r.err, [`${file}:2: vhid must be 1..255, not 300`, `${file}:5: unknown key "bogus" in [vhid.a]`]);
});

test('check prints warnings and still exits 0', async (t) => {
  const file = tempDir(t).write('carpd.conf', `${GOOD}pass = other\ndownscript = down.sh\n`);
  const r = await capture(checkCommand, ['-c', file]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.out, ['configuration OK']);
  assert.equal(r.err.length, 1);
  assert.ok(r.err[0]!.startsWith(`${file}:17: warning: `), r.err[0]);
});

test('check takes several files and reports them in order', async (t) => {
  const tmp = tempDir(t);
  const a = tmp.write('a.conf', GOOD);
  const b = tmp.write('b.conf', '[vhid.again]\nvhid = 1\ninterface = em0\naddress = 3.3.3.3\n');
  const r = await capture(checkCommand, ['-c', a, '-c', b]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.err, [`${b}:1: vhid 1 on em0 is already defined at ${a}:5, differently (addresses, advskew, password)`]);
});

test('check and config without -c are usage errors (exit 2)', async () => {
  for (const cmd of [checkCommand, configCommand]) {
    const r = await capture(cmd, []);
    assert.equal(r.code, 2);
    assert.deepEqual(r.out, []);
    assert.match(r.err[0]!, /needs at least one -c FILE/);
  }
  assert.equal((await capture(checkCommand, ['-c', 'x.conf', '--show-secrets'])).code, 2);
});

test('config prints the model in DESIGN.md shape with the password redacted', async (t) => {
  const file = tempDir(t).write('carpd.conf', GOOD);
  const r = await capture(configCommand, ['-c', file]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.err, []);
  assert.equal(r.out.length, 1);
  assert.deepEqual(JSON.parse(r.out[0]!), {
    global: { allow: true, preempt: true, log: 2 },
    vhids: [
      {
        key: '1@em0',
        vhid: 1,
        interface: 'em0',
        addresses: ['1.1.1.1/32'],
        advbase: 1,
        advskew: 100,
        password: '<redacted>',
        source: 'carpd.conf:5',
        groups: ['carp'],
      },
      {
        key: '2@em0',
        vhid: 2,
        interface: 'em0',
        addresses: ['2.2.2.2/24'],
        advbase: 1,
        advskew: 0,
        password: null,
        source: 'carpd.conf:12',
        groups: ['carp'],
      },
    ],
  });
  assert.ok(r.out[0]!.includes('\n  "global"'), 'pretty-printed');
});

test('config --show-secrets shows the password', async (t) => {
  const file = tempDir(t).write('carpd.conf', GOOD);
  const r = await capture(configCommand, ['-c', file, '--show-secrets']);
  assert.equal(r.code, 0);
  assert.equal((JSON.parse(r.out[0]!) as { vhids: { password?: string }[] }).vhids[0]!.password, SECRET);
});

test('config exits 1 with diagnostics and no JSON on errors', async (t) => {
  const file = tempDir(t).write('carpd.conf', '[vhid.a]\nvhid = 1\ninterface = em0\n');
  const r = await capture(configCommand, ['-c', file]);
  assert.deepEqual(r, { code: 1, out: [], err: [`${file}:1: vhid 1 on em0 has no address`] });
});

test('the password never appears in check or config output, whatever goes wrong', async (t) => {
  const tmp = tempDir(t);
  const long = `${SECRET}-and-then-some`;
  const cases: [Command, string[]][] = [];
  const add = (name: string, text: string, mode = 0o600, extra: string[] = []) => {
    const f = tmp.write(name, text, mode);
    cases.push([checkCommand, ['-c', f, ...extra]], [configCommand, ['-c', f, ...extra]]);
  };
  add('good.conf', GOOD);
  add('world.conf', GOOD, 0o644);
  add('long.conf', GOOD.replace(SECRET, long));
  add('quoted-bad.conf', GOOD.replace(`pass = ${SECRET}`, `pass = "${SECRET}`));
  add('noeq.conf', `${GOOD}${SECRET}\n`);
  add('badkey.conf', `${GOOD}pass: ${SECRET} = x\n`);
  add('both.conf', `${GOOD.replace('[vhid.open]', `[vhid.open]\npass = ${SECRET}`)}passfile = /nonexistent\n`);
  add('plugin.conf', `${GOOD}[plugin.bgpd]\nfollow = node\npassword = ${SECRET}\n`);
  const pf = tmp.write('world.pass', `${SECRET}\n`, 0o644);
  add('pf.conf', GOOD.replace(`pass = ${SECRET}`, `passfile = ${pf}`));
  let failures = 0;
  for (const [cmd, args] of cases) {
    const r = await capture(cmd, args);
    if (r.code !== 0) failures++;
    const all = [...r.out, ...r.err].join('\n');
    assert.ok(!all.includes(SECRET), `${cmd.name} ${args.join(' ')} leaked the password:\n${all}`);
  }
  // Everything fails but good.conf (check and config) and plugin.conf's `config`: `check` also
  // loads the plugins, and bgpd refuses an option it does not know. The error paths really ran.
  assert.equal(failures, cases.length - 3);
});

test('redactModel marks a set password, nulls an empty one, and hides secret-looking extra keys', () => {
  const model: CarpModel = {
    global: { allow: true, preempt: false, log: 2 },
    vhids: [
      {
        key: '1@em0',
        vhid: 1,
        interface: 'em0',
        addresses: ['10.0.0.1/32'],
        advbase: 1,
        advskew: 0,
        password: 'x',
        source: 'a:1',
        fieldSources: { header: { file: '/a', line: 1 } },
      },
      { key: '2@em0', vhid: 2, interface: 'em0', addresses: ['10.0.0.2/32'], advbase: 1, advskew: 0, password: '', source: 'a:5' },
    ],
    extra: [
      {
        name: 'plugin.bgpd',
        source: '/a:9',
        entries: [
          { key: 'md5_password', value: 'x', source: '/a:10' },
          { key: 'follow', value: 'lan', source: '/a:11' },
        ],
      },
    ],
  };
  const r = redactModel(model, false);
  assert.deepEqual(
    r.vhids.map((v) => v.password),
    ['<redacted>', null],
  );
  assert.ok(!('fieldSources' in r.vhids[0]!));
  assert.deepEqual(r.extra, [
    {
      name: 'plugin.bgpd',
      source: '/a:9',
      entries: [
        { key: 'md5_password', value: '<redacted>' },
        { key: 'follow', value: 'lan' },
      ],
    },
  ]);
  assert.deepEqual(
    redactModel(model, true).vhids.map((v) => v.password),
    ['x', null],
  );
});
