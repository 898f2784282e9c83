/** Shared pieces of the kernel state source tests: the fake kernel's environment for the exec port, hand-driven timers, polling. */
import type { KernelTimers } from '../../src/adapters/kernel-common.js';
import type { TransitionEvent } from '../../src/ports/state-source.js';
import { FAKE_KERNEL_BIN, type FakeKernel } from './fake-kernel/fake-kernel.js';

/** What the exec port adds to its scrubbed environment: the fake tools first on PATH, and their state. */
export function fakeEnv(k: FakeKernel): Record<string, string> {
  return {
    PATH: `${FAKE_KERNEL_BIN}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    FAKE_KERNEL_STATE: k.statePath,
    FAKE_KERNEL_OS: k.os,
    FAKE_KERNEL_ARGV_LOG: k.argvLog,
    FAKE_KERNEL_POLL_MS: '10',
    FAKE_KERNEL_MONITOR_MS: '60000',
  };
}

/** Timers that fire only when the test says so. */
export class ManualTimers implements KernelTimers {
  private next = 1;
  readonly due = new Map<number, { fn: () => void; ms: number }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const h = this.next++;
    this.due.set(h, { fn, ms });
    return h;
  }
  clearTimeout(h: unknown): void {
    this.due.delete(h as number);
  }
  /** Fires the timers armed with `ms` (all when undefined); returns how many. */
  fire(ms?: number): number {
    let n = 0;
    for (const [h, t] of [...this.due]) {
      if (ms !== undefined && t.ms !== ms) continue;
      this.due.delete(h);
      t.fn();
      n++;
    }
    return n;
  }
}

/** Polls `check` until it returns a value, at most `timeoutMs`. */
export async function eventually<T>(check: () => T | undefined | false, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what}: nothing after ${timeoutMs} ms`);
}

/** A transition as the tests compare it. */
export function brief(ev: TransitionEvent): string {
  return `${ev.key} ${ev.from}->${ev.to} ${ev.reason}`;
}
