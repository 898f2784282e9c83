/**
 * Every carpctl command against carpd daemons running in lab namespaces: status with diagnosis,
 * stats (text, JSON, Prometheus, and the HTTP listener), demote, state, events --follow, SIGUSR1,
 * and SIGHUP with a broken and a good configuration.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { StatsData, StatusData } from '../../src/daemon/reports.js';
import { CARPD_JS, labNodes, labVip, writePassfile } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');

interface Daemon {
  node: LabNode;
  child: ChildProcess;
  sock: string;
  conf: string;
  lines: string[];
}

function conf(opts: { advskew: number; passfile: string; extra?: string[]; vhids?: number[] }): string {
  return [
    '[carpd]',
    'log = 5',
    ...(opts.extra ?? []),
    ...(opts.vhids ?? [1]).flatMap((v) => [
      `[vhid.v${v}]`,
      `vhid = ${v}`,
      'interface = eth0',
      `address = ${labVip(v)}/16`,
      `advskew = ${opts.advskew}`,
      `passfile = ${opts.passfile}`,
    ]),
    '',
  ].join('\n');
}

function start(lab: Lab, node: LabNode, text: string): Daemon {
  const file = join(lab.dir, `${node.name}.conf`);
  writeFileSync(file, text, { mode: 0o600 });
  const sock = join(lab.dir, `${node.name}.sock`);
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'run', '-c', file, '--control', sock], {
    env: { STATE_DIRECTORY: join(lab.dir, `${node.name}-state`) },
  });
  const d: Daemon = { node, child, sock, conf: file, lines: [] };
  for (const s of [child.stdout, child.stderr]) createInterface({ input: s! }).on('line', (l) => d.lines.length < 5000 && d.lines.push(l));
  return d;
}

/** carpctl run in the daemon's namespace, bounded. */
async function ctl(lab: Lab, d: Daemon, ...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await lab.exec(d.node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, ...args], { timeoutMs: 10_000 });
  return { code: r.exitCode, out: r.stdout, err: r.stderr };
}

async function json<T>(lab: Lab, d: Daemon, ...args: string[]): Promise<T> {
  const r = await ctl(lab, d, ...args, '--json');
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as T;
}

async function stateOf(lab: Lab, d: Daemon, key = '1@eth0'): Promise<string | undefined> {
  return (await json<StatusData>(lab, d, 'status')).vhids.find((v) => v.key === key)?.state;
}

