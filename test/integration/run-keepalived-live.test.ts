/**
 * `carpd run` with `engine = keepalived` against Debian's real keepalived in a lab namespace: a
 * `script` plugin follows INSTANCE@VI_1 and runs its up script when keepalived holds the VIP, its
 * down script when keepalived stops; carpctl shows the instance as keepalived's dump reports it.
 * carpd runs outside the namespace: it needs only the FIFO, the pid file, the dumps and signals.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CARPD_JS } from '../../src/lab/lab.js';
import { waitFor, withLab } from '../../src/lab/netns.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const VIP = '198.18.0.100';

test(
  'carpd run, engine = keepalived, follows a real keepalived: the plugin runs up when it holds the VIP and down when it stops',
  { timeout: 120_000 },
  async () => {
    await withLab({ prefix: 'karun', nodes: ['a', 'c'] }, async (lab) => {
      const dir = join(lab.dir, 'ka');
      const tmp = join(dir, 'tmp');
      mkdirSync(tmp, { recursive: true });
      const fifo = join(dir, 'notify.fifo');
      const track = join(dir, 'demote');
      const pidFile = join(dir, 'keepalived.pid');
      const rec = join(dir, 'recorded.log');
      writeFileSync(
        join(dir, 'keepalived.conf'),
        `global_defs {\n  router_id nodea\n  notify_fifo ${fifo}\n}\ntrack_file carpd {\n  file ${track}\n  weight -1\n}\n` +
          `vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n` +
          `  virtual_ipaddress {\n    ${VIP}/24\n  }\n  track_file {\n    carpd\n  }\n}\n`,
      );
      for (const which of ['up', 'down']) {
        writeFileSync(join(dir, `${which}.sh`), `#!/bin/sh\necho "${which} $*" >> '${rec}'\n`);
        chmodSync(join(dir, `${which}.sh`), 0o755);
      }
      const conf = join(dir, 'carpd.conf');
      writeFileSync(
        conf,
        `[carpd]\nengine = keepalived\nkeepalived_fifo = ${fifo}\nkeepalived_pidfile = ${pidFile}\nkeepalived_track_file = ${track}\n` +
          `keepalived_dump_dir = ${tmp}\nstate_dir = ${join(dir, 'state')}\nlog = 5\n\n` +
          `[plugin.script]\nfollow = INSTANCE@VI_1\nup = ${join(dir, 'up.sh')}\ndown = ${join(dir, 'down.sh')}\n`,
        { mode: 0o600 },
      );
      const kaLog: string[] = [];
      const ka = lab.spawn(
        lab.node('a').ns,
        ['keepalived', '-P', '-n', '-l', '-D', '-f', join(dir, 'keepalived.conf'), '-p', pidFile, '-r', join(dir, 'vrrp.pid')],
        {
          env: { TMPDIR: tmp },
        },
      );
      for (const s of [ka.stdout, ka.stderr]) s?.on('data', (d: Buffer) => kaLog.length < 2000 && kaLog.push(d.toString().trimEnd()));
      const vipOn = async () => (await lab.exec(lab.node('a').ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(`${VIP}/24`);
      const recorded = () => {
        try {
          return readFileSync(rec, 'utf8').split('\n').filter(Boolean);
        } catch {
          return [];
        }
      };
      const sock = join(dir, 'carpd.sock');
      const lines: string[] = [];
      const carpd = spawn(process.execPath, [CARPD_JS, 'run', '-c', conf, '--control', sock, '--run-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      for (const s of [carpd.stdout, carpd.stderr]) createInterface({ input: s }).on('line', (l) => lines.length < 2000 && lines.push(l));
      const carpdExit = new Promise<number | null>((res) => carpd.once('exit', (code) => res(code)));
      try {
        await waitFor(vipOn, { timeoutMs: 20_000, what: 'keepalived MASTER with the VIP' });
        await waitFor(() => recorded().some((l) => l === `up eth0 ${VIP}`), { timeoutMs: 20_000, what: 'the up script' });
        const st = spawnSync(process.execPath, [CARPCTL_JS, '-s', sock, 'status'], { encoding: 'utf8', timeout: 10_000 });
        assert.match(st.stdout, /^eth0: carp: MASTER vhid 51 /m, st.stdout);
        assert.match(st.stdout, /^engine: keepalived$/m);
        // carpd's start (its plugins' set-up included) must not have moved keepalived's priority.
        assert.ok(!kaLog.some((l) => /effective priority/i.test(l)), kaLog.filter((l) => /priority/i.test(l)).join('\n'));

        lab.kill(ka, 'SIGTERM');
        await lab.waitExit(ka, 10_000);
        await waitFor(() => recorded().some((l) => l === `down eth0 ${VIP}`), { timeoutMs: 20_000, what: 'the down script' });
        // A down may come first: ucarp's rules run it for the BACKUP carpd finds when it starts first.
        const r = recorded();
        assert.deepEqual(r.slice(r.indexOf(`up eth0 ${VIP}`)), [`up eth0 ${VIP}`, `down eth0 ${VIP}`]);
      } catch (err) {
        if (err instanceof Error) err.message += `\n--- carpd ---\n${lines.slice(-40).join('\n')}\n--- keepalived ---\n${kaLog.slice(-30).join('\n')}`;
        throw err;
      } finally {
        if (carpd.exitCode === null) carpd.kill('SIGTERM');
        await Promise.race([carpdExit, new Promise((r) => setTimeout(r, 10_000).unref())]);
        if (carpd.exitCode === null && carpd.signalCode === null) carpd.kill('SIGKILL');
      }
    });
  },
);
