/** Lets one message per key through per window, so a flood of bad packets logs one line, not thousands. */
export class RateLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when a message for `key` may be logged now. */
  allow(key: string): boolean {
    const t = this.now();
    const prev = this.last.get(key);
    if (prev !== undefined && t - prev < this.windowMs) return false;
    if (this.last.size > 4096) this.last.clear(); // bounded memory under a spoofed-source flood
    this.last.set(key, t);
    return true;
  }
}
