/**
 * `service carpd start|status|reload|stop` end to end on Debian without systemd: the LSB init
 * script from rc.d/ and /etc/default/carpd, in a mount namespace of our own (tmpfs on /run, our
 * files bound over /etc/init.d and /etc/default: the host's are never touched) inside a network
 * namespace of a lab. A second carpd on the lab is the peer that takes over when the service stops.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/adapters/exec.js';
import type { RunResult } from '../../src/ports/exec.js';
import type { StatusData } from '../../src/daemon/reports.js';
import { CARPD_JS, labNodes, labVip, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const RCD = fileURLToPath(new URL('../../../rc.d/', import.meta.url));
const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const PASSWORD = 'lab-secret';
const VIP1 = labVip(1);
const VIP2 = labVip(2);

/** A shell in its own mount namespace: /run is a fresh tmpfs, /etc/init.d and /etc/default are ours. */
class Sandbox {
  private constructor(
    readonly lab: Lab,
    readonly node: LabNode,
    readonly holder: ChildProcess,
  ) {}

  static async open(lab: Lab, node: LabNode, initd: string, defaults: string): Promise<Sandbox> {
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=0755,size=8m carpd-test-run /run',
      `mount --bind '${initd}' /etc/init.d`,
      `mount --bind '${defaults}' /etc/default`,
      'echo ready',
      // Bounded: the lab kills it at the end anyway.
      'exec sleep 300',
    ].join('\n');
    const holder = lab.spawn(node.ns, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    holder.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const ready = new Promise<boolean>((resolve) => {
      createInterface({ input: holder.stdout! }).on('line', (l) => l === 'ready' && resolve(true));
      holder.once('exit', () => resolve(false));
    });
    await waitFor(() => ready, { timeoutMs: 10_000, what: 'the mount namespace' });
    assert.ok(await ready, `mount namespace failed: ${err}`);
    return new Sandbox(lab, node, holder);
  }

  /** Run argv inside the sandbox (its mounts and the node's network namespace), bounded. */
  exec(argv: string[], timeoutMs = 20_000): Promise<RunResult> {
    return run(['nsenter', '-t', String(this.holder.pid), '-m', '-n', '--', ...argv], {
      timeoutMs,
      env: { PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
    });
  }

  service(action: string): Promise<RunResult> {
    return this.exec(['service', 'carpd', action], 40_000);
  }
}

function rcConf(vhids: number[]): string {
  return `${vhids.map((v, i) => `ifconfig_eth0_alias${i}="inet vhid ${v} advskew 0 pass ${PASSWORD} alias ${labVip(v)}/16"`).join('\n')}\n`;
}

async function vips(lab: Lab, node: LabNode): Promise<string[]> {
  const r = await lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!).filter((a) => a !== node.address);
}

