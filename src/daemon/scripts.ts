/**
 * ucarp-style up/down scripts, `script <interface> <vip> [xparam]`, for any vhid that names them
 * (ucarp mode, or upscript/downscript in carpd.conf). Scripts run one at a time, in transition
 * order, with a timeout; the protocol never waits for them.
 */
import type { RunCommand } from '../ports/commands.js';
import type { Logger } from '../ports/logger.js';
import type { VhidConfig } from '../config/model.js';
import { LOG } from '../ports/logger.js';
import type { TransitionEvent } from './engine.js';

const SCRIPT_TIMEOUT_MS = 120_000;

export interface ScriptPolicy {
  /** ucarp -n: no down script on the initial INIT → BACKUP. */
  neutral: boolean;
  /** ucarp -z: run the down script when a MASTER shuts down. */
  shutdown: boolean;
}

/** Which script a transition runs, if any (ucarp's rules, PROTOCOL.md). */
export function scriptFor(ev: Pick<TransitionEvent, 'from' | 'to' | 'reason'>, policy: ScriptPolicy): 'up' | 'down' | undefined {
  if (ev.to === 'MASTER') return 'up';
  if (ev.to === 'BACKUP') return ev.from === 'INIT' && policy.neutral ? undefined : 'down';
  if (ev.from === 'MASTER') return ev.reason === 'shutdown' && !policy.shutdown ? undefined : 'down';
  return undefined;
}

/** The VIP as ucarp passes it to scripts: the first address, without prefix length. */
export function bareVip(v: VhidConfig): string {
  return (v.addresses[0] ?? '').split('/')[0]!;
}

/** The argv a transition runs for a vhid, or undefined. */
export function scriptArgv(v: VhidConfig, ev: TransitionEvent, policy: ScriptPolicy): string[] | undefined {
  const which = scriptFor(ev, policy);
  const script = which === 'up' ? v.upscript : which === 'down' ? v.downscript : undefined;
  if (!script) return undefined;
  return [script, v.interface, bareVip(v), ...(v.xparam !== undefined ? [v.xparam] : [])];
}

/** Runs scripts one at a time, in the order they were pushed. */
export class ScriptQueue {
  private tail: Promise<void> = Promise.resolve();
  constructor(
    private readonly logger: Logger,
    private readonly run: RunCommand,
  ) {}

  push(argv: string[]): void {
    this.tail = this.tail
      .then(async () => {
        const r = await this.run(argv, { timeoutMs: SCRIPT_TIMEOUT_MS });
        if (r.exitCode !== 0) this.logger.log(LOG.WARN, `carpd: ${argv[0]} ${r.timedOut ? 'timed out' : r.spawnError ? `could not run: ${r.spawnError}` : `exited with status ${r.exitCode}`}`);
      })
      .catch((err: unknown) => this.logger.log(LOG.ERR, `carpd: ${argv[0]}: ${err instanceof Error ? err.message : String(err)}`));
  }

  /** Resolves when every script pushed so far has finished. */
  drain(): Promise<void> {
    return this.tail;
  }
}
