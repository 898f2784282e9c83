/**
 * Running commands, as a port: the plugin host and the daemon's health checks run argv through
 * it; src/adapters/exec.ts is the real one, tests and `carpd plan` record instead.
 */

export interface RunOptions {
  /** Hard limit; the command gets SIGKILL when it is reached. */
  timeoutMs: number;
  /** Aborting it kills the command (SIGKILL). */
  signal?: AbortSignal;
  /** Extra environment variables on top of the scrubbed base environment. */
  env?: Record<string, string>;
  /** Written to the command's stdin (the way to hand over a secret: never argv). */
  input?: string;
  cwd?: string;
  /** Skip the spawn pacing: for the few, batched commands failover waits on (VIP add/del). */
  urgent?: boolean;
}

export interface RunResult {
  /** The exit status, or null when the command did not exit on its own (signal, timeout, spawn failure). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Killed because `signal` was aborted. */
  canceled: boolean;
  /** The signal that ended the command, if any. */
  signal?: string;
  /** Why the command could not run at all (e.g. `ENOENT`), if that is what happened. */
  spawnError?: string;
}

/** Runs a command; never rejects for a failing command. */
export type RunCommand = (argv: readonly string[], opts: RunOptions) => Promise<RunResult>;

/** Which hook run does something (errors, recorders). */
export interface HookTag {
  plugin: string;
  hook: string;
  seq: number;
  vhid?: number;
  key?: string;
}

/** RunOptions plus which hook run is asking (for recorders: `carpd plan`, tests). */
export interface HostRunOptions extends RunOptions {
  tag?: HookTag;
}

/** Runs a command; never rejects for a failing command. */
export interface ExecPort {
  run(argv: readonly string[], opts: HostRunOptions): Promise<RunResult>;
}
