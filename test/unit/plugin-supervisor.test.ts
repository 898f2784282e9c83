/**
 * The daemon's side of the plugin-host child: forwarding, the pre-phase gate, owned demotions,
 * restarts with backoff under the `plugins` demotion, and shutdown. A fake channel and a manual
 * clock for the supervisor itself; one test forks the real child.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CarpModel } from '../../src/config/model.js';
import { PLUGINS_DEMOTER, PLUGINS_DEMOTION, PluginSupervisor, type ChildEvent } from '../../src/daemon/plugin-supervisor.js';
import { startPluginHost } from '../../src/daemon/plugins.js';
import { PluginsInvalidError } from '../../src/host/errors.js';
import type { HookRecord } from '../../src/host/log.js';
import { parseFromChild, parseToChild, type ToChild } from '../../src/host/messages.js';
import type { HostChannel } from '../../src/ports/host-channel.js';
import type { CarpState, TransitionEvent } from '../../src/ports/state-source.js';
import type { HostTimers } from '../../src/ports/timers.js';

const KEY = '1@eth0';
const silent = { log: () => undefined };

function model(extra: Partial<CarpModel> = {}): CarpModel {
  return {
    global: { allow: true, preempt: false, log: 7 },
    vhids: [{ key: KEY, vhid: 1, interface: 'eth0', addresses: ['192.0.2.1/24'], advbase: 1, advskew: 0, password: 'secret', source: 't:1' }],
    plugins: [{ name: 'p', follow: { kind: 'vhid', ref: KEY }, options: {}, source: 't:2' }],
    ...extra,
  };
}

/** Timers the test advances by hand. */
class ManualTimers implements HostTimers {
  t = 0;
  private seq = 0;
  readonly due = new Map<number, { at: number; fn: () => void }>();
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.due.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (h: unknown): void => void this.due.delete(h as number);
  /** Runs what falls due within `ms`, in time order (bounded). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let i = 0; i < 10_000; i++) {
      const next = [...this.due].filter(([, d]) => d.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.due.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
  /** Pending delays from now. */
  pending(): number[] {
    return [...this.due.values()].map((d) => d.at - this.t).sort((a, b) => a - b);
  }
}

class FakeChild implements HostChannel {
  readonly sent: ToChild[] = [];
  readonly killed: string[] = [];
  private msg: (m: unknown) => void = () => undefined;
  private exitFn: (code: number | null, signal: string | null) => void = () => undefined;
  alive = true;
  constructor(readonly pid: number) {}
  send(m: unknown): boolean {
    if (!this.alive) return false;
    // What the real child would accept: the parent's messages must pass the child's checks.
    const parsed = parseToChild(JSON.parse(JSON.stringify(m)));
    assert.ok(parsed, `the child accepts ${JSON.stringify(m).slice(0, 200)}`);
    this.sent.push(parsed);
    return true;
  }
  onMessage(fn: (m: unknown) => void): void {
    this.msg = fn;
  }
  onExit(fn: (code: number | null, signal: string | null) => void): void {
    this.exitFn = fn;
  }
  kill(signal: string): void {
    this.killed.push(signal);
  }
  say(m: unknown): void {
    this.msg(m);
  }
  exit(code: number | null, signal: string | null = null): void {
    this.alive = false;
    this.exitFn(code, signal);
  }
  of<T extends ToChild['type']>(type: T): Extract<ToChild, { type: T }>[] {
    return this.sent.filter((m): m is Extract<ToChild, { type: T }> => m.type === type);
  }
}

