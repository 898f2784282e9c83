/**
 * One hook run: a timeout, an abort signal, and a completion that happens exactly once, whichever
 * comes first (fastify/avvio's Plugin.prototype.exec is the model). A hook that outlives its
 * timeout is abandoned, its commands are killed through the signal, and its context is revoked so
 * that nothing it does later can land.
 */
import { HOST_CODES as C, HookError, tagError, type HookTag } from './errors.js';
import type { HostTimers } from '../ports/timers.js';

export interface Lease {
  readonly signal: AbortSignal;
  /** Monotonic ms (HostTimers.now) at which the hook times out. */
  readonly deadline: number;
  /** True once the run has completed: the context refuses further work. */
  revoked(): boolean;
}

export type HookResult = 'ok' | 'error' | 'timeout';

export interface HookOutcome {
  result: HookResult;
  /** What the hook returned (checkHealth's verdict). */
  value?: unknown;
  error?: HookError;
  /** Monotonic start. */
  startedAt: number;
  durationMs: number;
}

export interface RunHookOptions {
  timeoutMs: number;
  timers: HostTimers;
  tag: HookTag;
  /** The host's own signal (aborted when it stops). */
  parent?: AbortSignal;
}

/** Runs `fn` under a lease; never rejects. */
export function runHook(fn: (lease: Lease) => unknown, opts: RunHookOptions): Promise<HookOutcome> {
  const { timers, tag } = opts;
  const startedAt = timers.now();
  const controller = new AbortController();
  let completed = false;
  const lease: Lease = { signal: controller.signal, deadline: startedAt + opts.timeoutMs, revoked: () => completed };

  return new Promise<HookOutcome>((resolve) => {
    // eslint-disable-next-line prefer-const -- when the parent is already aborted, finish() reads it before its one assignment: a const would throw there (TDZ)
    let timer: unknown;
    const onParentAbort = () => finish('error', undefined, new HookError(C.HOOK_ABORTED, tag, 'aborted: the plugin host is stopping'));
    // Exactly once: a late resolve, a late reject or a second timeout is ignored.
    function finish(result: HookResult, value: unknown, error?: HookError): void {
      if (completed) return;
      completed = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      opts.parent?.removeEventListener('abort', onParentAbort);
      // Kill whatever the hook still has running; a finished hook has nothing left to kill.
      if (result !== 'ok') controller.abort(error);
      const out: HookOutcome = { result, startedAt, durationMs: Math.max(0, timers.now() - startedAt) };
      if (value !== undefined) out.value = value;
      if (error) out.error = error;
      resolve(out);
    }
    if (opts.parent?.aborted) {
      onParentAbort();
      return;
    }
    opts.parent?.addEventListener('abort', onParentAbort, { once: true });
    timer = timers.setTimeout(() => {
      finish('timeout', undefined, new HookError(C.HOOK_TIMEOUT, tag, `did not complete within ${opts.timeoutMs} ms; its commands were killed`));
    }, opts.timeoutMs);
    Promise.resolve()
      .then(() => fn(lease))
      .then(
        (value) => finish('ok', value),
        (e: unknown) => finish('error', undefined, tagError(e, tag)),
      );
  });
}
