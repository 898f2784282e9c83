/**
 * Whatever reads carpd's stderr can go away (OpenBSD's daemon_logger, FreeBSD's `daemon -S`,
 * logger(1) behind `carpd ucarp -B`). carpd runs as MASTER with its stderr to a pipe; the test
 * closes the pipe, makes carpd log (SIGUSR1's status dump), checks it still runs and holds its
 * VIP, then sends SIGTERM: the VIP is removed and the exit is clean. Also `carpd inspect | head`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { CARPD_JS, labNodes, labVip, writePassfile } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const VIP = labVip(1);

async function vips(lab: Lab, node: LabNode): Promise<string[]> {
  const r = await lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!).filter((a) => a !== node.address);
}

test('stderr closed mid-run: carpd keeps running, and SIGTERM still removes the VIP and exits 0', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdpipe', nodes: labNodes(['n1']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const n1 = lab.node('n1');
    const conf = join(lab.dir, 'n1.conf');
    writeFileSync(conf, ['[carpd]', 'log = 7', '[vhid.v1]', 'vhid = 1', 'interface = eth0', `address = ${VIP}/16`, `passfile = ${pass}`, ''].join('\n'), {
      mode: 0o600,
    });
    const child = lab.spawn(n1.ns, [process.execPath, CARPD_JS, 'run', '-c', conf, '--control', join(lab.dir, 'n1.sock'), '--run-dir', lab.dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { STATE_DIRECTORY: join(lab.dir, 'state') },
    });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const lines: string[] = [];
    const rl = createInterface({ input: child.stderr! });
    rl.on('line', (l) => lines.length < 2000 && lines.push(l));
    await waitFor(() => lines.some((l) => l.includes('INIT -> BACKUP')), { timeoutMs: 15_000, what: `carpd to start; log:\n${lines.join('\n')}` });
    await waitFor(async () => (await vips(lab, n1)).includes(VIP), { timeoutMs: 15_000, what: 'the VIP' });
    // The reader goes away: our end of the pipe is closed.
    rl.close();
    child.stderr!.destroy();
    await sleep(200);
    // log = 7 writes a line per advert; SIGUSR1 writes a status dump at once.
    lab.kill(child, 'SIGUSR1');
    await sleep(2_500);
    assert.equal(child.exitCode, null, 'carpd died when its stderr went away');
    assert.ok((await vips(lab, n1)).includes(VIP), 'the VIP went away with stderr');
    lab.kill(child, 'SIGTERM');
    const r = await Promise.race([exit, sleep(15_000).then(() => ({ code: -1, signal: null }))]);
    assert.deepEqual(r, { code: 0, signal: null });
    assert.deepEqual(await vips(lab, n1), [], 'the VIP must be removed at shutdown');
  });
});

test('carpd inspect FILE | head: no EPIPE crash, the exit status of a closed pipe (141)', (t) => {
  // A capture with its records repeated, so carpd is still writing when head has gone.
  const one = readFileSync(fileURLToPath(new URL('../../../test/fixtures/vectors/ucarp-s1-basic-failover.pcap', import.meta.url)));
  const dir = mkdtempSync(join(tmpdir(), 'carpd-epipe-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const big = join(dir, 'big.pcap');
  writeFileSync(big, Buffer.concat([one, ...Array.from({ length: 400 }, () => one.subarray(24))]));
  const r = spawnSync('bash', ['-c', `'${process.execPath}' '${CARPD_JS}' inspect '${big}' | head -c 1 >/dev/null; echo "status \${PIPESTATUS[0]}"`], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.doesNotMatch(r.stderr, /EPIPE|Unhandled|Error/, r.stderr);
  assert.match(r.stdout, /^status 141$/m, r.stdout + r.stderr);
});
