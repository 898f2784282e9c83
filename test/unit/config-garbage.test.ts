import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diskContext, FORMAT_NAMES, parseFormat, type ConfigFormat } from '../../src/config/load.js';
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
  'inet', 'inet6', 'alias', 'vhid', '1', '256', 'advskew', 'advbase', 'pass', 'carpdev', 'em0', 'vlan42', 'netmask',
  '0xffffff00', '255.255.255.0', 'prefixlen', '64', '10.0.0.1', '10.0.0.1/24', '10.0.0.1-3', '2001:db8::1', 'NONE', 'up',
  'peer', 'state', 'master', 'group', 'description', '"', "'", '\\', '$', '${', '$(x)', '`', '#', ';', '=', '+=', '[',
  ']', '[vhid.a]', '[carpd]', '[plugin.x]', 'follow', 'iface', 'eth0', 'static', 'ucarp-vid', 'ucarp-vip', 'source',
  'ifconfig_em0_alias0=', 'ifconfig_carp0=', 'cloned_interfaces=', 'ucarp_vhid=', 'BIND_INTERFACE=', 'OPTIONS=',
  'net.inet.carp.preempt=', '# ==> hostname.carp0 <==', '!cmd', '\n', '\n', '\t', ' ', '', '\r\n', '\u00e9',
];

test('every parser turns garbage into diagnostics, never an exception', () => {
  const ctx = { ...diskContext('/nonexistent-carpd-root'), readPassfile: () => ({ ok: true as const, password: 'x' }) };
  const formats = [...new Set(Object.values(FORMAT_NAMES))] as ConfigFormat[];
  const names: Record<ConfigFormat, string> = {
    carpd: 'carpd.conf', 'rc.conf': 'rc.conf', 'loader.conf': 'loader.conf', 'sysctl.conf': 'sysctl.conf',
    hostname: 'hostname.carp0', interfaces: 'interfaces', sysconfig: 'vip-001.conf',
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
