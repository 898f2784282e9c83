/**
 * A short seeded slice of the packet fuzzer (test/fuzz/packets.ts; `npm run fuzz` runs 10^6):
 * the same checks on 20,000 packets through the real receive path, failing on any failure line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packets } from '../fuzz/packets.js';

test('packet fuzzer, seeded slice: no escape, every drop counted under its reason, RSS bounded', async () => {
  const rep = await packets({ seed: 20261128, count: 20_000, log: () => undefined });
  assert.equal(rep.cases, 20_000);
  assert.deepEqual(rep.failures, []);
  // The slice reaches every check: each reason, replays, accepted adverts and transitions.
  for (const reason of ['hdrops', 'badttl', 'badlen', 'badsum', 'badver', 'badvhid', 'badauth', 'replay']) {
    assert.ok(Number(rep.figures[`dropped ${reason}`]) > 0, `no packet dropped as ${reason}`);
  }
  assert.ok(Number(rep.figures.accepted) > 0);
  assert.ok(Number(rep.figures.transitions) > 0);
});
