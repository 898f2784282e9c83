/**
 * `carpd run` with `engine = keepalived`, without a keepalived: what carpd itself does at start and
 * for carpctl — the keepalived.conf lines in the log, the engine in `carpctl status`, the refusal of
 * a forced state from the capability table, and the demotion written to the track_file and taken
 * back at shutdown. (KeepalivedSource against a real keepalived: keepalived-source.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CARPD_JS } from '../../src/lab/lab.js';
import { notifyFifoLine } from '../../src/sources/keepalived-conf.js';
import { eventually } from '../helpers/kernel-source.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');

test(
  'carpd run, engine = keepalived: logs the keepalived.conf lines, names the engine, refuses a forced state, reloads its own settings on HUP, demotes through the track_file',
  { timeout: 60_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'carpd-run-keepalived-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const fifo = join(dir, 'keepalived.fifo');
    const track = join(dir, 'demote');
    const conf = join(dir, 'carpd.conf');
    writeFileSync(
      conf,
      `[carpd]\nengine = keepalived\nkeepalived_fifo = ${fifo}\nkeepalived_pidfile = ${join(dir, 'keepalived.pid')}\nkeepalived_track_file = ${track}\nstate_dir = ${join(dir, 'state')}\nlog = 5\n`,
      { mode: 0o600 },
    );
    const sock = join(dir, 'carpd.sock');
    const child = spawn(process.execPath, [CARPD_JS, 'run', '-c', conf, '--control', sock, '--run-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    for (const s of [child.stdout, child.stderr]) createInterface({ input: s }).on('line', (l) => lines.length < 2000 && lines.push(l));
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const ctl = (...args: string[]) => spawnSync(process.execPath, [CARPCTL_JS, '-s', sock, ...args], { encoding: 'utf8', timeout: 10_000 });
    try {
      await eventually(() => lines.some((l) => l.includes('carpd: following keepalived')), 15_000, 'carpd following keepalived');
      // The header and the lines under it are separate writes: wait for each line, not only the header.
      await eventually(() => lines.some((l) => l.endsWith(notifyFifoLine(fifo))), 10_000, 'the notify_fifo line');
      await eventually(() => lines.some((l) => l.endsWith(`file ${track}`)), 10_000, 'the track_file line');
      assert.match(ctl('status').stdout, /^engine: keepalived$/m);

      // Through the fifo, as keepalived announces an instance.
      writeFileSync(fifo, 'INSTANCE "VI_1" MASTER 100\n');
      await eventually(() => lines.some((l) => l.includes('INSTANCE@VI_1: INIT -> MASTER')), 10_000, 'the fifo line');
      const forced = ctl('state', 'INSTANCE@VI_1', 'MASTER');
      assert.equal(forced.status, 1);
      assert.match(forced.stderr, /engine keepalived cannot force a vhid into a state/);
      assert.match(forced.stderr, /CARPD_ERR_ENGINE_UNSUPPORTED/);

      // HUP reloads carpd's own settings only: the instances are keepalived's.
      child.kill('SIGHUP');
      await eventually(
        () => lines.some((l) => l.includes("SIGHUP: configuration reloaded: carpd's settings; the vhids are keepalived's")),
        10_000,
        'the reload',
      );

      assert.equal(ctl('demote', '+3').status, 0);
      await eventually(() => readFileSync(track, 'utf8').trim() === '3', 10_000, 'the track_file at 3');
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 10_000).unref())]);
      assert.equal(code, 0);
      assert.equal(readFileSync(track, 'utf8').trim(), '0', 'carpd takes its demotion back at shutdown');
    } catch (err) {
      if (err instanceof Error) err.message += `\n--- carpd output ---\n${lines.slice(-60).join('\n')}`;
      throw err;
    }
  },
);
