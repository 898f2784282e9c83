/** carpctl's command line and output, against a control server over engines on the fake wire. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { carpctl, CtlUsageError, parseCtlArgs, toRequest } from '../../src/cli/carpctl.js';
import { listenUnix } from '../../src/adapters/unix-socket.js';
import { ControlServer } from '../../src/daemon/control-server.js';
import { EventLog } from '../../src/daemon/event-log.js';
import type { TransitionEvent } from '../../src/daemon/engine.js';
import { FileIntentStore } from '../../src/adapters/intent-file.js';
import { Maintenance } from '../../src/daemon/maintenance.js';
import { waitFor } from '../../src/lab/netns.js';
import { Sim, silent, vhidCfg } from '../helpers/fake-wire.js';

interface Out {
  out: string[];
  err: string[];
  io: { out(l: string): void; err(l: string): void };
}

function capture(): Out {
  const o: Out = { out: [], err: [], io: { out: (l) => o.out.push(l), err: (l) => o.err.push(l) } };
  return o;
}

async function run(argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const c = capture();
  const code = await carpctl(argv, c.io);
  return { code, out: c.out.flatMap((l) => l.split('\n')), err: c.err };
}

/** Two nodes (a master, b backup); the socket serves b. */
async function daemon(t: TestContext): Promise<{ sock: string; sim: Sim; events: EventLog; server: ControlServer }> {
  const dir = mkdtempSync(join(tmpdir(), 'carpctl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sim = new Sim();
  sim.add('a', 1, [vhidCfg(1, 0)]);
  const b = sim.add('b', 2, [vhidCfg(1, 100)]);
  const events = new EventLog();
  b.engine.on('transition', (ev: TransitionEvent) => events.publish({ type: 'transition', ...ev }));
  for (const n of sim.nodes.values()) n.engine.start();
  sim.time.advance(5_000);
  const maintenance = new Maintenance(b.engine, new FileIntentStore(join(dir, 'state')), { logger: silent });
  const server = new ControlServer({ engine: b.engine, events, listen: listenUnix, logger: silent, maintenance });
  const sock = join(dir, 'carpd.sock');
  await server.listen(sock);
  t.after(() => server.close());
  return { sock, sim, events, server };
}

test('the command line: -s before the command, demote -N is an amount, not an option', () => {
  const p = parseCtlArgs(['-s', '/tmp/x.sock', 'demote', 'lan', '-20']);
  assert.equal(p.socket, '/tmp/x.sock');
  assert.deepEqual(toRequest(p), { cmd: 'demote', group: 'lan', delta: -20 });
  assert.deepEqual(toRequest(parseCtlArgs(['demote', '+5'])), { cmd: 'demote', delta: 5 });
  assert.deepEqual(toRequest(parseCtlArgs(['demote', 'reset'])), { cmd: 'demote', reset: true });
  // ifconfig -g GROUP carpdemote's spelling (OpenBSD regress carp_1)
  assert.deepEqual(toRequest(parseCtlArgs(['demote', '-g', 'regress1234a', '+1'])), { cmd: 'demote', group: 'regress1234a', delta: 1 });
  assert.deepEqual(toRequest(parseCtlArgs(['demote', '+1', '--group', 'lan'])), { cmd: 'demote', group: 'lan', delta: 1 });
  assert.throws(() => parseCtlArgs(['demote', '-g']), /-g needs a group name/);
  assert.deepEqual(toRequest(parseCtlArgs(['state', '3@em0', 'backup'])), { cmd: 'state', key: '3@em0', state: 'BACKUP' });
  assert.deepEqual(toRequest(parseCtlArgs(['maintenance', 'on'])), { cmd: 'maintenance', on: true });
  assert.deepEqual(toRequest(parseCtlArgs(['maintenance'])), { cmd: 'maintenance' });
  assert.deepEqual(toRequest(parseCtlArgs(['stats', '--prometheus'])), { cmd: 'metrics' });
  assert.equal(parseCtlArgs(['events', '-f', '-n', '5']).count, 5);
  assert.equal(parseCtlArgs(['--socket=/a', 'status']).socket, '/a');
  for (const bad of [
    [],
    ['reboot'],
    ['demote'],
    ['demote', '5'],
    ['demote', '+0'],
    ['demote', '+300'],
    ['state', '1@em0'],
    ['state', 'em0', 'MASTER'],
    ['state', '1@em0', 'UP'],
    ['maintenance', 'maybe'],
    ['stats', '--json', '--prometheus'],
    ['status', '--verbose'],
    ['-s'],
  ]) {
    assert.throws(() => toRequest(parseCtlArgs(bad)), CtlUsageError, JSON.stringify(bad));
  }
});

test('usage mistakes exit 2 with the usage; an unreachable daemon exits 3 naming the socket', async () => {
  const u = await run(['demote', 'x']);
  assert.equal(u.code, 2);
  assert.match(u.err[0]!, /^carpctl: demote: "x" is not \+N, -N/);
  assert.ok(u.err.some((l) => l.startsWith('usage: carpctl')));
  const n = await run(['-s', '/nonexistent/carpd.sock', 'status']);
  assert.equal(n.code, 3);
  assert.match(n.err[0]!, /cannot connect to \/nonexistent\/carpd\.sock: ENOENT .*is carpd running/);
  assert.equal((await run(['--help'])).code, 0);
});

test('every command against a daemon: status, stats, demote, state, maintenance, events', async (t) => {
  const d = await daemon(t);
  const s = ['-s', d.sock];

  const st = await run([...s, 'status']);
  assert.equal(st.code, 0, st.err.join('\n'));
  assert.equal(st.out[0], 'eth0: carp: BACKUP vhid 1 advbase 1 advskew 100');
  assert.ok(st.out.includes('\tbackup, master is 198.18.0.1 (advskew 0)'), st.out.join('\n'));
  const sj = await run([...s, 'status', '--json']);
  const parsed = JSON.parse(sj.out.join('\n')) as { vhids: { key: string; diagnosis: string[] }[] };
  assert.equal(parsed.vhids[0]!.key, '1@eth0');

  const stats = await run([...s, 'stats']);
  assert.equal(stats.out[0], 'carp:');
  assert.ok(
    stats.out.some((l) => /^\t\d+ packets received \(IPv4\)$/.test(l)),
    stats.out.join('\n'),
  );
  const prom = await run([...s, 'stats', '--prometheus']);
  assert.ok(prom.out.includes('carpd_vhid_state{key="1@eth0",vhid="1",interface="eth0"} 1'), prom.out.join('\n'));
  const sjs = JSON.parse((await run([...s, 'stats', '--json'])).out.join('\n')) as { counters: Record<string, number> };
  assert.equal(typeof sjs.counters.carps_ipackets, 'number');

  assert.deepEqual((await run([...s, 'demote', '+7'])).out, ['demotion: group carp 7 (admin 7)']);
  assert.deepEqual((await run([...s, 'demote', 'carp', '-2'])).out, ['demotion: group carp 5 (admin 5)']);
  assert.deepEqual((await run([...s, 'demote', 'reset'])).out, ['demotion: group carp 0 (admin 0)']);
  const noGroup = await run([...s, 'demote', 'lan', '+1']);
  assert.equal(noGroup.code, 1);
  assert.match(noGroup.err[0]!, /no vhid is in group lan \(CARPD_ERR_NO_GROUP\)/);

  assert.deepEqual((await run([...s, 'state', '1@eth0', 'MASTER'])).out, ['eth0: carp: MASTER vhid 1 advbase 1 advskew 100']);
  d.sim.time.advance(2_000);
  assert.equal((await run([...s, 'state', '9@eth0', 'MASTER'])).code, 1);

  assert.match((await run([...s, 'maintenance', 'on'])).out[0]!, /^maintenance: on since \S+ \(carpctl\), demote 240$/);
  assert.match((await run([...s, 'maintenance'])).out[0]!, /^maintenance: on since/);
  assert.deepEqual((await run([...s, 'maintenance', 'off'])).out, ['maintenance: off']);

  const ev = await run([...s, 'events']);
  assert.ok(
    ev.out.some((l) => /^\S+ seq 2 carp: 1@eth0: BACKUP -> MASTER \(user requested\)$/.test(l)),
    ev.out.join('\n'),
  );
  assert.ok(ev.out.some((l) => /^\S+ maintenance: off \(carpctl\)$/.test(l)) || ev.out.some((l) => / demote: group carp reset/.test(l)), ev.out.join('\n'));
  const last2 = await run([...s, 'events', '-n', '2', '--json']);
  assert.equal(last2.out.length, 2);
  assert.equal((JSON.parse(last2.out[1]!) as { type: string }).type.length > 0, true);
});

test('events --follow prints new events as they happen until stopped', async (t) => {
  const d = await daemon(t);
  const c = capture();
  const ac = new AbortController();
  const done = carpctl(['-s', d.sock, 'events', '--follow', '-n', '0'], c.io, { signal: ac.signal });
  await waitFor(() => d.server.stats.requests >= 1, { timeoutMs: 2_000, what: 'the follower' });
  await new Promise((r) => setTimeout(r, 50));
  d.server.publish({
    type: 'hook',
    time: '2026-01-01T00:00:00.000Z',
    plugin: 'nat',
    hook: 'master',
    key: '1@eth0',
    seq: 9,
    durationMs: 42,
    result: 'error',
    error: 'nft: exit 1',
  });
  await waitFor(() => c.out.length >= 1, { timeoutMs: 2_000, what: 'the event line' });
  assert.deepEqual(c.out, ['2026-01-01T00:00:00.000Z hook nat master 1@eth0 seq 9: error in 42 ms: nft: exit 1']);
  ac.abort();
  assert.equal(await done, 0);
});
