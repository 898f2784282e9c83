/**
 * Config input that used to hang or explode (issue 10, defect 6): a FIFO or device given as a
 * config, passfile or sourced file; a `source DIR/*` fan-out; quadratic backslash continuations;
 * an 8 MB value echoed whole; thousands of diagnostics; and a re-assigned rc.conf variable that
 * silently dropped a vhid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkCommand } from '../../src/cli/check.js';
import { diskContext, loadConfigFiles } from '../../src/adapters/config-files.js';
import { formatDiagnostic } from '../../src/config/errors.js';
import { MAX_FILE_BYTES, MAX_INCLUDE_DEPTH, MAX_INCLUDES } from '../../src/config/limits.js';
import { parseFormat, type ConfigFormat } from '../../src/config/load.js';
import { capture, configFiles } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-config-limits-', { makeParents: true });

/** dist/src/adapters/config-files.js, for the child process below. */
const ADAPTER = fileURLToPath(new URL('../../src/adapters/config-files.js', import.meta.url));

/**
 * Loads `files` in a child node with a time limit, so that a load that blocks (open(2) or read(2)
 * of a FIFO waits for a writer that never comes) fails the test instead of hanging it. Returns
 * the formatted diagnostics, or fails saying it timed out.
 */
function loadInChild(files: string[], what = 'load'): string[] {
  const script =
    what === 'passfile'
      ? `import { readPassfile } from ${JSON.stringify(ADAPTER)};
         const r = readPassfile(process.argv[1]);
         process.stdout.write(JSON.stringify([r.ok ? 'ok' : r.message]));`
      : `import { loadConfigFiles } from ${JSON.stringify(ADAPTER)};
         import { formatDiagnostic } from ${JSON.stringify(ADAPTER.replace(/adapters\/config-files\.js$/, 'config/errors.js'))};
         const r = loadConfigFiles(process.argv.slice(1), { platform: 'linux' });
         process.stdout.write(JSON.stringify(r.diagnostics.map(formatDiagnostic)));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, ...files], { timeout: 10_000, encoding: 'utf8' });
  assert.equal(r.signal, null, `${what} of ${files.join(' ')} did not return within 10 s (killed by ${r.signal})`);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', ['-m', '0600', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mkfifo ${path}: ${r.stderr}`);
}

test('a FIFO given as the config is "FILE: not a regular file", at once', (t) => {
  const tmp = tempDir(t);
  const fifo = join(tmp.dir, 'carpd.conf');
  mkfifo(fifo);
  assert.deepEqual(loadInChild([fifo]), [`${fifo}: not a regular file`]);
});

test('a character device (/dev/zero) given as the config is "not a regular file", not an endless read', () => {
  assert.deepEqual(loadInChild(['/dev/zero']), ['/dev/zero: not a regular file']);
});

test('a FIFO given as the passfile is refused as not a regular file, at once', (t) => {
  const tmp = tempDir(t);
  const fifo = join(tmp.dir, 'pass');
  mkfifo(fifo);
  const [message] = loadInChild([fifo], 'passfile');
  assert.equal(message, `passfile ${fifo} is not a regular file`);
  // And through carpd.conf's passfile key.
  const conf = tmp.write('carpd.conf', `[vhid.a]\nvhid = 1\ninterface = eth0\naddress = 10.0.0.1/24\npassfile = ${fifo}\n`);
  const lines = loadInChild([conf]);
  assert.ok(
    lines.some((l) => l.startsWith(`${conf}:5: `) && l.includes('not a regular file')),
    lines.join('\n'),
  );
});

test('a FIFO named by `source` in interfaces is an error at the source line, at once', (t) => {
  const tmp = tempDir(t);
  const fifo = join(tmp.dir, 'interfaces.d', 'eth1');
  mkdirSync(join(tmp.dir, 'interfaces.d'));
  mkfifo(fifo);
  const main = tmp.write('interfaces', `source ${fifo}\niface eth0 inet static\n  address 10.0.0.2/24\n`);
  const lines = loadInChild([main]);
  assert.ok(lines.includes(`${main}:1: cannot read ${fifo}: not a regular file`), lines.join('\n'));
});

