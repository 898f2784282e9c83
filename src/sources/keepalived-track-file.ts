/**
 * keepalived's `track_file`, the way carpd can demote a keepalived instance: it writes an integer
 * into a file that keepalived watches with inotify (keepalived/trackers/track_file.c).
 *
 * process_track_file() reads at most 127 bytes and takes strtol(buf, NULL, 0): leading blanks, a
 * sign, `0x` hex or `0` octal, and it stops at the first other character; an empty, missing or
 * unreadable file is 0. A value outside [INT32_MIN, INT32_MAX + 1] is logged and ignored.
 * update_track_file_status() turns the value into a priority change for each tracking instance:
 *   - weight 0: a non-zero value is FAULT (zero is fine; `reverse` swaps the two);
 *   - otherwise value × weight (× −1 with `reverse`), and process_update_vrrp_track_file_status()
 *     clamps it to [−254, 253], where −254 is FAULT.
 * The instance's effective priority is base + the sum of its trackers, clamped to [1, 254]
 * (vrrp_set_effective_priority() in keepalived/vrrp/vrrp_track.c); an address owner (255) never moves.
 */

/** What the file's content means, or `ignored` when keepalived would log it and keep the last value. */
export type TrackFileValue = { kind: 'value'; value: number } | { kind: 'ignored'; reason: string };

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** strtol(content, NULL, 0) over the first 127 bytes, as keepalived reads it. */
export function readTrackFile(content: string): TrackFileValue {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)?/.exec(typeof content === 'string' ? content.slice(0, 127) : '');
  if (!m || m[2] === undefined) return { kind: 'value', value: 0 };
  const digits = m[2];
  // Long inputs are out of range anyway; cut them before BigInt to keep the work bounded.
  if (digits.length > 40) return { kind: 'ignored', reason: 'out of range' };
  const magnitude = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits.startsWith('0') ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  const v = m[1] === '-' ? -magnitude : magnitude;
  if (v < BigInt(INT32_MIN) || v > BigInt(INT32_MAX) + 1n) return { kind: 'ignored', reason: 'out of range' };
  return { kind: 'value', value: Number(v) };
}

export type TrackEffect = { kind: 'fault' } | { kind: 'delta'; delta: number };

/** What one tracked file with `value` does to an instance tracking it with `weight` [reverse]. */
export function trackFileEffect(value: number, weight: number, reverse = false): TrackEffect {
  if (weight === 0) return (value !== 0) !== reverse ? { kind: 'fault' } : { kind: 'delta', delta: 0 };
  const status = Math.max(-254, Math.min(253, value * weight * (reverse ? -1 : 1)));
  return status === -254 ? { kind: 'fault' } : { kind: 'delta', delta: status };
}

/** The effective priority keepalived advertises for a base priority and the sum of the tracker deltas. */
export function effectivePriority(base: number, delta: number): number {
  if (base === 255) return 255;
  return Math.max(1, Math.min(254, base + delta));
}
