/** The recorded kernel formats (test/fixtures/kernel), found from this module's place in dist/test/helpers/fake-kernel. */
import { readFileSync } from 'node:fs';

const KERNEL_FIXTURES = new URL('../../../../test/fixtures/kernel/', import.meta.url);

export function fixture(name: string): string {
  return readFileSync(new URL(name, KERNEL_FIXTURES), 'utf8');
}

/** Deterministic pseudo-random strings (xorshift32), so a failing garbage case can be replayed by its seed. */
export function garbage(seed: number, count: number, maxLen: number): string[] {
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = next() % maxLen;
    let s = '';
    for (let j = 0; j < len; j++) s += String.fromCharCode(next() % 4 === 0 ? next() % 0x10000 : next() % 128);
    out.push(s);
  }
  return out;
}
