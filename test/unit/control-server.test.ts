/**
 * The control socket against real engines on the fake wire: every command, the diagnosis lines,
 * the event ring and followers, malformed requests, the socket's mode and ownership rules, and the
 * Prometheus text.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { listenUnix } from '../../src/adapters/unix-socket.js';
import { ADMIN_DEMOTER, ControlServer } from '../../src/daemon/control-server.js';
import { ControlCode } from '../../src/daemon/control-protocol.js';
import { EventLog, type DaemonEvent } from '../../src/daemon/event-log.js';
import { followEvents, request } from '../../src/daemon/control-client.js';
import { formatStats, formatStatus, type StatsData, type StatusData } from '../../src/daemon/reports.js';
import type { TransitionEvent } from '../../src/daemon/engine.js';
import { FileIntentStore } from '../../src/adapters/intent-file.js';
import { Maintenance, MAINTENANCE_DEMOTER } from '../../src/daemon/maintenance.js';
import type { IntentStore, MaintenanceIntent } from '../../src/ports/intent-store.js';
import { MetricsServer, renderMetrics } from '../../src/daemon/metrics.js';
import { Sim, silent, vhidCfg, type SimNode } from '../helpers/fake-wire.js';

interface Harness {
  dir: string;
  sim: Sim;
  node: SimNode;
  events: EventLog;
  server: ControlServer;
  maintenance: Maintenance;
  sock: string;
}

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-ctl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * `nodes` on one wire (name, advskew, password); the control socket serves the node `serve`.
 * Time runs `settleMs` after start.
 */
async function harness(t: TestContext, nodes: [string, number, string?][], serve: string, settleMs = 5_000, store?: IntentStore): Promise<Harness> {
  const dir = tmp(t);
  const sim = new Sim();
  nodes.forEach(([name, skew, pass], i) => sim.add(name, i + 1, [vhidCfg(1, skew, pass ? { password: pass } : {})]));
  const node = sim.node(serve);
  const events = new EventLog();
  node.engine.on('transition', (ev: TransitionEvent) => events.publish({ type: 'transition', ...ev }));
  for (const n of sim.nodes.values()) n.engine.start();
  sim.time.advance(settleMs);
  const maintenance = new Maintenance(node.engine, store ?? new FileIntentStore(join(dir, 'state')), { logger: silent });
  const server = new ControlServer({ engine: node.engine, events, listen: listenUnix, logger: silent, maintenance });
  const sock = join(dir, 'carpd.sock');
  await server.listen(sock);
  t.after(() => server.close());
  return { dir, sim, node, events, server, maintenance, sock };
}

async function ok<T>(sock: string, req: Parameters<typeof request>[1]): Promise<T> {
  const r = await request(sock, req);
  assert.ok(r.ok, `request ${JSON.stringify(req)} failed: ${JSON.stringify(r)}`);
  return r.data as T;
}

/** Send raw text, collect `lines` answer lines (bounded). */
function raw(sock: string, text: string, lines: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = connect(sock);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`only got ${JSON.stringify(buf)}`));
    }, 3_000);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(text));
    c.on('data', (d: string) => {
      buf += d;
      const got = buf.split('\n').filter(Boolean);
      if (got.length >= lines) {
        clearTimeout(timer);
        c.destroy();
        resolve(got.slice(0, lines));
      }
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

test("status: one line per vhid in ifconfig's words, the master as seen in adverts, demotion per group, last transition", async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
    ],
    'b',
  );
  const d = await ok<StatusData>(h.sock, { cmd: 'status' });
  assert.equal(d.vhids.length, 1);
  assert.equal(d.vhids[0]!.state, 'BACKUP');
  assert.deepEqual(d.vhids[0]!.lastHeard && { src: d.vhids[0]!.lastHeard.src, advskew: d.vhids[0]!.lastHeard.advskew }, { src: '198.18.0.1', advskew: 0 });
  const text = formatStatus(d);
  assert.equal(text[0], 'eth0: carp: BACKUP vhid 1 advbase 1 advskew 100');
  assert.ok(text.includes('\tbackup, master is 198.18.0.1 (advskew 0)'), text.join('\n'));
  assert.ok(text.includes('\tlast transition: INIT -> BACKUP (initialization complete) at 2026-01-01T00:00:00.000Z'), text.join('\n'));
  assert.ok(text.includes('demotion: group carp 0'), text.join('\n'));
  assert.ok(text.includes('maintenance: off'), text.join('\n'));
  assert.equal(d.lastTransition?.to, 'BACKUP');
  assert.equal(d.lastTransition?.seq, 1);
});

