/**
 * The plugin API (version 1): what a plugin folder's `plugin.js` default-exports, and what its
 * hooks receive. Plugins are plain ES modules; they can type themselves with
 * `/** @type {import('carpd/plugin-api').PluginDeclaration} *\/` (src/plugin-api.ts; docs/plugins.md).
 */
import type { RunResult } from '../ports/exec.js';
import type { CarpState } from '../ports/state-source.js';
import type { Escaper, EscaperName } from '../render/escape.js';
import type { OsName } from '../render/os.js';
import type { TemplateView } from '../render/template.js';
import type { WriteResult } from '../ports/target-files.js';

export type { OsName } from '../render/os.js';
export type { EscaperName, Escaper } from '../render/escape.js';
export type { TemplateView } from '../render/template.js';
export type { WriteResult } from '../ports/target-files.js';

export const API_VERSION = 1;

/** The closed set of hooks; any other name in `hooks` is an error at load. */
export const HOOK_NAMES = ['setup', 'render', 'pre-master', 'master', 'pre-backup', 'backup', 'init', 'checkHealth', 'teardown'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

export type { CarpState };
export type ScopeKind = 'vhid' | 'group' | 'node';

/** A plugin option as its declaration describes it; values reach the plugin as strings. */
export interface OptionSpec {
  /** Start-up fails when the operator leaves it out (and there is no default). */
  required?: boolean;
  default?: string;
  /** The value must be one of these. */
  values?: readonly string[];
  /** The value must match (whole string). */
  pattern?: RegExp;
  description?: string;
}

/** Default schedule of a plugin's `checkHealth` (the operator may override it, see docs/plugins.md). */
export interface HealthSpec {
  intervalMs?: number;
  /** A node-cron expression instead of an interval. */
  schedule?: string;
  /** Passes in a row that lift the demotion (default 1). */
  rise?: number;
  /** Failures in a row that demote (default 1). */
  fall?: number;
}

/** A hook: may be async; a throw or rejection is a failure. `checkHealth` may also return false. */
export type Hook = (ctx: PluginContext) => unknown;

/** What `plugins/<name>/plugin.js` default-exports. */
export interface PluginDeclaration {
  /** `^[a-z][a-z0-9-]*$`, and the same as the plugin's folder. */
  name: string;
  apiVersion: 1;
  description?: string;
  /** Plugins this one runs after when going up (MASTER, setup), and before when going down. */
  after?: readonly string[];
  /** OSes the plugin supports; loading it elsewhere is refused with a clear error. Default: all. */
  os?: readonly OsName[];
  /** Scope kinds the plugin may follow. Default: all. */
  scopes?: readonly ScopeKind[];
  /** Template names the plugin renders (`templates/<plugin>/<name>.mustache`); checked at load. */
  templates?: readonly string[];
  /** The options it takes in `[plugin.NAME]`. When given, an unknown option is an error. */
  options?: Readonly<Record<string, OptionSpec>>;
  health?: HealthSpec;
  hooks: Readonly<Partial<Record<HookName, Hook>>>;
}

/** One vhid as plugins see it (read-only). */
export interface VhidView {
  readonly key: string;
  readonly vhid: number;
  readonly interface: string;
  readonly name?: string;
  readonly state: CarpState;
  /** CIDR strings. */
  readonly addresses: readonly string[];
  readonly advbase: number;
  readonly advskew: number;
  /** Demotion groups, `carp` first. */
  readonly groups: readonly string[];
}

/** The set of vhids a plugin follows, and the state it is being driven to. */
export interface ScopeView {
  readonly kind: ScopeKind;
  /** `vhid:1@em0`, `group:NAME` or `node`. */
  readonly key: string;
  /** The vhid key, the group name, or `carp` for the node. */
  readonly name: string;
  readonly state: CarpState;
  readonly vhids: readonly VhidView[];
}

/** Why a hook is running. */
export interface HookEvent {
  readonly hook: HookName;
  /** The transition (engine seq) behind this run; 0 for setup, teardown, health and boot runs. */
  readonly seq: number;
  /** State hooks and render: the state the scope is going to. */
  readonly target?: CarpState;
  /** The state the scope was last driven to by a completed run, if any. */
  readonly from?: CarpState;
  readonly reason: string;
  /** The vhid whose transition caused the run (absent for boot runs of group/node scopes). */
  readonly key?: string;
  readonly vhid?: number;
  readonly interface?: string;
  /** ISO time of the transition (or of the hook, when there is none). */
  readonly time: string;
  readonly scope: ScopeView;
  /** Retry attempt, from 1. */
  readonly attempt: number;
}

export interface ExecOptions {
  /** Defaults to (and is capped at) what is left of the hook's timeout. */
  timeoutMs?: number;
  /** Written to stdin: the way to pass a secret, never argv. */
  input?: string;
  /** Added to carpd's scrubbed environment (PATH, LC_ALL). */
  env?: Record<string, string>;
  cwd?: string;
  /** Throw CARPD_ERR_EXEC_* when the command fails (default true). */
  check?: boolean;
}

/** What a command did. */
export type ExecResult = RunResult;

export interface PluginLogger {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
}

export interface RenderOptions {
  /** The target format's escaper; never HTML. */
  escape: EscaperName | Escaper;
}

export interface WriteOptions {
  /** Default 0644. */
  mode?: number;
}

/**
 * What a hook gets: all it may touch. It never sees the daemon, execa or fs. After the hook has
 * completed (or timed out), every method throws CARPD_ERR_HOOK_REVOKED, so a late action from a
 * timed-out hook cannot land after a newer one.
 */
export interface PluginContext {
  readonly plugin: string;
  readonly os: OsName;
  /** `[plugin.NAME]` options, defaults applied. */
  readonly options: Readonly<Record<string, string>>;
  readonly event: HookEvent;
  /** Aborted when the hook times out or the host stops; commands run through `exec` are killed with it. */
  readonly signal: AbortSignal;
  /** True under `carpd plan`: commands are recorded, not run (they "succeed" with empty output). */
  readonly dryRun: boolean;
  /** A file written in this run (render included) changed: reload what reads it. */
  readonly changed: boolean;
  /** The plugin's own scratch space, kept across hooks for the daemon's life (empty under plan). */
  readonly state: Record<string, unknown>;
  readonly log: PluginLogger;
  /** Run argv (no shell) in its own process group, killed on timeout or abort. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Render one of the plugin's declared templates. */
  render(template: string, view: TemplateView, opts: RenderOptions): string;
  /** Write a file atomically; `changed` says whether it differed. */
  write(path: string, content: string, opts?: WriteOptions): Promise<WriteResult>;
  /** `render` then `write`. */
  renderTo(template: string, path: string, view: TemplateView, opts: RenderOptions & WriteOptions): Promise<WriteResult>;
  /** Hold `count` demotion (group default: the scope's group, else `carp`), until `undemote`. */
  demote(count: number, group?: string): void;
  undemote(group?: string): void;
  /** Every vhid's current state. */
  vhids(): readonly VhidView[];
}
