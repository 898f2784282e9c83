/** Small value parsers shared by the config front-ends: numbers, booleans, durations. */

/** A non-negative decimal integer, or undefined. */
export function parseUint(s: string): number | undefined {
  return /^\d{1,9}$/.test(s) ? Number(s) : undefined;
}

/** carpd.conf booleans: yes/no, true/false, on/off, 1/0, any case. */
export function parseBool(s: string): boolean | undefined {
  const v = s.toLowerCase();
  if (v === 'yes' || v === 'true' || v === 'on' || v === '1') return true;
  if (v === 'no' || v === 'false' || v === 'off' || v === '0') return false;
  return undefined;
}

/**
 * rc.subr's checkyesno: YES/TRUE/ON/1 and NO/FALSE/OFF/0, any case. Anything else is undefined
 * (rc.subr warns and takes it as NO).
 */
export function parseRcBool(s: string): boolean | undefined {
  return parseBool(s.trim());
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration in ms: `500ms`, `10s`, `1.5s`, `5m`, `2h`; a bare number is in `bare` units
 * (seconds unless the key says otherwise). Undefined when malformed.
 */
export function parseDuration(s: string, bare: 'ms' | 's' = 's'): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(s.trim());
  if (m === null) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? bare]!;
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** The shortest exact spelling of a duration in ms, for writing configs back (`1500ms`, `10s`, `5m`). */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
