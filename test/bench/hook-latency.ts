/**
 * `node dist/test/bench/hook-latency.js [--transitions N] [--burst N] [--gap-ms MS] [--in-process]`: how long from a
 * transition (the moment the state source emits it) to the first hook command.
 *
 * A small fake state source (the StateSource port, nothing else) drives the plugin host the way
 * the daemon starts it (`startPluginHost`), so the same harness measures the host in the daemon's
 * process and out of it. The state source behaves like the engine: it emits, asks the phase gate,
 * races it against the budget, and `netSettled` resolves after that.
 *
 * With `--burst N`, N vhids (each followed by its own plugin) change state in one protocol step,
 * as in a mass failover.
 *
 * A bench plugin's `master`/`backup` hook notes the monotonic time (CLOCK_MONOTONIC, the same in
 * every process) and runs `date +%s%N`; the bench reports two latencies, p50 and p99:
 *  - to exec: transition → the hook calls ctx.exec (what the host adds);
 *  - to command: transition → the command is running (the spawn included; realtime, calibrated
 *    against the monotonic clock at start, so ±0.5 ms).
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { intOpt, parseArgs } from '../../src/cli/args.js';
import type { CarpModel } from '../../src/config/model.js';
import { startPluginHost } from '../../src/daemon/plugins.js';
import type { HookRecord } from '../../src/host/log.js';
import type { CarpState, StateSource, TransitionEvent } from '../../src/ports/state-source.js';

const keyOf = (v: number) => `${v}@eth0`;
/** Plugin `NAME`: its master/backup hook notes the time and runs `date`. */
const plugin = (name: string) => `
import { appendFileSync } from 'node:fs';
async function hook(ctx) {
  const t = process.hrtime.bigint();
  const r = await ctx.exec(['date', '+%s%N']);
  appendFileSync(ctx.options.out, ctx.event.seq + ' ' + t + ' ' + r.stdout.trim() + '\\n');
}
export default { name: '${name}', apiVersion: 1, options: { out: { required: true } }, hooks: { master: hook, backup: hook } };
`;

/** The part of the StateSource port the host uses, behaving like the engine (one net queue per vhid). */
class FakeSource extends EventEmitter {
  private gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined;
  private budgetMs = 500;
  private readonly queues = new Map<string, Promise<void>>();
  private seq = 0;
  readonly states = new Map<string, CarpState>();
  readonly ledger = new Map<string, number>();

  constructor(vhids: number) {
    super();
    for (let v = 1; v <= vhids; v++) this.states.set(keyOf(v), 'INIT');
  }

  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined, budgetMs = 500): void {
    this.gate = gate;
    this.budgetMs = budgetMs;
  }

  netSettled(key: string): Promise<void> {
    return this.queues.get(key) ?? Promise.resolve();
  }

  status(): { key: string; state: CarpState }[] {
    return [...this.states].map(([key, state]) => ({ key, state }));
  }

  setDemotion(group: string, by: string, count: number): number {
    this.ledger.set(`${group} ${by}`, count);
    return count;
  }

  demote(group: string, by: string, delta: number): number {
    return this.setDemotion(group, by, (this.ledger.get(`${group} ${by}`) ?? 0) + delta);
  }

  /** Every vhid to `to` in one protocol step; the monotonic ns each transition was emitted at. */
  flipAll(to: CarpState): { seq: number; at: bigint }[] {
    const out: { seq: number; at: bigint }[] = [];
    for (const [key, from] of this.states) {
      const ev: TransitionEvent = {
        seq: ++this.seq,
        time: new Date().toISOString(),
        vhid: Number(key.split('@')[0]),
        interface: 'eth0',
        key,
        from,
        to,
        reason: 'bench',
      };
      this.states.set(key, to);
      const at = process.hrtime.bigint();
      this.emit('transition', ev);
      const gate = this.gate?.(ev);
      if (gate) {
        this.queues.set(
          key,
          (this.queues.get(key) ?? Promise.resolve()).then(async () => {
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([gate.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, this.budgetMs)))]);
            clearTimeout(timer);
          }),
        );
      }
      out.push({ seq: ev.seq, at });
    }
    return out;
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** realtime ns − monotonic ns, from the tightest of a few `date` calls. */
function clockOffset(): bigint {
  let best: { window: bigint; offset: bigint } | undefined;
  for (let i = 0; i < 7; i++) {
    const t0 = process.hrtime.bigint();
    const real = BigInt(execFileSync('date', ['+%s%N'], { encoding: 'utf8' }).trim());
    const t1 = process.hrtime.bigint();
    const window = t1 - t0;
    if (!best || window < best.window) best = { window, offset: real - (t0 + window / 2n) };
  }
  return best!.offset;
}