test('a file over the cap is "FILE: larger than N bytes" and is not read', (t) => {
  const tmp = tempDir(t);
  const big = tmp.write('carpd.conf', '');
  truncateSync(big, MAX_FILE_BYTES + 1); // sparse: nothing is written
  const diags = loadConfigFiles([big], { platform: 'linux' }).diagnostics.map(formatDiagnostic);
  assert.equal(diags.length, 1, diags.join('\n'));
  assert.ok(diags[0]!.startsWith(`${big}: larger than ${MAX_FILE_BYTES} bytes`), diags[0]);
  // Exactly at the cap is still read (it is empty padding, so it parses as an empty carpd.conf).
  truncateSync(big, MAX_FILE_BYTES);
  assert.ok(!loadConfigFiles([big], { platform: 'linux' }).diagnostics.some((d) => d.message.includes('larger than')));
});

test('`source DIR/*` fan-out: 8 files of 208 bytes that source each other are each read once', (t) => {
  const tmp = tempDir(t);
  const d = join(tmp.dir, 'd');
  for (let i = 0; i < 8; i++) {
    const text = `# file ${i}\nsource ${d}/*\niface eth${i} inet static\n address 10.0.${i}.2/24\n`;
    tmp.write(`d/f${i}`, text.padEnd(207, '#') + '\n');
  }
  const main = tmp.write('interfaces', `source ${d}/*\n`);
  const started = performance.now();
  const r = parseFormat('interfaces', `source ${d}/*\n`, main, diskContext(), 0o600);
  const ms = performance.now() - started;
  // Each file once: one interface address each, and each named once in included.
  assert.deepEqual(r.interfaces.map((a) => a.name).sort(), ['eth0', 'eth1', 'eth2', 'eth3', 'eth4', 'eth5', 'eth6', 'eth7']);
  assert.equal(new Set(r.included).size, 8);
  assert.equal(r.included.length, 8);
  // The loops are reported (a file that sources itself, directly or not), never more than 8 × 8.
  assert.ok(r.diagnostics.length > 0 && r.diagnostics.length <= 64, `${r.diagnostics.length} diagnostics`);
  assert.ok(r.diagnostics.every((d) => d.message.endsWith('is sourced in a loop')));
  assert.ok(ms < 2000, `${ms} ms`);
});

test('the same file sourced under another name (a symlink) is read once', (t) => {
  const tmp = tempDir(t);
  const real = tmp.write('eth1', 'iface eth1 inet static\n address 10.0.1.2/24\n');
  symlinkSync(real, join(tmp.dir, 'eth1-link'));
  const main = tmp.write('interfaces', `source eth1\nsource eth1-link\n`);
  const r = loadConfigFiles([main], { platform: 'linux' });
  assert.deepEqual(
    r.interfaces.map((a) => a.name),
    ['eth1'],
  );
});

test('sourcing nests at most MAX_INCLUDE_DEPTH deep and reads at most MAX_INCLUDES files', (t) => {
  const tmp = tempDir(t);
  // A chain f0 → f1 → … deeper than the cap.
  for (let i = 0; i < MAX_INCLUDE_DEPTH + 3; i++) tmp.write(`chain/f${i}`, `source f${i + 1}\niface e${i} inet static\n address 10.1.${i}.2/24\n`);
  tmp.write(`chain/f${MAX_INCLUDE_DEPTH + 3}`, '');
  const chain = loadConfigFiles([join(tmp.dir, 'chain/f0')], { format: 'interfaces', platform: 'linux' });
  const deep = chain.diagnostics.filter((d) => d.code === 'CARPD_ERR_CONFIG_LIMIT');
  assert.equal(deep.length, 1, chain.diagnostics.map(formatDiagnostic).join('\n'));
  assert.match(deep[0]!.message, new RegExp(`sourced more than ${MAX_INCLUDE_DEPTH} files deep`));
  assert.equal(deep[0]!.file, join(tmp.dir, `chain/f${MAX_INCLUDE_DEPTH}`));
  // A directory of more files than the cap.
  for (let i = 0; i < MAX_INCLUDES + 10; i++) tmp.write(`many/f${String(i).padStart(3, '0')}`, `iface m${i} inet manual\n`);
  const main = tmp.write('many.interfaces', `source-directory many\n`);
  const many = loadConfigFiles([main], { format: 'interfaces', platform: 'linux' });
  const over = many.diagnostics.filter((d) => d.code === 'CARPD_ERR_CONFIG_LIMIT');
  assert.equal(over.length, 1, many.diagnostics.map(formatDiagnostic).join('\n'));
  assert.equal(
    formatDiagnostic(over[0]!),
    `${main}:1: more than ${MAX_INCLUDES} files are sourced; ${join(tmp.dir, 'many', `f${String(MAX_INCLUDES).padStart(3, '0')}`)} and the rest are not read`,
  );
});

