/** The daemon's log sink: file or stderr, journald priority prefixes, never a throw. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../src/adapters/logger.js';
import { levelName } from '../../src/ports/logger.js';

/** Capture what goes to stderr while fn runs. */
function stderrOf(fn: () => void): string {
  const orig = process.stderr.write.bind(process.stderr);
  let out = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = orig;
  }
  return out;
}

test('a log file gets one timestamped line per event', () => {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-log-'));
  try {
    const file = join(dir, 'carpd.log');
    const l = createLogger({ file, timestamps: true });
    l.log(1, 'carp: 1@em0: BACKUP -> MASTER (master timed out)');
    l.log(7, 'carp: 1@em0: advert from 10.0.0.2');
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z carpd\\[${process.pid}\\]: carp: 1@em0: BACKUP -> MASTER \\(master timed out\\)$`));
    assert.match(lines[1]!, /carpd\[\d+\]: debug: carp: 1@em0: advert from 10\.0\.0\.2$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a log file that cannot be written falls back to stderr, and says so once', () => {
  const l = createLogger({ file: '/nonexistent-dir/carpd.log' });
  const out = stderrOf(() => {
    l.log(1, 'first');
    l.log(1, 'second');
  });
  assert.equal(out.match(/cannot write the log file/g)?.length, 1, out);
  assert.match(out, /carpd\[\d+\]: first\n/);
  assert.match(out, /carpd\[\d+\]: second\n/);
});

test('under journald each line carries its priority as <N> and no tag', () => {
  const out = stderrOf(() => {
    const l = createLogger({ priorityPrefix: true });
    l.log(3, 'carpd: control socket: in use');
    l.log(9, 'clamped');
  });
  assert.equal(out, '<3>carpd: control socket: in use\n<7>clamped\n');
  assert.deepEqual([0, 2, 5, 7].map(levelName), ['emerg', 'crit', 'notice', 'debug']);
});
