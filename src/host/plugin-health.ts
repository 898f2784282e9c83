/**
 * Plugins' own health checks (`checkHealth`): on the plugin's schedule, with rise/fall hysteresis;
 * under `on_failure = demote N` a failing check demotes and a passing one lifts it.
 */
import type { Scheduler } from '../ports/timers.js';
import { LEVEL } from './context.js';
import type { HealthRecord } from './health.js';
import type { HookOutcome } from './runner.js';
import type { PluginRt } from './runtime.js';

export interface PluginHealthDeps {
  /** Runs the plugin's checkHealth hook. */
  check(p: PluginRt): Promise<HookOutcome>;
  hold(p: PluginRt, count: number): void;
  say(level: number, message: string): void;
  stopping(): boolean;
}

/** Schedules every plugin's check; returns the stop functions. */
export function schedulePluginHealth(plugins: readonly PluginRt[], scheduler: Scheduler, tick: (p: PluginRt) => void): (() => void)[] {
  const stops: (() => void)[] = [];
  for (const p of plugins) {
    const h = p.lp.health;
    if (!h) continue;
    const fn = () => tick(p);
    stops.push(h.schedule !== undefined ? scheduler.cron(h.schedule, fn) : scheduler.every(h.intervalMs!, fn));
  }
  return stops;
}

/** One run of a plugin's checkHealth; skipped (undefined) while one is running or the plugin is not set up. */
export async function checkPluginHealth(p: PluginRt, d: PluginHealthDeps): Promise<HealthRecord | undefined> {
  if (!p.ready || p.healthBusy || d.stopping() || !p.health) return undefined;
  p.healthBusy = true;
  try {
    const out = await d.check(p);
    const ok = out.result === 'ok';
    const flipped = p.health.feed(ok);
    if (flipped === 'down') {
      d.say(LEVEL.WARN, `plugin ${p.lp.name}: health check failing${out.error ? `: ${out.error.message}` : ''}`);
      if (p.lp.policy.kind === 'demote') d.hold(p, p.lp.policy.by);
    } else if (flipped === 'up' || (ok && p.health.ok && p.held > 0)) {
      d.hold(p, 0);
    }
    return { name: `plugin:${p.lp.name}`, ok, healthy: p.health.ok, ...(flipped ? { flipped } : {}) };
  } finally {
    p.healthBusy = false;
  }
}
