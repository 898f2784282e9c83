/**
 * The real FIFO and files under a temp dir: lines arrive without blocking the loop, a writer that
 * goes and comes back (a keepalived restart) is no end of file, and neither an open nor a closed
 * reader holds the process at exit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { realKeepalivedIo as io } from '../../src/adapters/keepalived-io.js';

const IO_MODULE = fileURLToPath(new URL('../../src/adapters/keepalived-io.js', import.meta.url));

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'carpd-kaio-'));
}

/** Opens the FIFO for writing as keepalived does (O_RDWR | O_NONBLOCK) and writes `text`. */
function writeAsKeepalived(path: string, text: string): void {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

async function until(pred: () => boolean, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('the FIFO is made once, a regular file in its place is refused', async () => {
  const dir = tempDir();
  try {
    const fifo = join(dir, 'k.fifo');
    await io.ensureFifo(fifo);
    await io.ensureFifo(fifo);
    writeFileSync(join(dir, 'plain'), 'x');
    await assert.rejects(io.ensureFifo(join(dir, 'plain')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lines written by successive writers all arrive: a writer closing is no end of file', async () => {
  const dir = tempDir();
  try {
    const fifo = join(dir, 'k.fifo');
    await io.ensureFifo(fifo);
    let got = '';
    const reader = await io.openFifo(
      fifo,
      (c) => (got += c.toString()),
      (e) => assert.fail(e),
    );
    writeAsKeepalived(fifo, 'INSTANCE "VI_1" BACKUP 100\n');
    await until(() => got.includes('BACKUP'));
    writeAsKeepalived(fifo, 'INSTANCE "VI_1" MASTER 100\n');
    await until(() => got.includes('MASTER'));
    assert.equal(got, 'INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" MASTER 100\n');
    assert.equal(await reader.stillAtPath(), true);
    unlinkSync(fifo);
    assert.equal(await reader.stillAtPath(), false);
    reader.close();
    reader.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a process reading the FIFO exits on its own, with the reader open or closed', async () => {
  const dir = tempDir();
  try {
    const fifo = join(dir, 'k.fifo');
    await io.ensureFifo(fifo);
    for (const closeIt of [true, false]) {
      const script = `
        const { realKeepalivedIo } = await import(${JSON.stringify(IO_MODULE)});
        const r = await realKeepalivedIo.openFifo(${JSON.stringify(fifo)}, () => {}, () => {});
        ${closeIt ? 'r.close();' : ''}
        console.log('opened');
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 5_000);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 0, `close=${closeIt}: the process hung or failed`);
      assert.equal(out.trim(), 'opened');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the track file is replaced whole, and a rewrite changes its identity', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'demote');
    await io.writeAtomic(path, '0\n');
    const a = await io.identity(path);
    await io.writeAtomic(path, '100\n');
    const b = await io.identity(path);
    assert.equal(await io.readText(path), '100\n');
    assert.notDeepEqual(a, b);
    assert.equal(await io.readText(join(dir, 'missing')), undefined);
    assert.equal(await io.identity(join(dir, 'missing')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pid that does not exist is not signalled and has no name; this process has a name and an age', async () => {
  assert.equal(io.signal(process.pid, 0), true);
  // pid_max is at most 2^22 on Linux: this pid cannot exist.
  assert.equal(io.signal(2 ** 22 + 1, 0), false);
  // Whatever the kernel calls this process: `node` on Node 20, `MainThread` on Node 24.
  assert.equal(await io.processName(process.pid), readFileSync('/proc/self/comm', 'utf8').trim());
  assert.equal(await io.processName(2 ** 22 + 1), undefined);
  const age = await io.processAgeMs(process.pid);
  assert.ok(age !== undefined && age >= 0 && age < 600_000, `age ${age}`);
});
