/**
 * The bgpd plugin with real OpenBGPD (Debian's openbgpd), in lab namespaces: two `carpd run`
 * routers (AS 65001) and an upstream router running its own bgpd (AS 65000). Only the MASTER
 * announces the VIP: the upstream's RIB has 198.18.1.1/32 via the master, the backup's session
 * stays down; when the master stops, its session goes down before the VIP leaves and the upstream
 * learns the VIP via the new master. Every bgpd has its configuration and control socket in the lab
 * directory and its chroot (/run/openbgpd) on a tmpfs in a mount namespace of its own.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { labNodes, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { hookRuns, nodeConf, nodeDir, startCarpd, stopCarpd, VIP, waitState, type Daemon } from './plugin-lab.js';

const RUN_DIR = '/run/openbgpd';

/** The upstream router's bgpd, in the foreground (-d) so the lab tracks and ends it by pid. */
function upstream(lab: Lab, node: LabNode, peers: LabNode[]): { sock: string; log: string[] } {
  const dir = nodeDir(lab, node);
  const conf = join(dir, 'bgpd.conf');
  const sock = join(dir, 'bgpd.sock');
  writeFileSync(
    conf,
    [
      'AS 65000',
      `router-id ${node.address}`,
      `socket "${sock}"`,
      `socket "${join(dir, 'bgpd.rsock')}" restricted`,
      'fib-update no',
      ...peers.map((p) => `neighbor ${p.address} {\n\tremote-as 65001\n}`),
      'allow from any',
      'allow to any',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const script = `set -e\nmount -t tmpfs -o mode=0755,size=8m carpd-test-run /run\nmkdir -p ${RUN_DIR}\nexec bgpd -d -f '${conf}'`;
  const child = lab.spawn(node.ns, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on('line', (l) => log.length < 2000 && log.push(l));
  return { sock, log };
}

function router(lab: Lab, node: LabNode, advskew: number, passfile: string, up: LabNode): Daemon {
  const dir = nodeDir(lab, node);
  const sections = [
    '[plugin.bgpd]',
    'follow = lan',
    'on_failure = demote 50',
    'as = 65001',
    `router_id = ${node.address}`,
    `neighbor = ${up.address} 65000`,
    `socket = ${join(dir, 'bgpd.sock')}`,
    `conf = ${join(dir, 'bgpd.conf')}`,
    'control = direct',
  ];
  return startCarpd(lab, node, nodeConf({ advskew, passfile, sections }), { privateRun: [RUN_DIR] });
}

/** The upstream's route to the VIP: its gateway, or undefined. */
async function vipRoute(lab: Lab, up: LabNode, sock: string): Promise<string | undefined> {
  const r = await lab.exec(up.ns, ['bgpctl', '-s', sock, 'show', 'rib']);
  if (r.exitCode !== 0) return undefined;
  const line = r.stdout.split('\n').find((l) => l.includes(` ${VIP}/32 `));
  return line?.trim().split(/\s+/)[3];
}

/** The upstream's view of its session with `peer`: `Established`-ish (a prefix count) or a state name. */
async function session(lab: Lab, up: LabNode, sock: string, peer: LabNode): Promise<string> {
  const r = await lab.exec(up.ns, ['bgpctl', '-s', sock, 'show', 'summary']);
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${peer.address} `)) ?? '';
  return line.trim().split(/\s+/).at(-1) ?? '';
}

test('OpenBGPD: only the MASTER announces the VIP; after failover the upstream learns it via the new master', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdbgp', nodes: labNodes(['r1', 'r2', 'up']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const up = lab.node('up');
    const [n1, n2] = [lab.node('r1'), lab.node('r2')];
    const u = upstream(lab, up, [n1, n2]);
    await waitFor(async () => (await lab.exec(up.ns, ['bgpctl', '-s', u.sock, 'show', 'summary'])).exitCode === 0, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: `the upstream bgpd; log:\n${u.log.join('\n')}`,
    });

    const r1 = router(lab, n1, 0, pass, up);
    await waitState(lab, r1, 'MASTER');
    const r2 = router(lab, n2, 100, pass, up);
    await waitState(lab, r2, 'BACKUP');
    // The master hook starts bgpd (not running yet) and brings the session up.
    const via1 = await waitFor(() => vipRoute(lab, up, u.sock), {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: `the VIP route at the upstream; r1:\n${r1.lines.join('\n')}\nupstream:\n${u.log.join('\n')}`,
    });
    assert.equal(via1, n1.address);
    assert.match(await session(lab, up, u.sock, n2), /^(Active|Connect|Idle)$/, 'the backup does not peer');

    // The master stops: pre-backup takes its session down (the route is withdrawn) before the VIP goes.
    assert.equal(await stopCarpd(lab, r1), 0, r1.lines.join('\n'));
    const r1bgp = await lab.exec(n1.ns, ['bgpctl', '-s', join(r1.dir, 'bgpd.sock'), 'show', 'neighbor', up.address]);
    assert.match(r1bgp.stdout, /BGP state = Idle, marked down/, 'r1’s bgpd keeps running with the session down');
    await waitState(lab, r2, 'MASTER');
    const via2 = await waitFor(async () => ((await vipRoute(lab, up, u.sock)) === n2.address ? n2.address : undefined), {
      timeoutMs: 25_000,
      intervalMs: 250,
      what: `the VIP via r2; r2:\n${r2.lines.join('\n')}`,
    });
    assert.equal(via2, n2.address);
    assert.deepEqual(
      (await hookRuns(lab, r2)).filter((h) => h.result !== 'ok'),
      [],
    );
    const order = (await hookRuns(lab, r2)).filter((h) => h.seq > 0 && h.hook !== 'render').map((h) => h.hook);
    assert.equal(order.at(-1), 'master');
    await stopCarpd(lab, r2);
  });
});