test('a MASTER that has heard no peer for 60 s says so; one that hears a peer does not', async (t) => {
  const lone = await harness(t, [['a', 0]], 'a', 61_000);
  const d = await ok<StatusData>(lone.sock, { cmd: 'status' });
  assert.equal(d.vhids[0]!.state, 'MASTER');
  assert.ok(
    d.vhids[0]!.diagnosis.some((l) => /^MASTER but hearing no peer for 6\d s/.test(l)),
    JSON.stringify(d.vhids[0]!.diagnosis),
  );
  assert.ok(formatStatus(d).includes('\tmaster: this node (198.18.0.1)'));

  // Two vhids, each node MASTER of one: each hears the other's adverts, so multicast works.
  const sim = new Sim();
  const a = sim.add('a', 1, [vhidCfg(1, 0), vhidCfg(2, 100)]);
  sim.add('b', 2, [vhidCfg(1, 100), vhidCfg(2, 0)]);
  for (const n of sim.nodes.values()) n.engine.start();
  sim.time.advance(70_000);
  const events = new EventLog();
  const server = new ControlServer({ engine: a.engine, events, listen: listenUnix, logger: silent });
  const sock = join(tmp(t), 'a.sock');
  await server.listen(sock);
  t.after(() => server.close());
  const d2 = await ok<StatusData>(sock, { cmd: 'status' });
  const v1 = d2.vhids.find((v) => v.key === '1@eth0')!;
  assert.equal(v1.state, 'MASTER');
  assert.deepEqual(v1.diagnosis, []);
  assert.deepEqual(d2.vhids.find((v) => v.key === '2@eth0')!.diagnosis, ['backup, master is 198.18.0.2 (advskew 0)']);
});

test('bad authentication is diagnosed per peer with its count', async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
      ['x', 50, 'wrong-secret'],
    ],
    'b',
    10_000,
  );
  const d = await ok<StatusData>(h.sock, { cmd: 'status' });
  const v = d.vhids[0]!;
  const n = h.node.engine.badAuthByPeer.get('198.18.0.3 1@eth0') ?? 0;
  assert.ok(n > 1, `bad auth count ${n}`);
  assert.deepEqual(v.badAuth, [{ src: '198.18.0.3', count: n }]);
  assert.ok(v.diagnosis.includes(`bad authentication from 198.18.0.3 ×${n}`), JSON.stringify(v.diagnosis));
});

test('stats: netstat -s -p carp wording, plus per-vhid and per-peer counters', async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
      ['x', 50, 'wrong-secret'],
    ],
    'b',
    10_000,
  );
  const d = await ok<StatsData>(h.sock, { cmd: 'stats' });
  assert.equal(d.counters.carps_badauth, h.node.engine.stats.carps_badauth);
  const text = formatStats(d);
  assert.equal(text[0], 'carp:');
  assert.ok(text.includes(`\t${d.counters.carps_ipackets} packets received (IPv4)`), text.join('\n'));
  assert.ok(text.includes(`\t\t${d.counters.carps_badauth} discarded for bad authentication`), text.join('\n'));
  assert.ok(text.includes('\t0 transitions to master'), text.join('\n'));
  assert.ok(
    text.some((l) => /^\t1@eth0: 0 adverts sent, \d+ adverts received, 0 transitions to master, \d+ discarded for bad authentication$/.test(l)),
    text.join('\n'),
  );
  assert.ok(text.includes(`\t198.18.0.3 vhid 1@eth0: ${h.node.engine.badAuthByPeer.get('198.18.0.3 1@eth0')}`), text.join('\n'));
  assert.deepEqual(
    d.badAuth.map((b) => b.src),
    ['198.18.0.3'],
  );
});