/** Resolves after `count` hook runs for any of `seqs`. */
function waitHooks(host: EventEmitter, seqs: ReadonlySet<number>, count: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const timer = setTimeout(() => {
      host.off('hook', on);
      reject(new Error(`${seen} of ${count} hook runs within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (h: HookRecord) => {
      if (!seqs.has(h.seq) || ++seen < count) return;
      clearTimeout(timer);
      host.off('hook', on);
      resolve();
    };
    host.on('hook', on);
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), ['--transitions', '--gap-ms', '--warmup', '--burst'], ['--in-process']);
  const burst = intOpt(args, '--burst', 1, 255, 1);
  const inProcess = args.flags.has('--in-process');
  const n = intOpt(args, '--transitions', 100, 100_000, 200);
  const gapMs = intOpt(args, '--gap-ms', 0, 10_000, 20);
  const warmup = intOpt(args, '--warmup', 0, 1000, 10);
  const dir = mkdtempSync(join(tmpdir(), 'carpd-hook-latency-'));
  try {
    const out = join(dir, 'times');
    writeFileSync(out, '');
    const vhids = Array.from({ length: burst }, (_, i) => i + 1);
    for (const v of vhids) {
      mkdirSync(join(dir, 'plugins', `latency${v}`), { recursive: true });
      writeFileSync(join(dir, 'plugins', `latency${v}`, 'plugin.js'), plugin(`latency${v}`));
    }
    const model: CarpModel = {
      global: { allow: true, preempt: false, log: 3, pluginDir: join(dir, 'plugins') },
      vhids: vhids.map((v) => ({
        key: keyOf(v),
        vhid: v,
        interface: 'eth0',
        addresses: [`192.0.2.${v}/24`],
        advbase: 1,
        advskew: 0,
        password: '',
        source: 'bench',
      })),
      plugins: vhids.map((v) => ({ name: `latency${v}`, follow: { kind: 'vhid' as const, ref: keyOf(v) }, options: { out }, source: `bench:${v}` })),
    };
    const source = new FakeSource(burst);
    const logger = { log: (level: number, msg: string) => level <= 3 && console.error(msg) };
    const ph = await startPluginHost(source as unknown as StateSource, model, logger, { inProcess });
    const host = ph.host as unknown as EventEmitter;
    const failures: string[] = [];
    host.on(
      'hook',
      (h: HookRecord) =>
        h.result !== 'ok' && failures.length < 10 && failures.push(`${h.plugin} ${h.hook} seq ${h.seq}: ${h.result} ${h.error?.message ?? ''}`),
    );
    // The boot runs (INIT: the backup hooks) come first; wait for them so they are not measured.
    await waitHooks(host, new Set([0]), burst, 30_000);
    const offset = clockOffset();
    const emitted = new Map<number, bigint>();
    const rounds = Math.ceil(n / burst);
    for (let i = 0; i < Math.ceil(warmup / burst) + rounds; i++) {
      const flips = source.flipAll(i % 2 === 0 ? 'MASTER' : 'BACKUP');
      const done = waitHooks(host, new Set(flips.map((f) => f.seq)), flips.length, 30_000);
      if (i >= Math.ceil(warmup / burst)) for (const f of flips) emitted.set(f.seq, f.at);
      await done;
      await new Promise((r) => setTimeout(r, gapMs));
    }
    await ph.stop();
    const toExec: number[] = [];
    const toCommand: number[] = [];
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const [seq, tExec, real] = line.split(' ');
      const at = emitted.get(Number(seq));
      if (at === undefined || !tExec || !real) continue;
      toExec.push(Number(BigInt(tExec) - at) / 1e6);
      toCommand.push(Number(BigInt(real) - offset - at) / 1e6);
    }
    // A command whose output arrives long after its exit (a loop busy with a burst of spawns) is
    // read as empty (adapters/exec.ts PIPE_GRACE_MS): such a sample is left out, and said so.
    if (toExec.length < n * 0.98) throw new Error(`only ${toExec.length} of ${n} transitions measured; failed hooks: ${failures.join('; ') || 'none'}`);
    if (toExec.length < emitted.size) console.log(`  (${emitted.size - toExec.length} of ${emitted.size} transitions without a timestamp from the command)`);
    const f = (x: number) => x.toFixed(2);
    console.log(
      `hook latency, plugin host ${inProcess ? 'in the daemon process' : 'in a child process'}, over ${toExec.length} transitions (${burst} vhid(s) per protocol step, gap ${gapMs} ms):`,
    );
    console.log(`  transition -> ctx.exec:         p50 ${f(pct(toExec, 50))} ms  p99 ${f(pct(toExec, 99))} ms  max ${f(Math.max(...toExec))} ms`);
    console.log(`  transition -> command running:  p50 ${f(pct(toCommand, 50))} ms  p99 ${f(pct(toCommand, 99))} ms  max ${f(Math.max(...toCommand))} ms`);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`hook-latency: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
