import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { checkCommand, configCommand } from '../../src/cli/check.js';
import { diskContext } from '../../src/adapters/config-files.js';
import { FORMAT_NAMES, parseFormat, type ConfigFormat } from '../../src/config/load.js';
import { validateModel, validateNetwork } from '../../src/config/validate.js';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Words each format cares about, mixed with punctuation that trips quoting and parsing. */
const WORDS = [
  'inet',
  'inet6',
  'alias',
  'vhid',
  '1',
  '256',
  'advskew',
  'advbase',
  'pass',
  'carpdev',
  'em0',
  'vlan42',
  'netmask',
  '0xffffff00',
  '255.255.255.0',
  'prefixlen',
  '64',
  '10.0.0.1',
  '10.0.0.1/24',
  '10.0.0.1-3',
  '2001:db8::1',
  'NONE',
  'up',
  'peer',
  'state',
  'master',
  'group',
  'description',
  '"',
  "'",
  '\\',
  '$',
  '${',
  '$(x)',
  '`',
  '#',
  ';',
  '=',
  '+=',
  '[',
  ']',
  '[vhid.a]',
  '[carpd]',
  '[plugin.x]',
  'follow',
  'iface',
  'eth0',
  'static',
  'ucarp-vid',
  'ucarp-vip',
  'source',
  'ifconfig_em0_alias0=',
  'ifconfig_carp0=',
  'cloned_interfaces=',
  'ucarp_vhid=',
  'BIND_INTERFACE=',
  'OPTIONS=',
  'net.inet.carp.preempt=',
  '# ==> hostname.carp0 <==',
  '!cmd',
  '\n',
  '\n',
  '\t',
  ' ',
  '',
  '\r\n',
  '\u00e9',
];

test('every parser turns garbage into diagnostics, never an exception', () => {
  const ctx = { ...diskContext('/nonexistent-carpd-root'), readPassfile: () => ({ ok: true as const, password: 'x' }) };
  const formats = [...new Set(Object.values(FORMAT_NAMES))] as ConfigFormat[];
  const names: Record<ConfigFormat, string> = {
    carpd: 'carpd.conf',
    'rc.conf': 'rc.conf',
    'loader.conf': 'loader.conf',
    'sysctl.conf': 'sysctl.conf',
    hostname: 'hostname.carp0',
    interfaces: 'interfaces',
    sysconfig: 'vip-001.conf',
  };
  const next = rng(20261122);
  for (let i = 0; i < 300; i++) {
    const n = 1 + Math.floor(next() * 60);
    const text = Array.from({ length: n }, () => WORDS[Math.floor(next() * WORDS.length)]).join(next() < 0.5 ? ' ' : '');
    for (const f of formats) {
      const file = `/nonexistent-carpd-dir/${names[f]}`;
      let r;
      try {
        r = parseFormat(f, text, file, ctx, 0o600);
        const model = { global: { allow: true, preempt: false, log: 2 }, vhids: r.vhids };
        validateModel(model);
        validateNetwork(model, r.interfaces);
      } catch (e) {
        assert.fail(`${f} threw on ${JSON.stringify(text)}: ${(e as Error).stack}`);
      }
      for (const d of r.diagnostics) assert.ok(d.line >= 0 && typeof d.message === 'string' && d.code.startsWith('CARPD_'));
    }
  }
});

