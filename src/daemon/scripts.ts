/**
 * ucarp-style up/down scripts, `script <interface> <vip> [xparam]`, for any vhid that names them
 * (ucarp mode, or upscript/downscript in carpd.conf). Scripts run one at a time, in transition
 * order, with a timeout; the protocol never waits for them.
 */
import type { RunCommand } from '../ports/exec.js';
import { LOG, type Logger } from '../ports/logger.js';
import type { VhidConfig } from '../config/model.js';
import { ucarpArgv, ucarpScriptFor, type ScriptPolicy } from '../proto/ucarp-scripts.js';
import type { TransitionEvent } from '../ports/state-source.js';

const SCRIPT_TIMEOUT_MS = 120_000;

/** The argv a transition runs for a vhid, or undefined. */
export function scriptArgv(v: VhidConfig, ev: TransitionEvent, policy: ScriptPolicy): string[] | undefined {
  const which = ucarpScriptFor(ev, policy);
  const script = which === 'up' ? v.upscript : which === 'down' ? v.downscript : undefined;
  return script ? ucarpArgv(script, v.interface, v.addresses, v.xparam) : undefined;
}

/**
 * Runs scripts one at a time, in the order they were pushed. The runner must end the wait when the
 * script exits and kill what it started on timeout (the daemon gives runInGroup: see run.ts).
 */
export class ScriptQueue {
  private tail: Promise<void> = Promise.resolve();
  constructor(
    private readonly logger: Logger,
    private readonly run: RunCommand,
    private readonly timeoutMs = SCRIPT_TIMEOUT_MS,
  ) {}

  push(argv: string[]): void {
    this.tail = this.tail
      .then(async () => {
        const r = await this.run(argv, { timeoutMs: this.timeoutMs });
        if (r.exitCode !== 0)
          this.logger.log(
            LOG.WARN,
            `carpd: ${argv[0]} ${r.timedOut ? 'timed out' : r.spawnError ? `could not run: ${r.spawnError}` : `exited with status ${r.exitCode}`}`,
          );
      })
      .catch((err: unknown) => this.logger.log(LOG.ERR, `carpd: ${argv[0]}: ${err instanceof Error ? err.message : String(err)}`));
  }

  /** Resolves when every script pushed so far has finished. */
  drain(): Promise<void> {
    return this.tail;
  }
}
