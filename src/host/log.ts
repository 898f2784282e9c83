/** The transition log: the last N transitions, each with every hook run it caused. */
import type { HookResult } from './runner.js';
import type { TransitionEvent } from '../ports/state-source.js';
import type { HookName } from './types.js';

export type { TransitionEvent };

/** One hook run, as `host.on('hook')` reports it and the log keeps it. */
export interface HookRecord {
  /** The transition behind the run; 0 for setup, teardown, health checks and boot runs. */
  seq: number;
  plugin: string;
  hook: HookName;
  /** The vhid key of that transition ('' when there is none). */
  key: string;
  /** The plugin's scope key (`vhid:1@em0`, `group:NAME`, `node`). */
  scope: string;
  attempt: number;
  /** ISO wall-clock time the hook started. */
  startedAt: string;
  durationMs: number;
  result: HookResult;
  error?: { code: string; message: string; causeCode?: string };
}

export interface TransitionRecord extends TransitionEvent {
  hooks: HookRecord[];
}

export class TransitionLog {
  private readonly records: TransitionRecord[] = [];
  private readonly bySeq = new Map<number, TransitionRecord>();

  constructor(private readonly size: number) {}

  add(ev: TransitionEvent): void {
    const rec: TransitionRecord = { ...ev, hooks: [] };
    this.records.push(rec);
    this.bySeq.set(ev.seq, rec);
    while (this.records.length > this.size) this.bySeq.delete(this.records.shift()!.seq);
  }

  /** Files a hook run under its transition, if that is still in the log. */
  hook(h: HookRecord): void {
    this.bySeq.get(h.seq)?.hooks.push(h);
  }

  /** Oldest first; copies. */
  list(): TransitionRecord[] {
    return this.records.map((r) => ({ ...r, hooks: r.hooks.map((h) => ({ ...h })) }));
  }
}
