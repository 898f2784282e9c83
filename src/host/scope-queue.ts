/**
 * One run queue per scope. While a run is in flight, newer requests for its scope collapse to the
 * newest, so after any burst the last completed run matches the final state, and a scope runs at
 * most twice for a burst that arrives during one run.
 */
import type { TransitionEvent } from '../ports/state-source.js';
import { deferred, type Request, type ScopeRt } from './runtime.js';
import type { CarpState } from './types.js';

const MAX_IDLE_ROUNDS = 10_000;
/** Runs one pump may do in a row: a bound, far beyond any burst. */
const MAX_RUNS_PER_PUMP = 1_000_000;

export interface ScopeQueueDeps {
  /** Drives `scope` to `req.target` (the phases); resolving `req.pre` is its business too. */
  run(scope: ScopeRt, req: Request): Promise<void>;
  /** What every pump waits for first (the setup pass). */
  ready(): Promise<void>;
  /** A run or tracked job failed unexpectedly. */
  error(message: string): void;
}

export class ScopeQueue {
  private readonly pumps = new Set<Promise<void>>();

  constructor(private readonly deps: ScopeQueueDeps) {}

  /**
   * Asks for `scope` to be driven to `target`; returns the promise of that run's pre-phase.
   * Without `force`, asking for the state already asked for is a no-op.
   */
  request(scope: ScopeRt, target: CarpState, ev: TransitionEvent | undefined, reason: string, force = false): Promise<void> {
    if (!force && target === scope.wanted) return Promise.resolve();
    scope.wanted = target;
    // A superseded request never runs: nothing should wait for its pre-phase.
    scope.pending?.pre.resolve();
    const req: Request = { target, reason, pre: deferred(), ...(ev ? { ev } : {}) };
    scope.pending = req;
    if (!scope.running) this.track(this.pump(scope));
    return req.pre.promise;
  }

  /** Keeps `p` among the jobs `idle` waits for; its failure is reported, never thrown. */
  track(p: Promise<void>): void {
    const q = p.catch((e: unknown) => this.deps.error(e instanceof Error ? e.message : String(e))).finally(() => this.pumps.delete(q));
    this.pumps.add(q);
  }

  /** Resolves when no run is in flight or queued (bounded). */
  async idle(): Promise<void> {
    for (let i = 0; i < MAX_IDLE_ROUNDS && this.pumps.size > 0; i++) await Promise.all([...this.pumps]);
  }

  private async pump(scope: ScopeRt): Promise<void> {
    if (scope.running) return;
    // Mark busy before the first await so a second pump cannot start.
    scope.running = scope.pending;
    try {
      await this.deps.ready();
      for (let guard = 0; guard < MAX_RUNS_PER_PUMP && scope.pending; guard++) {
        const req = scope.pending;
        scope.pending = undefined;
        scope.running = req;
        try {
          await this.deps.run(scope, req);
        } catch (e) {
          this.deps.error(`run of ${scope.def.key} to ${req.target}: ${e instanceof Error ? e.message : String(e)}`);
        } finally {
          req.pre.resolve();
        }
      }
    } finally {
      scope.running = undefined;
    }
  }
}