test('no password reaches check, check --peer or config output, whatever the format and the mistake', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-config-garbage-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const S = 'Zq9-secret-Zq9';
  const write = (name: string, text: string, mode = 0o600) => {
    const p = join(dir, name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
    chmodSync(p, mode);
    return p;
  };
  const cases: string[][] = [
    [write('a/rc.conf', `ifconfig_em0_alias0="inet vhid 1 pass ${S} alias 10.0.0.1/32"\n`, 0o644)],
    [write('b/rc.conf', `ifconfig_em0_alias0="inet vhid 1 pass ${S}${S} alias 10.0.0.1/32"\n`)],
    [write('c/rc.conf', `ifconfig_em0_alias0="inet vhid 1 pass x ${S} alias 10.0.0.1/32"\n`)],
    [write('d/rc.conf', `ifconfig_em0_alias0="inet vhid 1 pass ${S} alias 10.0.0.1/32"\nifconfig_em0_alias1="inet vhid 1 pass other alias 10.0.0.2/32"\n`)],
    [write('e/rc.conf', `ucarp_if="em0"\nucarp_vhid="1"\nucarp_addr="10.0.0.1"\nucarp_pass="${S}"\nucarp_passfile="/nonexistent"\n`)],
    [write('f/rc.conf', `ifconfig_em0_alias0="inet vhid 1 alias 10.0.0.1/32"\n${S}\n`)],
    [write('g/hostname.carp0', `10.0.0.1/24 carpdev em0 vhid 1 pass ${S} ${S}\n`, 0o644)],
    [write('h/hostname.carp0', `10.0.0.1/24 carpdev em0 vhid 1 pass "${S}\n`)],
    [write('i/interfaces', `iface eth0 inet static\n address 10.0.0.2/24\n ucarp-vid 1\n ucarp-vip 10.0.0.1\n ucarp-password ${S}${S}\n`, 0o644)],
    [write('j/vip-001.conf', `BIND_INTERFACE=eth0\nVIP_ADDRESS=10.0.0.1\nPASSWORD=x\nOPTIONS="-p ${S} --pass=${S}"\n`)],
    [write('k/vip-001.conf', `BIND_INTERFACE=eth0\nVIP_ADDRESS=10.0.0.1\nPASSWORD="${S}${S}"\n`, 0o644)],
  ];
  const peerA = write('p/a.conf', `[vhid.a]\nvhid = 1\ninterface = em0\naddress = 10.0.0.1\npass = ${S}\n`);
  const peerB = write('p/hostname.carp0', `10.0.0.2/32 carpdev em1 vhid 1 pass ${S}x\n`);
  const runs: [typeof checkCommand, string[]][] = [[checkCommand, ['-c', peerA, '--peer', peerB]]];
  for (const files of cases) {
    const args = files.flatMap((f) => ['-c', f]);
    runs.push([checkCommand, args], [configCommand, args]);
  }
  for (const [cmd, args] of runs) {
    const lines: string[] = [];
    const code = await cmd(args, { out: (l) => lines.push(l), err: (l) => lines.push(l) });
    assert.equal(code, 1, `${args.join(' ')} should fail:\n${lines.join('\n')}`);
    assert.ok(!lines.join('\n').includes(S.slice(0, 10)), `${cmd.name} ${args.join(' ')} leaked:\n${lines.join('\n')}`);
  }
});

test('interfaces: a ucarp stanza whose address (or its IF:ucarp alias address) is not an address is an error, not a TypeError', () => {
  // Found by the config fuzzer (test/fuzz/config.ts): the source address was taken with splitCidr(…)!.
  const ctx = diskContext('/nonexistent-carpd-root');
  const text = 'iface eth0 inet static\n address 10.0.0.x\n ucarp-vid 1\n ucarp-vip 10.0.0.1\n ucarp-password x\n';
  const r = parseFormat('interfaces', text, '/nonexistent-carpd-dir/interfaces', ctx, 0o600);
  assert.equal(r.vhids.length, 1);
  assert.equal(r.vhids[0]!.srcip, undefined);
  const model = { global: { allow: true, preempt: false, log: 2 }, vhids: r.vhids };
  assert.ok([...r.diagnostics, ...validateModel(model), ...validateNetwork(model, r.interfaces)].some((d) => d.severity === 'error'));
  // The alias stanza that vip-up brings up, with an inet6 netmask out of range.
  const alias = `${text}iface eth0:ucarp inet static\n address 10.0.0.1/40\n`;
  const a = parseFormat('interfaces', alias, '/nonexistent-carpd-dir/interfaces', ctx, 0o600);
  assert.ok(a.diagnostics.some((d) => d.code === 'CARPD_ERR_ADDRESS' && d.line === 7));
});
