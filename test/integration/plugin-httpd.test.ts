/**
 * Two routers running `carpd run` with the httpd (nginx) and nat (nftables) plugins, in lab
 * namespaces: a client namespace fetches http://VIP/ and gets the master's page; the master's
 * ruleset holds the VIP's NAT table and the backup's does not. The master stops; the services
 * follow the VIP: the client gets the new master's page, and the NAT table moved with it.
 * nginx runs with a configuration, prefix and pid file under the lab directory (never the host's).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { labNodes, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { ctl, hookRuns, nodeConf, nodeDir, startCarpd, stopCarpd, VIP, waitState, type Daemon } from './plugin-lab.js';

/** The two plugin sections of one router, everything under its lab directory. */
function sections(dir: string, user: string): string[] {
  return [
    '[plugin.nat]',
    'follow = lan',
    'snat = 10.0.0.0/24',
    'dnat = tcp 8080 10.0.0.10:80',
    `file = ${join(dir, 'nat.nft')}`,
    '',
    '[plugin.httpd]',
    'follow = lan',
    'on_failure = demote 50',
    'control = direct',
    // The lab directory is root's, mode 0700: nginx's workers read the page as root.
    `user = ${user}`,
    `root = ${join(dir, 'www')}`,
    `prefix = ${join(dir, 'nginx')}`,
    `conf = ${join(dir, 'nginx.conf')}`,
  ];
}

function router(lab: Lab, node: LabNode, advskew: number, passfile: string, user = 'root'): Daemon {
  const dir = nodeDir(lab, node);
  mkdirSync(join(dir, 'www'), { recursive: true });
  writeFileSync(join(dir, 'www', 'index.html'), `served by ${node.name}\n`);
  return startCarpd(lab, node, nodeConf({ advskew, passfile, sections: sections(dir, user) }));
}

/** What the client gets from http://VIP/ (curl, bounded), or undefined. */
async function fetchVip(lab: Lab, client: LabNode): Promise<string | undefined> {
  const r = await lab.exec(client.ns, ['curl', '-sS', '--max-time', '2', `http://${VIP}/`], { timeoutMs: 5_000 });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

async function nginxRuns(lab: Lab, d: Daemon): Promise<boolean> {
  const r = await lab.exec(d.node.ns, ['pgrep', '-F', join(d.dir, 'nginx', 'nginx.pid'), '-x', 'nginx']);
  return r.exitCode === 0;
}

/** The node's nftables ruleset (inside its namespace). */
async function ruleset(lab: Lab, d: Daemon): Promise<string> {
  const r = await lab.exec(d.node.ns, ['nft', 'list', 'ruleset']);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout;
}

const NAT_RULES = [
  /^\s*oifname "eth0" ip saddr 10\.0\.0\.0\/24 snat to 198\.18\.1\.1$/m,
  /^\s*iifname "eth0" ip daddr 198\.18\.1\.1 tcp dport 8080 dnat to 10\.0\.0\.10:80$/m,
];

async function assertMaster(lab: Lab, master: Daemon, backup: Daemon | undefined): Promise<void> {
  assert.equal(await nginxRuns(lab, master), true, `nginx on ${master.node.name}`);
  const rules = await ruleset(lab, master);
  for (const re of NAT_RULES) assert.match(rules, re);
  if (backup) {
    assert.equal(await nginxRuns(lab, backup), false, `no nginx on the backup ${backup.node.name}`);
    assert.doesNotMatch(await ruleset(lab, backup), /carpd_nat/, 'no NAT table on the backup');
  }
}

test('httpd and nat follow the VIP: the client gets the new master’s page after failover', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdweb', nodes: labNodes(['r1', 'r2', 'client']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const client = lab.node('client');
    const r1 = router(lab, lab.node('r1'), 0, pass);
    await waitState(lab, r1, 'MASTER');
    const r2 = router(lab, lab.node('r2'), 100, pass);
    await waitState(lab, r2, 'BACKUP');

    // The master hook runs right after the VIP step: wait for nginx, then look at everything.
    await waitFor(() => nginxRuns(lab, r1), { timeoutMs: 10_000, intervalMs: 100, what: `nginx on r1; log:\n${r1.lines.join('\n')}` });
    await assertMaster(lab, r1, r2);
    assert.equal(await waitFor(() => fetchVip(lab, client), { timeoutMs: 10_000, intervalMs: 200, what: 'the page from the VIP' }), 'served by r1');

    // The master stops: its pre-backup stops nginx before the VIP goes; its NAT table goes after.
    assert.equal(await stopCarpd(lab, r1), 0, r1.lines.join('\n'));
    assert.equal(await nginxRuns(lab, r1), false, 'r1 stopped nginx on its way out');
    assert.doesNotMatch(await ruleset(lab, r1), /carpd_nat/, 'r1 deleted its NAT table');
    await waitState(lab, r2, 'MASTER');
    const page = await waitFor(async () => ((await fetchVip(lab, client)) === 'served by r2' ? 'served by r2' : undefined), {
      timeoutMs: 15_000,
      intervalMs: 200,
      what: `r2's page from the VIP; r2 log:\n${r2.lines.join('\n')}`,
    });
    assert.equal(page, 'served by r2');
    await assertMaster(lab, r2, undefined);

    // Every hook that ran on r2 succeeded, in the promised order: stopped before the VIP, started after.
    const runs = await hookRuns(lab, r2);
    assert.deepEqual(
      runs.filter((h) => h.result !== 'ok'),
      [],
    );
    const order = runs.filter((h) => h.seq > 0).map((h) => `${h.hook} ${h.plugin}`);
    assert.deepEqual(order.slice(-4), ['render nat', 'render httpd', 'master nat', 'master httpd'], order.join(', '));
    assert.ok(!r1.lines.some((l) => /CARPD_ERR/.test(l)), r1.lines.join('\n'));
    assert.ok(!r2.lines.some((l) => /CARPD_ERR/.test(l)), r2.lines.join('\n'));
    await stopCarpd(lab, r2);
    assert.equal(await nginxRuns(lab, r2), false);
  });
});