test('backslash continuations are joined in linear time (100,000 lines)', () => {
  const n = 100_000;
  const text = `iface eth0 inet static\n address 10.0.0.2/24\n dns-nameservers 10.0.0.53 \\\n${'  10.0.0.54 \\\n'.repeat(n)}  10.0.0.55\n`;
  const started = performance.now();
  const r = parseFormat('interfaces', text, '/nonexistent-carpd/interfaces', diskContext('/nonexistent-carpd'), 0o600);
  const ms = performance.now() - started;
  assert.deepEqual(
    r.interfaces.map((a) => a.cidr),
    ['10.0.0.2/24'],
  );
  // Quadratic joining took ~6 s here for 100k lines; linear takes tens of ms.
  assert.ok(ms < 1500, `${ms.toFixed(0)} ms for ${n} continuation lines`);
});

test('an 8 MB bad value is echoed as 80 characters and its size, in every format', () => {
  const huge = 'x'.repeat(8 << 20);
  const cases: [ConfigFormat, string, string][] = [
    ['carpd', 'carpd.conf', `[vhid.a]\nvhid = 1\ninterface = eth0\naddress = 10.0.0.1/24\nadvskew = ${huge}\n`],
    ['rc.conf', 'rc.conf', `ucarp_if="em0"\nucarp_vhid="${huge}"\nucarp_addr="10.0.0.1"\nucarp_pass="x"\n`],
    ['loader.conf', 'loader.conf', `carp_load="${huge}"\n`],
    ['sysctl.conf', 'sysctl.conf', `net.inet.carp.preempt=${huge}\n`],
    ['hostname', 'hostname.carp0', `10.0.0.1/24 carpdev em0 vhid ${huge}\n`],
    ['interfaces', 'interfaces', `iface eth0 inet static\n address 10.0.0.2/24\n ucarp-vid ${huge}\n ucarp-vip 10.0.0.1\n ucarp-password x\n`],
    ['sysconfig', 'vip-001.conf', `BIND_INTERFACE=eth0\nVIP_ADDRESS=${huge}\nPASSWORD=x\n`],
  ];
  const ctx = { ...diskContext('/nonexistent-carpd'), readPassfile: () => ({ ok: true as const, password: 'x' }) };
  for (const [format, name, text] of cases) {
    const r = parseFormat(format, text, `/nonexistent-carpd/${name}`, ctx, 0o600);
    const echoed = r.diagnostics.filter((d) => d.message.includes('xxxxxxxxxx'));
    assert.ok(echoed.length > 0, `${format}: the bad value is not named: ${r.diagnostics.map(formatDiagnostic).join(' | ').slice(0, 500)}`);
    for (const d of r.diagnostics) assert.ok(d.message.length <= 1100, `${format}: a ${d.message.length}-character message`);
    for (const d of echoed) assert.ok(d.message.includes(`${'x'.repeat(80)}… (${8 << 20} bytes)`), `${format}: ${d.message}`);
  }
});

test('garbage with an error on each of 5,000 lines reports 100 and counts the rest', (t) => {
  const tmp = tempDir(t);
  const file = tmp.write('rc.conf', 'not an assignment\n'.repeat(5000));
  const diags = loadConfigFiles([file], { platform: 'linux' }).diagnostics;
  assert.equal(diags.length, 101);
  const last = diags[100]!;
  assert.equal(last.severity, 'error');
  assert.equal(formatDiagnostic(last), `${file}:101: 4900 more: 4900 error(s) and 0 warning(s) not shown`);
});

test('200,000 bad lines (400 KB) load without overflowing the stack, and report 100 of them', (t) => {
  const tmp = tempDir(t);
  // Each line is an error in hostname.carp0; the loader used to push(...) them all as arguments,
  // and V8 takes some 120,000 at most.
  const file = tmp.write('hostname.carp0', 'x\n'.repeat(200_000));
  const diags = loadConfigFiles([file], { platform: 'linux' }).diagnostics;
  assert.equal(diags.length, 101);
  assert.match(diags[100]!.message, /^1999\d\d more: 1999\d\d error\(s\)/);
});

/**
 * After the FreeBSD Handbook's CARP example (two firewalls, em0 outside with vhid 1, em1 inside
 * with vhid 2): the second host's rc.conf was copied from the first and its inside interface
 * written as em0 again, so its ifconfig_em0 and ifconfig_em0_alias0 replace the outside ones and
 * vhid 1 is gone. sh takes the last value without a word.
 */
