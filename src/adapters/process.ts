/**
 * Long-running child processes (carpd nodes in the lab, ucarp -B's detached re-run). One-shot
 * commands with a timeout and captured output are exec.ts.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export type { ChildProcess };

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  stdio?: SpawnOptions['stdio'];
  cwd?: string;
  /** Own process group, so it outlives us (the caller unrefs it). */
  detached?: boolean;
}

export type Stdio = SpawnOptions['stdio'];

/** Starts `argv[0]` with the rest as arguments; errors arrive as the child's 'error' event. */
export function startProcess(argv: readonly string[], opts: StartOptions = {}): ChildProcess {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('startProcess: empty argv');
  return spawn(cmd, args, {
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.stdio ? { stdio: opts.stdio } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.detached ? { detached: true } : {}),
  });
}
