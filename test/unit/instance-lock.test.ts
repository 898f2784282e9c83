/**
 * The instance lock (adapters/instance-lock.ts): a live holder is refused by PID and file; a dead
 * one, or a live PID that started at another time (PID reuse), is stale and taken over; release
 * removes only our own file; the names keep namespaces and ucarp's vhids apart.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { acquireInstanceLock, defaultRunDir, INSTANCE_LOCKED, lockFileName, netnsInode, processStartTime } from '../../src/adapters/instance-lock.js';

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A live process that is not us, killed by its PID after the test. */
function other(t: TestContext): ChildProcess {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

test('a live holder is refused, naming the lock file and its PID; nothing of ours is left behind', (t) => {
  const dir = tmp(t);
  const path = join(dir, 'run', 'carpd-net-1.lock');
  const holder = other(t);
  acquireInstanceLock(path, { pid: holder.pid! });
  assert.equal(readFileSync(path, 'utf8'), `${holder.pid}\n${processStartTime(holder.pid!)}\n`);
  assert.throws(
    () => acquireInstanceLock(path, { what: 'another carpd runs in this network namespace' }),
    (e: Error & { code?: string; pid?: number }) => {
      assert.equal(e.code, INSTANCE_LOCKED);
      assert.equal(e.pid, holder.pid);
      assert.equal(e.message, `another carpd runs in this network namespace (pid ${holder.pid}, lock ${path})`);
      return true;
    },
  );
  assert.deepEqual(readdirSync(join(dir, 'run')), ['carpd-net-1.lock']);
});

test('a dead holder is stale: the lock is taken over and release removes it', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'carpd-net-1.lock');
  const holder = other(t);
  acquireInstanceLock(path, { pid: holder.pid! });
  holder.kill('SIGKILL');
  await exited(holder);
  const lock = acquireInstanceLock(path);
  assert.equal(readFileSync(path, 'utf8').split('\n')[0], String(process.pid));
  lock.release();
  assert.equal(existsSync(path), false);
  assert.deepEqual(readdirSync(dir), []);
});

test('a live PID that started at another time than recorded is a reused PID: stale', (t) => {
  const dir = tmp(t);
  const path = join(dir, 'carpd-net-1.lock');
  const stranger = other(t);
  writeFileSync(path, `${stranger.pid}\n1\n`);
  const lock = acquireInstanceLock(path);
  assert.equal(readFileSync(path, 'utf8').split('\n')[0], String(process.pid));
  lock.release();
});

test('our own PID in the file is a previous life (PID 1 in a container): stale; garbage is stale', (t) => {
  const dir = tmp(t);
  const path = join(dir, 'x.lock');
  writeFileSync(path, `${process.pid}\n1\n`);
  acquireInstanceLock(path).release();
  writeFileSync(path, 'not a pid\n');
  acquireInstanceLock(path).release();
  assert.equal(existsSync(path), false);
});

test('release leaves a lock file that is no longer ours alone', (t) => {
  const dir = tmp(t);
  const path = join(dir, 'x.lock');
  const lock = acquireInstanceLock(path);
  writeFileSync(path, '1\n\n');
  lock.release();
  assert.equal(readFileSync(path, 'utf8'), '1\n\n');
});

test("the start time is /proc/PID/stat's field 22, counted after the last ')' of the command name", (t) => {
  const root = tmp(t);
  mkdirSync(join(root, '77'));
  const after = ['S', '1', '77', '77', '0', '-1', '4194560', '0', '0', '0', '0', '0', '0', '0', '0', '20', '0', '1', '0', '123456', '999'];
  writeFileSync(join(root, '77', 'stat'), `77 (evil) S 9 9 ) ${after.join(' ')}\n`);
  // The comm "evil) S 9 9 " holds a ")" and spaces: only the last ")" ends it.
  assert.equal(processStartTime(77, root), '123456');
  assert.equal(processStartTime(78, root), undefined);
  assert.match(processStartTime(process.pid) ?? '', /^\d+$/);
});

test('lock names: one per network namespace for carpd run, one per vhid and interface for carpd ucarp', () => {
  assert.equal(lockFileName({ kind: 'netns' }, 4026531833), 'carpd-net-4026531833.lock');
  assert.equal(lockFileName({ kind: 'netns' }, undefined), 'carpd-host.lock');
  assert.equal(lockFileName({ kind: 'vhid', vhid: 42, interface: 'eth0' }, 7), 'ucarp-net-7-vhid-42-eth0.lock');
  assert.notEqual(lockFileName({ kind: 'vhid', vhid: 42, interface: 'eth0' }, 7), lockFileName({ kind: 'vhid', vhid: 43, interface: 'eth0' }, 7));
  assert.notEqual(lockFileName({ kind: 'vhid', vhid: 42, interface: 'eth0' }, 7), lockFileName({ kind: 'vhid', vhid: 42, interface: 'eth0' }, 8));
  assert.equal(typeof netnsInode(), 'number');
  assert.equal(defaultRunDir({}, 'linux'), '/run/carpd');
  assert.equal(defaultRunDir({}, 'freebsd'), '/var/run/carpd');
  assert.equal(defaultRunDir({ RUNTIME_DIRECTORY: '/run/carpd-x:/run/other' }, 'linux'), '/run/carpd-x');
});
