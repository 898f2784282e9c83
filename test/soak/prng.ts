/**
 * The soak's seeded pseudo-random numbers. Every fault choice (kind, node, peer, hold time) is
 * drawn from this generator and from nothing the run observes, so the same SOAK_SEED replays the
 * same schedule of faults (timing on a loaded machine still differs).
 */

/** A 32-bit seed from SOAK_SEED: a decimal integer as is, any other text hashed (FNV-1a). */
export function seedFrom(text: string): number {
  if (/^\d+$/.test(text)) return Number(BigInt(text) & 0xffffffffn);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** mulberry32: small, fast, and good enough to pick faults; not for anything secret. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  /** One of `choices` with probability proportional to its weight. */
  weighted<T>(choices: ReadonlyArray<readonly [T, number]>): T {
    const total = choices.reduce((s, [, w]) => s + w, 0);
    let r = this.next() * total;
    for (const [x, w] of choices) {
      if (r < w) return x;
      r -= w;
    }
    return choices.at(-1)![0];
  }
}
