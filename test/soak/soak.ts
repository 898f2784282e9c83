/**
 * The chaos soak: a seeded schedule of faults against a carpd cluster in namespaces, with the
 * cluster's invariants checked after every heal (check.ts). Used by `npm run soak` (run.ts) and by
 * the seeded slice in test/integration/soak-slice.test.ts.
 */
import { ADVBASE, SoakCluster, soakVip, type SoakNode } from './cluster.js';
import { evaluate, type CheckSpec, type Violation, type ViolationKind } from './check.js';
import { applyFault, describe, drawRound, FAULT_KINDS, healFault, probeLoss, type FaultKind } from './faults.js';
import { Prng, seedFrom } from './prng.js';

export interface SoakOptions {
  durationMs: number;
  seed: string;
  nodes?: number;
  vhids?: number;
  preempt?: boolean;
  /** How long past the quiescence time a failing check is retried before it counts. */
  graceMs?: number;
  /** Each node's full log goes here. */
  logDir: string;
  signal?: AbortSignal;
  out(line: string): void;
}

export interface SoakResult {
  seed: string;
  seedNumber: number;
  elapsedMs: number;
  rounds: number;
  faults: Record<FaultKind, number>;
  checks: number;
  checksOk: number;
  violations: Violation[];
  /** Heal → first passing check, per passing check (ms). */
  convergenceMs: number[];
  interrupted: boolean;
  /** A failure of the soak itself (a command it could not run), not of carpd. */
  error?: string;
  lossMethod?: string;
}

/** 3 × advbase + 1 s: a backup's master-down time with room for the first advert after it. */
const QUIESCENCE_MS = 3 * ADVBASE * 1000 + 1000;
/** Bound on waiting for every node to answer and leave INIT after the quiescence time. */
const SETTLE_MAX_MS = 15_000;
const RETRY_EVERY_MS = 1_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

