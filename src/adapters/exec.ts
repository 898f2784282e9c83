/**
 * The one place commands are run: argv arrays through execa, with a timeout, a scrubbed
 * environment and no shell (DESIGN.md "Non-negotiables").
 */
import { execa, execaSync } from 'execa';
import type { ExecPort, RunOptions, RunResult } from '../ports/exec.js';

/** The environment every command starts from; callers may add to it, never inherit ours. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C',
});

export type { RunOptions, RunResult };

const MAX_BUFFER = 4 * 1024 * 1024;

/**
 * Spawning a process blocks the event loop for a few milliseconds. A burst of them (255 vhids
 * becoming MASTER, each with a gratuitous ARP) would hold up adverts and timers, so spawns are
 * spaced at least SPAWN_GAP_MS apart and the protocol gets the loop in between.
 */
const SPAWN_GAP_MS = 5;
let spawnGapMs = SPAWN_GAP_MS;
let nextSpawnAt = 0;

/**
 * Sets the spacing of spawns in this process. The plugin-host child sets 0: no protocol runs in
 * its event loop, and pacing there only delays hooks (a burst of N hook commands took N × 5 ms).
 */
export function setSpawnGap(ms: number): void {
  spawnGapMs = Math.max(0, ms);
}

function spawnTurn(): Promise<void> {
  if (spawnGapMs === 0) return Promise.resolve();
  const now = performance.now();
  const at = Math.max(now, nextSpawnAt);
  nextSpawnAt = at + spawnGapMs;
  return at <= now ? Promise.resolve() : new Promise((r) => setTimeout(r, at - now));
}

/** What every command gets: no shell, a scrubbed environment, bounded output, text. */
function baseOptions(opts: Omit<RunOptions, 'signal' | 'timeoutMs'>) {
  return {
    reject: false,
    env: { ...BASE_ENV, ...opts.env },
    extendEnv: false,
    stdin: opts.input === undefined ? ('ignore' as const) : ('pipe' as const),
    input: opts.input,
    cwd: opts.cwd,
    maxBuffer: MAX_BUFFER,
    encoding: 'utf8' as const,
    stripFinalNewline: false,
  };
}

/** Run `argv[0]` with `argv.slice(1)`; never rejects for a failing command, only for bad arguments. */
export async function run(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  const [file, ...args] = checkArgv(argv);
  if (!opts.urgent) await spawnTurn();
  const result = await execa(file, args, {
    ...baseOptions(opts),
    timeout: opts.timeoutMs,
    killSignal: 'SIGKILL',
    forceKillAfterDelay: false,
    cancelSignal: opts.signal,
  });
  return toResult(result);
}

/** Synchronous variant, for start-up only (it blocks the event loop). */
export function runSync(argv: readonly string[], opts: Omit<RunOptions, 'signal'>): RunResult {
  const [file, ...args] = checkArgv(argv);
  const result = execaSync(file, args, { ...baseOptions(opts), timeout: opts.timeoutMs, killSignal: 'SIGKILL' });
  return toResult(result);
}

/**
 * After the command has exited, how long its output pipes may stay open (held by a daemon it
 * started) before we stop reading them.
 */
const PIPE_GRACE_MS = 250;

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Runs `argv` in a new process group, so a timeout or an abort kills the command and everything
 * it started (a hung `sleep` under a script included). A command that exits on its own leaves its
 * group alone: a service it started in the background is meant to stay. Never rejects for a
 * failing command, only for an empty argv.
 */
export async function runInGroup(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  const [file, ...args] = checkArgv(argv);
  if (opts.signal?.aborted) return { exitCode: null, stdout: '', stderr: '', timedOut: false, canceled: true };
  await spawnTurn();
  const sub = execa(file, args, { ...baseOptions(opts), detached: true });
  const pid = sub.pid;
  let timedOut = false;
  let canceled = false;
  let exited = false;
  let grace: NodeJS.Timeout | undefined;
  const stop = (why: 'timeout' | 'abort') => {
    if (exited) return;
    if (why === 'timeout') timedOut = true;
    else canceled = true;
    killGroup(pid);
  };
  const timer = setTimeout(() => stop('timeout'), Math.max(1, opts.timeoutMs));
  const onAbort = () => stop('abort');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  sub.once('exit', () => {
    exited = true;
    clearTimeout(timer);
    grace = setTimeout(() => {
      sub.stdout?.destroy();
      sub.stderr?.destroy();
    }, PIPE_GRACE_MS);
  });
  try {
    const r = await sub;
    const out: RunResult = {
      exitCode: typeof r.exitCode === 'number' ? r.exitCode : null,
      stdout: typeof r.stdout === 'string' ? r.stdout : '',
      stderr: typeof r.stderr === 'string' ? r.stderr : '',
      timedOut,
      canceled,
    };
    if (r.signal) out.signal = r.signal;
    if (r.failed && out.exitCode === null && !out.signal && !timedOut && !canceled) {
      const cause = r.cause as { code?: unknown } | undefined;
      out.spawnError = typeof cause?.code === 'string' ? cause.code : 'spawn failed';
    }
    return out;
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

function checkArgv(argv: readonly string[]): [string, ...string[]] {
  if (argv.length === 0 || argv[0] === '') throw new TypeError('run: empty argv');
  return argv as [string, ...string[]];
}

interface ExecaLike {
  exitCode?: number;
  stdout?: unknown;
  stderr?: unknown;
  timedOut?: boolean;
  isCanceled?: boolean;
  signal?: string;
  failed?: boolean;
  cause?: unknown;
  code?: string;
}

function toResult(r: ExecaLike): RunResult {
  const out: RunResult = {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : null,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
    timedOut: r.timedOut === true,
    canceled: r.isCanceled === true,
  };
  if (r.signal) out.signal = r.signal;
  // Only the errno code: execa's messages repeat the argv, which may not be logged.
  if (r.failed && out.exitCode === null && !out.signal && !out.timedOut && !out.canceled) {
    const cause = r.cause as { code?: unknown } | undefined;
    out.spawnError = typeof cause?.code === 'string' ? cause.code : typeof r.code === 'string' ? r.code : 'spawn failed';
  }
  return out;
}

/** The plugin host's and health checks' ExecPort: real commands, each in its own process group. */
export const groupExec: ExecPort = { run: runInGroup };
