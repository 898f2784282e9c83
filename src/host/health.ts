/** Emitted as `health` when a check (a plugin's or a `[health.NAME]` command) completes. */
export interface HealthRecord {
  name: string;
  ok: boolean;
  /** The verdict after hysteresis. */
  healthy: boolean;
  flipped?: 'up' | 'down';
}

/**
 * Rise/fall hysteresis for health checks (keepalived's track_script `rise`/`fall`): the verdict
 * flips only after `fall` failures, or `rise` passes, in a row.
 */
export class Hysteresis {
  private good = true;
  private streak = 0;

  constructor(
    readonly rise: number,
    readonly fall: number,
  ) {}

  get ok(): boolean {
    return this.good;
  }

  /** Feeds one result; says `down` or `up` when the verdict flips. */
  feed(pass: boolean): 'down' | 'up' | undefined {
    if (pass === this.good) {
      this.streak = 0;
      return undefined;
    }
    this.streak++;
    if (this.streak < (this.good ? this.fall : this.rise)) return undefined;
    this.good = pass;
    this.streak = 0;
    return pass ? 'up' : 'down';
  }

  /** Marks the subject failed now (a hook failed under `demote`): `rise` passes bring it back. */
  fail(): void {
    this.good = false;
    this.streak = 0;
  }
}

/** `30`, `30s`, `500ms`, `5m`, `1h` → ms; bare numbers are seconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return n > 0 && Number.isFinite(n) ? Math.round(n) : undefined;
}
