/**
 * A long-lived command whose standard output is read as a stream (OpenBSD `route -n monitor`):
 * argv only, no shell, the scrubbed base environment of adapters/exec plus what the caller adds.
 * Only the child started here is ever signalled, through its own handle.
 */
import { spawn } from 'node:child_process';
import { BASE_ENV } from './exec.js';

export interface StreamingChild {
  /** SIGTERM to the child (idempotent). */
  stop(): void;
}

export interface StreamHandlers {
  onStdout(chunk: string): void;
  /** Called once, when the child has exited or could not start; `detail` is for the log. */
  onExit(detail: string): void;
}

/** Starts `argv` with its output streamed to `h`; never throws for a command that cannot run. */
export type SpawnStream = (argv: readonly string[], env: Record<string, string> | undefined, h: StreamHandlers) => StreamingChild;

/** How much of the child's stderr is kept for the exit message. */
const STDERR_KEEP = 512;

export const spawnStream: SpawnStream = (argv, env, h) => {
  if (argv.length === 0 || argv[0] === '') throw new TypeError('spawnStream: empty argv');
  let exited = false;
  let stderr = '';
  const done = (detail: string) => {
    if (exited) return;
    exited = true;
    h.onExit(detail);
  };
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...BASE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'], shell: false });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => h.onStdout(c));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => {
    stderr = (stderr + c).slice(-STDERR_KEEP);
  });
  child.on('error', (err) => done(`cannot run ${argv[0]}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  child.on('close', (code, signal) => done(`${argv[0]} exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
  return {
    stop: () => {
      if (exited || child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
    },
  };
};
