/** Commands for plugins: each in its own process group (adapters/exec.ts `runInGroup`), behind a port. */
import { runInGroup } from '../adapters/exec.js';
import type { RunOptions, RunResult } from '../ports/exec.js';
import type { HookTag } from './errors.js';

/** RunOptions plus which hook run is asking (for recorders: `carpd plan`, tests). */
export interface HostRunOptions extends RunOptions {
  tag?: HookTag;
}

/** Runs a command; a port so tests and `carpd plan` can record instead. */
export interface ExecPort {
  run(argv: readonly string[], opts: HostRunOptions): Promise<RunResult>;
}

/** The default port: real commands, each in its own process group. */
export const groupExec: ExecPort = { run: runInGroup };

export { runInGroup };
