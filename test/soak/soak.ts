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
  /** Set promote_secondaries back to 0 after carpd sets it (default true: the reconcile is tested). */
  revertPromote?: boolean;
  /** How long past the quiescence time a failing check is retried before it counts. */
  graceMs?: number;
  /** Each node's full log goes here. */
  logDir: string;
  signal?: AbortSignal;
  out: (line: string) => void;
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
  /** Violations counted once while they persist over consecutive checks (same kind, vhid, node). */
  incidents: number;
  /** Heal → first passing check, per passing check (ms). */
  convergenceMs: number[];
  interrupted: boolean;
  /** A failure of the soak itself (a command it could not run), not of carpd. */
  error?: string;
  lossMethod?: string;
}

/** 3 × advbase + 1 s: a backup's master-down time with room for the first advert after it. */
const QUIESCENCE_MS = 3 * ADVBASE * 1000 + 1000;
/** Bound on how long a restarted node may take to answer with every vhid out of INIT. */
const SETTLE_MAX_MS = 15_000;
const POLL_MS = 500;
/** How long a carpd gets to shut down on SIGTERM at the end of the run before it is killed. */
const SHUTDOWN_MS = 5_000;

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
    incidents: 0,
    convergenceMs: [],
    interrupted: false,
  };
  const pendingExits: Violation[] = [];
  const keyOf = (v: Violation) => `${v.kind}/${v.vhid ?? ''}/${v.node ?? ''}`;
  let lastKeys = new Set<string>();

  opts.out(
    `carpd soak: seed ${opts.seed} (${seedNumber}); ${nodes} nodes × ${vhids} vhids, advbase ${ADVBASE}, preempt ${preempt ? 'on' : 'off'}, ` +
      `promote_secondaries 0${(opts.revertPromote ?? true) ? ' (set back to 0 after carpd sets it)' : ' (carpd sets it to 1)'}; ${fmtS(opts.durationMs)} s; quiescence ${fmtS(QUIESCENCE_MS)} s, grace ${fmtS(graceMs)} s; logs in ${opts.logDir}`,
  );
  opts.out(`repeat with: SOAK_SEED=${opts.seed} SOAK_S=${Math.round(opts.durationMs / 1000)} npm run soak`);

  let cluster: SoakCluster | undefined;
  try {
    cluster = await SoakCluster.create({
      nodes,
      vhids,
      preempt,
      revertPromote: opts.revertPromote ?? true,
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
      `namespaces ${c.lab.namespaces().join(' ')}; VIPs ${soakVip(1)}..${soakVip(vhids)}/24; vhid v preferred by n((v mod ${nodes})+1); 20% loss by ${loss === 'netem' ? 'tc netem' : "nftables on the node's bridge port (this kernel has no sch_netem)"}`,
    );
    for (const n of c.nodes) c.start(n);
    say(`started ${c.nodes.map((n) => `${n.name} (pid ${n.child?.pid})`).join(', ')}`);

    const spec: CheckSpec = { vhids: c.vhidList(), vip: soakVip, preferred: (v) => c.preferred(v), preempt };

    /**
     * One check round. The cluster is observed every POLL_MS from the heal on; the verdict is the
     * first correct observation once the quiescence time has passed (plus, for a restarted node,
     * the time it took to answer with every vhid out of INIT). A check that is still failing
     * `graceMs` after that counts its violations: a check taken too early is retried, not
     * reported. Convergence is when the cluster became correct and stayed so until the verdict.
     */
    const checkRound = async (label: string, healedAt: number, restarted: readonly SoakNode[]): Promise<void> => {
      const outOfInit = new Map<string, number>();
      const hardEnd = healedAt + QUIESCENCE_MS + SETTLE_MAX_MS + graceMs;
      let streakStart: number | undefined;
      let failStreak = 0;
      let observations = 0;
      let found: Violation[];
      let verdictAt: number;
      let initDelay: number;
      for (;;) {
        if (aborted()) return;
        const at = Date.now();
        const obs = await Promise.all(c.nodes.map((n) => c.observe(n)));
        observations++;
        for (const n of restarted) {
          const o = obs.find((x) => x.name === n.name);
          if (!outOfInit.has(n.name) && o?.vhids?.size === vhids && [...o.vhids.values()].every((v) => v.state !== 'INIT')) outOfInit.set(n.name, at);
        }
        found = evaluate(spec, obs);
        if (found.length === 0) {
          streakStart ??= at;
          failStreak = 0;
        } else {
          streakStart = undefined;
          failStreak++;
        }
        const waits = restarted.map((n) => outOfInit.get(n.name) ?? Infinity);
        initDelay = Math.max(0, ...waits.map((t) => t - healedAt));
        const earliest = healedAt + QUIESCENCE_MS + initDelay;
        verdictAt = Date.now();
        if (found.length === 0 && at >= earliest) break;
        if (verdictAt >= Math.min(earliest + graceMs, hardEnd)) break;
        await sleep(POLL_MS, opts.signal);
      }
      if (aborted()) return;
      const exits = pendingExits.splice(0);
      const all = [...exits, ...found];
      result.checks++;
      const initText = restarted.length ? ` + INIT ${Number.isFinite(initDelay) ? `${fmtS(initDelay)} s` : 'never left'}` : '';
      const fresh = all.filter((v) => !lastKeys.has(keyOf(v)));
      result.incidents += fresh.length;
      lastKeys = new Set(all.map(keyOf));
      if (all.length === 0) {
        result.checksOk++;
        const conv = streakStart! - healedAt;
        result.convergenceMs.push(conv);
        say(
          `check ${label}: OK at ${fmtS(verdictAt - healedAt)} s after heal; correct since ${fmtS(conv)} s (quiescence ${fmtS(QUIESCENCE_MS)} s${initText}; ${observations} observations)`,
        );
        return;
      }
      result.violations.push(...all);
      say(
        `check ${label}: ${all.length} violation(s) (${fresh.length} new, ${all.length - fresh.length} persisting from the previous check), still ${fmtS(verdictAt - healedAt)} s after heal (quiescence ${fmtS(QUIESCENCE_MS)} s${initText} + grace ${fmtS(graceMs)} s); failing in the last ${failStreak} of ${observations} observations`,
      );
      for (const v of all) opts.out(`    ${v.kind}${v.node ? ` ${v.node}` : ''}: ${v.detail}`);
    };

    await checkRound('start', Date.now(), c.nodes);
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
      const restarted = c.nodes.filter((n) => round.faults.some((f) => f.kind === 'kill' && f.node === n.name));
      // A carpd that died by itself is restarted too, so the soak goes on (its exit is a violation).
      for (const n of c.nodes) {
        if (!c.running(n)) {
          c.start(n);
          say(`round ${label}: restarted ${n.name}, which had died by itself: pid ${n.child?.pid ?? '?'}`);
          restarted.push(n);
        }
      }
      await checkRound(label, Date.now(), restarted);
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
      if (!aborted() && !result.error) {
        const vips = c.vhidList().map(soakVip);
        for (const s of await c.stopAll(SHUTDOWN_MS, vips)) {
          const how = s.code === null ? `did not exit within ${fmtS(SHUTDOWN_MS)} s (killed)` : `exit ${s.code} in ${fmtS(s.ms)} s`;
          say(`shutdown ${s.node.name} (SIGTERM): ${how}${s.left.length ? `; VIPs left on eth0: ${s.left.join(' ')}` : '; no VIP left'}`);
          if (s.code !== 0 || s.left.length)
            result.violations.push({
              kind: 'shutdown',
              node: s.node.name,
              detail: `${s.node.name}: SIGTERM: ${how}; VIPs left: ${s.left.join(' ') || 'none'}`,
            });
        }
      }
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
  out(`  incidents: ${r.incidents} (a violation persisting over consecutive checks counts once)`);
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