test('a master whose nginx cannot start demotes itself (on_failure = demote 50): the peer takes over and serves', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdwebd', nodes: labNodes(['r1', 'r2', 'client']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const client = lab.node('client');
    // r1's nginx refuses to start (no such user for its workers).
    const r1 = router(lab, lab.node('r1'), 0, pass, 'carpd-no-such-user');
    await waitState(lab, r1, 'MASTER');
    await waitFor(async () => (await hookRuns(lab, r1)).some((h) => h.plugin === 'httpd' && h.hook === 'master' && h.result === 'error'), {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: `r1's failed master hook; log:\n${r1.lines.join('\n')}`,
    });
    const r2 = router(lab, lab.node('r2'), 100, pass);
    // r2 hears a more demoted master and takes over although preempt is off.
    await waitState(lab, r2, 'MASTER');
    await waitState(lab, r1, 'BACKUP');
    const page = await waitFor(async () => ((await fetchVip(lab, client)) === 'served by r2' ? 'served by r2' : undefined), {
      timeoutMs: 15_000,
      intervalMs: 200,
      what: `r2's page; r2 log:\n${r2.lines.join('\n')}`,
    });
    assert.equal(page, 'served by r2');
    const failed = (await hookRuns(lab, r1)).filter((h) => h.result !== 'ok');
    assert.ok(failed.length > 0 && failed.every((h) => h.plugin === 'httpd' && h.hook === 'master'), JSON.stringify(failed));
    assert.match(failed[0]!.error ?? '', /nginx exited with status 1/);
    // As BACKUP its run succeeds, which lifts the demotion; r2 stays MASTER (preempt is off).
    await waitFor(async () => /^demotion: group carp 0$/m.test((await ctl(lab, r1, 'status')).out), {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: 'r1 undemoted',
    });
    assert.equal(await nginxRuns(lab, r1), false);
    for (const d of [r2, r1]) await stopCarpd(lab, d);
  });
});