test('service carpd start | status | reload | stop with the LSB script, /etc/default/carpd and an rc.conf', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdsvc', nodes: labNodes(['n1', 'n2']) }, async (lab) => {
    const n1 = lab.node('n1');
    const n2 = lab.node('n2');
    const d = lab.dir;
    for (const sub of ['initd', 'default', 'bin', 'conf', 'state']) mkdirSync(join(d, sub), { recursive: true });
    copyFileSync(join(RCD, 'carpd.init'), join(d, 'initd', 'carpd'));
    writeFileSync(join(d, 'bin', 'carpd'), `#!/bin/sh\nexec '${process.execPath}' '${CARPD_JS}' "$@"\n`, { mode: 0o755 });
    writeFileSync(join(d, 'bin', 'carpctl'), `#!/bin/sh\nexec '${process.execPath}' '${CARPCTL_JS}' "$@"\n`, { mode: 0o755 });
    const conf = join(d, 'conf', 'rc.conf');
    writeFileSync(conf, rcConf([1]), { mode: 0o600 });
    const log = join(d, 'carpd.log');
    // /etc/default/carpd as an admin would write it, from the shipped template plus settings.
    writeFileSync(
      join(d, 'default', 'carpd'),
      `${readFileSync(join(RCD, 'carpd.default'), 'utf8')}\nCARPD_CONFIG="${conf}"\nCARPD_OPTS="--log-level 5"\nCARPD_LOGFILE="${log}"\nCARPD_STATE_DIR="${join(d, 'state')}"\nDAEMON="${join(d, 'bin', 'carpd')}"\nCARPCTL="${join(d, 'bin', 'carpctl')}"\nNODE="${process.execPath}"\n`,
    );
    const box = await Sandbox.open(lab, n1, join(d, 'initd'), join(d, 'default'));
    const status = async (): Promise<StatusData> => {
      const r = await box.exec([join(d, 'bin', 'carpctl'), 'status', '--json']);
      assert.equal(r.exitCode, 0, r.stderr);
      return JSON.parse(r.stdout) as StatusData;
    };
    const logText = () => {
      try {
        return readFileSync(log, 'utf8');
      } catch {
        return '';
      }
    };

    // start
    const started = await box.service('start');
    assert.equal(started.exitCode, 0, `${started.stdout}${started.stderr}\n${logText()}`);
    await waitFor(async () => (await status()).vhids[0]?.state === 'MASTER', { timeoutMs: 10_000, what: 'carpd to become MASTER' });
    assert.deepEqual(await vips(lab, n1), [VIP1]);
    const pid = Number((await box.exec(['cat', '/run/carpd.pid'])).stdout.trim());
    assert.ok(pid > 1, 'pidfile in /run');
    assert.deepEqual((await box.exec(['stat', '-c', '%a', '/run/carpd.sock'])).stdout.trim(), '600');

    // The peer: a plain carpd with the same vhids at a higher advskew stays BACKUP.
    const peerConf = join(d, 'conf', 'n2.conf');
    const pass = writePassfile(d, PASSWORD);
    writeFileSync(
      peerConf,
      [
        '[carpd]',
        'log = 5',
        ...[1, 2].flatMap((v) => [`[vhid.v${v}]`, `vhid = ${v}`, 'interface = eth0', `address = ${labVip(v)}/16`, 'advskew = 100', `passfile = ${pass}`]),
      ].join('\n'),
      { mode: 0o600 },
    );
    const peer = lab.spawn(n2.ns, [process.execPath, CARPD_JS, 'run', '-c', peerConf, '--control', join(d, 'n2.sock')], {
      env: { STATE_DIRECTORY: join(d, 'n2-state') },
    });
    await waitFor(async () => (await vips(lab, n2)).includes(VIP2), { timeoutMs: 10_000, what: 'the peer to be MASTER of vhid 2' });
    assert.deepEqual(await vips(lab, n1), [VIP1], 'vhid 1 stays with the service');

    // status
    const st = await box.service('status');
    assert.equal(st.exitCode, 0, st.stdout + st.stderr);
    assert.match(st.stdout, /carpd is running/);
    assert.match(st.stdout, /^eth0: carp: MASTER vhid 1 advbase 1 advskew 0$/m);

    // reload with a broken config: refused by the script; a raw HUP is refused by carpd; nothing changes.
    const transitionsBefore = (await status()).vhids[0]!.lastTransition!.seq;
    writeFileSync(conf, 'ifconfig_eth0_alias0="inet vhid 300 pass x alias 10.0.0.1/24"\n', { mode: 0o600 });
    const bad = await box.service('reload');
    assert.notEqual(bad.exitCode, 0, 'reload with a broken configuration fails');
    await box.exec(['kill', '-HUP', String(pid)]);
    await waitFor(() => logText().includes('keeping the running configuration'), { timeoutMs: 5_000, what: 'carpd to refuse the broken configuration' });
    const unchanged = await status();
    assert.deepEqual(
      unchanged.vhids.map((v) => [v.key, v.state]),
      [['1@eth0', 'MASTER']],
    );

    // reload: a second vhid appears; vhid 1 has no transition.
    writeFileSync(conf, rcConf([1, 2]), { mode: 0o600 });
    const reloaded = await box.service('reload');
    assert.equal(reloaded.exitCode, 0, reloaded.stdout + reloaded.stderr);
    await waitFor(
      async () => {
        const v2 = (await status()).vhids.find((v) => v.key === '2@eth0');
        return v2?.state === 'BACKUP' && v2.lastHeard !== undefined;
      },
      { timeoutMs: 10_000, what: 'vhid 2 after the reload, BACKUP and hearing the peer' },
    );
    const after = await status();
    const v1 = after.vhids.find((v) => v.key === '1@eth0')!;
    assert.equal(v1.state, 'MASTER');
    assert.equal(v1.lastTransition!.seq, transitionsBefore, 'no transition for the unchanged vhid');
    assert.deepEqual(after.vhids.find((v) => v.key === '2@eth0')!.diagnosis, ['backup, master is 198.18.0.2 (advskew 100)']);
    assert.match(logText(), /configuration reloaded: 1 added \(2@eth0\), 0 removed, 0 changed, 1 unchanged/);

    // stop: the VIP leaves with carpd, the peer takes over at once (bow-out), status says stopped.
    const stopped = await box.service('stop');
    assert.equal(stopped.exitCode, 0, stopped.stdout + stopped.stderr);
    assert.deepEqual(await vips(lab, n1), []);
    await waitFor(async () => (await vips(lab, n2)).includes(VIP1), { timeoutMs: 3_000, what: 'the peer to take vhid 1' });
    const down = await box.service('status');
    assert.equal(down.exitCode, 3, down.stdout + down.stderr);
    assert.match(down.stdout, /carpd is not running/);
    assert.equal((await box.exec(['test', '-e', '/run/carpd.sock'])).exitCode, 1, 'the control socket is gone');
    assert.match(logText(), /SIGTERM: shutting down/);

    lab.kill(peer, 'SIGTERM');
    await lab.waitExit(peer, 5_000);
  });
});