const fmtS = (ms: number) => (ms / 1000).toFixed(1);

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const nodes = opts.nodes ?? 3;
  const vhids = opts.vhids ?? 16;
  const preempt = opts.preempt ?? true;
  const graceMs = opts.graceMs ?? 10_000;
  const seedNumber = seedFrom(opts.seed);
  const rng = new Prng(seedNumber);
  const t0 = Date.now();
  const stamp = () => `[${fmtS(Date.now() - t0).padStart(6)}]`;
  const say = (s: string) => opts.out(`${stamp()} ${s}`);
  const aborted = () => opts.signal?.aborted ?? false;

  const result: SoakResult = {
    seed: opts.seed,
    seedNumber,
    elapsedMs: 0,
    rounds: 0,
    faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>,
    checks: 0,
    checksOk: 0,
    violations: [],
    convergenceMs: [],
    interrupted: false,
  };
  const pendingExits: Violation[] = [];

  opts.out(
    `carpd soak: seed ${opts.seed} (${seedNumber}); ${nodes} nodes × ${vhids} vhids, advbase ${ADVBASE}, preempt ${preempt ? 'on' : 'off'}, ` +
      `promote_secondaries 0; ${fmtS(opts.durationMs)} s; quiescence ${fmtS(QUIESCENCE_MS)} s, grace ${fmtS(graceMs)} s; logs in ${opts.logDir}`,
  );
  opts.out(`repeat with: SOAK_SEED=${opts.seed} SOAK_S=${Math.round(opts.durationMs / 1000)} npm run soak`);

  let cluster: SoakCluster | undefined;
  try {
    cluster = await SoakCluster.create({
      nodes,
      vhids,
      preempt,
      logDir: opts.logDir,
      onUnexpectedExit: (n: SoakNode, code, signal) => {
        // Ctrl-C reaches the whole process group, carpd included, perhaps before our handler ran:
        // an exit is judged a moment later, and not at all when the soak is being stopped.
        setTimeout(() => {
          if (aborted()) return;
          const v: Violation = {
            kind: 'unexpected-exit',
            node: n.name,
            detail: `${n.name}: carpd (pid ${n.child?.pid ?? '?'}) exited by itself, code ${code}, signal ${signal}; last lines: ${n.tail.slice(-5).join(' | ')}`,
          };
          pendingExits.push(v);
          say(`VIOLATION ${v.detail}`);
        }, 300);
      },
    });
    const c = cluster;
    const loss = await probeLoss(c);
    result.lossMethod = loss;
    say(
      `namespaces ${c.lab.namespaces().join(' ')}; VIPs ${soakVip(1)}..${soakVip(vhids)}/24; vhid v preferred by n((v mod ${nodes})+1); 20% loss by ${loss === 'netem' ? 'tc netem' : 'nftables numgen (this kernel has no sch_netem)'}`,
    );
    for (const n of c.nodes) c.start(n);
    say(`started ${c.nodes.map((n) => `${n.name} (pid ${n.child?.pid})`).join(', ')}`);

    const spec: CheckSpec = { vhids: c.vhidList(), vip: soakVip, preferred: (v) => c.preferred(v), preempt };

    /** One check round: retried within the grace period; OK or the violations of the last try. */
    const checkRound = async (label: string, healedAt: number): Promise<void> => {
      await sleep(Math.max(0, healedAt + QUIESCENCE_MS - Date.now()), opts.signal);
      const settleEnd = Date.now() + SETTLE_MAX_MS;
      while (!aborted() && Date.now() < settleEnd && !(await c.settled())) await sleep(250, opts.signal);
      const graceEnd = Date.now() + graceMs;
      let attempts = 0;
      let found: Violation[] = [];
      const firstFail: Map<string, number> = new Map();
      for (;;) {
        if (aborted()) return;
        attempts++;
        const obs = await Promise.all(c.nodes.map((n) => c.observe(n)));
        found = evaluate(spec, obs);
        if (found.length === 0 || Date.now() >= graceEnd) break;
        for (const v of found) if (!firstFail.has(v.detail)) firstFail.set(v.detail, Date.now());
        await sleep(RETRY_EVERY_MS, opts.signal);
      }
      if (aborted()) return;
      const exits = pendingExits.splice(0);
      const all = [...exits, ...found];
      result.checks++;
      if (all.length === 0) {
        result.checksOk++;
        const conv = Date.now() - healedAt;
        result.convergenceMs.push(conv);
        say(`check ${label}: OK (converged ${fmtS(conv)} s after heal, attempt ${attempts})`);
        return;
      }
      result.violations.push(...all);
      say(`check ${label}: ${all.length} violation(s) after ${attempts} attempts, ${fmtS(Date.now() - healedAt)} s after heal (${fmtS(graceMs)} s grace)`);
      for (const v of all) opts.out(`    ${v.kind}${v.node ? ` ${v.node}` : ''}: ${v.detail}`);
    };

    await checkRound('start', Date.now());
    const deadline = t0 + opts.durationMs;
    while (!aborted() && Date.now() < deadline) {
      const round = drawRound(
        rng,
        c.nodes.map((n) => n.name),
      );
      result.rounds++;
      const label = `${result.rounds}`;
      for (const f of round.faults) {
        result.faults[f.kind]++;
        const r = await applyFault(c, f, loss);
        say(`round ${label}: fault ${f.kind}: ${describe(f)}${r ? `: ${r}` : ''}; hold ${fmtS(round.holdMs)} s`);
      }
      await sleep(round.holdMs, opts.signal);
      if (aborted()) break;
      for (const f of [...round.faults].reverse()) {
        const r = await healFault(c, f, loss);
        say(`round ${label}: healed ${f.kind} ${f.node}${r ? `: ${r}` : ''}`);
      }
      // A carpd that died by itself is restarted too, so the soak goes on (its exit is a violation).
      for (const n of c.nodes) {
        if (!c.running(n)) {
          c.start(n);
          say(`round ${label}: restarted ${n.name}, which had died by itself: pid ${n.child?.pid ?? '?'}`);
        }
      }
      await checkRound(label, Date.now());
    }
    result.interrupted = aborted();
  } catch (err) {
    result.interrupted = aborted();
    if (!result.interrupted) result.error = err instanceof Error ? err.message : String(err);
  } finally {
    if (cluster) {
      const c = cluster;
      const stats = c.nodes.map((n) => {
        const up = Math.max(1, (Date.now() - t0) / 1000);
        return `${n.name} ${n.starts} start(s), ${n.transitions} transitions, ${n.lines} log lines (${(n.lines / up).toFixed(1)}/s)`;
      });
      await c.destroy();
      result.elapsedMs = Date.now() - t0;
      say(`cleaned up: namespaces removed, carpd processes stopped`);
      report(opts.out, result, stats);
    } else {
      result.elapsedMs = Date.now() - t0;
      report(opts.out, result, []);
    }
  }
  return result;
}

function report(out: (l: string) => void, r: SoakResult, nodeStats: string[]): void {
  const faultTotal = Object.values(r.faults).reduce((a, b) => a + b, 0);
  out(`summary: seed ${r.seed} (${r.seedNumber}), ${fmtS(r.elapsedMs)} s, ${r.rounds} round(s)${r.interrupted ? ', INTERRUPTED' : ''}`);
  out(`  faults: ${FAULT_KINDS.map((k) => `${k} ${r.faults[k]}`).join(', ')} (${faultTotal} in all)`);
  const conv = [...r.convergenceMs].sort((a, b) => a - b);
  const convText = conv.length
    ? `; convergence after heal min ${fmtS(conv[0]!)} s, median ${fmtS(conv[conv.length >> 1]!)} s, max ${fmtS(conv.at(-1)!)} s`
    : '';
  out(`  checks: ${r.checks}, OK ${r.checksOk}, with violations ${r.checks - r.checksOk}${convText}`);
  const byKind = new Map<ViolationKind, number>();
  for (const v of r.violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
  out(`  violations: ${r.violations.length}${byKind.size ? ` (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}`);
  const where = new Map<string, number>();
  for (const v of r.violations) {
    const k = `${v.kind}${v.vhid !== undefined ? ` vhid ${v.vhid}` : ''}${v.node ? ` ${v.node}` : ''}`;
    where.set(k, (where.get(k) ?? 0) + 1);
  }
  if (where.size) out(`  where: ${[...where].map(([k, n]) => `${k} ×${n}`).join('; ')}`);
  for (const s of nodeStats) out(`  carpd ${s}`);
  if (r.error) out(`  SOAK ERROR (the harness, not carpd): ${r.error}`);
}
