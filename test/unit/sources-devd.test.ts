/** devd's event lines: CARP transitions are read, every other subsystem is passed over, garbage is refused. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDevdLine } from '../../src/sources/devd.js';
import { LineSplitter, MAX_LINE } from '../../src/sources/text.js';
import { fixture, garbage } from '../helpers/fake-kernel/fixtures.js';

test('the recorded devd stream yields the CARP transitions in order and passes over other subsystems', () => {
  const lines = fixture('freebsd-devd-carp.txt')
    .split('\n')
    .filter((l) => l !== '');
  const parsed = lines.map(parseDevdLine);
  assert.deepEqual(
    parsed.filter((e) => e.kind === 'invalid'),
    [],
  );
  const carp = parsed.flatMap((e) => (e.kind === 'carp' ? [`${e.vhid}@${e.ifname} ${e.state}`] : []));
  assert.deepEqual(carp, [
    '2@igb1 INIT',
    '4@igb1 INIT',
    '2@igb1 BACKUP',
    '1@igb0 MASTER',
    '3@igb0 MASTER',
    '4@igb1 BACKUP',
    '4@igb1 MASTER',
    '1@igb0 INIT',
    '3@igb0 INIT',
    '1@igb0 BACKUP',
    '3@igb0 BACKUP',
    '1@igb0 MASTER',
    '3@igb0 MASTER',
  ]);
  const systems = parsed.flatMap((e) => (e.kind === 'other' && e.system ? [e.system] : []));
  assert.deepEqual([...new Set(systems)].sort(), ['DEVFS', 'IFNET', 'ZFS']);
  assert.equal(parsed.filter((e) => e.kind === 'other' && e.system === undefined).length, 3, 'attach, nomatch and detach lines');
});

test('a CARP line keeps its meaning with the newline, with trailing data and with a vlan interface name', () => {
  assert.deepEqual(parseDevdLine('!system=CARP subsystem=12@vlan100.5 type=BACKUP\n'), { kind: 'carp', vhid: 12, ifname: 'vlan100.5', state: 'BACKUP' });
  assert.deepEqual(parseDevdLine('!system=CARP subsystem=1@em0 type=MASTER (null)'), { kind: 'carp', vhid: 1, ifname: 'em0', state: 'MASTER' });
  assert.deepEqual(parseDevdLine('!system=CARP subsystem="7@em1" type=INIT'), { kind: 'carp', vhid: 7, ifname: 'em1', state: 'INIT' });
});

test('malformed CARP lines are refused with a reason', () => {
  for (const line of [
    '!system=CARP subsystem=0@em0 type=MASTER',
    '!system=CARP subsystem=256@em0 type=MASTER',
    '!system=CARP subsystem=1em0 type=MASTER',
    '!system=CARP subsystem=1@ type=MASTER',
    '!system=CARP subsystem=1@this-name-is-too-long0 type=MASTER',
    '!system=CARP subsystem=1@em0 type=master',
    '!system=CARP subsystem=1@em0 type=',
    '!system=CARP subsystem=1@em0',
    '!system=CARP type=MASTER',
    '!subsystem=1@em0 type=MASTER',
    'system=CARP subsystem=1@em0 type=MASTER',
    '',
  ]) {
    const r = parseDevdLine(line);
    assert.equal(r.kind, 'invalid', line);
    assert.ok(r.kind === 'invalid' && r.reason.length > 0);
  }
});

test('random bytes and huge lines are refused, never thrown', () => {
  for (const s of garbage(0xdead, 500, 300)) {
    const r = parseDevdLine(s);
    assert.ok(r.kind === 'invalid' || r.kind === 'other', JSON.stringify(s));
  }
  assert.equal(parseDevdLine(`!system=CARP subsystem=1@em0 type=MASTER ${'x'.repeat(MAX_LINE)}`).kind, 'invalid');
  assert.equal(parseDevdLine(`!${'a='.repeat(MAX_LINE / 2 - 1)}`).kind, 'invalid');
  assert.equal(parseDevdLine(undefined as unknown as string).kind, 'invalid');
});

test('the stream splitter joins lines across chunks and drops an overlong line whole', () => {
  const s = new LineSplitter(64);
  assert.deepEqual(s.push('!system=CARP subsys'), []);
  assert.deepEqual(s.push('tem=1@em0 type=MASTER\n!system=IF'), ['!system=CARP subsystem=1@em0 type=MASTER']);
  assert.deepEqual(s.push(`${'y'.repeat(100)}`), []);
  assert.equal(s.dropped, 1);
  assert.deepEqual(s.push(`${'y'.repeat(100)}\n!system=CARP subsystem=2@em0 type=BACKUP\n`), ['!system=CARP subsystem=2@em0 type=BACKUP']);
  assert.equal(s.dropped, 1);
  assert.deepEqual(s.push('x'.repeat(65) + '\nok\n'), ['ok']);
  assert.equal(s.dropped, 2);
  assert.deepEqual(s.push('tail'), []);
  assert.equal(s.flush(), 'tail');
  assert.equal(s.flush(), undefined);
});
