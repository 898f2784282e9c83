/**
 * The narrow context a hook gets: a child logger, argv-only exec bounded by the hook's timeout and
 * signal, template rendering, atomic writes, its own demotion, and read-only vhid states. Nothing
 * else of the daemon is reachable from it.
 */
import type { Logger } from '../ports/logger.js';
import { RenderError, RENDER_CODES } from '../render/errors.js';
import type { OsName } from '../render/os.js';
import type { TemplateSource as Templates } from '../render/template.js';
import { HOST_CODES as C, ExecError, HookError, type HookTag } from './errors.js';
import type { HostFs } from '../ports/fs.js';
import type { ExecPort } from '../ports/exec.js';
import type { LoadedPlugin } from './loader.js';
import type { Lease } from './runner.js';
import type { HostTimers } from '../ports/timers.js';
import type { ExecOptions, ExecResult, HookEvent, PluginContext, PluginLogger, RenderOptions, TemplateView, VhidView, WriteOptions } from './types.js';
import { join } from 'node:path';

/** Log levels as carpd uses them (net.inet.carp.log). */
export const LEVEL = { ERR: 1, WARN: 2, INFO: 5, DEBUG: 7 } as const;

/** What one run of a scope shares between its hooks, per plugin. */
export interface RunState {
  changed: boolean;
}

export interface ContextDeps {
  plugin: LoadedPlugin;
  os: OsName;
  event: HookEvent;
  lease: Lease;
  tag: HookTag;
  exec: ExecPort;
  fs: HostFs;
  templates: Templates;
  timers: HostTimers;
  log: PluginLogger;
  dryRun: boolean;
  run: RunState;
  state: Record<string, unknown>;
  demote(count: number, group?: string): void;
  undemote(group?: string): void;
  vhids(): readonly VhidView[];
}

/** A logger that prefixes `plugin NAME: ` and drops what is above the configured level. */
export function childLogger(logger: Logger, prefix: string, maxLevel: () => number): PluginLogger {
  const at = (level: number) => (message: string) => {
    if (level <= maxLevel()) logger.log(level, `${prefix}${String(message)}`);
  };
  return { error: at(LEVEL.ERR), warn: at(LEVEL.WARN), info: at(LEVEL.INFO), debug: at(LEVEL.DEBUG) };
}

function checkArgv(argv: unknown): asserts argv is readonly string[] {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string' && !a.includes('\0')) || argv[0] === '') {
    throw new TypeError('exec: argv must be a non-empty list of strings (no shell)');
  }
}

/** Why a command failed, by code; names argv[0] only. */
export function execFailure(argv: readonly string[], r: ExecResult): ExecError | undefined {
  const cmd = argv[0]!;
  if (r.spawnError) return new ExecError(C.EXEC_SPAWN, `${cmd}: cannot run: ${r.spawnError}`);
  if (r.timedOut) return new ExecError(C.EXEC_TIMEOUT, `${cmd}: timed out and was killed`);
  if (r.canceled) return new ExecError(C.HOOK_ABORTED, `${cmd}: killed (the hook was aborted)`);
  if (r.exitCode === 0) return undefined;
  const detail = r.stderr.trim().split('\n').pop()?.slice(0, 200);
  const how = r.exitCode === null ? `was killed by ${r.signal ?? 'a signal'}` : `exited with status ${r.exitCode}`;
  return new ExecError(C.EXEC_STATUS, `${cmd} ${how}${detail ? `: ${detail}` : ''}`, r.exitCode);
}

export function makeContext(d: ContextDeps): PluginContext {
  const { plugin, lease, tag } = d;
  const live = (what: string) => {
    if (lease.revoked()) throw new HookError(C.HOOK_REVOKED, tag, `${what} after the hook had completed or timed out`);
  };
  const extraDir = plugin.dir ? join(plugin.dir, 'templates') : undefined;
  const render = (template: string, view: TemplateView, opts: RenderOptions): string => {
    live('render');
    if (!(plugin.decl.templates ?? []).includes(template))
      throw new RenderError(RENDER_CODES.NAME, `template "${template}" is not in the plugin's declared templates`);
    return d.templates.render(plugin.name, template, view, opts, extraDir);
  };
  const write = async (path: string, content: string, opts?: WriteOptions) => {
    live('write');
    if (typeof content !== 'string') throw new TypeError('write: content must be a string');
    const r = await d.fs.write(path, content, opts, tag);
    if (r.changed) {
      d.run.changed = true;
      d.log.info(`${d.dryRun ? 'would write' : 'wrote'} ${path}`);
    }
    return r;
  };
  const ctx: PluginContext = {
    plugin: plugin.name,
    os: d.os,
    options: Object.freeze({ ...plugin.options }),
    event: d.event,
    signal: lease.signal,
    dryRun: d.dryRun,
    get changed() {
      return d.run.changed;
    },
    state: d.state,
    log: d.log,
    async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
      live('exec');
      checkArgv(argv);
      const left = Math.floor(lease.deadline - d.timers.now());
      const timeoutMs = Math.min(opts.timeoutMs ?? left, left);
      if (timeoutMs <= 0) throw new ExecError(C.EXEC_TIMEOUT, `${argv[0]}: no time left in the hook`);
      d.log.debug(`exec ${argv.join(' ')}`);
      const r = await d.exec.run([...argv], {
        timeoutMs,
        signal: lease.signal,
        ...(opts.env ? { env: opts.env } : {}),
        ...(opts.input !== undefined ? { input: opts.input } : {}),
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        tag,
      });
      live('exec');
      if (opts.check !== false) {
        const failure = execFailure(argv, r);
        if (failure) throw failure;
      }
      return r;
    },
    render,
    write,
    async renderTo(template, path, view, opts) {
      const text = render(template, view, opts);
      return write(path, text, opts.mode !== undefined ? { mode: opts.mode } : {});
    },
    demote(count: number, group?: string) {
      live('demote');
      if (!Number.isInteger(count) || count < 0 || count > 255) throw new RangeError('demote: count must be an integer in 0..255');
      d.demote(count, group);
    },
    undemote(group?: string) {
      live('undemote');
      d.undemote(group);
    },
    vhids: () => d.vhids(),
  };
  return Object.freeze(ctx);
}