class FakeSource extends EventEmitter {
  gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined;
  budgetMs = 0;
  readonly ledger = new Map<string, number>();
  state: CarpState = 'INIT';
  settle: Promise<void> = Promise.resolve();
  private seq = 0;
  setPhaseGate(gate: typeof this.gate, budgetMs = 500): void {
    this.gate = gate;
    this.budgetMs = budgetMs;
  }
  netSettled(): Promise<void> {
    return this.settle;
  }
  status() {
    return [{ key: KEY, state: this.state }] as never;
  }
  setDemotion(group: string, by: string, count: number): number {
    if (count === 0) this.ledger.delete(`${group} ${by}`);
    else this.ledger.set(`${group} ${by}`, count);
    return count;
  }
  /** Emits like the engine: the transition, then the gate. */
  flip(to: CarpState): { ev: TransitionEvent; gate: Promise<void> | undefined } {
    const ev: TransitionEvent = {
      seq: ++this.seq,
      time: '2026-01-01T00:00:00.000Z',
      vhid: 1,
      interface: 'eth0',
      key: KEY,
      from: this.state,
      to,
      reason: 'test',
    };
    this.state = to;
    this.emit('transition', ev);
    return { ev, gate: this.gate?.(ev) };
  }
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

async function rig(over: { restartMaxMs?: number } = {}) {
  const source = new FakeSource();
  const timers = new ManualTimers();
  const children: FakeChild[] = [];
  const events: ChildEvent[] = [];
  const sup = new PluginSupervisor({
    source,
    logger: silent,
    timers,
    spawn: () => {
      const c = new FakeChild(100 + children.length);
      children.push(c);
      return c;
    },
    init: { model: model(), options: {} },
    budgetMs: 500,
    restartMinMs: 1000,
    restartMaxMs: over.restartMaxMs ?? 30_000,
    stopTimeoutMs: 5000,
  });
  sup.on('child', (e: ChildEvent) => events.push(e));
  const started = sup.start();
  children[0]!.say({ type: 'ready', plugins: ['p'], gated: [KEY] });
  await started;
  return { source, timers, children, sup, events, child: () => children.at(-1)! };
}

describe('plugin supervisor', () => {
  it("sends the child its vhid states at start and every transition; the gate waits for that seq's pre-phase", async () => {
    const r = await rig();
    assert.deepEqual(r.children[0]!.of('init')[0]!.states, [{ key: KEY, state: 'INIT' }]);
    const { ev, gate } = r.source.flip('MASTER');
    assert.ok(gate, 'a gate while the child is ready');
    assert.equal(r.child().of('transition').length, 0, 'nothing sent inside the protocol step');
    await flush();
    assert.deepEqual(
      r
        .child()
        .of('transition')
        .map((m) => m.ev.seq),
      [ev.seq],
    );
    let done = false;
    void gate.then(() => (done = true));
    r.child().say({ type: 'pre-phase-done', seq: ev.seq + 1 });
    await flush();
    assert.equal(done, false, 'another seq does not open it');
    r.child().say({ type: 'pre-phase-done', seq: ev.seq });
    await flush();
    assert.equal(done, true);
    assert.deepEqual(r.child().of('vip-settled'), [{ type: 'vip-settled', seq: ev.seq, key: KEY }], 'the VIP step is reported once netSettled resolves');
    await stopClean(r);
  });

  it('sends a burst of transitions from one protocol step after the step, in order, with one status call', async () => {
    const r = await rig();
    let calls = 0;
    const status = r.source.status.bind(r.source);
    r.source.status = () => {
      calls++;
      return status();
    };
    const seqs = [r.source.flip('MASTER').ev.seq, r.source.flip('BACKUP').ev.seq, r.source.flip('MASTER').ev.seq];
    assert.equal(calls, 0);
    await flush();
    assert.equal(calls, 1);
    assert.deepEqual(
      r
        .child()
        .of('transition')
        .map((m) => m.ev.seq),
      seqs,
    );
    assert.deepEqual(
      r
        .child()
        .of('vip-settled')
        .map((m) => m.seq),
      seqs,
    );
    await stopClean(r);
  });

  it("sends vip-settled only after the state source's VIP work has finished", async () => {
    const r = await rig();
    let release!: () => void;
    r.source.settle = new Promise((ok) => (release = ok));
    r.source.flip('MASTER');
    await flush();
    assert.equal(r.child().of('vip-settled').length, 0);
    release();
    await flush();
    assert.equal(r.child().of('vip-settled').length, 1);
    await stopClean(r);
  });

  it('installs no gate for a vhid no plugin has a pre-phase hook for', async () => {
    const source = new FakeSource();
    const timers = new ManualTimers();
    const c = new FakeChild(7);
    const sup = new PluginSupervisor({ source, logger: silent, timers, spawn: () => c, init: { model: model(), options: {} }, budgetMs: 500 });
    const started = sup.start();
    c.say({ type: 'ready', plugins: ['p'], gated: [] });
    await started;
    assert.equal(source.flip('MASTER').gate, undefined);
    await flush();
    assert.equal(c.of('transition').length, 1, 'the transition is still forwarded');
    const stopping = sup.stop();
    c.exit(0);
    await stopping;
  });

  it("applies the child's demotions for its own names only, and drops malformed messages", async () => {
    const r = await rig();
    const hooks: HookRecord[] = [];
    r.sup.on('hook', (h: HookRecord) => hooks.push(h));
    r.child().say({ type: 'demote', group: 'carp', by: 'plugin:p', count: 50 });
    r.child().say({ type: 'demote', group: 'carp', by: 'boot:plugins', count: 240 });
    r.child().say({ type: 'demote', group: 'carp', by: 'admin', count: 200 });
    r.child().say({ type: 'demote', group: 'carp', by: 'plugin:p', count: 999 });
    r.child().say({ type: 'demote', group: 'carp', by: 'boot', count: 0 });
    r.child().say({ type: 'hook', record: { seq: 1, plugin: 'p', hook: 'nope' } });
    r.child().say('garbage');
    r.child().say({
      type: 'hook',
      record: { seq: 1, plugin: 'p', hook: 'master', key: KEY, scope: `vhid:${KEY}`, attempt: 1, startedAt: 'x', durationMs: 1, result: 'ok' },
    });
    assert.deepEqual(
      [...r.source.ledger],
      [
        ['carp plugin:p', 50],
        ['carp boot:plugins', 240],
      ],
    );
    assert.deepEqual(
      hooks.map((h) => `${h.plugin} ${h.hook} ${h.result}`),
      ['p master ok'],
    );
    await stopClean(r);
    assert.deepEqual([...r.source.ledger], [], 'released at stop');
  });

  it('a dead child: its demotions are released, the node holds `plugins` 128, pending gates open, and it is restarted', async () => {
    const r = await rig();
    r.source.setDemotion('carp', 'admin', 10);
    r.child().say({ type: 'demote', group: 'carp', by: 'plugin:p:self', count: 30 });
    r.child().say({ type: 'demote', group: 'web', by: 'plugin:p', count: 20 });
    const { gate } = r.source.flip('MASTER');
    let opened = false;
    void gate!.then(() => (opened = true));
    r.child().exit(70);
    await flush();
    assert.equal(opened, true, 'the VIP step does not wait for a dead child');
    assert.deepEqual(
      [...r.source.ledger],
      [
        ['carp admin', 10],
        [`carp ${PLUGINS_DEMOTER}`, PLUGINS_DEMOTION],
      ],
      "exactly the child's entries went",
    );
    assert.equal(r.source.flip('BACKUP').gate, undefined, 'no gate while no child runs');
    assert.equal(r.children.length, 1);
    r.timers.advance(999);
    assert.equal(r.children.length, 1, 'not before the backoff');
    r.timers.advance(1);
    assert.equal(r.children.length, 2, 'restarted after 1 s');
    assert.deepEqual(r.child().of('init')[0]!.states, [{ key: KEY, state: 'BACKUP' }], 'with the current states');
    assert.equal(r.child().of('init')[0]!.model.vhids[0]!.password, 'secret', 'the init passes the model it was given');
    r.child().say({ type: 'ready', plugins: ['p'], gated: [KEY] });
    assert.equal(r.source.ledger.get(`carp ${PLUGINS_DEMOTER}`), PLUGINS_DEMOTION, 'still demoted until set up');
    r.child().say({ type: 'setup-done' });
    assert.deepEqual([...r.source.ledger], [['carp admin', 10]]);
    assert.deepEqual(
      r.events.map((e) => e.event),
      ['ready', 'exit', 'restart', 'ready', 'setup-done'],
    );
    await stopClean(r);
  });

  it('restarts back off, doubling up to the cap, and start afresh after a child that ran a while', async () => {
    const r = await rig({ restartMaxMs: 4000 });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      r.child().exit(1);
      delays.push(r.timers.pending()[0]!);
      r.timers.advance(delays.at(-1)!);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 4000, 4000]);
    r.timers.advance(60_000);
    r.child().exit(1);
    assert.equal(r.timers.pending()[0], 1000);
    await r.sup.stop();
  });

