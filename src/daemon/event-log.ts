/**
 * The event ring the daemon and the plugin host publish to: transitions, hook runs and admin
 * actions, kept for `carpctl events` and streamed to followers, with running totals for metrics.
 */
import type { CarpState } from '../core/machine.js';
import type { TransitionEvent } from '../ports/state-source.js';

/** How many events `carpctl events` can look back on. */
export const EVENT_RING_SIZE = 1000;

export type TransitionRecord = { type: 'transition' } & TransitionEvent;

/** One plugin hook run, as the plugin host reports it. */
export interface HookRunEvent {
  type: 'hook';
  time: string;
  plugin: string;
  hook: string;
  /** The vhid (or scope) and transition that caused the run. */
  key?: string;
  seq?: number;
  durationMs: number;
  /** The plugin host's HookResult. */
  result: 'ok' | 'error' | 'timeout';
  error?: string;
}

/** An admin action or daemon-level change (demote, state, maintenance, reload). */
export interface AdminEvent {
  type: 'admin';
  time: string;
  action: string;
  detail: string;
}

export type DaemonEvent = TransitionRecord | HookRunEvent | AdminEvent;

/** Per plugin and hook: runs by result and their total duration, over the daemon's life. */
export interface HookTotals {
  plugin: string;
  hook: string;
  count: number;
  sumMs: number;
  results: Record<string, number>;
}

/** The last EVENT_RING_SIZE events, live subscribers, and running totals for metrics. */
export class EventLog {
  private readonly ring: DaemonEvent[] = [];
  private readonly listeners = new Set<(e: DaemonEvent) => void>();
  readonly hooks = new Map<string, HookTotals>();
  /** Transitions per vhid key and target state. */
  readonly transitions = new Map<string, Partial<Record<CarpState, number>>>();

  constructor(readonly size = EVENT_RING_SIZE) {}

  /** Record an event and hand it to every follower. */
  publish(e: DaemonEvent): void {
    this.ring.push(e);
    if (this.ring.length > this.size) this.ring.splice(0, this.ring.length - this.size);
    if (e.type === 'transition') {
      const t = this.transitions.get(e.key) ?? {};
      t[e.to] = (t[e.to] ?? 0) + 1;
      this.transitions.set(e.key, t);
    } else if (e.type === 'hook') {
      const k = `${e.plugin}\0${e.hook}`;
      const h = this.hooks.get(k) ?? { plugin: e.plugin, hook: e.hook, count: 0, sumMs: 0, results: {} };
      h.count++;
      h.sumMs += e.durationMs;
      h.results[e.result] = (h.results[e.result] ?? 0) + 1;
      this.hooks.set(k, h);
    }
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // a broken follower must not stop the others
      }
    }
  }

  /** The newest `limit` events, oldest first. */
  recent(limit = this.size): DaemonEvent[] {
    return this.ring.slice(Math.max(0, this.ring.length - limit));
  }

  lastTransition(): TransitionRecord | undefined {
    for (let i = this.ring.length - 1; i >= 0; i--) {
      const e = this.ring[i]!;
      if (e.type === 'transition') return e;
    }
    return undefined;
  }

  subscribe(fn: (e: DaemonEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
