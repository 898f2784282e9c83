/**
 * `carpd plan`: what the plugin host would do for one transition, step by step, executing
 * nothing. The plugins' real hooks run against a recording exec (every command "succeeds" with no
 * output) and a recording file port (diffs against the file as it is, written only under --root).
 */
import { join } from 'node:path';
import type { Logger } from '../ports/logger.js';
import type { CarpModel, VhidConfig } from '../config/model.js';
import { readTarget, writeAtomic } from '../adapters/atomic-write.js';
import { unifiedDiff } from '../render/diff.js';
import { escaperFor } from '../render/escape.js';
import type { OsName } from '../render/os.js';
import { Templates } from '../adapters/templates.js';
import type { HostFs } from '../ports/fs.js';
import type { ExecPort } from '../ports/exec.js';
import type { HookTag } from './errors.js';
import { PluginHost } from './host.js';
import { loadPlugins, type LoadedPlugin } from './loader.js';
import type { HookRecord, TransitionEvent } from './log.js';
import { realScheduler, realTimers } from '../adapters/host-timers.js';
import { packageRoot } from '../adapters/package-root.js';
import type { HostTimers } from '../ports/timers.js';
import type { CarpState } from './types.js';
import { pluginFolders } from '../adapters/plugin-dirs.js';
import { validCron } from '../adapters/host-timers.js';

export type PlanPhase = 'render' | 'pre-master' | 'pre-backup' | 'vip' | 'master' | 'backup' | 'init';

export interface PlanStep {
  n: number;
  phase: PlanPhase;
  /** Absent for the core's VIP step. */
  plugin?: string;
  scope?: string;
  kind: 'exec' | 'file' | 'vip' | 'error';
  argv?: string[];
  path?: string;
  /** The file's content would change. */
  changed?: boolean;
  /** Unified diff from the file as it is ('' when unchanged). */
  diff?: string;
  /** What the VIP step does. */
  text?: string;
  error?: { code: string; message: string };
}

export interface PlanResult {
  key: string;
  from: CarpState;
  to: CarpState;
  os: OsName;
  root?: string;
  /** The scopes the transition drives, in run order. */
  scopes: string[];
  steps: PlanStep[];
}

export interface PlanOptions {
  key: string;
  to: 'MASTER' | 'BACKUP';
  os: OsName;
  /** Read and write rendered files under this directory instead of reading /. */
  root?: string;
  builtinPluginDir?: string;
  builtinTemplateDir?: string;
  /** Already loaded plugins (skips loading). */
  plugins?: readonly LoadedPlugin[];
  templates?: Templates;
  logger?: Logger;
  timers?: HostTimers;
}

function phaseOf(hook: string): PlanPhase {
  return hook === 'pre-master' || hook === 'pre-backup' || hook === 'master' || hook === 'backup' || hook === 'init' ? hook : 'render';
}

const PHASE_ORDER: Record<PlanPhase, number> = { render: 0, 'pre-master': 1, 'pre-backup': 1, vip: 2, master: 3, backup: 3, init: 3 };

type Raw = Omit<PlanStep, 'n'> & { order: number; seq: number };

/** The steps of `key` going `to`: every plugin whose scope holds the vhid, as if the rest of its scope were already there. */
export async function planTransition(model: CarpModel, opts: PlanOptions): Promise<PlanResult> {
  const v = model.vhids.find((x) => x.key === opts.key);
  if (!v) throw new Error(`no vhid ${opts.key} in the configuration (known: ${model.vhids.map((x) => x.key).join(', ') || 'none'})`);
  const root = opts.builtinPluginDir && opts.builtinTemplateDir ? '' : packageRoot();
  const templates =
    opts.templates ??
    new Templates(
      { builtin: opts.builtinTemplateDir ?? join(root, 'templates'), ...(model.global.templateDir ? { override: model.global.templateDir } : {}) },
      opts.os,
    );
  const plugins =
    opts.plugins ??
    (await loadPlugins(model, {
      listFolders: pluginFolders,
      validCron,
      dirs: { builtin: opts.builtinPluginDir ?? join(root, 'plugins'), ...(model.global.pluginDir ? { operator: model.global.pluginDir } : {}) },
      os: opts.os,
      templates,
    }));
  const from: CarpState = opts.to === 'MASTER' ? 'BACKUP' : 'MASTER';
  const affected = plugins.filter((p) => p.scope.vhids.includes(v.key));
  const scopeKeys = [...new Set(affected.map((p) => p.scope.key))];
  const rank = new Map(plugins.map((p, i) => [p.name, opts.to === 'MASTER' ? i : plugins.length - i]));

  const raw: Raw[] = [];
  let seq = 0;
  for (const scopeKey of scopeKeys) {
    const members = affected.filter((p) => p.scope.key === scopeKey);
    await planScope(model, v, members, opts, templates, from, (s) => raw.push({ ...s, seq: seq++ }));
  }
  // One VIP step; everything else by phase, then plugin order, then the order it happened in.
  const vip = raw.find((s) => s.kind === 'vip') ?? { phase: 'vip' as const, kind: 'vip' as const, text: vipText(v, opts.to), order: 0, seq: -1 };
  const rest = raw.filter((s) => s.kind !== 'vip');
  const sorted = [...rest, vip].sort(
    (a, b) => PHASE_ORDER[a.phase] - PHASE_ORDER[b.phase] || (rank.get(a.plugin ?? '') ?? 0) - (rank.get(b.plugin ?? '') ?? 0) || a.seq - b.seq,
  );
  const steps = sorted.map(({ order: _o, seq: _s, ...s }, i) => ({ n: i + 1, ...s }));
  return { key: v.key, from, to: opts.to, os: opts.os, ...(opts.root ? { root: opts.root } : {}), scopes: scopeKeys, steps };
}

