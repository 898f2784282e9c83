/** keepalived's notify fifo, state dump and track_file: states, priorities and VIPs are read; garbage is refused. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseKeepalivedData } from '../../src/sources/keepalived-data.js';
import { parseKeepalivedFifoLine } from '../../src/sources/keepalived-fifo.js';
import { parseKeepalivedJson } from '../../src/sources/keepalived-json.js';
import { effectivePriority, readTrackFile, trackFileEffect } from '../../src/sources/keepalived-track-file.js';
import { MAX_LINE } from '../../src/sources/text.js';
import { fixture, garbage } from '../helpers/fake-kernel/fixtures.js';

test('the recorded notify fifo yields instance and group states with priorities, and passes over checker lines', () => {
  const parsed = fixture('keepalived-notify-fifo.txt')
    .split('\n')
    .filter((l) => l !== '')
    .map(parseKeepalivedFifoLine);
  assert.deepEqual(
    parsed.filter((p) => p.kind === 'invalid'),
    [],
  );
  assert.deepEqual(
    parsed.map((p) => {
      switch (p.kind) {
        case 'instance':
        case 'group':
          return `${p.kind} ${p.name} ${p.state}/${p.carpState} ${p.priority}`;
        case 'priority':
          return `priority ${p.name} ${p.state} ${p.priority}`;
        case 'rx-lower-priority':
          return `rx-lower ${p.name} ${p.priority}`;
        default:
          return p.kind;
      }
    }),
    [
      'instance VI_WAN BACKUP/BACKUP 100',
      'instance VI_LAN BACKUP/BACKUP 100',
      'group G_EDGE BACKUP/BACKUP 0',
      'instance VI_WAN MASTER/MASTER 100',
      'instance VI_LAN MASTER/MASTER 100',
      'group G_EDGE MASTER/MASTER 0',
      'other',
      'other',
      'priority VI_WAN MASTER 80',
      'rx-lower VI_WAN 80',
      'instance VI_DMZ FAULT/INIT 90',
      'priority VI_DMZ BACKUP 90',
      'instance VI_WAN BACKUP/BACKUP 80',
      'group G_EDGE BACKUP/BACKUP 0',
      'instance VI_LAN BACKUP/BACKUP 100',
      'instance VI_WAN STOP/INIT 80',
      'instance VI_LAN STOP/INIT 100',
      'instance VI_DMZ DELETED/INIT 90',
    ],
  );
});

test('a fifo line after a checker line that wrote its NUL still reads', () => {
  assert.deepEqual(parseKeepalivedFifoLine('\0INSTANCE "VI_1" MASTER 100\n'), {
    kind: 'instance',
    name: 'VI_1',
    state: 'MASTER',
    carpState: 'MASTER',
    priority: 100,
  });
  assert.deepEqual(parseKeepalivedFifoLine('INSTANCE "VI_1" {UNKNOWN} 100'), { kind: 'other' });
});

test('malformed fifo lines, random bytes and huge lines are refused, never thrown', () => {
  for (const bad of [
    'INSTANCE VI_1 MASTER 100',
    'INSTANCE "VI_1" MASTER',
    'INSTANCE "VI_1" MASTER 256',
    'INSTANCE "" MASTER 100',
    'INSTANCE "VI_1" LEADER 100',
    'GROUP "G" MASTER_PRIORITY 0',
    'instance "VI_1" MASTER 100',
    '',
    `INSTANCE "${'v'.repeat(MAX_LINE)}" MASTER 100`,
  ]) {
    assert.equal(parseKeepalivedFifoLine(bad).kind, 'invalid', bad.slice(0, 40));
  }
  for (const s of garbage(0xfeed, 500, 200)) assert.ok(['invalid', 'other'].includes(parseKeepalivedFifoLine(s).kind), JSON.stringify(s));
});

test('the recorded keepalived.data gives each instance its state, priorities and VIPs, and the groups and track files', () => {
  const r = parseKeepalivedData(fixture('keepalived-data.txt'));
  assert.ok(r.kind === 'data', JSON.stringify(r));
  assert.deepEqual(r.instances, [
    {
      name: 'VI_WAN',
      state: 'MASTER',
      carpState: 'MASTER',
      syncGroup: 'G_EDGE',
      interface: 'eth0',
      vrid: 51,
      priority: 100,
      effectivePriority: 100,
      vips: ['198.51.100.1/24', '198.51.100.10/32'],
      excludedVips: ['2001:db8:100::1/64'],
      trackFiles: [{ name: 'carpd_demote', weight: -1, reverse: false }],
    },
    {
      name: 'VI_LAN',
      state: 'BACKUP',
      carpState: 'BACKUP',
      masterRouter: '192.0.2.3',
      masterPriority: 150,
      interface: 'eth1',
      vrid: 52,
      priority: 100,
      effectivePriority: 100,
      vips: ['192.0.2.1/24'],
      excludedVips: [],
      trackFiles: [{ name: 'carpd_demote', weight: -1, reverse: false }],
    },
    {
      name: 'VI_DMZ',
      state: 'FAULT',
      carpState: 'INIT',
      interface: 'eth2',
      vrid: 53,
      priority: 90,
      effectivePriority: 90,
      vips: ['203.0.113.1/24'],
      excludedVips: [],
      trackFiles: [],
    },
  ]);
  assert.deepEqual(r.groups, [{ name: 'G_EDGE', state: 'MASTER' }]);
  assert.deepEqual(r.trackFiles, [{ name: 'carpd_demote', path: '/run/carpd/keepalived-demote', status: 0, weight: 1, reverse: false }]);
});

test('the VIP headings of keepalived 2.0 and 2.1 read like the current one', () => {
  for (const heading of ['   Virtual IP = 2', '   Virtual IP :', '   Virtual IP (2):']) {
    const text = [
      '------< VRRP Topology >------',
      ' VRRP Instance = VI_1',
      '   State = BACKUP',
      heading,
      '     10.0.0.1/24 dev eth0 scope global',
      '     10.0.0.2 dev eth0 scope global',
      '   fd_in 1, fd_out 2',
      '',
    ].join('\n');
    const r = parseKeepalivedData(text);
    assert.ok(r.kind === 'data');
    assert.deepEqual(r.instances[0]!.vips, ['10.0.0.1/24', '10.0.0.2/32'], heading);
  }
});

test('malformed dumps, random bytes and huge inputs are refused, never thrown', () => {
  const top = '------< VRRP Topology >------\n VRRP Instance = VI_1\n';
  for (const bad of [
    `${top}   State = LEADER\n`,
    `${top}   Priority = 300\n`,
    `${top}   Virtual IP (1):\n     not-an-address dev eth0\n`,
    `${top}   Tracked files :\n     demote, weight 999\n`,
    '------< VRRP Topology >------\nstray line\n',
    ' VRRP Instance = VI_1\n   State = MASTER\n',
    '',
  ]) {
    assert.equal(parseKeepalivedData(bad).kind, 'invalid', bad);
  }
  for (const s of garbage(0xabc, 200, 3000)) assert.equal(parseKeepalivedData(s).kind, 'invalid');
  assert.equal(parseKeepalivedData(`${top}   Interface = ${'e'.repeat(MAX_LINE)}\n`).kind, 'invalid');
});

test('a track file reads as strtol(…, 0) does: blanks, sign, hex and octal, trailing junk ignored, empty is 0', () => {
  const cases: [string, number | 'ignored'][] = [
    ['', 0],
    ['\n', 0],
    ['10\n', 10],
    ['  -20 demoted\n', -20],
    ['+7', 7],
    ['0x10', 16],
    ['010', 8],
    ['08', 0],
    ['0x', 0],
    ['abc', 0],
    ['2147483648', 2147483648],
    ['2147483649', 'ignored'],
    ['-2147483648', -2147483648],
    ['-2147483649', 'ignored'],
    [`${' '.repeat(126)}5`, 5],
    [`${' '.repeat(127)}5`, 0],
    ['9'.repeat(200), 'ignored'],
  ];
  for (const [content, want] of cases) {
    const r = readTrackFile(content);
    assert.deepEqual(r.kind === 'value' ? r.value : r.kind, want, JSON.stringify(content));
  }
});

test('a track file changes the priority by value × weight, FAULT at −254 or for any non-zero value with weight 0', () => {
  assert.deepEqual(trackFileEffect(20, -1), { kind: 'delta', delta: -20 });
  assert.deepEqual(trackFileEffect(20, -1, true), { kind: 'delta', delta: 20 });
  assert.deepEqual(trackFileEffect(300, 1), { kind: 'delta', delta: 253 });
  assert.deepEqual(trackFileEffect(254, -1), { kind: 'fault' });
  assert.deepEqual(trackFileEffect(3, 0), { kind: 'fault' });
  assert.deepEqual(trackFileEffect(0, 0), { kind: 'delta', delta: 0 });
  assert.deepEqual(trackFileEffect(0, 0, true), { kind: 'fault' });
  assert.equal(effectivePriority(100, -20), 80);
  assert.equal(effectivePriority(100, -200), 1);
  assert.equal(effectivePriority(200, 100), 254);
  assert.equal(effectivePriority(255, -100), 255);
});

test('the recorded keepalived.json (json_version 1) gives the same instances as the text dump, and version 2 reads too', () => {
  const r = parseKeepalivedJson(fixture('keepalived.json'));
  assert.ok(r.kind === 'json', JSON.stringify(r));
  assert.deepEqual(
    r.instances.map((i) => [i.name, i.state, i.carpState, i.interface, i.vrid, i.priority, i.effectivePriority, i.masterPriority]),
    [
      ['VI_WAN', 'MASTER', 'MASTER', 'eth0', 51, 100, 100, 0],
      ['VI_LAN', 'BACKUP', 'BACKUP', 'eth1', 52, 100, 100, 150],
      ['VI_DMZ', 'FAULT', 'INIT', 'eth2', 53, 100, 100, 0],
    ],
  );
  const text = parseKeepalivedData(fixture('keepalived-data.txt'));
  assert.ok(text.kind === 'data');
  assert.deepEqual(
    r.instances.map((i) => [i.vips, i.excludedVips]),
    text.instances.map((i) => [i.vips, i.excludedVips]),
  );
  const v2 = parseKeepalivedJson(JSON.stringify({ vrrp: JSON.parse(fixture('keepalived.json')) as unknown }));
  assert.deepEqual(v2, r);
});

test('malformed JSON dumps, deep nesting, random bytes and huge inputs are refused, never thrown', () => {
  for (const bad of [
    '',
    '{',
    '{}',
    '[{}]',
    '[{"data":{"iname":""}}]',
    '[{"data":{"iname":"VI_1","vrid":300}}]',
    '[{"data":{"iname":"VI_1","vips":["nope dev eth0"]}}]',
    '[{"data":{"iname":"VI_1","vips":"10.0.0.1"}}]',
    '[1]',
    'null',
  ]) {
    assert.equal(parseKeepalivedJson(bad).kind, 'invalid', bad);
  }
  assert.deepEqual(parseKeepalivedJson('[{"data":{"iname":"VI_1","state":9}}]'), {
    kind: 'json',
    instances: [{ name: 'VI_1', state: 'unknown', carpState: 'INIT', vips: [], excludedVips: [] }],
  });
  assert.equal(parseKeepalivedJson('['.repeat(1_000_000)).kind, 'invalid');
  assert.equal(parseKeepalivedJson(`${'['.repeat(200_000)}${']'.repeat(200_000)}`).kind, 'invalid');
  assert.equal(parseKeepalivedJson(' '.repeat(5 * 1024 * 1024)).kind, 'invalid');
  for (const s of garbage(0x150, 200, 500)) assert.equal(parseKeepalivedJson(s).kind, 'invalid');
});
