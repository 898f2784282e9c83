/**
 * One run of a scope: `render`, then the pre-phase (`pre-master`, or `pre-backup` for BACKUP and
 * INIT), which the engine's VIP step waits for within its budget, then the VIP step, then the
 * post-phase (`master`, `backup`, or `init` falling back to `backup`). Plugins run in dependency
 * order going MASTER and in reverse going down; only plugins that are set up take part.
 */
import type { HostTimers } from '../ports/timers.js';
import type { PluginRt, Request, RunRecord, ScopeRt } from './runtime.js';
import type { HookName } from './types.js';

export interface PhaseDeps {
  /** Runs one hook of a plugin in this run; false when it failed for good (its policy has applied). */
  step(p: PluginRt, hook: HookName, req: Request): Promise<boolean>;
  /** Waits for the VIP step of `key`. */
  vipStep(key: string): Promise<void>;
  /** Sets the policy demotion a plugin holds. */
  hold(p: PluginRt, count: number): void;
}

export async function runPhases(scope: ScopeRt, req: Request, d: PhaseDeps): Promise<RunRecord> {
  const up = req.target === 'MASTER';
  const order = (up ? scope.plugins : [...scope.plugins].reverse()).filter((p) => p.ready);
  const pre: HookName = up ? 'pre-master' : 'pre-backup';
  const post: HookName = req.target === 'MASTER' ? 'master' : req.target === 'BACKUP' ? 'backup' : 'init';
  const failed = new Set<PluginRt>();
  const step = async (p: PluginRt, hook: HookName) => {
    if (!p.lp.decl.hooks[hook]) return;
    if (!(await d.step(p, hook, req))) failed.add(p);
  };
  for (const p of order) await step(p, 'render');
  for (const p of order) await step(p, pre);
  req.pre.resolve();
  if (req.ev) await d.vipStep(req.ev.key);
  for (const p of order) await step(p, post === 'init' && !p.lp.decl.hooks.init ? 'backup' : post);
  scope.completed = req.target;
  for (const p of order) {
    // Recovery without a health check: a fully successful run lifts the policy's demotion.
    if (!failed.has(p) && p.held > 0 && !p.lp.health) d.hold(p, 0);
  }
  return { scope: scope.def.key, target: req.target, seq: req.ev?.seq ?? 0, failed: [...failed].map((p) => p.lp.name) };
}

/**
 * Waits (at most `maxMs`) for the engine's VIP step of `key`: the post-phase follows the VIP.
 * Without `settled`, one event-loop turn.
 */
export async function waitVip(settled: Promise<void> | undefined, timers: HostTimers, maxMs: number): Promise<void> {
  if (!settled) {
    await new Promise<void>((r) => setImmediate(r));
    return;
  }
  let timer: unknown;
  await Promise.race([settled.catch(() => undefined), new Promise<void>((r) => (timer = timers.setTimeout(r, maxMs)))]);
  timers.clearTimeout(timer);
}
