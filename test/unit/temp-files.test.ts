/**
 * Temp files of the maintenance intent and of `carpd install-service`: a symlink planted where the
 * temp file used to go (a name known in advance, FILE.PID.tmp) is never followed; the target ends
 * up a regular file with the new content, and no temp file is left behind.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FileIntentStore, INTENT_FILE } from '../../src/adapters/intent-file.js';
import { installServiceCommand } from '../../src/cli/install-service.js';

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-tmpfiles-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A file someone wants overwritten, and symlinks to it at every name the old code could pick. */
function plant(target: string, victimDir: string): string {
  const victim = join(victimDir, 'victim');
  writeFileSync(victim, 'precious\n', { mode: 0o644 });
  symlinkSync(victim, `${target}.${process.pid}.tmp`);
  return victim;
}

test('the maintenance intent does not follow a symlink planted at its temp file name', (t) => {
  const dir = tmp(t);
  const state = join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  const victim = plant(join(state, INTENT_FILE), dir);
  const store = new FileIntentStore(state);
  store.write({ on: true, by: 'carpctl', since: '2026-01-01T00:00:00.000Z' });
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  assert.equal(statSync(victim).mode & 0o777, 0o644);
  assert.ok(lstatSync(store.file).isFile());
  assert.equal(statSync(store.file).mode & 0o777, 0o600);
  assert.deepEqual(store.read(), { on: true, by: 'carpctl', since: '2026-01-01T00:00:00.000Z' });
  // Only the intent and the planted link: no temp file left.
  assert.deepEqual(readdirSync(state).sort(), [INTENT_FILE, `${INTENT_FILE}.${process.pid}.tmp`].sort());
});

test('install-service does not follow a symlink planted at its temp file name', async (t) => {
  const prefix = tmp(t);
  const unitDir = join(prefix, 'etc/systemd/system');
  mkdirSync(unitDir, { recursive: true });
  const unit = join(unitDir, 'carpd.service');
  const victim = plant(unit, prefix);
  const out: string[] = [];
  const code = await installServiceCommand(['--prefix', prefix, '--os', 'linux', '--init', 'systemd', '--bin', '/usr/local/bin'], {
    out: (l) => out.push(l),
    err: (l) => out.push(`err: ${l}`),
  });
  assert.equal(code, 0, out.join('\n'));
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  assert.equal(statSync(victim).mode & 0o777, 0o644);
  assert.ok(lstatSync(unit).isFile(), 'the unit is a regular file, not the planted link');
  assert.match(readFileSync(unit, 'utf8'), /ExecStart=/);
  assert.deepEqual(readdirSync(unitDir).sort(), ['carpd.service', `carpd.service.${process.pid}.tmp`].sort());
});
