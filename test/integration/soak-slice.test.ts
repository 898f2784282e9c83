/**
 * A slice of the chaos soak (test/soak, `npm run soak`) that `npm test` runs: about a minute of
 * seeded faults against 3 carpd nodes × 16 vhids in namespaces, with the soak's checks after every
 * heal. The seed is fixed: its first rounds bring every fault kind (link flap and kill -9, loss,
 * a partition with loss, SIGHUP, another partition), so the slice is the same run every time
 * up to timing. It fails on any violation, with the soak's report in the message.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runSoak } from '../soak/soak.js';

const SEED = 'slice-2';
const DURATION_MS = 60_000;

test(`soak slice: ${DURATION_MS / 1000} s of seeded faults (seed ${SEED}), every check passes`, { timeout: 180_000 }, async (t) => {
  const logDir = mkdtempSync(join(tmpdir(), 'carpd-soak-slice-'));
  const lines: string[] = [];
  const r = await runSoak({ durationMs: DURATION_MS, seed: SEED, logDir, out: (l) => lines.push(l) });
  for (const l of lines) t.diagnostic(l);
  const report = lines.join('\n');
  assert.equal(r.error, undefined, report);
  assert.equal(r.interrupted, false);
  // The schedule really ran: rounds with faults, and a check after each.
  assert.ok(r.rounds >= 3, `only ${r.rounds} rounds\n${report}`);
  assert.equal(r.checks, r.rounds + 1, report);
  assert.deepEqual(r.violations, [], `${r.violations.length} violation(s); carpd logs kept in ${logDir}\n${report}`);
  rmSync(logDir, { recursive: true, force: true });
});