  it('a child that stops answering pings (a plugin blocks its event loop for good) is killed and restarted', async () => {
    const source = new FakeSource();
    const timers = new ManualTimers();
    const children: FakeChild[] = [];
    const sup = new PluginSupervisor({
      source,
      logger: silent,
      timers,
      spawn: () => {
        const c = new FakeChild(children.length);
        children.push(c);
        return c;
      },
      init: { model: model(), options: {} },
      budgetMs: 500,
      pingEveryMs: 1000,
      hangMs: 3000,
    });
    const started = sup.start();
    children[0]!.say({ type: 'ready', plugins: ['p'], gated: [] });
    await started;
    // Answering: never killed.
    for (let i = 0; i < 10; i++) {
      timers.advance(1000);
      const last = children[0]!.of('ping').at(-1)!;
      children[0]!.say({ type: 'pong', n: last.n });
    }
    assert.deepEqual(children[0]!.killed, []);
    // Silent from now on.
    timers.advance(2000);
    assert.deepEqual(children[0]!.killed, [], 'not before hangMs');
    timers.advance(1000);
    assert.deepEqual(children[0]!.killed, ['SIGKILL']);
    children[0]!.exit(null, 'SIGKILL');
    assert.equal(source.ledger.get(`carp ${PLUGINS_DEMOTER}`), PLUGINS_DEMOTION);
    timers.advance(1000);
    assert.equal(children.length, 2, 'restarted');
    const stopping = sup.stop();
    await flush();
    children[1]!.exit(0);
    await stopping;
  });

