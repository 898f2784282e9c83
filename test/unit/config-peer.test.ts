import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCommand } from '../../src/cli/check.js';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import { comparePeers } from '../../src/config/peer-check.js';
import { capture, configFiles } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-config-peer-');

async function check(args: string[]) {
  return capture(checkCommand, args);
}

const SECRET = 'Sw0rdfish!';

/** fw1: an rc.conf; its peer fw2: hostname.carpN files (the same cluster, two OSes). */
const FW1 = [
  'ifconfig_em0="inet 192.0.2.2/27"',
  `ifconfig_em0_alias0="inet vhid 1 advskew 0 pass ${SECRET} alias 192.0.2.30/27"`,
  'ifconfig_em0_alias1="inet vhid 1 alias 192.0.2.29/32"',
  'ifconfig_em1_alias0="inet vhid 2 advskew 0 pass two alias 10.1.1.1/24"',
  '',
].join('\n');

test('two nodes that agree: configuration OK, exit 0', async (t) => {
  const tmp = tempDir(t);
  const fw1 = tmp.write('rc.conf', FW1);
  const c0 = tmp.write('hostname.carp0', `vhid 1 carpdev em0 advskew 100 pass ${SECRET}\ninet 192.0.2.29/32\ninet alias 192.0.2.30/27\n`);
  const c1 = tmp.write('hostname.carp1', 'vhid 2 carpdev em1 advskew 100 pass two\ninet 10.1.1.1/24\n');
  // Several peer files: after --peer, the rest of the words are the peer's too.
  assert.deepEqual(await check(['-c', fw1, '--peer', c0, c1]), { code: 0, out: ['configuration OK'], err: [] });
  assert.deepEqual(await check(['-c', fw1, '--peer', c0, '--peer', c1]), { code: 0, out: ['configuration OK'], err: [] });
});

test('each mismatch is reported at our line; the password is never shown', async (t) => {
  const tmp = tempDir(t);
  const fw1 = tmp.write(
    'rc.conf',
    [
      'ifconfig_em0="inet 192.0.2.2/27"',
      `ifconfig_em0_alias0="inet vhid 1 advskew 0 pass ${SECRET} alias 192.0.2.30/27"`,
      'ifconfig_em1_alias0="inet vhid 2 advbase 1 advskew 50 pass two alias 10.1.1.1/24"',
      'ifconfig_em1_alias1="inet vhid 3 advskew 0 pass three alias 10.1.1.3/24"',
      'ifconfig_em1_alias2="inet vhid 4 advskew 0 pass four alias 10.1.1.4/24"',
      'ifconfig_em1_alias3="inet vhid 4 alias 10.1.1.5/24"',
      '',
    ].join('\n'),
  );
  const peer = tmp.write(
    'carpd.conf',
    [
      '[vhid.a]',
      'vhid = 1',
      'interface = em0',
      'address = 192.0.2.30/27',
      'advskew = 100',
      `pass = ${SECRET}x`,
      '[vhid.b]',
      'vhid = 2',
      'interface = em2',
      'address = 10.1.1.1/24',
      'advbase = 2',
      'advskew = 50',
      'pass = two',
      '[vhid.d]',
      'vhid = 4',
      'interface = em1',
      'address = 10.1.1.4/24, 10.1.1.6',
      'advskew = 100',
      'pass = four',
      '[vhid.e]',
      'vhid = 5',
      'interface = em1',
      'address = 10.1.1.7/24',
      'pass = five',
      '',
    ].join('\n'),
  );
  const r = await check(['-c', fw1, '--peer', peer]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.out, []);
  assert.deepEqual(r.err, [
    `${fw1}:2: vhid 1: the password differs from the peer's (${peer}:1); each node would drop the other's adverts and both become MASTER`,
    `${fw1}:3: warning: vhid 2 is on em1 here but on em2 on the peer (${peer}:7); check both are on the same segment`,
    `${fw1}:3: vhid 2: advbase 1 here, 2 on the peer (${peer}:7); the election compares advbase first, so the skews no longer decide`,
    `${fw1}:3: warning: vhid 2: advskew 50 is the same on the peer (${peer}:7); give the intended master the lower one`,
    `${fw1}:4: vhid 3 on em1 is not configured on the peer`,
    `${fw1}:5: vhid 4: the addresses differ from the peer's (${peer}:14): only here: 10.1.1.5; only on the peer: 10.1.1.6; CARP hashes the address list, so each node would drop the other's adverts and both become MASTER`,
    `${peer}:20: vhid 5 on em1 (the peer's) is not configured here`,
  ]);
  assert.ok(!r.err.join('\n').includes(SECRET));
});

test('passwords are compared as the kernels use them (19 bytes); prefixes and spellings of an address do not matter', (t) => {
  const tmp = tempDir(t);
  const a = tmp.write(
    'a.conf',
    '[vhid.a]\nvhid = 1\ninterface = em0\naddress = 2001:db8::1/64, 10.0.0.1/24, fe80::1/64\nadvskew = 0\npass = 0123456789abcdefghiXX\n',
  );
  const b = tmp.write(
    'b.conf',
    '[vhid.a]\nvhid = 1\ninterface = em0\naddress = 10.0.0.1/32, 2001:0db8:0:0::1/64\nadvskew = 10\npass = 0123456789abcdefghiYY\n',
  );
  const ours = loadConfigFiles([a]);
  const theirs = loadConfigFiles([b]);
  // Both passwords are too long, which plain check reports; the peers still agree with each other.
  assert.deepEqual(comparePeers(ours.model, theirs.model), []);
});

test('--peer files with errors are reported with their own names, and no comparison is made', async (t) => {
  const tmp = tempDir(t);
  const fw1 = tmp.write('rc.conf', FW1);
  const bad = tmp.write('hostname.carp0', 'vhid 1 carpdev em0 advskew 300\ninet 192.0.2.30/27\n');
  const r = await check(['-c', fw1, '--peer', bad]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.err, [`${bad}:1: advskew must be 0..254, not 300`]);
});

test('a stray word without --peer is still a usage error', async (t) => {
  const fw1 = tempDir(t).write('rc.conf', FW1);
  const r = await check(['-c', fw1, 'other.conf']);
  assert.equal(r.code, 2);
  assert.match(r.err[0]!, /unexpected argument "other.conf"/);
  assert.equal((await check(['-c', fw1, '--format', 'bogus'])).code, 2);
});
