/** FreeBSD ifconfig and sysctl output: vhids with their state and VIPs, the demotion counter; garbage is refused. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFreebsdIfconfig } from '../../src/sources/freebsd-ifconfig.js';
import { parseSysctlInt } from '../../src/sources/freebsd-sysctl.js';
import { MAX_LINE } from '../../src/sources/text.js';
import { fixture, garbage } from '../helpers/fake-kernel/fixtures.js';

test('the recorded pfSense-like ifconfig gives each vhid its state, timers, peers and addresses', () => {
  const r = parseFreebsdIfconfig(fixture('freebsd-ifconfig-carp.txt'));
  assert.equal(r.kind, 'ifconfig');
  assert.ok(r.kind === 'ifconfig');
  assert.deepEqual(r.interfaces, [
    {
      ifname: 'igb0',
      vhids: [
        {
          protocol: 'carp',
          vhid: 1,
          state: 'MASTER',
          advbase: 1,
          advskew: 0,
          addresses: ['198.51.100.1/24', '198.51.100.10/32'],
          peer: '224.0.0.18',
          peer6: 'ff02::12',
        },
        { protocol: 'carp', vhid: 3, state: 'MASTER', advbase: 1, advskew: 0, addresses: ['2001:db8:100::1/64'], peer: '224.0.0.18', peer6: 'ff02::12' },
      ],
    },
    {
      ifname: 'igb1',
      vhids: [
        { protocol: 'carp', vhid: 2, state: 'BACKUP', advbase: 1, advskew: 100, addresses: ['192.0.2.1/24'], peer: '224.0.0.18', peer6: 'ff02::12' },
        {
          protocol: 'carp',
          vhid: 4,
          state: 'INIT',
          advbase: 2,
          advskew: 50,
          addresses: ['192.0.2.4/24', '2001:db8:200::1/64'],
          peer: '192.0.2.3',
          peer6: 'ff02::12',
        },
      ],
    },
  ]);
});

test('older ifconfig without peer lines, cidr notation, keys and VRRPv3 lines are read too', () => {
  const text = [
    'em0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500',
    '\tinet 10.0.0.2/24 broadcast 10.0.0.255',
    '\tinet 10.0.0.1/24 broadcast 10.0.0.255 vhid 5',
    '\tinet6 2001:db8::1/64 vhid 6',
    '\tcarp: BACKUP vhid 5 advbase 3 advskew 240 key "s3cret"',
    '\tvrrp: MASTER vrid 6 prio 100 interval 100',
    '',
  ].join('\n');
  assert.deepEqual(parseFreebsdIfconfig(text), {
    kind: 'ifconfig',
    interfaces: [
      {
        ifname: 'em0',
        vhids: [
          { protocol: 'carp', vhid: 5, state: 'BACKUP', advbase: 3, advskew: 240, addresses: ['10.0.0.1/24'] },
          { protocol: 'vrrp', vhid: 6, state: 'MASTER', priority: 100, interval: 100, addresses: ['2001:db8::1/64'] },
        ],
      },
    ],
  });
});

test('an interface without vhids is left out and an address naming an unknown vhid is not attached', () => {
  const text =
    'em0: flags=8843<UP> metric 0 mtu 1500\n\tinet 10.0.0.1 netmask 0xffffff00 vhid 9\nem1: flags=8843<UP> metric 0 mtu 1500\n\tcarp: MASTER vhid 1 advbase 1 advskew 0\n';
  assert.deepEqual(parseFreebsdIfconfig(text), {
    kind: 'ifconfig',
    interfaces: [{ ifname: 'em1', vhids: [{ protocol: 'carp', vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, addresses: [] }] }],
  });
});

test('malformed carp and address lines are refused with the line number', () => {
  const head = 'em0: flags=8843<UP> metric 0 mtu 1500\n';
  for (const body of [
    '\tcarp: <UNKNOWN> vhid 1 advbase 1 advskew 0',
    '\tcarp: MASTER vhid 0 advbase 1 advskew 0',
    '\tcarp: MASTER vhid 1 advbase 1',
    '\tcarp: MASTER vhid 1 advbase 1 advskew 0\n\tcarp: BACKUP vhid 1 advbase 1 advskew 0',
    '\tinet 10.0.0.1 netmask 0xff00ff00 vhid 1',
    '\tinet 10.0.0.1 netmask 0xffffff00 vhid 300',
    '\t      peer 224.0.0.18 peer6 ff02::12',
    'garbage outside any interface',
  ]) {
    const r = parseFreebsdIfconfig(head + body + '\n');
    assert.equal(r.kind, 'invalid', body);
    assert.match(r.kind === 'invalid' ? r.reason : '', /^line \d+: /);
  }
  assert.equal(parseFreebsdIfconfig('').kind, 'invalid');
  assert.equal(parseFreebsdIfconfig('\tcarp: MASTER vhid 1 advbase 1 advskew 0\n').kind, 'invalid');
});

test('random bytes and huge inputs are refused, never thrown', () => {
  for (const s of garbage(0xf4ee, 300, 2000)) assert.equal(parseFreebsdIfconfig(s).kind, 'invalid', JSON.stringify(s.slice(0, 60)));
  assert.equal(parseFreebsdIfconfig(`em0: flags=1<UP> mtu 1\n\t${'x'.repeat(MAX_LINE)}\n`).kind, 'invalid');
  assert.equal(parseFreebsdIfconfig('em0: flags=1<UP> mtu 1\n'.repeat(200_000)).kind, 'invalid');
  assert.equal(parseFreebsdIfconfig(42 as unknown as string).kind, 'invalid');
});

test('sysctl output reads as the demotion counter, with the value before a write', () => {
  assert.deepEqual(parseSysctlInt(fixture('freebsd-sysctl-demotion-n.txt')), { kind: 'value', value: 240 });
  assert.deepEqual(parseSysctlInt(fixture('freebsd-sysctl-demotion.txt')), { kind: 'value', name: 'net.inet.carp.demotion', value: 240 });
  assert.deepEqual(parseSysctlInt(fixture('freebsd-sysctl-demotion-set.txt')), { kind: 'value', name: 'net.inet.carp.demotion', value: 240, previous: 0 });
  assert.deepEqual(parseSysctlInt('net.inet.carp.demotion: 240 -> 0\n'), { kind: 'value', name: 'net.inet.carp.demotion', value: 0, previous: 240 });
  assert.deepEqual(parseSysctlInt('-5'), { kind: 'value', value: -5 });
  for (const bad of ['', 'x', '99999999999', 'net.inet.carp.demotion: ', 'net.inet.carp.demotion: 1 -> ', 'sysctl: unknown oid', 'a'.repeat(300)]) {
    assert.equal(parseSysctlInt(bad).kind, 'invalid', bad);
  }
  for (const s of garbage(0x5c71, 300, 120)) assert.equal(parseSysctlInt(s).kind === 'value' ? /^-?\d+\n?$/.test(s) : true, true, JSON.stringify(s));
});
