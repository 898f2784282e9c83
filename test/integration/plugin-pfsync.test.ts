/**
 * The pfsync plugin on Linux with real conntrackd (Debian's conntrackd), in lab namespaces: two
 * `carpd run` routers, each with conntrackd in FTFW mode (configuration, lock file, UNIX socket and
 * log under the lab directory) syncing to the other over UDP. A client's flow routed through the
 * MASTER is tracked there and reaches the BACKUP's external cache; when the master stops, the new
 * master commits it into its kernel table before the VIP moves (`-c`, `-f`, `-R`, `-B`), as
 * conntrack-tools' primary-backup.sh does. Each conntrackd log shows the sequence it was driven with.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { labNodes, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { hookRuns, nodeConf, nodeDir, startCarpd, stopCarpd, VIP, waitState, type Daemon } from './plugin-lab.js';

/** An address behind the routers (on the backend's loopback). */
const REMOTE = '10.77.0.4';

async function run(lab: Lab, ns: string, argv: string[], input?: string): Promise<void> {
  const r = await lab.exec(ns, argv, input !== undefined ? { input } : {});
  assert.equal(r.exitCode, 0, `${argv.join(' ')}: ${r.stderr}`);
}

async function router(lab: Lab, node: LabNode, peer: LabNode, advskew: number, passfile: string, backend: LabNode): Promise<Daemon> {
  await run(lab, node.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0']);
  await run(lab, node.ns, ['ip', 'route', 'add', `${REMOTE}/32`, 'via', backend.address, 'dev', 'eth0']);
  // Connection tracking runs in a namespace only when a ruleset uses it.
  await run(
    lab,
    node.ns,
    ['nft', '-f', '-'],
    'table ip track {\n\tchain forward_ct {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state new counter\n\t}\n}\n',
  );
  const dir = nodeDir(lab, node);
  const sections = [
    '[plugin.pfsync]',
    'follow = lan',
    'syncdev = eth0',
    `syncpeer = ${peer.address}`,
    `address = ${node.address}`,
    'control = direct',
    `conf = ${join(dir, 'conntrackd.conf')}`,
    `socket = ${join(dir, 'conntrackd.ctl')}`,
    `lockfile = ${join(dir, 'conntrackd.lock')}`,
    `logfile = ${join(dir, 'conntrackd.log')}`,
  ];
  return startCarpd(lab, node, nodeConf({ advskew, passfile, sections }));
}

const ctLog = (d: Daemon) => (existsSync(join(d.dir, 'conntrackd.log')) ? readFileSync(join(d.dir, 'conntrackd.log'), 'utf8') : '');

async function conntrackd(lab: Lab, d: Daemon, flag: string): Promise<{ code: number | null; out: string }> {
  const r = await lab.exec(d.node.ns, ['conntrackd', '-C', join(d.dir, 'conntrackd.conf'), flag]);
  return { code: r.exitCode, out: r.stdout };
}

/** Notices of the log in order, without timestamps. */
const notices = (log: string) => [...log.matchAll(/\[(?:notice|ERROR)\] (.*)$/gm)].map((m) => m[1]!);

test('conntrackd: a flow through the MASTER is synced to the BACKUP and committed there before it takes the VIP', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdct', nodes: labNodes(['r1', 'r2', 'client', 'backend']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const [n1, n2, client, backend] = [lab.node('r1'), lab.node('r2'), lab.node('client'), lab.node('backend')];
    await run(lab, backend.ns, ['ip', 'addr', 'add', `${REMOTE}/32`, 'dev', 'lo']);
    await run(lab, client.ns, ['ip', 'route', 'add', `${REMOTE}/32`, 'via', VIP]);

    const r1 = await router(lab, n1, n2, 0, pass, backend);
    await waitState(lab, r1, 'MASTER');
    const r2 = await router(lab, n2, n1, 100, pass, backend);
    await waitState(lab, r2, 'BACKUP');
    for (const d of [r1, r2]) {
      await waitFor(async () => (await conntrackd(lab, d, '-s')).code === 0, {
        timeoutMs: 10_000,
        intervalMs: 100,
        what: `conntrackd on ${d.node.name}; log:\n${d.lines.join('\n')}`,
      });
    }
    // r1 came up alone: pre-master committed (nothing yet) and bulk-sent before it took the VIP.
    // (r2's resync request makes r1 send another bulk update later.)
    assert.deepEqual(
      notices(ctLog(r1))
        .filter((l) => /^(committing|resync with master|sending bulk)/.test(l))
        .slice(0, 3),
      ['committing all external caches', 'resync with master conntrack table', 'sending bulk update'],
    );
    // r2 as BACKUP: timers shortened (-t), a resync asked for (-n).
    await waitFor(() => notices(ctLog(r2)).includes('resync requested'), { timeoutMs: 10_000, intervalMs: 100, what: `r2 conntrackd -n; log:\n${ctLog(r2)}` });
    assert.ok(
      notices(ctLog(r2)).some((l) => /^flushing conntrack table in \d+ secs$/.test(l)),
      ctLog(r2),
    );

    // A UDP flow from the client, routed through the VIP: r1 tracks it, conntrackd sends it to r2.
    const send = `const s = require('dgram').createSocket('udp4'); s.bind(40123, () => s.send('x', 9999, '${REMOTE}', () => s.close()));`;
    await waitFor(
      async () => {
        await lab.exec(client.ns, [process.execPath, '-e', send]);
        return (await conntrackd(lab, r2, '-e')).out.includes(`dst=${REMOTE}`);
      },
      { timeoutMs: 15_000, intervalMs: 500, what: `the flow in r2's external cache; r1 log:\n${ctLog(r1)}` },
    );
    const kernel2 = () => lab.exec(n2.ns, ['cat', '/proc/net/nf_conntrack']).then((r) => r.stdout);
    assert.doesNotMatch(await kernel2(), new RegExp(`dst=${REMOTE.replace(/\./g, '\\.')} .*sport=40123`), 'not in the backup’s kernel table yet');

    // Failover: r2's pre-master commits the external cache into its kernel before the VIP step.
    assert.equal(await stopCarpd(lab, r1), 0, r1.lines.join('\n'));
    await waitState(lab, r2, 'MASTER');
    await waitFor(() => notices(ctLog(r2)).includes('sending bulk update'), { timeoutMs: 10_000, intervalMs: 100, what: `r2 pre-master; log:\n${ctLog(r2)}` });
    assert.match(await kernel2(), new RegExp(`src=${client.address.replace(/\./g, '\\.')} dst=${REMOTE.replace(/\./g, '\\.')} sport=40123 dport=9999`));
    const seq = notices(ctLog(r2)).filter((l) => /^(committing|Committed|resync with master|sending bulk)/.test(l));
    assert.deepEqual(
      seq.slice(-4).map((l) => l.replace(/\d+/, 'N')),
      ['committing all external caches', 'Committed N new entries', 'resync with master conntrack table', 'sending bulk update'],
    );
    assert.ok(/Committed [1-9]\d* new entr/.test(seq.slice(-3)[0]!), seq.join(' | '));
    const runs = await hookRuns(lab, r2);
    assert.deepEqual(
      runs.filter((h) => h.result !== 'ok'),
      [],
    );
    assert.deepEqual(
      runs.filter((h) => h.seq > 0 && h.hook !== 'render').map((h) => h.hook),
      ['backup', 'pre-master'],
    );
    await stopCarpd(lab, r2);
  });
});
