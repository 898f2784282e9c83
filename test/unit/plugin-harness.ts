/**
 * Golden runs of the built-in service plugins: the real loader, templates and host for a chosen
 * OS, a recording exec that answers like the services would, and files rendered under a root dir.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { RunResult } from '../../src/ports/exec.js';
import type { Follow, PluginConfig, VhidConfig } from '../../src/config/model.js';
import { realFs } from '../../src/adapters/host-fs.js';
import type { ExecPort, HostRunOptions } from '../../src/ports/exec.js';
import { PluginHost } from '../../src/host/host.js';
import { loadPlugins } from '../../src/host/loader.js';
import type { HookRecord, TransitionEvent } from '../../src/host/log.js';
import { planTransition, type PlanResult } from '../../src/host/plan.js';
import type { CarpState, OsName } from '../../src/host/types.js';
import { Templates } from '../../src/adapters/templates.js';
import { silent, vhidCfg } from '../helpers/fake-wire.js';
import { modelOf, ROOT } from '../fixtures/plugins/kit.js';
import { hostDefaults, loaderPorts } from '../helpers/host-defaults.js';

export const PLUGINS = join(ROOT, 'plugins');
export const TEMPLATES = join(ROOT, 'templates');
export const OSES: readonly OsName[] = ['linux', 'freebsd', 'openbsd'];

export interface PluginSpec {
  name: string;
  options?: Record<string, string>;
  follow?: Follow;
}

export interface GoldenOptions {
  os: OsName;
  plugins: PluginSpec[];
  vhids?: VhidConfig[];
  /** How a command answers (default: exit 0, no output). */
  answer?: (argv: readonly string[]) => Partial<RunResult>;
  /** Vhid states the engine reports at start (default: all INIT). */
  states?: Record<string, CarpState>;
}

export interface Golden {
  host: PluginHost;
  root: string;
  /** `hook: argv…` for every command, in order. */
  calls: string[];
  hooks: HookRecord[];
  demotions: string[];
  /** Drive one transition and wait until every run it caused has finished. */
  go(key: string, from: CarpState, to: CarpState, reason?: string): Promise<void>;
  /** Commands since the last `take()`. */
  take(): string[];
  /** A rendered file, by its absolute path on the target. */
  file(path: string): string;
  /** Every rendered file under the root, relative paths. */
  files(): string[];
  stop(): Promise<void>;
}

export const LAN = '1@eth0';

/** One vhid, `carp0` for OpenBSD-style names: 198.18.0.101/24 on eth0. */
export function lanVhid(over: Partial<VhidConfig> = {}): VhidConfig {
  return vhidCfg(1, 100, { name: 'carp0', ...over });
}

function cfg(p: PluginSpec): PluginConfig {
  return { name: p.name, follow: p.follow ?? { kind: 'vhid', ref: LAN }, options: p.options ?? {}, source: 'carpd.conf:1' };
}

/** Loads the named built-in plugins for `os`, starts a host on a recording exec, waits for boot. */
export async function golden(o: GoldenOptions): Promise<Golden> {
  const vhids = o.vhids ?? [lanVhid()];
  const model = modelOf(vhids, { plugins: o.plugins.map(cfg) });
  const templates = new Templates({ builtin: TEMPLATES }, o.os);
  const plugins = await loadPlugins(model, { ...loaderPorts, dirs: { builtin: PLUGINS }, os: o.os, templates });
  const root = mkdtempSync(join(tmpdir(), `carpd-plugin-${o.os}-`));
  const calls: string[] = [];
  let taken = 0;
  const exec: ExecPort = {
    async run(argv: readonly string[], ro: HostRunOptions) {
      calls.push(`${ro.tag?.hook ?? '?'}: ${argv.join(' ')}`);
      return { exitCode: 0, stdout: '', stderr: '', timedOut: false, canceled: false, ...o.answer?.(argv) };
    },
  };
  const states = new Map<string, CarpState>(Object.entries(o.states ?? {}));
  const demotions: string[] = [];
  const host = new PluginHost({
    ...hostDefaults(),
    model,
    plugins,
    engine: {
      status: () => [...states].map(([key, state]) => ({ key, state })),
      setDemotion: (g, by, n) => (demotions.push(`${g} ${by} ${n}`), n),
    },
    logger: silent,
    templates,
    os: o.os,
    exec,
    fs: realFs(root),
    retryDelayMs: 1,
  });
  const hooks: HookRecord[] = [];
  host.on('hook', (h: HookRecord) => hooks.push(h));
  host.start();
  await host.idle();
  let seq = 0;
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [relative(root, join(dir, n))]));
  return {
    host,
    root,
    calls,
    hooks,
    demotions,
    async go(key, from, to, reason = 'test') {
      const [vhid, ifname] = key.split('@');
      states.set(key, to);
      const ev: TransitionEvent = { seq: ++seq, time: '2026-01-01T00:00:00.000Z', vhid: Number(vhid), interface: ifname!, key, from, to, reason };
      void host.handle(ev);
      await host.idle();
    },
    take() {
      const out = calls.slice(taken);
      taken = calls.length;
      return out;
    },
    file: (path) => readFileSync(join(root, path), 'utf8'),
    files: () => walk(root).sort(),
    stop: () => host.stop(),
  };
}

/** `carpd plan` for the same configuration (recording, nothing executed). */
export async function goldenPlan(o: GoldenOptions, key: string, to: 'MASTER' | 'BACKUP', root?: string): Promise<PlanResult> {
  const vhids = o.vhids ?? [lanVhid()];
  const model = modelOf(vhids, { plugins: o.plugins.map(cfg) });
  return planTransition(model, { key, to, os: o.os, builtinPluginDir: PLUGINS, builtinTemplateDir: TEMPLATES, ...(root ? { root } : {}) });
}

/** A plan's steps as `phase plugin: argv` / `phase plugin: file PATH`. */
export function planLines(plan: PlanResult): string[] {
  return plan.steps.map((s) =>
    s.kind === 'exec'
      ? `${s.phase} ${s.plugin}: ${s.argv!.join(' ')}`
      : s.kind === 'file'
        ? `${s.phase} ${s.plugin}: file ${s.path}`
        : s.kind === 'vip'
          ? `vip: ${s.text}`
          : `${s.phase} ${s.plugin}: error ${s.error!.code} ${s.error!.message}`,
  );
}

/**
 * A service as its rc commands see it: `status` answers 0 while it runs (else `stoppedExit`),
 * `start` and `stop` change that. With `lingers`, it still answers `status` that many times after
 * a stop (a daemon that exits a moment after it was signalled).
 */
export class FakeService {
  running: boolean;
  private linger = 0;
  constructor(
    private readonly is: { status: string; start: string; stop: string },
    o: { running?: boolean; stoppedExit?: number; lingers?: number } = {},
  ) {
    this.running = o.running ?? false;
    this.stoppedExit = o.stoppedExit ?? 1;
    this.lingers = o.lingers ?? 0;
  }
  private readonly stoppedExit: number;
  private readonly lingers: number;

  /** For GoldenOptions.answer. */
  answer = (argv: readonly string[]): Partial<RunResult> => {
    const cmd = argv.join(' ');
    if (cmd === this.is.status) {
      if (this.linger > 0) {
        this.linger--;
        return {};
      }
      return this.running ? {} : { exitCode: this.stoppedExit, stderr: 'not running\n' };
    }
    if (cmd === this.is.start) this.running = true;
    if (cmd === this.is.stop) {
      this.running = false;
      this.linger = this.lingers;
    }
    return {};
  };
}
