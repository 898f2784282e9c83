/**
 * `npm run fuzz`: every fuzz target, with its count and seed, and the figures the closing note
 * quotes. Not part of `npm test` (that runs a short seeded slice of each target); exits 1 on any
 * failure line.
 *
 * Options: --seed N (default: the time), --packets N (default 1,000,000), --configs N (default 20,000),
 * --only packets|config.
 */
import { intOpt, last, parseArgs } from '../../src/cli/args.js';
import { config } from './config.js';
import { packets } from './packets.js';
import type { FuzzReport, FuzzTarget } from './report.js';

const args = parseArgs(process.argv.slice(2), ['--seed', '--packets', '--configs', '--only'], []);
const seed = intOpt(args, '--seed', 0, 2 ** 31 - 1, Date.now() % 2 ** 31);
const only = last(args, '--only');
const targets: Array<[string, FuzzTarget, number]> = [
  ['packets', packets, intOpt(args, '--packets', 1, 100_000_000, 1_000_000)],
  ['config', config, intOpt(args, '--configs', 1, 10_000_000, 20_000)],
];

const reports: FuzzReport[] = [];
for (const [name, target, count] of targets) {
  if (only !== undefined && only !== name) continue;
  const t0 = performance.now();
  console.log(`fuzz ${name}: ${count} cases, seed ${seed}`);
  const r = await target({ seed, count, log: (l) => console.log(`  ${l}`) });
  reports.push(r);
  console.log(`fuzz ${name}: ${r.cases} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${r.failures.length} failure(s)`);
  for (const [k, v] of Object.entries(r.figures)) console.log(`  ${k}: ${v}`);
  for (const f of r.failures) console.log(`  FAIL ${f}`);
}
const failed = reports.reduce((n, r) => n + r.failures.length, 0);
console.log(`fuzz: seed ${seed}, ${reports.length} target(s), ${failed} failure(s)`);
process.exitCode = failed === 0 ? 0 : 1;
