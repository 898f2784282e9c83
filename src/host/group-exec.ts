/**
 * Commands for plugins: argv through execa (never a shell), a scrubbed environment, and each
 * command in its own process group, so a timeout or an abort kills the command and everything it
 * started (a hung `sleep` under a script included). A command that exits on its own leaves its
 * group alone: a service it started in the background is meant to stay.
 */
import { execa } from 'execa';
import { BASE_ENV, type RunOptions, type RunResult } from '../adapters/exec.js';
import type { HookTag } from './errors.js';

const MAX_BUFFER = 4 * 1024 * 1024;
/**
 * After the command has exited, how long its output pipes may stay open (held by a daemon it
 * started) before we stop reading them.
 */
const PIPE_GRACE_MS = 250;

/** RunOptions plus which hook run is asking (for recorders: `carpd plan`, tests). */
export interface HostRunOptions extends RunOptions {
  tag?: HookTag;
}

/** Runs a command; a port so tests and `carpd plan` can record instead. */
export interface ExecPort {
  run(argv: readonly string[], opts: HostRunOptions): Promise<RunResult>;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Runs `argv` in a new process group; never rejects for a failing command, only for an empty argv. */
export async function runInGroup(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('exec: empty argv');
  if (opts.signal?.aborted) return { exitCode: null, stdout: '', stderr: '', timedOut: false, canceled: true };
  const sub = execa(file, args, {
    reject: false,
    detached: true,
    env: { ...BASE_ENV, ...opts.env },
    extendEnv: false,
    stdin: opts.input === undefined ? 'ignore' : 'pipe',
    input: opts.input,
    cwd: opts.cwd,
    maxBuffer: MAX_BUFFER,
    encoding: 'utf8',
    stripFinalNewline: false,
  });
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

/** The default port: real commands, each in its own process group. */
export const groupExec: ExecPort = { run: runInGroup };
