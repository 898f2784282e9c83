/** OpenBSD ifconfig and route monitor output: carp interfaces with their vhids, link-state events; garbage is refused. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOpenbsdGroupDemotion, parseOpenbsdIfconfig } from '../../src/sources/openbsd-ifconfig.js';
import { parseRouteMonitor, parseRouteMonitorLine, RouteMonitorReader } from '../../src/sources/route-monitor.js';
import { MAX_LINE } from '../../src/sources/text.js';
import { fixture, garbage } from '../helpers/fake-kernel/fixtures.js';

test('the recorded OpenBSD ifconfig lists each carp interface with carpdev, vhids, link status and VIPs', () => {
  const r = parseOpenbsdIfconfig(fixture('openbsd-ifconfig-carp.txt'));
  assert.ok(r.kind === 'ifconfig', JSON.stringify(r));
  assert.deepEqual(r.interfaces, [
    {
      ifname: 'carp0',
      carpdev: 'em0',
      advbase: 1,
      vhids: [{ vhid: 1, state: 'MASTER', advskew: 0 }],
      groups: ['carp'],
      linkStatus: 'master',
      addresses: ['198.51.100.1/24', 'fe80::200:5eff:fe00:101/64', '2001:db8:100::1/64'],
    },
    {
      ifname: 'carp1',
      carpdev: 'em1',
      advbase: 1,
      balancing: 'ip',
      vhids: [
        { vhid: 3, state: 'MASTER', advskew: 0 },
        { vhid: 4, state: 'BACKUP', advskew: 100 },
      ],
      groups: ['carp'],
      linkStatus: 'master',
      addresses: ['192.0.2.1/24'],
    },
    {
      ifname: 'carp2',
      carpdev: 'em1',
      advbase: 1,
      carppeer: '192.0.2.3',
      vhids: [{ vhid: 2, state: 'BACKUP', advskew: 100 }],
      groups: ['carp'],
      linkStatus: 'backup',
      addresses: ['192.0.2.5/24'],
    },
    {
      ifname: 'carp3',
      carpdev: 'em1',
      advbase: 1,
      vhids: [{ vhid: 9, state: 'INIT', advskew: 0 }],
      groups: ['carp'],
      linkStatus: 'invalid',
      addresses: ['192.0.2.9/24'],
    },
  ]);
});

test('a carp interface without a carpdev reads as having none', () => {
  const r = parseOpenbsdIfconfig('carp5: flags=8802<BROADCAST> mtu 1500\n\tcarp: INIT carpdev none vhid 5 advbase 1 advskew 0\n');
  assert.ok(r.kind === 'ifconfig');
  assert.equal(r.interfaces[0]!.carpdev, undefined);
});

test('malformed OpenBSD carp lines are refused', () => {
  const head = 'carp0: flags=8843<UP> mtu 1500\n';
  for (const body of [
    '\tcarp: MASTER carpdev em0 vhid 1 advbase 1',
    '\tcarp: FOO carpdev em0 vhid 1 advbase 1 advskew 0',
    '\tcarp: carpdev em0 advbase 1 balancing ip',
    '\tcarp: carpdev em0 advbase 1 balancing ip\n\t\tstate MASTER vhid 3 advskew 0\n\t\tstate BACKUP vhid 3 advskew 0',
    '\t\tstate MASTER vhid 3 advskew 0',
    '\tinet 10.0.0.1 netmask 0x00ff0000 broadcast 10.0.0.255',
    'no tab here',
  ]) {
    assert.equal(parseOpenbsdIfconfig(head + body + '\n').kind, 'invalid', body);
  }
});

test('ifconfig -g carp reads as the group demotion count', () => {
  assert.deepEqual(parseOpenbsdGroupDemotion(fixture('openbsd-ifconfig-g-carp.txt')), { kind: 'demotion', group: 'carp', demote: 0 });
  assert.deepEqual(parseOpenbsdGroupDemotion('carp: carp demote count 128'), { kind: 'demotion', group: 'carp', demote: 128 });
  for (const bad of ['', 'carp: carp demote count', 'carp: carp demote count 256', 'ifconfig: carp: SIOCGIFGATTR: Device not configured\n']) {
    assert.equal(parseOpenbsdGroupDemotion(bad).kind, 'invalid', bad);
  }
});

test('the recorded route monitor yields the carp link changes as carp states, in order', () => {
  const r = parseRouteMonitor(fixture('openbsd-route-monitor.txt'));
  assert.ok(r.kind === 'monitor');
  assert.equal(r.invalid, 0);
  assert.deepEqual(
    r.events.map((e) => `${e.ifname}#${e.ifIndex} ${e.linkState} ${e.carpState ?? '-'}`),
    [
      'em1#2 no carrier -',
      'carp1#6 invalid INIT',
      'carp2#7 invalid INIT',
      'em1#2 active -',
      'carp1#6 backup BACKUP',
      'carp2#7 backup BACKUP',
      'carp1#6 master MASTER',
      'carp2#7 master MASTER',
      'carp2#7 backup BACKUP',
    ],
  );
  assert.deepEqual(r.events[0]!.flags, ['UP', 'BROADCAST', 'RUNNING', 'SIMPLEX', 'MULTICAST']);
  assert.equal(r.events[0]!.mtu, 1500);
});

test('an RTM_IFINFO for an interface already gone has no name but keeps its index', () => {
  assert.deepEqual(parseRouteMonitorLine('RTM_IFINFO: iface status change: len 176, if# 9, link: [#7], mtu: 1500, flags:'), {
    kind: 'ifinfo',
    ifIndex: 9,
    linkState: '[#7]',
    mtu: 1500,
    flags: [],
  });
});

test('the route monitor reader joins lines across chunks and counts what it cannot read', () => {
  const reader = new RouteMonitorReader();
  const text = fixture('openbsd-route-monitor.txt');
  const events = [];
  for (let i = 0; i < text.length; i += 7) events.push(...reader.push(text.slice(i, i + 7)));
  assert.equal(events.length, 9);
  assert.deepEqual(reader.push('RTM_IFINFO: iface status change: garbage\nnot route output\n'), []);
  assert.equal(reader.invalid, 2);
});

test('random bytes and huge lines in the route monitor are refused, never thrown', () => {
  for (const s of garbage(0x40ab, 500, 300)) {
    const r = parseRouteMonitorLine(s);
    assert.notEqual(r.kind, 'ifinfo', JSON.stringify(s));
  }
  assert.equal(
    parseRouteMonitorLine(`RTM_IFINFO: iface status change: len 1, if# 1, name carp0, link: master, mtu: 1, flags:${'<UP>'.repeat(MAX_LINE)}`).kind,
    'invalid',
  );
  const r = parseRouteMonitor(
    `${'z'.repeat(MAX_LINE + 10)}\nRTM_IFINFO: iface status change: len 176, if# 5, name carp0, link: master, mtu: 1500, flags:<UP>\n`,
  );
  assert.ok(r.kind === 'monitor');
  assert.equal(r.events.length, 1);
  assert.equal(r.invalid, 1);
  for (const s of garbage(0x1234, 50, 3000)) assert.ok(['monitor', 'invalid'].includes(parseRouteMonitor(s).kind));
  assert.equal(parseOpenbsdIfconfig(garbage(7, 1, 5000)[0]!).kind, 'invalid');
});
