/**
 * `node dist/test/bench/hook-latency.js [--transitions N] [--gap-ms MS] [--in-process]`: how long from a
 * transition (the moment the state source emits it) to the first hook command.
 *
 * A small fake state source (the StateSource port, nothing else) drives the plugin host the way
 * the daemon starts it (`startPluginHost`), so the same harness measures the host in the daemon's
 * process and out of it. The state source behaves like the engine: it emits, asks the phase gate,
 * races it against the budget, and `netSettled` resolves after that.
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

const KEY = '1@eth0';
const PLUGIN = `
import { appendFileSync } from 'node:fs';
async function hook(ctx) {
  const t = process.hrtime.bigint();
  const r = await ctx.exec(['date', '+%s%N']);
  appendFileSync(ctx.options.out, ctx.event.seq + ' ' + t + ' ' + r.stdout.trim() + '\\n');
}
export default { name: 'latency', apiVersion: 1, options: { out: { required: true } }, hooks: { master: hook, backup: hook } };
`;

/** The part of the StateSource port the host uses, behaving like the engine. */
class FakeSource extends EventEmitter {
  private gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined;
  private budgetMs = 500;
  private queue: Promise<void> = Promise.resolve();
  private seq = 0;
  state: CarpState = 'INIT';
  readonly ledger = new Map<string, number>();

  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined, budgetMs = 500): void {
    this.gate = gate;
    this.budgetMs = budgetMs;
  }

  netSettled(): Promise<void> {
    return this.queue;
  }

  status(): { key: string; state: CarpState }[] {
    return [{ key: KEY, state: this.state }];
  }

  setDemotion(group: string, by: string, count: number): number {
    this.ledger.set(`${group} ${by}`, count);
    return count;
  }

  demote(group: string, by: string, delta: number): number {
    return this.setDemotion(group, by, (this.ledger.get(`${group} ${by}`) ?? 0) + delta);
  }

  /** One transition; returns the monotonic ns at which it was emitted. */
  flip(to: CarpState): { seq: number; at: bigint } {
    const ev: TransitionEvent = { seq: ++this.seq, time: new Date().toISOString(), vhid: 1, interface: 'eth0', key: KEY, from: this.state, to, reason: 'bench' };
    this.state = to;
    const at = process.hrtime.bigint();
    this.emit('transition', ev);
    const gate = this.gate?.(ev);
    if (gate) {
      this.queue = this.queue.then(async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([gate.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, this.budgetMs)))]);
        clearTimeout(timer);
      });
    }
    return { seq: ev.seq, at };
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

function waitHook(host: EventEmitter, seq: number, timeoutMs: number): Promise<HookRecord> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      host.off('hook', on);
      reject(new Error(`no hook run for seq ${seq} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (h: HookRecord) => {
      if (h.seq !== seq) return;
      clearTimeout(timer);
      host.off('hook', on);
      resolve(h);
    };
    host.on('hook', on);
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), ['--transitions', '--gap-ms', '--warmup'], ['--in-process']);
  const inProcess = args.flags.has('--in-process');
  const n = intOpt(args, '--transitions', 100, 100_000, 200);
  const gapMs = intOpt(args, '--gap-ms', 0, 10_000, 20);
  const warmup = intOpt(args, '--warmup', 0, 1000, 10);
  const dir = mkdtempSync(join(tmpdir(), 'carpd-hook-latency-'));
  try {
    mkdirSync(join(dir, 'plugins', 'latency'), { recursive: true });
    writeFileSync(join(dir, 'plugins', 'latency', 'plugin.js'), PLUGIN);
    const out = join(dir, 'times');
    writeFileSync(out, '');
    const model: CarpModel = {
      global: { allow: true, preempt: false, log: 3, pluginDir: join(dir, 'plugins') },
      vhids: [{ key: KEY, vhid: 1, interface: 'eth0', addresses: ['192.0.2.1/24'], advbase: 1, advskew: 0, password: '', source: 'bench' }],
      plugins: [{ name: 'latency', follow: { kind: 'vhid', ref: KEY }, options: { out }, source: 'bench:1' }],
    };
    const source = new FakeSource();
    const logger = { log: (level: number, msg: string) => level <= 3 && console.error(msg) };
    const ph = await startPluginHost(source as unknown as StateSource, model, logger, { inProcess });
    const host = ph.host as unknown as EventEmitter;
    // The boot run (INIT: the backup hook) comes first; wait for it so it is not measured.
    await waitHook(host, 0, 20_000);
    const offset = clockOffset();
    const emitted = new Map<number, bigint>();
    for (let i = 0; i < warmup + n; i++) {
      const { seq, at } = source.flip(i % 2 === 0 ? 'MASTER' : 'BACKUP');
      if (i >= warmup) emitted.set(seq, at);
      await waitHook(host, seq, 10_000);
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
    if (toExec.length < n) throw new Error(`only ${toExec.length} of ${n} transitions measured`);
    const f = (x: number) => x.toFixed(2);
    console.log(`hook latency, plugin host ${inProcess ? 'in the daemon process' : 'in a child process'}, over ${toExec.length} transitions (gap ${gapMs} ms):`);
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
