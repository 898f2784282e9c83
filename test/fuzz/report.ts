/**
 * What one fuzz target reports to `npm run fuzz` (test/fuzz/run.ts) and to the seeded slice that
 * `npm test` runs. A target is deterministic for a given seed: the same seed, the same inputs.
 */
export interface FuzzOptions {
  /** Seed of the input generator: the same seed gives the same inputs. */
  seed: number;
  /** How many inputs to try. */
  count: number;
  /** Progress lines for the operator (npm run fuzz prints them); the slice in npm test passes a no-op. */
  log: (line: string) => void;
}

export interface FuzzReport {
  /** The target's name, e.g. "packets" or "config". */
  name: string;
  /** Inputs tried. */
  cases: number;
  /** One line per violation (an escape, a crash, an error not in FILE:LINE form, ...), at most 100 kept. */
  failures: string[];
  /** The figures the closing note quotes: drops by reason, peak RSS, cases per parser, ... */
  figures: Record<string, number | string>;
}

export type FuzzTarget = (opts: FuzzOptions) => Promise<FuzzReport>;