test("demote +N / -N / reset changes only the admin's ledger entry; an unknown group is refused", async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
    ],
    'a',
  );
  const e = h.node.engine;
  e.demote('carp', 'plugin:httpd', 5);
  assert.deepEqual(await ok(h.sock, { cmd: 'demote', delta: 20 }), { group: 'carp', total: 25, admin: 20 });
  assert.deepEqual(await ok(h.sock, { cmd: 'demote', group: 'carp', delta: -5 }), { group: 'carp', total: 20, admin: 15 });
  h.sim.time.advance(100);
  // Demoted by 20, the master advertises it at once and a (less demoted) peer takes over.
  assert.deepEqual(h.sim.masters('1@eth0'), ['b']);
  assert.deepEqual(await ok(h.sock, { cmd: 'demote', reset: true }), { group: 'carp', total: 5, admin: 0 });
  assert.equal(e.ledger.held('carp', 'plugin:httpd'), 5, 'reset leaves other demoters alone');
  assert.equal(e.ledger.held('carp', ADMIN_DEMOTER), 0);
  const r = await request(h.sock, { cmd: 'demote', group: 'nosuch', delta: 1 });
  assert.deepEqual(r.ok ? r : { ok: r.ok, code: r.code }, { ok: false, code: ControlCode.NO_GROUP });
  assert.equal(h.server.stats.failed, 1);
});

test('state VHID@IF forces the vhid and emits the same transition event as the protocol', async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
    ],
    'b',
  );
  const seen: DaemonEvent[] = [];
  h.events.subscribe((e) => seen.push(e));
  const s = await ok<{ state: string; key: string }>(h.sock, { cmd: 'state', key: '1@eth0', state: 'MASTER' });
  assert.equal(s.state, 'MASTER');
  const tr = seen.find((e) => e.type === 'transition');
  assert.ok(tr && tr.type === 'transition');
  assert.deepEqual(
    { key: tr.key, vhid: tr.vhid, interface: tr.interface, from: tr.from, to: tr.to, reason: tr.reason },
    { key: '1@eth0', vhid: 1, interface: 'eth0', from: 'BACKUP', to: 'MASTER', reason: 'user requested' },
  );
  assert.equal(typeof tr.seq, 'number');
  assert.ok(seen.some((e) => e.type === 'admin' && e.action === 'state'));
  const r = await request(h.sock, { cmd: 'state', key: '9@eth0', state: 'BACKUP' });
  assert.equal(r.ok ? 'ok' : r.code, ControlCode.NO_VHID);
});

test('maintenance on: the intent reaches the store before the demotion changes, and survives a restart', async (t) => {
  const order: string[] = [];
  let stored: MaintenanceIntent | undefined;
  const store: IntentStore = {
    read: () => stored,
    write: (i) => {
      order.push(`write on=${i.on}`);
      stored = i;
    },
  };
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
    ],
    'a',
    5_000,
    store,
  );
  const e = h.node.engine;
  const origSet = e.setDemotion.bind(e);
  e.setDemotion = (g, by, n) => {
    order.push(`demote ${by} ${n}`);
    return origSet(g, by, n);
  };
  const on = await ok<MaintenanceIntent & { demote: number }>(h.sock, { cmd: 'maintenance', on: true });
  assert.equal(on.on, true);
  assert.equal(on.by, 'carpctl');
  assert.equal(on.demote, 240);
  assert.deepEqual(order, ['write on=true', `demote ${MAINTENANCE_DEMOTER} 240`]);
  h.sim.time.advance(100);
  assert.deepEqual(h.sim.masters('1@eth0'), ['b'], 'the peer took over');

  // A new daemon with the same store starts in maintenance.
  const sim2 = new Sim();
  const n2 = sim2.add('a', 1, [vhidCfg(1, 0)]);
  const m2 = new Maintenance(n2.engine, store, { logger: silent });
  assert.equal(m2.restore().on, true);
  assert.equal(n2.engine.ledger.held('carp', MAINTENANCE_DEMOTER), 240);

  order.length = 0;
  await ok(h.sock, { cmd: 'maintenance', on: false });
  assert.deepEqual(order, ['write on=false', `demote ${MAINTENANCE_DEMOTER} 0`]);
});

