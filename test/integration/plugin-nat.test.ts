/**
 * The nat plugin with real nftables, in lab namespaces: two `carpd run` routers, a client and a
 * backend server. The VIP's NAT table (dnat VIP:8080 → backend:80, snat of the client to the VIP)
 * exists in a router's ruleset exactly while it is MASTER, and it really translates: the client
 * reaches the backend through the VIP and the backend sees the VIP as the source, before and after
 * the failover, and a router that comes back as BACKUP holds no NAT table.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { labNodes, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { hookRuns, nodeConf, nodeDir, startCarpd, stopCarpd, VIP, waitState, type Daemon } from './plugin-lab.js';

async function router(lab: Lab, node: LabNode, advskew: number, passfile: string, backend: LabNode, client: LabNode): Promise<Daemon> {
  // A router forwards; it must not tell the client to go around it (ICMP redirects).
  const r = await lab.exec(node.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0']);
  assert.equal(r.exitCode, 0, r.stderr);
  const dir = nodeDir(lab, node);
  return startCarpd(
    lab,
    node,
    nodeConf({
      advskew,
      passfile,
      sections: [
        '[plugin.nat]',
        'follow = lan',
        'on_failure = demote 100',
        `dnat = tcp 8080 ${backend.address}:80`,
        `snat = ${client.address}/32`,
        `file = ${join(dir, 'nat.nft')}`,
      ],
    }),
  );
}

async function natTable(lab: Lab, d: Daemon): Promise<string | undefined> {
  const r = await lab.exec(d.node.ns, ['nft', 'list', 'ruleset']);
  assert.equal(r.exitCode, 0, r.stderr);
  return /table ip carpd_nat \{/.test(r.stdout) ? r.stdout : undefined;
}

async function through(lab: Lab, client: LabNode): Promise<string | undefined> {
  const r = await lab.exec(client.ns, ['curl', '-sS', '--max-time', '2', `http://${VIP}:8080/`], { timeoutMs: 5_000 });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

test('nftables: the VIP’s NAT table exists exactly on the MASTER, and translates through the VIP after failover', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdnat', nodes: labNodes(['r1', 'r2', 'client', 'backend']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const client = lab.node('client');
    const backend = lab.node('backend');
    lab.spawn(backend.ns, [
      process.execPath,
      '-e',
      `require('http').createServer((q, s) => s.end('backend saw ' + q.socket.remoteAddress + '\\n')).listen(80, '${backend.address}')`,
    ]);

    let r1 = await router(lab, lab.node('r1'), 0, pass, backend, client);
    await waitState(lab, r1, 'MASTER');
    const r2 = await router(lab, lab.node('r2'), 100, pass, backend, client);
    await waitState(lab, r2, 'BACKUP');
    const table = await waitFor(() => natTable(lab, r1), { timeoutMs: 10_000, intervalMs: 100, what: `r1's NAT table; log:\n${r1.lines.join('\n')}` });
    assert.match(table, new RegExp(`iifname "eth0" ip daddr ${VIP.replace(/\./g, '\\.')} tcp dport 8080 dnat to ${backend.address.replace(/\./g, '\\.')}:80`));
    assert.match(table, new RegExp(`oifname "eth0" ip saddr ${client.address.replace(/\./g, '\\.')} snat to ${VIP.replace(/\./g, '\\.')}`));
    assert.equal(await natTable(lab, r2), undefined, 'no NAT table on the BACKUP');
    const seen = `backend saw ${VIP}`;
    assert.equal(await waitFor(() => through(lab, client), { timeoutMs: 10_000, intervalMs: 200, what: 'the backend through the VIP' }), seen);

    // Failover: r1 stops (its backup hook deletes the table after the VIP has gone), r2 takes over.
    assert.equal(await stopCarpd(lab, r1), 0, r1.lines.join('\n'));
    assert.equal(await natTable(lab, r1), undefined, 'r1 deleted its table on the way out');
    await waitState(lab, r2, 'MASTER');
    await waitFor(() => natTable(lab, r2), { timeoutMs: 10_000, intervalMs: 100, what: `r2's NAT table; log:\n${r2.lines.join('\n')}` });
    assert.equal(
      await waitFor(async () => ((await through(lab, client)) === seen ? seen : undefined), {
        timeoutMs: 15_000,
        intervalMs: 200,
        what: 'the backend through r2',
      }),
      seen,
    );

    // r1 comes back: preempt is off, it stays BACKUP, and BACKUP means no table.
    r1 = await router(lab, lab.node('r1'), 0, pass, backend, client);
    await waitState(lab, r1, 'BACKUP');
    await waitFor(async () => (await hookRuns(lab, r1)).some((h) => h.hook === 'backup' && h.seq > 0), {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: 'r1 backup hook',
    });
    assert.equal(await natTable(lab, r1), undefined);
    assert.ok(await natTable(lab, r2));
    for (const d of [r1, r2]) {
      assert.deepEqual(
        (await hookRuns(lab, d)).filter((h) => h.result !== 'ok'),
        [],
        d.node.name,
      );
      await stopCarpd(lab, d);
    }
    assert.equal(await natTable(lab, r2), undefined, 'r2 deleted its table at shutdown');
  });
});