function vipText(v: VhidConfig, to: CarpState): string {
  const addrs = v.addresses.join(', ');
  return to === 'MASTER' ? `add ${addrs} on ${v.interface}; gratuitous ARP` : `remove ${addrs} from ${v.interface}`;
}

async function planScope(
  model: CarpModel,
  v: VhidConfig,
  plugins: LoadedPlugin[],
  opts: PlanOptions,
  templates: Templates,
  from: CarpState,
  emit: (s: Omit<Raw, 'seq'>) => void,
): Promise<void> {
  const scopeOf = new Map(plugins.map((p) => [p.name, p.scope.key]));
  const where = (tag: HookTag | undefined) =>
    tag ? { phase: phaseOf(tag.hook), plugin: tag.plugin, scope: scopeOf.get(tag.plugin) ?? '', order: 0 } : undefined;
  const exec: ExecPort = {
    async run(argv, ropts) {
      const w = where(ropts.tag);
      if (w) emit({ ...w, kind: 'exec', argv: [...argv] });
      return { exitCode: 0, stdout: '', stderr: '', timedOut: false, canceled: false };
    },
  };
  const fs: HostFs = {
    read: (path) => readTarget(path, opts.root),
    async write(path, content, wopts, tag) {
      const before = await readTarget(path, opts.root);
      const changed = before !== content;
      if (opts.root) await writeAtomic(path, content, { ...wopts, root: opts.root });
      const w = where(tag);
      if (w) emit({ ...w, kind: 'file', path, changed, diff: unifiedDiff(before, content, path, path) });
      return { path, changed };
    },
  };
  const others = opts.to;
  const engine = {
    status: () => model.vhids.map((x) => ({ key: x.key, state: x.key === v.key ? from : others })),
    setDemotion: () => 0,
    netSettled: async (key: string) => {
      const vv = model.vhids.find((x) => x.key === key) ?? v;
      emit({ phase: 'vip', kind: 'vip', text: vipText(vv, opts.to), order: 0 });
    },
  };
  const host = new PluginHost({
    model,
    plugins,
    engine,
    logger: opts.logger ?? { log: () => undefined },
    templates,
    os: opts.os,
    exec,
    fs,
    dryRun: true,
    initialState: from,
    timers: opts.timers ?? realTimers,
    // A dry run starts no health checks: nothing is ever scheduled.
    scheduler: realScheduler,
  });
  host.on('hook', (h: HookRecord) => {
    if (h.result !== 'ok' && h.error)
      emit({ phase: phaseOf(h.hook), plugin: h.plugin, scope: h.scope, kind: 'error', error: { code: h.error.code, message: h.error.message }, order: 0 });
  });
  host.start();
  const ev: TransitionEvent = { seq: 1, time: new Date().toISOString(), vhid: v.vhid, interface: v.interface, key: v.key, from, to: opts.to, reason: 'plan' };
  // The returned gate (the pre-phases, for an engine's VIP step) never rejects; idle() waits for the whole run.
  void host.handle(ev);
  await host.idle();
  await host.stop();
}

const shellWord = escaperFor('shell-word');

/** The plan as text: one line per step, diffs indented under their file. */
export function formatPlan(plan: PlanResult): string[] {
  const out = [
    `plan: ${plan.key} ${plan.from} -> ${plan.to} on ${plan.os}${plan.root ? ` (files under ${plan.root})` : ''}; scopes: ${plan.scopes.join(', ') || 'none'}`,
  ];
  if (plan.steps.length === 0) out.push('  (nothing to do)');
  const phaseW = Math.max(5, ...plan.steps.map((s) => s.phase.length));
  const plugW = Math.max(4, ...plan.steps.map((s) => (s.plugin ?? 'core').length));
  const numW = String(plan.steps.length).length;
  for (const s of plan.steps) {
    const head = `  ${String(s.n).padStart(numW)}  ${s.phase.padEnd(phaseW)}  ${(s.plugin ?? 'core').padEnd(plugW)}  `;
    if (s.kind === 'exec') out.push(`${head}exec ${s.argv!.map((a) => shellWord(a)).join(' ')}`);
    else if (s.kind === 'vip') out.push(`${head}${s.text}`);
    else if (s.kind === 'error') out.push(`${head}error ${s.error!.code}: ${s.error!.message}`);
    else {
      out.push(`${head}file ${s.path} (${s.changed ? 'changed' : 'unchanged'})`);
      const pad = ' '.repeat(numW + 4);
      for (const line of (s.diff ?? '').split('\n').filter((l) => l !== '')) out.push(`${pad}${line}`);
    }
  }
  return out;
}
