import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HookError } from '../../src/host/errors.js';
import { groupExec } from '../../src/adapters/exec.js';
import { PluginHost, type HostEngine } from '../../src/host/host.js';
import type { HookRecord, TransitionEvent } from '../../src/host/log.js';
import { runHook } from '../../src/host/runner.js';
import { realTimers } from '../../src/adapters/host-timers.js';
import type { PluginContext, PluginDeclaration } from '../../src/host/types.js';
import { Templates } from '../../src/adapters/templates.js';
import { silent, vhidCfg } from '../helpers/fake-wire.js';
import { config, loaded, modelOf, recordingExec, type RecordingExec } from '../fixtures/plugins/kit.js';
import { hostDefaults } from '../helpers/host-defaults.js';

const tmp = mkdtempSync(join(tmpdir(), 'carpd-runner-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const tag = { plugin: 'p', hook: 'master', seq: 7, vhid: 1, key: '1@eth0' };
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    return readFileSync(stat, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

const engine: HostEngine & { demotions: string[] } = {
  demotions: [],
  status: () => [],
  setDemotion(group, by, n) {
    this.demotions.push(`${group} ${by} ${n}`);
    return n;
  },
};

const vhids = [vhidCfg(1, 0)];
const model = modelOf(vhids);
const lan = { kind: 'vhid', ref: '1@eth0' } as const;
const ev = (seq: number, to: 'MASTER' | 'BACKUP'): TransitionEvent => ({
  seq,
  time: '2026-01-01T00:00:00.000Z',
  vhid: 1,
  interface: 'eth0',
  key: '1@eth0',
  from: to === 'MASTER' ? 'BACKUP' : 'MASTER',
  to,
  reason: 'test',
});

function hostWith(decls: [PluginDeclaration, number?][], exec: RecordingExec | typeof groupExec = recordingExec()) {
  const plugins = decls.map(([d, timeoutMs]) => loaded(d, config(d.name, lan, timeoutMs ? { timeoutMs } : {}), model));
  const host = new PluginHost({
    ...hostDefaults(),
    model,
    plugins,
    engine,
    logger: silent,
    templates: new Templates({}, 'linux'),
    os: 'linux',
    exec,
    retryDelayMs: 0,
  });
  const hooks: HookRecord[] = [];
  host.on('hook', (h: HookRecord) => hooks.push(h));
  host.start();
  return { host, hooks };
}

describe('runHook', () => {
  it('completes once: a hook that resolves after its timeout stays timed out', async () => {
    let late!: () => void;
    const out = await runHook(() => new Promise<void>((r) => (late = r)), { timeoutMs: 30, timers: realTimers, tag });
    assert.equal(out.result, 'timeout');
    assert.equal(out.error?.code, 'CARPD_ERR_HOOK_TIMEOUT');
    late();
    await wait(5);
    assert.equal(out.result, 'timeout');
  });

  it('tags what a hook throws with plugin, hook, seq, vhid and key; keeps the cause', async () => {
    const cause = Object.assign(new Error('boom'), { code: 'EXAMPLE' });
    const out = await runHook(() => Promise.reject(cause), { timeoutMs: 1000, timers: realTimers, tag });
    assert.equal(out.result, 'error');
    assert.ok(out.error instanceof HookError);
    assert.deepEqual(
      {
        code: out.error.code,
        plugin: out.error.plugin,
        hook: out.error.hook,
        seq: out.error.seq,
        vhid: out.error.vhid,
        key: out.error.key,
        causeCode: out.error.causeCode,
      },
      { code: 'CARPD_ERR_HOOK_FAILED', plugin: 'p', hook: 'master', seq: 7, vhid: 1, key: '1@eth0', causeCode: 'EXAMPLE' },
    );
    assert.equal(out.error.cause, cause);
    const sync = await runHook(
      () => {
        throw new Error('sync');
      },
      { timeoutMs: 1000, timers: realTimers, tag },
    );
    assert.equal(sync.error?.message, 'sync');
  });

  it('aborts the signal on timeout and on the host stopping', async () => {
    let seen: AbortSignal | undefined;
    await runHook((l) => ((seen = l.signal), new Promise(() => undefined)), { timeoutMs: 20, timers: realTimers, tag });
    assert.equal(seen?.aborted, true);
    const parent = new AbortController();
    const p = runHook(() => new Promise(() => undefined), { timeoutMs: 5000, timers: realTimers, tag, parent: parent.signal });
    parent.abort();
    assert.equal((await p).error?.code, 'CARPD_ERR_HOOK_ABORTED');
  });
});

describe('hook limits in the host', () => {
  it('a hung hook is killed at its timeout, with its whole process group, and the others still run', async () => {
    const pidfile = join(tmp, 'pids');
    const hang: PluginDeclaration = {
      name: 'hang',
      apiVersion: 1,
      hooks: { master: (ctx) => ctx.exec(['sh', '-c', `sleep 30 & echo $$ $! > ${pidfile}; wait`]) },
    };
    const next: PluginDeclaration = { name: 'next', apiVersion: 1, after: ['hang'], hooks: { master: (ctx) => ctx.exec(['true']) } };
    const { host, hooks } = hostWith([[hang, 300], [next]], groupExec);
    const t0 = Date.now();
    void host.handle(ev(1, 'MASTER'));
    await host.idle();
    const took = Date.now() - t0;
    assert.deepEqual(
      hooks.map((h) => [h.plugin, h.hook, h.result, h.error?.code]),
      [
        ['hang', 'master', 'timeout', 'CARPD_ERR_HOOK_TIMEOUT'],
        ['next', 'master', 'ok', undefined],
      ],
    );
    assert.ok(took >= 280 && took < 2000, `took ${took} ms`);
    const pids = readFileSync(pidfile, 'utf8').trim().split(' ').map(Number);
    assert.equal(pids.length, 2);
    await wait(50);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} was killed`);
    await host.stop();
  });

  it('a timed-out hook cannot act afterwards: its context is revoked', async () => {
    const exec = recordingExec();
    let lateError: unknown;
    const slow: PluginDeclaration = {
      name: 'slow',
      apiVersion: 1,
      hooks: {
        backup: async (ctx: PluginContext) => {
          await wait(150);
          try {
            await ctx.exec(['service', 'web', 'stop']);
          } catch (e) {
            lateError = e;
          }
        },
      },
    };
    const { host, hooks } = hostWith([[slow, 50]], exec);
    void host.handle(ev(1, 'BACKUP'));
    await host.idle();
    assert.equal(hooks[0]?.result, 'timeout');
    await wait(200);
    assert.deepEqual(exec.calls, [], 'the stale BACKUP action never ran');
    assert.equal((lateError as { code?: string }).code, 'CARPD_ERR_HOOK_REVOKED');
    await host.stop();
  });

  it('a failing command fails its hook with the command error as cause; argv never in the message', async () => {
    const exec = recordingExec((argv) =>
      argv[0] === 'missing' ? { exitCode: null, spawnError: 'ENOENT' } : { exitCode: 3, stderr: 'warming up\nnot ready\n' },
    );
    const fails: PluginDeclaration = {
      name: 'fails',
      apiVersion: 1,
      hooks: { master: (ctx) => ctx.exec(['svc', '--token-file', '/x']), backup: (ctx) => ctx.exec(['missing']) },
    };
    const { host, hooks } = hostWith([[fails]], exec);
    void host.handle(ev(1, 'MASTER'));
    await host.idle();
    void host.handle(ev(2, 'BACKUP'));
    await host.idle();
    assert.deepEqual(
      hooks.map((h) => [h.hook, h.result, h.error?.code, h.error?.causeCode]),
      [
        ['master', 'error', 'CARPD_ERR_HOOK_FAILED', 'CARPD_ERR_EXEC_STATUS'],
        ['backup', 'error', 'CARPD_ERR_HOOK_FAILED', 'CARPD_ERR_EXEC_SPAWN'],
      ],
    );
    assert.equal(hooks[0]!.error!.message, 'svc exited with status 3: not ready');
    assert.ok(!hooks[0]!.error!.message.includes('/x'));
    await host.stop();
  });

  it('exec refuses a shell string and bounds each command by what is left of the hook', async () => {
    const seen: number[] = [];
    const exec = {
      calls: [] as string[][],
      run: async (_a: readonly string[], o: { timeoutMs: number }) => (
        seen.push(o.timeoutMs),
        { exitCode: 0, stdout: '', stderr: '', timedOut: false, canceled: false }
      ),
    };
    let refused: unknown;
    const p: PluginDeclaration = {
      name: 'p',
      apiVersion: 1,
      hooks: {
        master: async (ctx) => {
          await ctx.exec(['a'], { timeoutMs: 60_000 });
          await ctx.exec(['b'], { timeoutMs: 100 });
          try {
            await ctx.exec('rm -rf /' as unknown as string[]);
          } catch (e) {
            refused = e;
          }
        },
      },
    };
    const { host } = hostWith([[p, 2000]], exec);
    void host.handle(ev(1, 'MASTER'));
    await host.idle();
    assert.ok(seen[0]! <= 2000 && seen[0]! > 1000, `capped at the hook's timeout: ${seen[0]}`);
    assert.equal(seen[1], 100);
    assert.ok(refused instanceof TypeError);
    await host.stop();
  });
});
