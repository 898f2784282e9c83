/**
 * Log rate limiting that holds under a flood of spoofed packets.
 *
 * The old limiter kept one entry per `reason source interface` and cleared its whole table past
 * 4096 keys, so a flood from random sources got one line per packet (50,000 TTL-64 packets gave
 * 50,001 lines). Here the key never contains the source: drops are limited per reason and
 * interface (a few dozen keys at most, bounded by the configuration), and the sources only feed a
 * count in a periodic summary. A full table refuses new keys rather than forgetting old ones, so
 * running out of room means silence, never "allow all".
 */

/** Lets one message per key through per window, with a hard cap on the number of keys it remembers. */
export class RateLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
    private readonly maxKeys = 1024,
  ) {}

  /** True when a message for `key` may be logged now. */
  allow(key: string): boolean {
    const t = this.now();
    const prev = this.last.get(key);
    if (prev !== undefined && t - prev < this.windowMs) return false;
    if (prev === undefined && this.last.size >= this.maxKeys) {
      // Forget only what has expired; if every key is still live, the new one waits.
      for (const [k, at] of this.last) if (t - at >= this.windowMs) this.last.delete(k);
      if (this.last.size >= this.maxKeys) return false;
    }
    this.last.set(key, t);
    return true;
  }
}

/** Distinct sources up to a cap, then only "at least cap": exact while small, bounded always. */
export class BoundedSet {
  private readonly seen = new Set<string>();
  private overflow = false;

  constructor(readonly cap: number) {}

  add(v: string): void {
    if (this.seen.has(v)) return;
    if (this.seen.size < this.cap) this.seen.add(v);
    else this.overflow = true;
  }

  /** The count, and whether it is a lower bound (more distinct values were seen than kept). */
  get count(): { n: number; atLeast: boolean } {
    return { n: this.seen.size, atLeast: this.overflow };
  }
}

/** One window of drops for a reason on an interface. */
interface DropWindow {
  reason: string;
  ifname: string;
  opened: number;
  /** Drops in the window, the first included. */
  dropped: number;
  sources: BoundedSet;
  /** Opened without a line of its own (the flood goes on from the last window): always summarized. */
  silent: boolean;
}

export interface DropLogOptions {
  /** Length of a window: one immediate line, then one summary at its end (default 60 s). */
  windowMs?: number;
  /** Distinct sources counted exactly per window (default 1024). */
  sourceCap?: number;
  /** Windows open at once; `reason × interface` is far below this (default 256). */
  maxWindows?: number;
}

/**
 * What `DropLog.note` tells the caller: log this packet's own line now (`log`), only arm the
 * timer for a window it has just opened (`opened`), or nothing (`counted`).
 */
export type DropVerdict = 'log' | 'opened' | 'counted';

/**
 * Drop logging per reason and interface. The first drop of a window is logged at once (with its
 * source, which is what an operator needs for a single misconfigured peer); every other drop in
 * the window is only counted, and when the window ends one summary line gives the count and the
 * number of distinct sources. A flood that goes on past a window opens the next one silently, so
 * it costs one summary line per window and nothing else. Time comes from the caller (`now`), and
 * the caller arms its own timer for `nextDue()` and calls `flush`, so the daemon drives it from
 * its Clock port and tests from a fake clock.
 */
export class DropLog {
  private readonly windows = new Map<string, DropWindow>();
  /** Keys whose last window ended with a summary, and when: the next window opens silently. */
  private readonly hot = new Map<string, number>();
  private readonly windowMs: number;
  private readonly sourceCap: number;
  private readonly maxWindows: number;

  constructor(opts: DropLogOptions = {}) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.sourceCap = opts.sourceCap ?? 1024;
    this.maxWindows = opts.maxWindows ?? 256;
  }

  /** Count one drop and say what the caller should do about it. */
  note(now: number, reason: string, ifname: string, src: string | undefined): DropVerdict {
    let key = `${reason} ${ifname}`;
    if (!this.windows.has(key) && this.windows.size >= this.maxWindows) {
      // Never reached with a sane configuration; if it is, keep counting in one shared window
      // instead of logging per packet or forgetting.
      key = '* *';
      reason = 'any reason';
      ifname = '*';
    }
    let w = this.windows.get(key);
    let verdict: DropVerdict = 'counted';
    if (!w) {
      const closedAt = this.hot.get(key);
      const silent = key === '* *' || (closedAt !== undefined && now - closedAt < this.windowMs);
      w = { reason, ifname, opened: now, dropped: 0, sources: new BoundedSet(this.sourceCap), silent };
      this.windows.set(key, w);
      verdict = silent ? 'opened' : 'log';
    }
    w.dropped++;
    if (src !== undefined) w.sources.add(src);
    return verdict;
  }

  /** When the earliest open window ends, or undefined when none is open. */
  nextDue(): number | undefined {
    let due: number | undefined;
    for (const w of this.windows.values()) {
      const end = w.opened + this.windowMs;
      if (due === undefined || end < due) due = end;
    }
    return due;
  }

  /**
   * Close every window that has ended by `now` (every window, with `all`: at shutdown). Returns
   * one summary line per closed window that dropped more than the packet already logged in full.
   */
  flush(now: number, all = false): string[] {
    const lines: string[] = [];
    for (const [key, at] of this.hot) if (all || now - at >= this.windowMs) this.hot.delete(key);
    for (const [key, w] of this.windows) {
      if (!all && now < w.opened + this.windowMs) continue;
      this.windows.delete(key);
      if (w.dropped <= 1 && !w.silent) continue;
      if (w.dropped > 1) this.hot.set(key, now);
      const { n, atLeast } = w.sources.count;
      const from = n === 0 ? '' : ` from ${atLeast ? 'at least ' : ''}${n} source${n === 1 && !atLeast ? '' : 's'}`;
      // At shutdown (`all`) a window closes early: say how long it was really open.
      const secs = Math.max(1, Math.round(Math.min(this.windowMs, now - w.opened) / 1000));
      lines.push(`carp: ${w.ifname}: ${w.dropped} packet${w.dropped === 1 ? '' : 's'} dropped for ${w.reason}${from} in ${secs} s`);
    }
    return lines;
  }
}
