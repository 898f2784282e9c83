/**
 * The flood guard's ruleset, pure: what the table allows per interface, from the model and the
 * interface addresses; and the `flood_guard` key. The kernel side is
 * test/integration/flood-guard.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NetworkInterfaceInfo } from 'node:os';
import { guardPlan, guardRuleset, networkOf, NftFloodGuard } from '../../src/adapters/flood-guard.js';
import { parseCarpdIni } from '../../src/config/carpd-ini.js';
import type { CarpModel } from '../../src/config/model.js';
import type { RunResult } from '../../src/ports/exec.js';
import { vhidCfg } from '../helpers/fake-wire.js';

const v4 = (cidr: string): NetworkInterfaceInfo => ({
  family: 'IPv4',
  address: cidr.split('/')[0]!,
  cidr,
  netmask: '',
  mac: '00:00:00:00:00:00',
  internal: false,
});

const model = (
  vhids = [vhidCfg(1, 0), vhidCfg(7, 0, { addresses: ['198.18.1.7/24'], peer: '10.9.9.9' }), vhidCfg(3, 0, { interface: 'eth1' })],
): CarpModel => ({
  global: { allow: true, preempt: false, log: 2, floodGuard: 'nft' },
  vhids,
});

test('networkOf masks the host bits', () => {
  assert.equal(networkOf('198.18.0.7/24'), '198.18.0.0/24');
  assert.equal(networkOf('10.1.2.3/8'), '10.0.0.0/8');
  assert.equal(networkOf('10.1.2.3/32'), '10.1.2.3/32');
  assert.equal(networkOf('nonsense/24'), undefined);
});

test('the plan: vhids per interface, the subnets without the VIPs, the peers, a rate of vhids + 2', () => {
  // eth0 holds the VIP of vhid 1 (198.18.0.101, in vhidCfg's default /24) and one in another /24.
  const plan = guardPlan(model(), () => ({ eth0: [v4('198.18.0.2/24'), v4('198.18.0.101/24'), v4('198.18.1.7/24')], eth1: [] }));
  assert.deepEqual(plan, [
    { ifname: 'eth0', vhids: [1, 7], sources: ['198.18.0.0/24', '10.9.9.9'], rate: 4, burst: 8, setSize: 257 },
    // No IPv4 address: any source, the rate limit alone.
    { ifname: 'eth1', vhids: [3], sources: [], rate: 3, burst: 6, setSize: 65_535 },
  ]);
});

test('the ruleset: one transaction replacing the table, a full per-source set drops', () => {
  const text = guardRuleset(guardPlan(model(), () => ({ eth0: [v4('198.18.0.2/24')], eth1: [] })));
  const lines = text.split('\n');
  assert.deepEqual(lines.slice(0, 3), ['table inet carpd_guard', 'delete table inet carpd_guard', 'table inet carpd_guard {']);
  assert.match(text, /iifname vmap \{ "eth0" : jump if_0, "eth1" : jump if_1 \}/);
  assert.match(text, /ip ttl != 255 counter drop comment "badttl"/);
  assert.match(text, /@th,0,8 != 0x21 counter drop/);
  assert.match(text, /@th,8,8 != \{ 1, 7 \} counter drop/);
  assert.match(text, /ip saddr != \{ 198\.18\.0\.0\/24, 10\.9\.9\.9 \} counter drop comment "badsrc"/);
  // The update rule breaks without adding when the set is full; the next rule drops that source.
  const i = lines.findIndex((l) => l.includes('update @src_0'));
  assert.match(lines[i + 1]!, /ip saddr != @src_0 counter drop comment "full"/);
  // eth1 has no subnet rule.
  const eth1 = text.slice(text.indexOf('chain if_1'));
  assert.doesNotMatch(eth1, /badsrc/);
});

test('an interface name that could break out of the quotes is refused', () => {
  assert.throws(() => guardRuleset([{ ifname: 'eth0" accept', vhids: [1], sources: [], rate: 3, burst: 6, setSize: 64 }]), /bad interface name/);
});

test('a failing nft is logged and carpd runs on; remove() deletes only what it loaded', async () => {
  const calls: string[][] = [];
  const logs: string[] = [];
  let exitCode = 1;
  const run = async (argv: readonly string[]): Promise<RunResult> => {
    calls.push([...argv]);
    return { exitCode, stdout: '', stderr: exitCode ? 'Error: Could not process rule: No such file or directory' : '', timedOut: false, canceled: false };
  };
  const guard = new NftFloodGuard(run, { log: (_l, m) => logs.push(m) }, () => ({ eth0: [v4('198.18.0.2/24')] }));
  await guard.apply(model([vhidCfg(1, 0)]));
  assert.match(logs[0]!, /flood_guard: cannot load table inet carpd_guard: .*running without it/);
  await guard.remove();
  assert.equal(calls.length, 1, 'nothing to delete after a failed load');
  exitCode = 0;
  await guard.apply(model([vhidCfg(1, 0)]));
  await guard.remove();
  assert.deepEqual(calls.at(-1), ['nft', 'delete', 'table', 'inet', 'carpd_guard']);
});

test('flood_guard parses nft and off, and nothing else', () => {
  const parse = (v: string) =>
    parseCarpdIni(`[carpd]\nflood_guard = ${v}\n`, 'f.conf', { readPassfile: () => ({ ok: true, password: 'x' }), validCron: () => true });
  assert.equal(parse('nft').model.global.floodGuard, 'nft');
  assert.equal(parse('off').model.global.floodGuard, 'off');
  const bad = parse('iptables');
  assert.equal(bad.model.global.floodGuard, undefined);
  assert.ok(bad.diagnostics.some((d) => d.code === 'CARPD_ERR_CONFIG_VALUE' && d.line === 2));
});
