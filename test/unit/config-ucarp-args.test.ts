import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/errors.js';
import { parseUcarpArgs, type UcarpArgs } from '../../src/config/ucarp-args.js';
import { readPassfile } from '../../src/adapters/config-files.js';
import { configFiles } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-ucarp-args-');

function run(argv: string[]): Extract<UcarpArgs, { kind: 'run' }> {
  const r = parseUcarpArgs(argv, { readPassfile });
  assert.equal(r.kind, 'run');
  return r as Extract<UcarpArgs, { kind: 'run' }>;
}

/** Asserts that parsing throws a ConfigError with `code`; returns it. */
function rejects(argv: string[], code: string): ConfigError {
  let caught: unknown;
  try {
    parseUcarpArgs(argv, { readPassfile });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${JSON.stringify(argv)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.file, 'argv');
  return caught;
}

const BASE = ['-i', 'eth0', '-s', '10.1.1.1', '-v', '42', '-a', '10.1.1.252'];

test("ucarp's documented example becomes one vhid with scripts", () => {
  const { model, options } = run([
    '-i',
    'eth0',
    '-s',
    '10.1.1.1',
    '-v',
    '42',
    '-p',
    'love',
    '-a',
    '10.1.1.252',
    '--upscript=/etc/vip-up.sh',
    '--downscript=/etc/vip-down.sh',
  ]);
  assert.deepEqual(model, {
    global: { allow: true, preempt: false, log: 2 },
    vhids: [
      {
        key: '42@eth0',
        vhid: 42,
        interface: 'eth0',
        addresses: ['10.1.1.252/32'],
        advbase: 1,
        advskew: 0,
        password: 'love',
        source: 'argv',
        groups: ['carp'],
        srcip: '10.1.1.1',
        deadRatio: 3,
        upscript: '/etc/vip-up.sh',
        downscript: '/etc/vip-down.sh',
      },
    ],
  });
  assert.deepEqual(options, {
    preempt: false,
    neutral: false,
    shutdown: false,
    deadratio: 3,
    daemonize: false,
    facility: 'daemon',
    ignoreifstate: false,
    nomcast: false,
    mcast: '224.0.0.18',
    debug: false,
    passOnArgv: true,
    warnings: ['the password was given with -p/--pass and is visible in ps; use -o/--passfile'],
  });
  assert.ok(!options.warnings.join(' ').includes('love'));
});

test('combined and attached short options parse like getopt', (t) => {
  const pf = tempDir(t).write('vip.pass', 'fromfile\r\n');
  const { model, options } = run([
    '-PznBSMD',
    '-v042',
    '-ieth1',
    '-s10.0.0.2',
    '-a',
    '10.0.0.100',
    '-o',
    pf,
    '-k0x10',
    '-b2',
    '-r5',
    '-fLOCAL3',
    '-x',
    'extra',
    '-m',
    '239.1.1.1',
    '-u/bin/up',
    '-d',
    '/bin/down',
  ]);
  const v = model.vhids[0]!;
  // strtoul(…, 0) as in ucarp: 042 is octal, 0x10 hex.
  assert.deepEqual(
    [v.key, v.vhid, v.advskew, v.advbase, v.password, v.xparam, v.upscript, v.downscript],
    ['34@eth1', 34, 16, 2, 'fromfile', 'extra', '/bin/up', '/bin/down'],
  );
  assert.equal(model.global.preempt, true);
  assert.equal(model.global.log, 7);
  assert.deepEqual(
    { ...options, warnings: undefined },
    {
      preempt: true,
      neutral: true,
      shutdown: true,
      deadratio: 5,
      daemonize: true,
      facility: 'local3',
      ignoreifstate: true,
      nomcast: true,
      mcast: '239.1.1.1',
      debug: true,
      passfile: pf,
      passOnArgv: false,
      warnings: undefined,
    },
  );
  assert.deepEqual(options.warnings, []);
});

test('long options take =value or the next argument, and unambiguous prefixes', () => {
  const { model, options } = run([
    '--interface',
    'eth2',
    '--srcip=10.0.0.2',
    '--vhid',
    '7',
    '--pass=pw',
    '--addr=10.0.0.9',
    '--advskew',
    '100',
    '--mcast=239.0.0.5',
    '--preempt',
    '--neut',
    '--xparam=x',
  ]);
  assert.equal(model.vhids[0]!.key, '7@eth2');
  assert.equal(model.vhids[0]!.advskew, 100);
  assert.equal(options.mcast, '239.0.0.5');
  assert.equal(options.neutral, true);
  assert.equal(run([...BASE, '-p', 'pw', '--mcastip', '239.0.0.6']).options.mcast, '239.0.0.6');
  assert.equal(run([...BASE, '-p', 'pw', '--mcastip', '239.0.0.6']).options.warnings.length, 3);
});

test('an ambiguous long prefix is a usage error that does not echo its value', () => {
  const e = rejects([...BASE, '--pas=sekrit'], 'CARPD_ERR_USAGE');
  assert.match(e.message, /ambiguous/);
  assert.ok(!e.message.includes('sekrit'));
});

test('-o with a world-readable file is refused without showing the password', (t) => {
  const pf = tempDir(t).write('vip.pass', 'hunter2\n', 0o644);
  const e = rejects([...BASE, '-o', pf], 'CARPD_ERR_PASSFILE_MODE');
  assert.ok(e.message.includes(pf));
  assert.ok(e.message.includes('0644'));
  assert.ok(!e.message.includes('hunter2'));
});

test('-o with a missing file is refused', () => {
  rejects([...BASE, '--passfile=/nonexistent/carpd/vip.pass'], 'CARPD_ERR_PASSFILE');
});

test('-p before -o still flags the secret as seen in argv', (t) => {
  const pf = tempDir(t).write('vip.pass', 'filepw');
  const { model, options } = run([...BASE, '-p', 'argvpw', '-o', pf]);
  assert.equal(model.vhids[0]!.password, 'filepw');
  assert.equal(options.passOnArgv, true);
});

for (const [name, argv] of [
  ['-s', ['-i', 'eth0', '-v', '1', '-p', 'pw', '-a', '10.0.0.1']],
  ['-v', ['-i', 'eth0', '-s', '10.0.0.2', '-p', 'pw', '-a', '10.0.0.1']],
  ['-a', ['-i', 'eth0', '-s', '10.0.0.2', '-v', '1', '-p', 'pw']],
  ['a password', ['-i', 'eth0', '-s', '10.0.0.2', '-v', '1', '-a', '10.0.0.1']],
  ['a non-empty password', [...BASE, '-p', '']],
  ['-i (without a default interface)', ['-s', '10.0.0.2', '-v', '1', '-p', 'pw', '-a', '10.0.0.1']],
] as const) {
  test(`leaving out ${name} is a usage error`, () => {
    rejects([...argv], 'CARPD_ERR_USAGE');
  });
}

test('without -i, the caller-supplied default interface is used, as ucarp uses pcap_lookupdev', () => {
  const r = parseUcarpArgs(['-s', '10.0.0.2', '-v', '1', '-p', 'pw', '-a', '10.0.0.1'], { defaultInterface: () => 'ens3', readPassfile });
  assert.equal(r.kind === 'run' && r.model.vhids[0]!.key, '1@ens3');
});

test('a password over 19 bytes is refused without echoing it', () => {
  const e = rejects([...BASE, '-p', 'a-twenty-byte-secret'], 'CARPD_ERR_PASSWORD_LENGTH');
  assert.ok(!e.message.includes('a-twenty-byte-secret'));
  assert.equal(run([...BASE, '-p', 'a-19-byte-password!']).model.vhids[0]!.password.length, 19);
});

test('out-of-range and malformed values are refused with their codes', () => {
  rejects(['-v', '256', ...BASE.slice(0, 4), '-a', '10.1.1.252', '-p', 'pw'], 'CARPD_ERR_VHID');
  rejects([...BASE, '-p', 'pw', '-v', '0'], 'CARPD_ERR_VHID');
  rejects([...BASE, '-p', 'pw', '-v', '12abc'], 'CARPD_ERR_VHID');
  rejects([...BASE, '-p', 'pw', '-k', '255'], 'CARPD_ERR_ADVSKEW');
  rejects([...BASE, '-p', 'pw', '-b', '256'], 'CARPD_ERR_ADVBASE');
  rejects([...BASE, '-p', 'pw', '-b', '0', '-k', '0'], 'CARPD_ERR_USAGE');
  rejects([...BASE, '-p', 'pw', '-a', '10.1.1.999'], 'CARPD_ERR_ADDRESS');
  rejects([...BASE, '-p', 'pw', '-s', 'host.example'], 'CARPD_ERR_SRCIP');
  rejects([...BASE, '-p', 'pw', '-r', '0'], 'CARPD_ERR_USAGE');
  rejects([...BASE, '-p', 'pw', '-f', 'nosuchfacility'], 'CARPD_ERR_USAGE');
});

test('getopt errors are usage errors', () => {
  rejects([...BASE, '-p', 'pw', '-q'], 'CARPD_ERR_USAGE');
  rejects([...BASE, '-p', 'pw', '--bogus'], 'CARPD_ERR_USAGE');
  rejects([...BASE, '-p', 'pw', '--preempt=yes'], 'CARPD_ERR_USAGE');
  rejects([...BASE, '-p'], 'CARPD_ERR_USAGE');
  rejects([...BASE, '-p', 'pw', '--xparam'], 'CARPD_ERR_USAGE');
});

test('a stray operand is a usage error that does not echo it', () => {
  const e = rejects([...BASE, '-p', 'pw', 'maybe-a-secret'], 'CARPD_ERR_USAGE');
  assert.ok(!e.message.includes('maybe-a-secret'));
});

test('-h, --help and no arguments ask for the usage text', () => {
  for (const argv of [['-h'], ['--help'], [], ['-Ph']]) {
    const r = parseUcarpArgs(argv, { readPassfile });
    assert.equal(r.kind, 'help');
    assert.ok(r.kind === 'help' && r.usage.includes('--passfile=<file> (-o <file>)'));
  }
});
