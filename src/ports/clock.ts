/** The clock port: monotonic time in ms and one timer. */
export interface Clock {
  now(): number;
  /** Arm the single timer to fire at `at` (monotonic ms); re-arming replaces it. */
  setTimer(at: number, cb: () => void): void;
  clearTimer(): void;
}