test('carpctl status, stats, demote, state and events against daemons in namespaces', { timeout: 60_000 }, async () => {
  await withLab({ prefix: 'carpdctl', nodes: labNodes(['n1', 'n2', 'x']) }, async (lab) => {
    const pass = writePassfile(lab.dir);
    const wrong = join(lab.dir, 'wrong.pass');
    writeFileSync(wrong, 'not-the-secret\n', { mode: 0o600 });
    const n1 = start(lab, lab.node('n1'), conf({ advskew: 0, passfile: pass, extra: ['metrics = 127.0.0.1:9464'] }));
    await waitFor(async () => (await stateOf(lab, n1).catch(() => undefined)) === 'MASTER', { timeoutMs: 10_000, what: 'n1 MASTER' });
    const n2 = start(lab, lab.node('n2'), conf({ advskew: 100, passfile: pass }));
    // x has the wrong password: n1 and n2 count its adverts as bad authentication.
    const x = start(lab, lab.node('x'), conf({ advskew: 200, passfile: wrong }));
    await waitFor(async () => (await stateOf(lab, x).catch(() => undefined)) === 'MASTER', { timeoutMs: 10_000, what: 'x (alone with its password) MASTER' });
    await waitFor(async () => (await stateOf(lab, n2).catch(() => undefined)) === 'BACKUP', { timeoutMs: 5_000, what: 'n2 BACKUP' });
    await sleep(1_500);

    // status, in words
    const st = await ctl(lab, n2, 'status');
    assert.equal(st.code, 0, st.err);
    const lines = st.out.split('\n');
    assert.equal(lines[0], 'eth0: carp: BACKUP vhid 1 advbase 1 advskew 100');
    assert.ok(lines.includes('\tbackup, master is 198.18.0.1 (advskew 0)'), st.out);
    assert.ok(
      lines.some((l) => /^\tbad authentication from 198\.18\.0\.3 ×\d+$/.test(l)),
      st.out,
    );
    assert.ok(lines.includes('demotion: group carp 0'), st.out);
    assert.ok(lines.includes('maintenance: off'), st.out);
    assert.ok(
      lines.some((l) => /^last transition: 1@eth0 INIT -> BACKUP \(initialization complete\) at /.test(l)),
      st.out,
    );

    // stats: netstat's words, per vhid, per peer; JSON; Prometheus over the socket and over HTTP
    const stats = await ctl(lab, n1, 'stats');
    assert.ok(stats.out.startsWith('carp:\n'), stats.out);
    assert.match(stats.out, /^\t\d+ packets sent \(IPv4\)$/m);
    assert.match(stats.out, /^\t\t[1-9]\d* discarded for bad authentication$/m);
    assert.match(stats.out, /^\t1 transition to master$/m);
    assert.match(stats.out, /^\t198\.18\.0\.3 vhid 1@eth0: [1-9]\d*$/m);
    const sj = await json<StatsData>(lab, n1, 'stats');
    assert.ok(sj.counters.carps_opackets > 0 && sj.counters.carps_badauth > 0);
    const prom = await ctl(lab, n1, 'stats', '--prometheus');
    assert.match(prom.out, /^carpd_vhid_master\{key="1@eth0",vhid="1",interface="eth0"\} 1$/m);
    const http = await lab.exec(
      n1.node.ns,
      [process.execPath, '-e', 'fetch("http://127.0.0.1:9464/metrics").then(async (r) => { console.log(r.status); console.log(await r.text()); })'],
      { timeoutMs: 10_000 },
    );
    assert.match(http.stdout, /^200\n/);
    assert.match(http.stdout, /^carpd_packets_dropped_total\{reason="badauth"\} [1-9]/m);

    // events --follow, as a running process
    const follow = lab.spawn(n1.node.ns, [process.execPath, CARPCTL_JS, '-s', n1.sock, 'events', '--follow', '-n', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const followed: string[] = [];
    createInterface({ input: follow.stdout! }).on('line', (l) => followed.push(l));
    await sleep(500);

    // demote: n1 advertises the demotion at once; n2 (less demoted) takes over
    const dm = await ctl(lab, n1, 'demote', '+50');
    assert.equal(dm.out.trim(), 'demotion: group carp 50 (admin 50)');
    await waitFor(async () => (await stateOf(lab, n2)) === 'MASTER', { timeoutMs: 5_000, what: 'n2 to take over from the demoted n1' });
    const n1st = await json<StatusData>(lab, n1, 'status');
    assert.equal(n1st.vhids[0]!.state, 'BACKUP');
    assert.equal(n1st.vhids[0]!.lastTransition!.reason, 'less demoted advertisement received');
    assert.deepEqual(n1st.demotion[0], { group: 'carp', total: 50, by: [{ by: 'admin', count: 50 }] });
    assert.equal((await ctl(lab, n1, 'demote', '-20')).out.trim(), 'demotion: group carp 30 (admin 30)');
    assert.equal((await ctl(lab, n1, 'demote', 'reset')).out.trim(), 'demotion: group carp 0 (admin 0)');
    const noGroup = await ctl(lab, n1, 'demote', 'dmz', '+1');
    assert.equal(noGroup.code, 1);

    // state: force n1 back to MASTER; n2 hears the better advert and yields
    const forced = await ctl(lab, n1, 'state', '1@eth0', 'MASTER');
    assert.equal(forced.out.trim(), 'eth0: carp: MASTER vhid 1 advbase 1 advskew 0');
    await waitFor(async () => (await stateOf(lab, n2)) === 'BACKUP', { timeoutMs: 5_000, what: 'n2 to yield to the forced master' });
    assert.equal((await ctl(lab, n1, 'state', '7@eth0', 'MASTER')).code, 1);

    await waitFor(() => followed.some((l) => l.includes('BACKUP -> MASTER (user requested)')), {
      timeoutMs: 3_000,
      what: 'the follower to see the forced transition',
    });
    assert.ok(
      followed.some((l) => / demote: group carp \+50: admin holds 50, group total 50$/.test(l)),
      followed.join('\n'),
    );
    assert.ok(
      followed.some((l) => /^\S+ seq \d+ carp: 1@eth0: MASTER -> BACKUP \(less demoted advertisement received\)$/.test(l)),
      followed.join('\n'),
    );
    lab.kill(follow, 'SIGTERM');
    assert.equal(await lab.waitExit(follow, 3_000), 0);
    const ev = await ctl(lab, n1, 'events', '-n', '3');
    assert.equal(ev.out.trim().split('\n').length, 3, ev.out);

    // SIGUSR1: the status dump with diagnosis in the log
    const mark = n2.lines.length;
    lab.kill(n2.child, 'SIGUSR1');
    await waitFor(() => n2.lines.slice(mark).some((l) => /backup, master is 198\.18\.0\.1 \(advskew 0\)/.test(l)), {
      timeoutMs: 3_000,
      what: 'the SIGUSR1 dump',
    });
    assert.ok(n2.lines.slice(mark).some((l) => /eth0: carp: BACKUP vhid 1 advbase 1 advskew 100/.test(l)));

    // SIGHUP with a broken configuration changes nothing
    const before = await json<StatusData>(lab, n1, 'status');
    writeFileSync(n1.conf, '[vhid.v1]\nvhid = 1\ninterface = eth0\nadvskew = 999\n', { mode: 0o600 });
    let m = n1.lines.length;
    lab.kill(n1.child, 'SIGHUP');
    await waitFor(() => n1.lines.slice(m).some((l) => l.includes('keeping the running configuration')), {
      timeoutMs: 3_000,
      what: 'n1 to refuse the broken configuration',
    });
    assert.ok(
      n1.lines.slice(m).some((l) => /n1\.conf:\d+: /.test(l)),
      'the errors are logged with file:line',
    );
    const same = await json<StatusData>(lab, n1, 'status');
    assert.deepEqual(
      same.vhids.map((v) => [v.key, v.state, v.advskew, v.lastTransition?.seq]),
      before.vhids.map((v) => [v.key, v.state, v.advskew, v.lastTransition?.seq]),
    );

    // SIGHUP with a good one: advskew changes in place, a second vhid starts, no transition for vhid 1
    writeFileSync(n1.conf, conf({ advskew: 10, passfile: pass, vhids: [1, 2] }), { mode: 0o600 });
    m = n1.lines.length;
    lab.kill(n1.child, 'SIGHUP');
    await waitFor(() => n1.lines.slice(m).some((l) => l.includes('configuration reloaded')), { timeoutMs: 3_000, what: 'the reload' });
    assert.ok(
      n1.lines.slice(m).some((l) => l.includes('1 added (2@eth0), 0 removed, 1 changed (1@eth0), 0 unchanged')),
      n1.lines.slice(m).join('\n'),
    );
    const now = await json<StatusData>(lab, n1, 'status');
    const v1 = now.vhids.find((v) => v.key === '1@eth0')!;
    assert.equal(v1.state, 'MASTER');
    assert.equal(v1.advskew, 10);
    assert.equal(v1.lastTransition!.seq, before.vhids[0]!.lastTransition!.seq);
    assert.ok(now.vhids.some((v) => v.key === '2@eth0'));

    for (const d of [n1, n2, x]) lab.kill(d.child, 'SIGTERM');
    for (const d of [n1, n2, x]) assert.equal(await lab.waitExit(d.child, 8_000), 0);
  });
});
