import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { underRoot, writeAtomic } from '../../src/adapters/atomic-write.js';
import { unifiedDiff } from '../../src/render/diff.js';

const root = mkdtempSync(join(tmpdir(), 'carpd-write-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('writeAtomic', () => {
  it('writes under the root, reports changed, and leaves an identical file alone', async () => {
    const first = await writeAtomic('/etc/x/a.conf', 'one\n', { root });
    assert.deepEqual(first, { path: '/etc/x/a.conf', changed: true });
    const real = join(root, 'etc/x/a.conf');
    assert.equal(readFileSync(real, 'utf8'), 'one\n');
    assert.equal(statSync(real).mode & 0o777, 0o644);
    const ino = statSync(real).ino;
    assert.deepEqual(await writeAtomic('/etc/x/a.conf', 'one\n', { root }), { path: '/etc/x/a.conf', changed: false });
    assert.equal(statSync(real).ino, ino, 'not rewritten');
    assert.equal((await writeAtomic('/etc/x/a.conf', 'two\n', { root })).changed, true);
    assert.notEqual(statSync(real).ino, ino, 'replaced by rename, never written in place');
    assert.deepEqual(readdirSync(join(root, 'etc/x')), ['a.conf'], 'no temp file left');
  });

  it('a mode change alone counts as a change', async () => {
    await writeAtomic('/etc/x/m', 'x', { root });
    const r = await writeAtomic('/etc/x/m', 'x', { root, mode: 0o600 });
    assert.equal(r.changed, true);
    assert.equal(statSync(join(root, 'etc/x/m')).mode & 0o777, 0o600);
  });

  it('refuses relative paths and keeps .. inside the root', async () => {
    await assert.rejects(writeAtomic('etc/x', 'x', { root }), { code: 'CARPD_ERR_TEMPLATE_NAME' });
    assert.equal(underRoot(root, '/../../etc/passwd'), join(root, 'etc/passwd'));
  });

  it('a write that cannot happen has its code', async () => {
    writeFileSync(join(root, 'file'), 'x');
    await assert.rejects(writeAtomic('/file/sub', 'x', { root }), { code: 'CARPD_ERR_WRITE' });
  });
});

describe('unifiedDiff', () => {
  it('shows a new file as all additions', () => {
    assert.equal(unifiedDiff(undefined, 'a\nb\n', '/f', '/f'), '--- /dev/null\n+++ /f\n@@ -0,0 +1,2 @@\n+a\n+b\n');
  });

  it('shows changed lines with three lines of context, and nothing when equal', () => {
    const a = '1\n2\n3\n4\n5\n6\n7\n8\n9\n';
    const b = '1\n2\n3\n4\nfive\n6\n7\n8\n9\n';
    assert.equal(unifiedDiff(a, b, '/f', '/f'), '--- /f\n+++ /f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n');
    assert.equal(unifiedDiff(a, a, '/f', '/f'), '');
  });

  it('marks a missing final newline', () => {
    assert.equal(unifiedDiff('a\n', 'a', '/f', '/f'), '--- /f\n+++ /f\n@@ -1,1 +1,1 @@\n-a\n+a\n\\ No newline at end of file\n');
  });
});
