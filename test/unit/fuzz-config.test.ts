/**
 * The seeded slice of the config fuzzer (test/fuzz/config.ts) that `npm test` runs: a fixed seed,
 * a few cases per parser, and any failure line fails the test. `npm run fuzz` runs the long version.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Code, type Diagnostic } from '../../src/config/errors.js';
import { checkDiagnostic, config, PARSERS } from '../fuzz/config.js';

const SEED = 20261128;
const COUNT = 8 * PARSERS.length;

test('config fuzzer, seeded slice: no crash, every diagnostic FILE:LINE: message, bounded time', async () => {
  const started = performance.now();
  const r = await config({ seed: SEED, count: COUNT, log: () => {} });
  const ms = performance.now() - started;
  assert.deepEqual(r.failures, [], r.failures.join('\n'));
  assert.equal(r.cases, COUNT);
  assert.equal(r.figures.crashes, 0);
  for (const p of PARSERS) assert.equal(r.figures[`cases ${p}`], COUNT / PARSERS.length, `cases ${p}`);
  // The garbage is garbage: every file parser reported errors along the way.
  for (const p of PARSERS.filter((x) => x !== 'passfile')) assert.ok(Number(r.figures[`errors ${p}`]) > 0, `errors ${p}`);
  assert.ok(ms < 60_000, `${ms} ms`);
});

test("the fuzzer's diagnostic check rejects what it is there to catch", () => {
  const files = new Map([['/f/rc.conf', Buffer.from('a=1\nb=2\n')]]);
  const d = (over: Partial<Diagnostic>): Diagnostic => ({ severity: 'error', file: '/f/rc.conf', line: 1, code: Code.CONFIG_SYNTAX, message: 'bad', ...over });
  assert.equal(checkDiagnostic(d({}), files), undefined);
  assert.equal(checkDiagnostic(d({ line: 0, code: Code.CONFIG_READ }), files), undefined);
  assert.match(checkDiagnostic(d({ message: 'two\nlines' }), files)!, /control character/);
  assert.match(checkDiagnostic(d({ message: 'x'.repeat(5000) }), files)!, /5000-character/);
  assert.match(checkDiagnostic(d({ line: 9 }), files)!, /past the end/);
  assert.match(checkDiagnostic(d({ line: 0 }), files)!, /no line/);
  assert.match(checkDiagnostic(d({ file: '/elsewhere' }), files)!, /did not give/);
  assert.match(checkDiagnostic(d({ code: 'OOPS' }), files)!, /unknown code/);
  assert.match(checkDiagnostic(d({ message: '' }), files)!, /empty message/);
});
