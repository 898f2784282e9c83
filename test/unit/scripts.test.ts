import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { scriptQueue } from '../../src/daemon/run.js';
import { scriptArgv } from '../../src/daemon/scripts.js';
import { ucarpScriptFor as scriptFor } from '../../src/proto/ucarp-scripts.js';
import type { TransitionEvent } from '../../src/daemon/engine.js';
import { silent, vhidCfg } from '../helpers/fake-wire.js';

const ev = (from: TransitionEvent['from'], to: TransitionEvent['to'], reason = 'x'): TransitionEvent => ({
  seq: 1,
  time: '',
  vhid: 1,
  interface: 'eth0',
  key: '1@eth0',
  from,
  to,
  reason,
});
const plain = { neutral: false, shutdown: false };

describe('ucarp script rules', () => {
  it('runs up on MASTER and down on BACKUP, including the first INIT → BACKUP', () => {
    assert.equal(scriptFor(ev('BACKUP', 'MASTER'), plain), 'up');
    assert.equal(scriptFor(ev('MASTER', 'BACKUP'), plain), 'down');
    assert.equal(scriptFor(ev('INIT', 'BACKUP'), plain), 'down');
  });

  it('-n skips the initial down script only', () => {
    const n = { neutral: true, shutdown: false };
    assert.equal(scriptFor(ev('INIT', 'BACKUP'), n), undefined);
    assert.equal(scriptFor(ev('MASTER', 'BACKUP'), n), 'down');
  });

  it('runs down at shutdown of a MASTER only with -z; always on link loss', () => {
    assert.equal(scriptFor(ev('MASTER', 'INIT', 'shutdown'), plain), undefined);
    assert.equal(scriptFor(ev('MASTER', 'INIT', 'shutdown'), { neutral: false, shutdown: true }), 'down');
    assert.equal(scriptFor(ev('MASTER', 'INIT', 'hardware interface down'), plain), 'down');
    assert.equal(scriptFor(ev('BACKUP', 'INIT', 'shutdown'), { neutral: false, shutdown: true }), undefined);
  });

  it('calls scripts as `script <interface> <vip> [xparam]` with the bare VIP', () => {
    const v = vhidCfg(1, 0, { upscript: '/up', downscript: '/down', xparam: 'lab', addresses: ['198.18.1.1/16'] });
    assert.deepEqual(scriptArgv(v, ev('BACKUP', 'MASTER'), plain), ['/up', 'eth0', '198.18.1.1', 'lab']);
    const { xparam: _x, ...noX } = v;
    assert.deepEqual(scriptArgv(noX, ev('MASTER', 'BACKUP'), plain), ['/down', 'eth0', '198.18.1.1']);
    assert.equal(scriptArgv({ ...v, upscript: undefined }, ev('BACKUP', 'MASTER'), plain), undefined);
  });
});

/** `p`, or a rejection naming `what` after `ms` (the timer never keeps the test alive). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: not done after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the daemon's script queue (real processes)", () => {
  it('a script that leaves `sleep 1000 &` behind does not stall the queue: the next script runs at once', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'carpd-scripts-'));
    const pidFile = join(dir, 'bg.pid');
    t.after(() => {
      // Kill only the background sleep this test started, by its pid.
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });
    const up = join(dir, 'up.sh');
    // The background child inherits the script's stdout and stderr pipes and keeps them open.
    writeFileSync(up, `#!/bin/sh\nsleep 1000 &\necho $! > '${pidFile}'\necho up "$@"\nexit 0\n`, { mode: 0o755 });
    const down = join(dir, 'down.sh');
    const marker = join(dir, 'down.ran');
    writeFileSync(down, `#!/bin/sh\necho "$@" > '${marker}'\n`, { mode: 0o755 });
    const q = scriptQueue(silent, 60_000);
    const t0 = Date.now();
    q.push([up, 'eth0', '198.18.1.1']);
    q.push([down, 'eth0', '198.18.1.1']);
    await within(q.drain(), 5_000, 'the script queue');
    assert.ok(Date.now() - t0 < 5_000);
    assert.equal(readFileSync(marker, 'utf8'), 'eth0 198.18.1.1\n');
    // The script's exit ended the wait; the background child is left alone (a service it started).
    assert.ok(alive(Number(readFileSync(pidFile, 'utf8').trim())), 'the background child should still run');
  });

  it('a script that hangs is killed with everything it started at the timeout, and the queue goes on', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'carpd-scripts-'));
    const pidFile = join(dir, 'bg.pid');
    t.after(() => {
      try {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
      } catch {
        // never written
      }
      rmSync(dir, { recursive: true, force: true });
    });
    const hang = join(dir, 'hang.sh');
    writeFileSync(hang, `#!/bin/sh\nsleep 1000 &\necho $! > '${pidFile}'\nwait\n`, { mode: 0o755 });
    const next = join(dir, 'next.sh');
    const marker = join(dir, 'next.ran');
    writeFileSync(next, `#!/bin/sh\ntouch '${marker}'\n`, { mode: 0o755 });
    const lines: string[] = [];
    const q = scriptQueue({ log: (_l, m) => void lines.push(m) }, 500);
    q.push([hang]);
    q.push([next]);
    await within(q.drain(), 5_000, 'the script queue');
    assert.ok(
      lines.some((l) => l.endsWith(`${hang} timed out`)),
      lines.join('\n'),
    );
    assert.ok(existsSync(marker), 'the next script ran');
    const bg = Number(readFileSync(pidFile, 'utf8').trim());
    // SIGKILL to the group; the child is reaped by init shortly after.
    const deadline = Date.now() + 2_000;
    while (alive(bg) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(!alive(bg) || /^Z/.test(procState(bg)), `the hung script's background child ${bg} survived the timeout`);
  });
});

function procState(pid: number): string {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2);
  } catch {
    return 'gone';
  }
}
