/**
 * `npm run soak`: the chaos soak (soak.ts). SOAK_S sets the duration in seconds (default 600),
 * SOAK_SEED the seed (default: a random one, printed so the run can be repeated). Exits 0 only
 * when every check passed; 1 on any violation or harness error; 130 when interrupted. Ctrl-C or
 * SIGTERM stops the run: the namespaces are removed and every carpd the soak started is stopped.
 */
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSoak } from './soak.js';

async function main(): Promise<number> {
  const seconds = Number(process.env.SOAK_S ?? 600);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 7 * 86_400) {
    console.error(`soak: SOAK_S must be a number of seconds (1..604800), not ${JSON.stringify(process.env.SOAK_S)}`);
    return 2;
  }
  const seed = process.env.SOAK_SEED?.trim() || String(randomInt(1, 2 ** 31));
  if (process.getuid?.() !== 0) {
    console.error('soak: needs root (network namespaces)');
    return 2;
  }
  const ac = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) console.log(`soak: ${sig}: stopping, removing the namespaces`);
    ac.abort();
    // A second signal while cleaning up: leave now (the lab's exit handler still kills our carpds).
    if (signals > 1) process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const logDir = join(process.env.SOAK_LOG_DIR ?? tmpdir(), `carpd-soak-${seed}-${process.pid}`);
  // SOAK_PROMOTE=keep leaves carpd's promote_secondaries = 1 alone (by default the soak undoes it).
  const revertPromote = process.env.SOAK_PROMOTE !== 'keep';
  const r = await runSoak({ durationMs: seconds * 1000, seed, logDir, revertPromote, signal: ac.signal, out: (l) => console.log(l) });
  if (r.interrupted) return 130;
  return r.error || r.violations.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