  it('a restarted child that does not load its plugins in time is killed and tried again', async () => {
    const r = await rig();
    r.child().exit(70);
    r.timers.advance(1000);
    assert.equal(r.children.length, 2);
    r.timers.advance(59_999);
    assert.deepEqual(r.child().killed, []);
    r.timers.advance(1);
    assert.deepEqual(r.child().killed, ['SIGKILL']);
    r.child().exit(null, 'SIGKILL');
    r.timers.advance(2000);
    assert.equal(r.children.length, 3, 'restarted after the next backoff step');
    await stopClean(r);
  });

  it('messages from a replaced child are ignored', async () => {
    const r = await rig();
    const old = r.child();
    old.exit(1);
    r.timers.advance(1000);
    old.say({ type: 'demote', group: 'carp', by: 'plugin:p', count: 5 });
    assert.equal(r.source.ledger.get('carp plugin:p'), undefined);
    await stopClean(r);
  });

  it('stop sends `stop`, kills a child that does not exit in time, and detaches', async () => {
    const r = await rig();
    r.child().say({ type: 'demote', group: 'carp', by: 'plugin:p', count: 5 });
    const stopping = r.sup.stop();
    await flush();
    assert.equal(r.child().of('stop').length, 1);
    r.timers.advance(4999);
    assert.deepEqual(r.child().killed, []);
    r.timers.advance(1);
    await flush();
    assert.deepEqual(r.child().killed, ['SIGKILL']);
    r.child().exit(null, 'SIGKILL');
    await stopping;
    assert.deepEqual([...r.source.ledger], []);
    assert.equal(r.source.listenerCount('transition'), 0);
    assert.equal(r.source.gate, undefined);
    assert.equal(r.children.length, 1, 'no restart after stop');
  });

  it('start fails with every load problem the child reports', async () => {
    const source = new FakeSource();
    const c = new FakeChild(9);
    const sup = new PluginSupervisor({
      source,
      logger: silent,
      timers: new ManualTimers(),
      spawn: () => c,
      init: { model: model(), options: {} },
      budgetMs: 500,
    });
    const started = sup.start();
    c.say({ type: 'load-failed', errors: [{ code: 'CARPD_ERR_PLUGIN_UNKNOWN', plugin: 'p', message: 'no such plugin' }] });
    await assert.rejects(started, (e: Error) => e instanceof PluginsInvalidError && e.errors[0]!.code === 'CARPD_ERR_PLUGIN_UNKNOWN');
    assert.equal(source.listenerCount('transition'), 0);
  });
});

async function stopClean(r: Awaited<ReturnType<typeof rig>>): Promise<void> {
  const stopping = r.sup.stop();
  await flush();
  r.child().exit(0);
  await stopping;
}

