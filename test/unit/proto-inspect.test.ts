import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspectCommand } from '../../src/cli/inspect.js';

/** test/fixtures/vectors/ in the source tree (this file runs from dist/test/unit/). */
const VECTORS = new URL('../../../test/fixtures/vectors/', import.meta.url);
const vector = (name: string): string => fileURLToPath(new URL(name, VECTORS));
const UCARP = ['ucarp-s1-basic-failover.pcap', 'ucarp-s3-signals.pcap', 'ucarp-s4-preempt.pcap'];
const CARP_KEYS = ['time', 'src', 'dst', 'ttl', 'version', 'type', 'vhid', 'advbase', 'advskew', 'demote', 'counter', 'auth'];

/** Run inspect, collecting stdout lines and whatever it writes to stderr. */
async function run(args: string[]): Promise<{ rc: number; lines: string[]; stderr: string }> {
  const lines: string[] = [];
  let stderr = '';
  const write = mock.method(process.stderr, 'write', (chunk: string | Uint8Array): boolean => {
    stderr += String(chunk);
    return true;
  });
  try {
    const rc = await inspectCommand(args, (l) => lines.push(l));
    return { rc, lines, stderr };
  } finally {
    write.mock.restore();
  }
}

function parse(lines: string[]): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

for (const file of UCARP) {
  test(`inspect --pass s3cretPass ${file}: one CARP line per advert, all auth ok (VIP found from the GARPs)`, async () => {
    const { rc, lines } = await run(['--pass', 's3cretPass', vector(file)]);
    assert.equal(rc, 0);
    assert.ok(lines.length > 0);
    let lastTime = 0;
    for (const o of parse(lines)) {
      assert.deepEqual(Object.keys(o), CARP_KEYS);
      assert.equal(o.auth, 'ok');
      assert.equal(o.vhid, 42);
      assert.equal(o.ttl, 255);
      assert.equal(o.version, 2);
      assert.equal(o.type, 1);
      assert.equal(o.dst, '224.0.0.18');
      assert.match(String(o.counter), /^\d+$/);
      assert.equal(typeof o.time, 'number');
      assert.ok((o.time as number) >= lastTime);
      lastTime = o.time as number;
    }
  });
}

test('inspect prints the README packet with its exact time and counter', async () => {
  const { lines } = await run([vector('ucarp-s1-basic-failover.pcap')]);
  const first = parse(lines)[0]!;
  assert.equal(first.src, '10.200.0.1');
  assert.equal(first.advskew, 0);
  assert.equal(first.counter, BigInt('0x3b89b501131154e0').toString());
  assert.match(lines[0]!, /^\{"time":\d+\.\d{6},"src":/);
});

test('inspect with a wrong password says bad; without one, unchecked', async () => {
  const file = vector('ucarp-s3-signals.pcap');
  const bad = parse((await run(['--pass', 'wrongPass', file])).lines);
  assert.ok(bad.length > 0);
  assert.ok(bad.every((o) => o.auth === 'bad'));
  const unchecked = parse((await run([file])).lines);
  assert.equal(unchecked.length, bad.length);
  assert.ok(unchecked.every((o) => o.auth === 'unchecked'));
});

test('inspect --address hashes exactly the addresses given', async () => {
  const file = vector('ucarp-s4-preempt.pcap');
  const right = parse((await run(['--pass', 's3cretPass', '--address', '10.200.0.100/24', file])).lines);
  assert.ok(right.length > 0 && right.every((o) => o.auth === 'ok'));
  const wrong = parse((await run(['--pass', 's3cretPass', '--address=10.200.0.100', '--address', '10.200.0.7', file])).lines);
  assert.ok(wrong.length > 0 && wrong.every((o) => o.auth === 'bad'));
});

test('inspect prints keepalived VRRPv3 adverts as version 3, unchecked', async () => {
  const { rc, lines } = await run(['--pass', 's3cretPass', vector('keepalived-vrrpv3.pcap')]);
  assert.equal(rc, 0);
  const objs = parse(lines);
  assert.ok(objs.length > 0);
  for (const o of objs) {
    assert.deepEqual(Object.keys(o), ['time', 'src', 'dst', 'ttl', 'version', 'type', 'vhid', 'priority', 'maxadvint', 'auth']);
    assert.equal(o.version, 3);
    assert.equal(o.vhid, 51);
    assert.equal(o.auth, 'unchecked');
    assert.equal(o.maxadvint, 100);
  }
  assert.ok(
    objs.some((o) => o.priority === 0),
    'the resigning advert',
  );
});

test('inspect --passfile reads the first line and refuses a world-readable file without echoing it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-inspect-'));
  try {
    const pf = join(dir, 'pass');
    writeFileSync(pf, 's3cretPass\nsecond line\n', { mode: 0o600 });
    chmodSync(pf, 0o600);
    const ok = await run(['--passfile', pf, vector('ucarp-s1-basic-failover.pcap')]);
    assert.equal(ok.rc, 0);
    assert.ok(parse(ok.lines).every((o) => o.auth === 'ok'));

    chmodSync(pf, 0o644);
    const refused = await run(['--passfile', pf, vector('ucarp-s1-basic-failover.pcap')]);
    assert.equal(refused.rc, 1);
    assert.deepEqual(refused.lines, []);
    assert.match(refused.stderr, /world-readable/);
    assert.ok(!refused.stderr.includes('s3cretPass'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inspect fails with 1 on usage errors, a missing file, a non-pcap file and a bad --address', async () => {
  const file = vector('ucarp-s1-basic-failover.pcap');
  const cases = [
    [],
    [file, file],
    ['--frobnicate', file],
    ['--pass'],
    ['--pass', 'a', '--passfile', 'b', file],
    [vector('does-not-exist.pcap')],
    [vector('README.md')],
    ['--pass', 's3cretPass', '--address', '10.200.0', file],
  ];
  for (const args of cases) {
    const r = await run(args);
    assert.equal(r.rc, 1, JSON.stringify(args));
    assert.deepEqual(r.lines, []);
    assert.ok(r.stderr.length > 0);
    assert.ok(!r.stderr.includes('s3cretPass'));
  }
});