test('maintenance: a store that cannot be written leaves the demotion alone and the error is reported', async (t) => {
  const store: IntentStore = {
    read: () => undefined,
    write: () => {
      throw Object.assign(new Error('disk full'), { code: 'CARPD_ERR_STATE_WRITE' });
    },
  };
  const h = await harness(t, [['a', 0]], 'a', 5_000, store);
  const r = await request(h.sock, { cmd: 'maintenance', on: true });
  assert.deepEqual(r.ok ? r : { ok: r.ok, code: r.code }, { ok: false, code: 'CARPD_ERR_STATE_WRITE' });
  assert.equal(h.node.engine.ledger.held('carp', MAINTENANCE_DEMOTER), 0);
  assert.equal(h.maintenance.state.on, false);
});

test('the intent file is written atomically and restored; an unreadable one means "stay in maintenance"', (t) => {
  const dir = tmp(t);
  const store = new FileIntentStore(join(dir, 'state'));
  assert.equal(store.read(), undefined);
  store.write({ on: true, by: 'carpctl', since: '2026-01-01T00:00:00.000Z' });
  assert.deepEqual(store.read(), { on: true, by: 'carpctl', since: '2026-01-01T00:00:00.000Z' });
  assert.equal(statSync(store.file).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
  writeFileSync(store.file, '{ half a fi');
  const sim = new Sim();
  const n = sim.add('a', 1, [vhidCfg(1, 0)]);
  const logs: string[] = [];
  const m = new Maintenance(n.engine, store, { logger: { log: (_l, msg) => logs.push(msg) } });
  assert.equal(m.restore().on, true);
  assert.equal(n.engine.ledger.held('carp', MAINTENANCE_DEMOTER), 240);
  assert.ok(
    logs.some((l) => l.includes('not JSON')),
    logs.join('\n'),
  );
});

test('events: the ring keeps the newest 1000; a follower gets transitions and published hook runs live', async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
    ],
    'b',
  );
  for (let i = 0; i < 1005; i++) h.events.publish({ type: 'admin', time: new Date(0).toISOString(), action: 'test', detail: `#${i}` });
  const all = await ok<{ events: DaemonEvent[] }>(h.sock, { cmd: 'events' });
  assert.equal(all.events.length, 1000);
  assert.deepEqual(all.events[0], { type: 'admin', time: new Date(0).toISOString(), action: 'test', detail: '#5' });
  const two = await ok<{ events: DaemonEvent[] }>(h.sock, { cmd: 'events', limit: 2 });
  assert.deepEqual(
    two.events.map((e) => (e.type === 'admin' ? e.detail : '')),
    ['#1003', '#1004'],
  );

  const got: DaemonEvent[] = [];
  const f = followEvents(h.sock, (e) => got.push(e), 0);
  t.after(() => f.stop());
  // Wait until the server has the follower subscribed.
  for (let i = 0; i < 100 && h.server.stats.requests < 3; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  h.node.engine.force('1@eth0', 'MASTER', 'user requested');
  h.server.publish({ type: 'hook', time: new Date(0).toISOString(), plugin: 'httpd', hook: 'master', key: '1@eth0', seq: 2, durationMs: 120, result: 'ok' });
  for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    got.map((e) => e.type),
    ['transition', 'hook'],
  );
  f.stop();
  await f.done;
});