describe('messages', () => {
  it("the child's messages are checked field by field", () => {
    assert.equal(parseFromChild({ type: 'demote', group: 'carp', by: 'plugin:x', count: 1.5 }), undefined);
    assert.equal(parseFromChild({ type: 'pre-phase-done', seq: '3' }), undefined);
    assert.equal(parseFromChild({ type: 'log', level: 9, message: 'x' }), undefined);
    assert.equal(parseFromChild({ type: 'ready', plugins: ['a'] }), undefined);
    assert.equal((parseFromChild({ type: 'log', level: 3, message: 'x'.repeat(100_000) }) as { message: string }).message.length, 8192);
    assert.deepEqual(parseFromChild({ type: 'pre-phase-done', seq: 3, extra: 1 }), { type: 'pre-phase-done', seq: 3 });
  });

  it("the daemon's messages are checked too, the model's fields the host reads included", () => {
    const good = { type: 'init', model: model(), states: [{ key: KEY, state: 'INIT' }], options: {} };
    assert.equal(parseToChild(good)?.type, 'init');
    const bad = model();
    (bad.vhids[0] as unknown as Record<string, unknown>).addresses = '192.0.2.1/24';
    assert.equal(parseToChild({ ...good, model: bad }), undefined);
    assert.equal(parseToChild({ ...good, states: [{ key: KEY, state: 'UP' }] }), undefined);
    assert.equal(
      parseToChild({ type: 'transition', ev: { seq: 1, time: 't', vhid: 1, interface: 'eth0', key: KEY, from: 'INIT', to: 'MASTER' }, states: [] }),
      undefined,
      'no reason',
    );
    assert.equal(parseToChild({ type: 'vip-settled', seq: -1, key: KEY }), undefined);
  });
});

describe('the real child', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'carpd-supervisor-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('a plugin the child cannot load stops start-up with its problem, and the child is gone', { timeout: 30_000 }, async () => {
    const source = new FakeSource();
    const m = model({ plugins: [{ name: 'nowhere', follow: { kind: 'vhid', ref: KEY }, options: {}, source: 't:2' }] });
    m.global.pluginDir = join(tmp, 'plugins');
    mkdirSync(m.global.pluginDir, { recursive: true });
    await assert.rejects(startPluginHost(source as never, m, silent, { os: 'linux' }), (e: Error) => {
      assert.ok(e instanceof PluginsInvalidError);
      assert.deepEqual(
        e.errors.map((x) => `${x.plugin} ${x.code}`),
        ['nowhere CARPD_ERR_PLUGIN_UNKNOWN'],
      );
      return true;
    });
    assert.equal(source.listenerCount('transition'), 0);
    assert.equal(source.gate, undefined);
  });

  it('a plugin that throws from a timer takes down only the child: it is restarted, the node demoted until set up again', { timeout: 30_000 }, async () => {
    const dir = join(tmp, 'plugins', 'boom');
    mkdirSync(dir, { recursive: true });
    const marker = join(tmp, 'thrown');
    // The first setup schedules a throw (a crash of the child); the restarted child's setup is clean.
    writeFileSync(
      join(dir, 'plugin.js'),
      `import { existsSync, writeFileSync } from 'node:fs';
export default { name: 'boom', apiVersion: 1, hooks: {
  setup() { if (!existsSync(${JSON.stringify(marker)})) { writeFileSync(${JSON.stringify(marker)}, ''); setTimeout(() => { throw new Error('x'); }, 10); } },
  master(ctx) { ctx.demote(7); },
} };\n`,
    );
    const source = new FakeSource();
    const m = model({ plugins: [{ name: 'boom', follow: { kind: 'vhid', ref: KEY }, options: {}, source: 't:2' }] });
    m.global.pluginDir = join(tmp, 'plugins');
    const logs: string[] = [];
    const ph = await startPluginHost(source as never, m, { log: (_l, msg) => void logs.push(msg) }, { os: 'linux', restartMinMs: 50 });
    const events: ChildEvent[] = [];
    ph.host.on('child', (e: ChildEvent) => events.push(e));
    const until = async (what: string, pred: () => boolean) => {
      for (let i = 0; i < 400 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(pred(), `${what}; events ${JSON.stringify(events)}; logs ${logs.join('\n')}`);
    };
    try {
      await until('the child died and was restarted', () => events.some((e) => e.event === 'restart'));
      assert.ok(
        logs.some((l) => l.includes('uncaught exception') && l.includes('Error: x')),
        'the crash is logged through the daemon',
      );
      await until('set up again', () => events.map((e) => e.event).lastIndexOf('setup-done') > events.findIndex((e) => e.event === 'restart'));
      assert.equal(source.ledger.get(`carp ${PLUGINS_DEMOTER}`), undefined, 'demotion lifted once set up');
      const { ev } = source.flip('MASTER');
      await until('the restarted child runs hooks', () => source.ledger.get('carp plugin:boom:self') === 7);
      assert.ok(ev.seq > 0);
    } finally {
      await ph.stop();
    }
    assert.deepEqual([...source.ledger], [], 'every demotion undone at stop');
  });
});