const HOST_A = `ifconfig_em0="inet 192.168.1.3 netmask 255.255.255.0"
ifconfig_em0_alias0="inet vhid 1 advskew 0 pass outside alias 192.168.1.50/32"
ifconfig_em1="inet 10.0.0.3/24"
ifconfig_em1_alias0="inet vhid 2 advskew 0 pass inside alias 10.0.0.50/32"
carpd_engine="carpd"
`;
const HOST_B = `ifconfig_em0="inet 192.168.1.4 netmask 255.255.255.0"
ifconfig_em0_alias0="inet vhid 1 advskew 100 pass outside alias 192.168.1.50/32"
# the inside interface
ifconfig_em0="inet 10.0.0.4/24"
ifconfig_em0_alias0="inet vhid 2 advskew 100 pass inside alias 10.0.0.50/32"
carpd_engine="carpd"
`;

test('a re-assigned rc.conf variable is a warning at FILE:LINE naming the line it overrides; check prints it', async (t) => {
  const tmp = tempDir(t);
  const b = tmp.write('b/rc.conf', HOST_B);
  const r = await capture(checkCommand, ['-c', b]);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.deepEqual(r.out, ['configuration OK']);
  assert.deepEqual(
    r.err.filter((l) => l.includes('assigned again')),
    [
      `${b}:4: warning: ifconfig_em0 is assigned again; this value replaces the one at line 1 (the last assignment wins, as in sh)`,
      `${b}:5: warning: ifconfig_em0_alias0 is assigned again; this value replaces the one at line 2 (the last assignment wins, as in sh)`,
    ],
  );
  // The peer check still names the vhid that vanished.
  const a = tmp.write('a/rc.conf', HOST_A);
  const peer = await capture(checkCommand, ['-c', a, '--peer', b]);
  assert.equal(peer.code, 1);
  assert.ok(
    peer.err.some((l) => l.includes('vhid 1')),
    peer.err.join('\n'),
  );
  // `+=` extends a value rather than replacing it: no warning.
  const c = tmp.write('c/rc.conf', 'ifconfig_em0="inet 10.0.0.4/24"\nifconfig_em0+="mtu 9000"\ncarpd_engine="carpd"\n');
  const plus = await capture(checkCommand, ['-c', c]);
  assert.ok(!plus.err.some((l) => l.includes('assigned again')), plus.err.join('\n'));
});

test('re-assignment warnings stop at 100 per file and count the rest', () => {
  const text = 'IPADDR=10.0.0.1\n'.repeat(1000);
  const r = parseFormat(
    'sysconfig',
    `BIND_INTERFACE=eth0\nVIP_ADDRESS=10.0.0.1\nPASSWORD=x\n${text}`,
    '/nonexistent-carpd/vip-001.conf',
    diskContext('/nonexistent-carpd'),
    0o600,
  );
  const w = r.diagnostics.filter((d) => d.code === 'CARPD_WARN_REASSIGNED');
  assert.equal(w.length, 101);
  assert.deepEqual([w[100]!.line, w[100]!.message], [105, '899 more assignments replace an earlier one, from here on']);
});

test('a knob set twice in sysctl.conf and a variable set twice in vip-NNN.conf warn too', (t) => {
  const tmp = tempDir(t);
  const ctx = diskContext(tmp.dir);
  const s = parseFormat('sysctl.conf', 'net.inet.carp.preempt=1\nnet.inet.carp.preempt=0\n', join(tmp.dir, 'sysctl.conf'), ctx);
  assert.deepEqual(
    s.diagnostics.filter((d) => d.code === 'CARPD_WARN_REASSIGNED').map((d) => [d.line, d.message]),
    [[2, 'net.inet.carp.preempt is set again; this value replaces the one at line 1 (the last one wins)']],
  );
  const v = parseFormat(
    'sysconfig',
    'BIND_INTERFACE=eth0\nVIP_ADDRESS=10.0.0.1\nPASSWORD=x\nVIP_ADDRESS=10.0.0.9\n',
    join(tmp.dir, 'vip-001.conf'),
    ctx,
    0o600,
  );
  assert.deepEqual(
    v.diagnostics.filter((d) => d.code === 'CARPD_WARN_REASSIGNED').map((d) => d.line),
    [4],
  );
});