test('malformed requests are refused with a code and counted, and the server keeps answering', async (t) => {
  const h = await harness(t, [['a', 0]], 'a');
  const answers = await raw(
    h.sock,
    [
      'not json',
      '[1,2]',
      '{"cmd":"reboot"}',
      '{"cmd":"demote","delta":"9"}',
      '{"cmd":"state","key":"1@eth0","state":"UP"}',
      '{"cmd":"events","limit":-1}',
      '',
      '{"cmd":"status"}',
      '',
    ].join('\n'),
    7,
  );
  const parsed = answers.map((l) => JSON.parse(l) as { ok: boolean; code?: string });
  assert.deepEqual(
    parsed.slice(0, 6).map((p) => p.code),
    Array(6).fill(ControlCode.MALFORMED),
  );
  assert.equal(parsed[6]!.ok, true, 'a good request after bad ones is answered');
  assert.equal(h.server.stats.malformed, 6);

  const long = await raw(h.sock, `{"cmd":"${'x'.repeat(70_000)}`, 1);
  assert.equal((JSON.parse(long[0]!) as { code: string }).code, ControlCode.TOO_LONG);
  assert.equal(h.server.stats.malformed, 7);
  assert.equal((await request(h.sock, { cmd: 'status' })).ok, true);
});

test('the socket is mode 0600; a stale socket is replaced, a live one or a plain file is refused', async (t) => {
  const h = await harness(t, [['a', 0]], 'a');
  assert.equal(statSync(h.sock).mode & 0o777, 0o600);
  assert.equal(statSync(h.sock).uid, process.getuid?.());

  const other = new ControlServer({ engine: h.node.engine, events: h.events, listen: listenUnix, logger: silent });
  await assert.rejects(other.listen(h.sock), (e: { code?: string }) => e.code === ControlCode.IN_USE);

  const file = join(h.dir, 'plain');
  writeFileSync(file, 'not a socket');
  await assert.rejects(other.listen(file), (e: { code?: string }) => e.code === ControlCode.NOT_SOCKET);

  // A socket nobody listens on any more (a daemon killed with -9): taken over.
  const stale = join(h.dir, 'stale.sock');
  const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
  process.kill(holder.pid!, 'SIGKILL');
  await new Promise<void>((r) => (holder.exitCode !== null || holder.signalCode !== null ? r() : holder.once('exit', () => r())));
  assert.ok(statSync(stale).isSocket(), 'the stale socket file is there');
  await other.listen(stale);
  t.after(() => other.close());
  assert.equal((await request(stale, { cmd: 'status' })).ok, true);
  await other.close();
  assert.throws(() => statSync(stale), 'close() removes the socket file');
});

