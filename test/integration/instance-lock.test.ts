/**
 * One carpd per network namespace, in namespaces: a second `carpd run` beside a running master
 * refuses at once (exit 1, the lock file and the master's PID named) and touches nothing: the
 * master keeps its VIP and nothing bows out. After a kill -9 the stale lock is taken over. Several
 * `carpd ucarp` for different vhids share a namespace; a second one for the same vhid refuses.
 * The run directory comes from $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=) here.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CARPD_JS, labNodes, labVip, writePassfile, writeUcarpScripts } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const VIP = labVip(1);

interface Proc {
  child: ChildProcess;
  lines: string[];
  exit: Promise<number | null>;
}

function start(lab: Lab, node: LabNode, argv: string[], name: string): Proc {
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUNTIME_DIRECTORY: join(lab.dir, 'run'), STATE_DIRECTORY: join(lab.dir, `${name}-state`) },
  });
  const p: Proc = { child, lines: [], exit: new Promise((r) => child.once('exit', (code) => r(code))) };
  for (const s of [child.stdout, child.stderr]) createInterface({ input: s! }).on('line', (l) => p.lines.length < 2000 && p.lines.push(l));
  return p;
}

function conf(lab: Lab, name: string, passfile: string): string {
  const file = join(lab.dir, `${name}.conf`);
  writeFileSync(file, ['[carpd]', 'log = 5', '[vhid.v1]', 'vhid = 1', 'interface = eth0', `address = ${VIP}/16`, `passfile = ${passfile}`, ''].join('\n'), {
    mode: 0o600,
  });
  return file;
}

async function vips(lab: Lab, node: LabNode): Promise<string[]> {
  const r = await lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!).filter((a) => a !== node.address);
}

/** Resolves with the exit code, or 'running' after ms. */
async function exitWithin(p: Proc, ms: number): Promise<number | null | 'running'> {
  return Promise.race([p.exit, sleep(ms).then(() => 'running' as const)]);
}

test('a second carpd run in the same namespace refuses, names the lock and the PID, and leaves the master its VIP', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdlock', nodes: labNodes(['n1', 'obs']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const n1 = lab.node('n1');
    const first = start(lab, n1, ['run', '-c', conf(lab, 'a', pass), '--control', join(lab.dir, 'a.sock')], 'a');
    await waitFor(async () => (await vips(lab, n1)).includes(VIP), { timeoutMs: 15_000, what: `n1 to hold the VIP; log:\n${first.lines.join('\n')}` });
    const capture = await lab.capture(lab.node('obs').ns, 'eth0', 'ip proto 112');

    // Its own control socket and state: only the namespace is shared.
    const second = start(lab, n1, ['run', '-c', conf(lab, 'b', pass), '--control', join(lab.dir, 'b.sock')], 'b');
    const code = await exitWithin(second, 10_000);
    if (code === 'running') lab.kill(second.child, 'SIGKILL');
    assert.equal(code, 1, `the second carpd should refuse at once; its log:\n${second.lines.join('\n')}`);
    const ino = (await lab.exec(n1.ns, ['stat', '-L', '-c', '%i', '/proc/self/ns/net'])).stdout.trim();
    const lock = join(lab.dir, 'run', `carpd-net-${ino}.lock`);
    assert.ok(
      second.lines.some(
        (l) => l.includes('carpd: cannot start: another carpd runs in this network namespace') && l.includes(`(pid ${first.child.pid}, lock ${lock})`),
      ),
      second.lines.join('\n'),
    );
    assert.equal(existsSync(join(lab.dir, 'b.sock')), false, 'no control socket');
    // The master keeps its VIP, and keeps advertising normally: nobody bowed out (advskew 255).
    await sleep(1_500);
    assert.ok((await vips(lab, n1)).includes(VIP), 'the master lost its VIP');
    await capture.stop();
    const bowOuts = (await lab.exec(lab.node('obs').ns, ['tcpdump', '-nr', capture.file, '-v'])).stdout.split('\n').filter((l) => /advskew 255/.test(l));
    assert.deepEqual(bowOuts, []);
    assert.equal(first.child.exitCode, null, 'the first carpd still runs');
    assert.equal(readFileSync(lock, 'utf8').split('\n')[0], String(first.child.pid));

    // kill -9 leaves a stale lock; the next carpd takes it over.
    lab.kill(first.child, 'SIGKILL');
    await first.exit;
    assert.ok(existsSync(lock), 'kill -9 leaves the lock file');
    const third = start(lab, n1, ['run', '-c', conf(lab, 'c', pass), '--control', join(lab.dir, 'c.sock')], 'c');
    await waitFor(() => third.lines.some((l) => l.includes('carpd: running 1 vhid(s)')), {
      timeoutMs: 15_000,
      what: `the third carpd; log:\n${third.lines.join('\n')}`,
    });
    assert.equal(readFileSync(lock, 'utf8').split('\n')[0], String(third.child.pid));
    lab.kill(third.child, 'SIGTERM');
    assert.equal(await exitWithin(third, 10_000), 0);
    assert.equal(existsSync(lock), false, 'a clean exit removes the lock');
  });
});

test('carpd ucarp: one per vhid and interface; different vhids share a namespace', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdlocku', nodes: labNodes(['n1']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const { up, down } = writeUcarpScripts(lab.dir);
    const n1 = lab.node('n1');
    const ucarp = (vhid: number, name: string) =>
      start(lab, n1, ['ucarp', '-i', 'eth0', '-s', n1.address, '-v', String(vhid), '-o', pass, '-a', labVip(vhid), '-u', up, '-d', down, '-b', '1'], name);
    const a = ucarp(1, 'u1');
    const b = ucarp(2, 'u2');
    await waitFor(async () => (await vips(lab, n1)).includes(labVip(1)) && (await vips(lab, n1)).includes(labVip(2)), {
      timeoutMs: 15_000,
      what: `both ucarp VIPs; logs:\n${a.lines.join('\n')}\n${b.lines.join('\n')}`,
    });
    const again = ucarp(1, 'u1b');
    const code = await exitWithin(again, 10_000);
    if (code === 'running') lab.kill(again.child, 'SIGKILL');
    assert.equal(code, 1, again.lines.join('\n'));
    assert.ok(
      again.lines.some((l) => l.includes(`another carpd ucarp runs vhid 1 on eth0 in this network namespace (pid ${a.child.pid}`)),
      again.lines.join('\n'),
    );
    await sleep(1_000);
    assert.ok((await vips(lab, n1)).includes(labVip(1)), 'the refused ucarp ran its down script');
    assert.equal(a.child.exitCode, null);
    assert.equal(b.child.exitCode, null);
  });
});