test('Prometheus text: per-vhid state, counters, drops by reason, demotion, maintenance, hook durations', async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
      ['x', 50, 'wrong-secret'],
    ],
    'a',
    10_000,
  );
  h.server.publish({ type: 'hook', time: new Date(0).toISOString(), plugin: 'httpd', hook: 'master', durationMs: 250, result: 'ok' });
  h.server.publish({ type: 'hook', time: new Date(0).toISOString(), plugin: 'httpd', hook: 'master', durationMs: 750, result: 'error' });
  const { text } = await ok<{ text: string }>(h.sock, { cmd: 'metrics' });
  const lines = text.split('\n');
  const has = (l: string) => assert.ok(lines.includes(l), `missing ${l} in\n${text}`);
  has('carpd_vhid_state{key="1@eth0",vhid="1",interface="eth0"} 2');
  has('carpd_vhid_master{key="1@eth0",vhid="1",interface="eth0"} 1');
  has(`carpd_packets_dropped_total{reason="badauth"} ${h.node.engine.stats.carps_badauth}`);
  has('carpd_demotion{group="carp"} 0');
  has('carpd_maintenance 0');
  has('carpd_hook_duration_seconds_sum{plugin="httpd",hook="master"} 1');
  has('carpd_hook_duration_seconds_count{plugin="httpd",hook="master"} 2');
  has('carpd_hook_runs_total{plugin="httpd",hook="master",result="error"} 1');
  has('# TYPE carpd_transitions_to_master_total counter');
  for (const l of lines.filter((x) => x && !x.startsWith('#'))) assert.match(l, /^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$/, l);
  assert.ok(text.endsWith('\n'));
  assert.equal(renderMetrics({ engine: h.node.engine }).includes('carpd_maintenance'), false, 'no maintenance family without maintenance');

  const m = new MetricsServer(() => renderMetrics({ engine: h.node.engine, events: h.events }), silent);
  await m.reconfigure('127.0.0.1:0');
  t.after(() => m.close());
  const res = await fetch(`http://127.0.0.1:${m.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  assert.ok((await res.text()).includes('carpd_vhid_state{'));
  assert.equal((await fetch(`http://127.0.0.1:${m.port}/`)).status, 404);
  await m.close();
});

test('pipelined requests: one 60 KB write neither holds the event loop nor piles up answers the client does not read', { timeout: 60_000 }, async (t) => {
  const h = await harness(
    t,
    [
      ['a', 0],
      ['b', 100],
    ],
    'b',
  );
  const req = '{"cmd":"status"}\n';
  const n = Math.ceil((60 * 1024) / req.length);
  // The longest gap between ticks of a 5 ms interval while the server works: how long the loop was held.
  let maxGap = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  t.after(() => clearInterval(ticker));
  const c = connect(h.sock);
  t.after(() => c.destroy());
  await new Promise<void>((res, rej) => {
    c.once('connect', res);
    c.once('error', rej);
  });
  // The client writes everything and reads nothing for a while.
  c.pause();
  c.write(req.repeat(n));
  await new Promise((r) => setTimeout(r, 1_500));
  const answeredWhileNotRead = h.server.stats.requests;
  const gapWhileWriting = maxGap;
  // Now it reads: every request gets its answer, in order, none lost.
  let buf = '';
  let lines = 0;
  c.setEncoding('utf8');
  const done = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`only ${lines} of ${n} answers`)), 40_000);
    c.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        assert.equal((JSON.parse(line) as { ok: boolean }).ok, true);
        if (++lines === n) {
          clearTimeout(timer);
          res();
        }
      }
    });
  });
  c.resume();
  await done;
  clearInterval(ticker);
  t.diagnostic(`${n} requests; answered while the client read nothing: ${answeredWhileNotRead}; longest event-loop gap: ${gapWhileWriting.toFixed(1)} ms`);
  assert.equal(h.server.stats.requests, n);
  assert.ok(answeredWhileNotRead < n / 2, `${answeredWhileNotRead} of ${n} requests answered into a socket nobody read`);
  assert.ok(gapWhileWriting < 250, `the event loop was held for ${gapWhileWriting.toFixed(0)} ms`);
});

test('a client that sends its requests and shuts down its side still gets every answer, then the server closes', async (t) => {
  const h = await harness(t, [['a', 0]], 'a');
  const c = connect(h.sock);
  t.after(() => c.destroy());
  c.setEncoding('utf8');
  let text = '';
  c.on('data', (d: string) => (text += d));
  const closed = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no close; got ${JSON.stringify(text)}`)), 5_000);
    c.once('close', () => {
      clearTimeout(timer);
      res();
    });
  });
  c.end('{"cmd":"status"}\n{"cmd":"stats"}\n{"cmd":"maintenance"}\n');
  await closed;
  const answers = text.split('\n').filter(Boolean);
  assert.equal(answers.length, 3, text);
  assert.ok(answers.every((a) => (JSON.parse(a) as { ok: boolean }).ok));
});
