/**
 * Finding, importing and validating plugins. Everything is checked at start-up and every problem
 * is reported at once: an unknown hook, a missing dependency, a cycle, a name that is not its
 * folder, an unsupported OS, an unknown option, a missing template (fastify's plugin-utils and
 * homebridge's pluginManager are the models).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CarpModel, FailurePolicy, PluginConfig } from '../config/model.js';
import { OS_NAMES, isOsName, type OsName } from '../render/os.js';
import { checkTemplateName } from '../render/template.js';
import type { TemplateSource as Templates } from '../render/template.js';
import { HOST_CODES as C, PluginLoadError, PluginsInvalidError, messageOf } from './errors.js';
import { parseDuration } from './health.js';
import { resolveScope, type ScopeDef } from './scope.js';
import { API_VERSION, HOOK_NAMES, type OptionSpec, type PluginDeclaration, type ScopeKind } from './types.js';

export const NAME_RE = /^[a-z][a-z0-9-]*$/;
/** The code of a plugin directory refused for its owner or mode (adapters/plugin-dirs.ts UNSAFE_PATH). */
const UNSAFE_PATH_CODE = 'CARPD_ERR_UNSAFE_PATH';
export const DEFAULT_HOOK_TIMEOUT_MS = 10_000;
export const DEFAULT_HEALTH_INTERVAL_MS = 10_000;
/** Options the host reads itself (a plugin's own checkHealth schedule); never passed to the plugin. */
export const HEALTH_OPTIONS = ['health_interval', 'health_schedule', 'health_rise', 'health_fall'] as const;

const DECL_KEYS = new Set(['name', 'apiVersion', 'description', 'after', 'os', 'scopes', 'templates', 'options', 'health', 'hooks']);
const SCOPE_KINDS: readonly ScopeKind[] = ['vhid', 'group', 'node'];

export type PluginOrigin = 'builtin' | 'operator';

export interface FoundPlugin {
  name: string;
  dir: string;
  origin: PluginOrigin;
}

export interface HealthSchedule {
  intervalMs?: number;
  schedule?: string;
  rise: number;
  fall: number;
}

/** A validated plugin, ready for the host. */
export interface LoadedPlugin {
  name: string;
  /** The plugin's folder (undefined for plugins built in memory by tests). */
  dir?: string;
  origin: PluginOrigin;
  decl: PluginDeclaration;
  config: PluginConfig;
  /** Options with defaults applied, health_* removed. */
  options: Record<string, string>;
  scope: ScopeDef;
  timeoutMs: number;
  policy: FailurePolicy;
  /** Present when the plugin has a checkHealth hook. */
  health?: HealthSchedule;
}

export interface PluginDirs {
  /** carpd's own plugins/ folder. */
  builtin?: string;
  /** The operator's `pluginDir`. */
  operator?: string;
}

/** What the loader needs of the disk and of cron (src/adapters/plugin-dirs.ts and host-timers.ts are the real ones). */
export interface LoaderPorts {
  /** The names of the folders in `dir` that hold a plugin.js; throws when `dir` cannot be read. */
  listFolders(dir: string): string[];
  /** Whether a cron expression is accepted. */
  validCron(expression: string): boolean;
}

/** Plugin folders (each with a plugin.js) in the built-in and operator directories. */
export function discoverPlugins(dirs: PluginDirs, listFolders: LoaderPorts['listFolders']): { found: Map<string, FoundPlugin>; errors: PluginLoadError[] } {
  const found = new Map<string, FoundPlugin>();
  const errors: PluginLoadError[] = [];
  const scan = (dir: string | undefined, origin: PluginOrigin) => {
    if (!dir) return;
    let names: string[];
    try {
      names = listFolders(dir);
    } catch (e) {
      // A directory others can write (adapters/plugin-dirs.ts) is refused by name, the built-in one too.
      if ((e as { code?: unknown }).code === UNSAFE_PATH_CODE) errors.push(new PluginLoadError(C.LOAD, '*', messageOf(e)));
      else if (origin === 'operator')
        errors.push(new PluginLoadError(C.LOAD, '*', `cannot read plugin directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`));
      return;
    }
    for (const name of names) {
      const pdir = join(dir, name);
      const prev = found.get(name);
      if (prev) {
        errors.push(new PluginLoadError(C.DUPLICATE, name, `found in both ${prev.dir} and ${pdir}; rename the operator's copy`));
        continue;
      }
      found.set(name, { name, dir: pdir, origin });
    }
  };
  scan(dirs.builtin, 'builtin');
  scan(dirs.operator, 'operator');
  return { found, errors };
}

/** Imports `plugin.js` of a folder and returns its default export, unchecked. */
export async function importDeclaration(p: FoundPlugin): Promise<unknown> {
  try {
    const mod = (await import(pathToFileURL(join(p.dir, 'plugin.js')).href)) as { default?: unknown };
    return mod.default;
  } catch (e) {
    throw new PluginLoadError(C.LOAD, p.name, `cannot import ${join(p.dir, 'plugin.js')}: ${messageOf(e)}`, { cause: e });
  }
}

export interface PrepareOptions {
  model: CarpModel;
  os: OsName;
  templates: Templates;
  /** Every plugin name that exists (configured or not), for checking `after`. */
  known: ReadonlySet<string>;
  /** The folder the declaration came from; the name must equal its basename. */
  found?: FoundPlugin;
  validCron: LoaderPorts['validCron'];
}

const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a declaration and its `[plugin.NAME]` config; returns the plugin or every problem. */
export function preparePlugin(raw: unknown, config: PluginConfig, opts: PrepareOptions): { plugin?: LoadedPlugin; errors: PluginLoadError[] } {
  const label = opts.found?.name ?? config.name;
  const errors: PluginLoadError[] = [];
  const err = (code: string, msg: string) => errors.push(new PluginLoadError(code, label, msg));
  if (!isObj(raw)) {
    err(C.LOAD, 'plugin.js must default-export the declaration object');
    return { errors };
  }
  for (const k of Object.keys(raw)) if (!DECL_KEYS.has(k)) err(C.DECLARATION, `unknown declaration field "${k}"`);
  const d = raw as Partial<PluginDeclaration> & Record<string, unknown>;

  if (typeof d.name !== 'string' || !NAME_RE.test(d.name)) err(C.NAME, `name must match ${NAME_RE.source}`);
  else if (opts.found && d.name !== opts.found.name) err(C.NAME, `declares name "${d.name}" but its folder is "${opts.found.name}"`);
  else if (d.name !== config.name) err(C.NAME, `declares name "${d.name}" but is configured as "${config.name}"`);
  if (d.apiVersion !== API_VERSION) err(C.API, `apiVersion ${JSON.stringify(d.apiVersion)} is not supported (this carpd speaks ${API_VERSION})`);
  if (d.description !== undefined && typeof d.description !== 'string') err(C.DECLARATION, 'description must be a string');

  if (!isObj(d.hooks)) err(C.HOOK, 'hooks must be an object');
  else {
    for (const [h, fn] of Object.entries(d.hooks)) {
      if (!(HOOK_NAMES as readonly string[]).includes(h)) err(C.HOOK, `unknown hook "${h}" (hooks are ${HOOK_NAMES.join(', ')})`);
      else if (typeof fn !== 'function') err(C.HOOK, `hook "${h}" must be a function`);
    }
  }

  if (d.after !== undefined && !isStrArray(d.after)) err(C.DECLARATION, 'after must be a list of plugin names');
  else
    for (const a of d.after ?? []) {
      if (a === d.name) err(C.CYCLE, 'is after itself');
      else if (!opts.known.has(a)) err(C.DEPENDENCY, `is after "${a}", which is not an installed plugin`);
    }

  if (d.os !== undefined && (!isStrArray(d.os) || !d.os.every(isOsName))) err(C.DECLARATION, `os must be a list of ${OS_NAMES.join(', ')}`);
  else if (d.os && !d.os.includes(opts.os)) err(C.OS, `does not run on ${opts.os} (it supports ${d.os.join(', ') || 'no OS'})`);

  if (d.scopes !== undefined && (!isStrArray(d.scopes) || !d.scopes.every((s) => (SCOPE_KINDS as readonly string[]).includes(s)))) {
    err(C.DECLARATION, `scopes must be a list of ${SCOPE_KINDS.join(', ')}`);
  }
  let scope: ScopeDef | undefined;
  const resolved = resolveScope(config.follow, opts.model);
  if (typeof resolved === 'string') err(C.FOLLOW, resolved);
  else if (isStrArray(d.scopes) && !d.scopes.includes(resolved.kind)) err(C.FOLLOW, `cannot follow a ${resolved.kind} (it follows ${d.scopes.join(' or ')})`);
  else scope = resolved;

  if (d.templates !== undefined && !isStrArray(d.templates)) err(C.DECLARATION, 'templates must be a list of template names');
  else
    for (const t of d.templates ?? []) {
      try {
        checkTemplateName(t);
      } catch {
        err(C.TEMPLATE, `bad template name "${t}"`);
        continue;
      }
      const extra = opts.found ? join(opts.found.dir, 'templates') : undefined;
      let found: string | undefined;
      try {
        found = opts.templates.resolve(label, t, extra);
      } catch (e) {
        // A template directory others can write (adapters/templates.ts) is refused.
        err(C.TEMPLATE, messageOf(e));
        continue;
      }
      if (!found) err(C.TEMPLATE, `template "${t}" not found for ${opts.os} (looked for ${opts.templates.candidates(label, t, extra).join(', ')})`);
    }

  const options = checkOptions(d.options, config, err);
  const health = isObj(d.hooks) && typeof d.hooks.checkHealth === 'function' ? checkHealth(d.health, config, err, opts.validCron) : undefined;
  if (!health)
    for (const k of HEALTH_OPTIONS) if (config.options[k] !== undefined) err(C.OPTION, `option ${k} needs a checkHealth hook, which this plugin lacks`);

  if (errors.length > 0 || !scope || !options) return { errors };
  const timeoutMs = config.timeoutMs ?? opts.model.global.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  const plugin: LoadedPlugin = {
    name: config.name,
    origin: opts.found?.origin ?? 'operator',
    decl: d as PluginDeclaration,
    config,
    options,
    scope,
    timeoutMs,
    policy: config.onFailure ?? { kind: 'ignore' },
  };
  if (opts.found) plugin.dir = opts.found.dir;
  if (health) plugin.health = health;
  return { plugin, errors };
}

function checkOptions(spec: unknown, config: PluginConfig, err: (code: string, msg: string) => void): Record<string, string> | undefined {
  const given = Object.fromEntries(Object.entries(config.options).filter(([k]) => !(HEALTH_OPTIONS as readonly string[]).includes(k)));
  if (spec === undefined) return given;
  if (!isObj(spec)) {
    err(C.DECLARATION, 'options must be an object of option specs');
    return undefined;
  }
  let ok = true;
  const out: Record<string, string> = {};
  for (const k of Object.keys(given)) {
    if (!(k in spec)) {
      err(C.OPTION, `unknown option "${k}" (${config.source}); it takes ${Object.keys(spec).join(', ') || 'no options'}`);
      ok = false;
    }
  }
  for (const [k, s] of Object.entries(spec as Record<string, OptionSpec>)) {
    const v = given[k] ?? s.default;
    if (v === undefined) {
      if (s.required) {
        err(C.OPTION, `option "${k}" is required (${config.source})`);
        ok = false;
      }
      continue;
    }
    if (s.values && !s.values.includes(v)) {
      err(C.OPTION, `option "${k}" must be one of ${s.values.join(', ')} (${config.source})`);
      ok = false;
    } else if (s.pattern && !new RegExp(`^(?:${s.pattern.source})$`, s.pattern.flags.replace(/[gy]/g, '')).test(v)) {
      err(C.OPTION, `option "${k}" is not valid (${config.source})`);
      ok = false;
    }
    out[k] = v;
  }
  return ok ? out : undefined;
}

function checkHealth(
  spec: unknown,
  config: PluginConfig,
  err: (code: string, msg: string) => void,
  validCron: LoaderPorts['validCron'],
): HealthSchedule | undefined {
  const s = isObj(spec) ? spec : {};
  if (spec !== undefined && !isObj(spec)) err(C.DECLARATION, 'health must be an object');
  const o = config.options;
  let intervalMs = typeof s.intervalMs === 'number' ? s.intervalMs : undefined;
  let schedule = typeof s.schedule === 'string' ? s.schedule : undefined;
  if (o.health_interval !== undefined) {
    intervalMs = parseDuration(o.health_interval);
    schedule = undefined;
    if (intervalMs === undefined) err(C.HEALTH, `health_interval "${o.health_interval}" is not a duration (30, 30s, 500ms, 5m)`);
  }
  if (o.health_schedule !== undefined) {
    if (o.health_interval !== undefined) err(C.HEALTH, 'health_interval and health_schedule exclude each other');
    schedule = o.health_schedule;
    intervalMs = undefined;
  }
  if (schedule !== undefined && !validCron(schedule)) err(C.HEALTH, `health schedule "${schedule}" is not a valid cron expression`);
  const count = (opt: string | undefined, dflt: unknown, what: string): number => {
    const v = opt !== undefined ? Number(opt) : typeof dflt === 'number' ? dflt : 1;
    if (!Number.isInteger(v) || v < 1 || v > 100) {
      err(C.HEALTH, `${what} must be an integer in 1..100`);
      return 1;
    }
    return v;
  };
  const rise = count(o.health_rise, s.rise, 'health_rise');
  const fall = count(o.health_fall, s.fall, 'health_fall');
  if (schedule === undefined && intervalMs === undefined) intervalMs = DEFAULT_HEALTH_INTERVAL_MS;
  return { ...(intervalMs !== undefined ? { intervalMs } : {}), ...(schedule !== undefined ? { schedule } : {}), rise, fall };
}

/**
 * Dependency order: each plugin after the ones it names in `after` (those configured), ties broken
 * by name. Reports a cycle as the path that closes it.
 */
export function orderPlugins(plugins: readonly LoadedPlugin[]): { ordered: LoadedPlugin[]; errors: PluginLoadError[] } {
  const byName = new Map(plugins.map((p) => [p.name, p]));
  const deps = new Map(plugins.map((p) => [p.name, (p.decl.after ?? []).filter((a) => byName.has(a) && a !== p.name)]));
  const indeg = new Map(plugins.map((p) => [p.name, deps.get(p.name)!.length]));
  const ready = plugins.filter((p) => indeg.get(p.name) === 0).map((p) => p.name);
  const ordered: LoadedPlugin[] = [];
  while (ready.length > 0) {
    ready.sort();
    const n = ready.shift()!;
    ordered.push(byName.get(n)!);
    for (const [m, ds] of deps) {
      if (!ds.includes(n)) continue;
      indeg.set(m, indeg.get(m)! - 1);
      if (indeg.get(m) === 0) ready.push(m);
    }
  }
  if (ordered.length === plugins.length) return { ordered, errors: [] };
  const left = plugins
    .map((p) => p.name)
    .filter((n) => !ordered.some((o) => o.name === n))
    .sort();
  return { ordered, errors: [new PluginLoadError(C.CYCLE, left[0]!, `dependency cycle: ${findCycle(left[0]!, deps).join(' → ')}`)] };
}

function findCycle(start: string, deps: Map<string, string[]>): string[] {
  const path: string[] = [];
  const seen = new Set<string>();
  const walk = (n: string): string[] | undefined => {
    const at = path.indexOf(n);
    if (at >= 0) return [...path.slice(at), n];
    if (seen.has(n)) return undefined;
    seen.add(n);
    path.push(n);
    for (const d of [...(deps.get(n) ?? [])].sort()) {
      const c = walk(d);
      if (c) return c;
    }
    path.pop();
    return undefined;
  };
  return walk(start) ?? [start];
}

export interface LoadOptions extends LoaderPorts {
  dirs: PluginDirs;
  os: OsName;
  templates: Templates;
}

/**
 * Loads and validates every plugin the model configures, in dependency order. Throws
 * PluginsInvalidError listing every problem.
 */
export async function loadPlugins(model: CarpModel, opts: LoadOptions): Promise<LoadedPlugin[]> {
  const { found, errors } = discoverPlugins(opts.dirs, (dir) => opts.listFolders(dir));
  const loaded: LoadedPlugin[] = [];
  const seen = new Set<string>();
  for (const config of model.plugins ?? []) {
    if (seen.has(config.name)) {
      errors.push(new PluginLoadError(C.DUPLICATE, config.name, `configured twice (${config.source})`));
      continue;
    }
    seen.add(config.name);
    const f = found.get(config.name);
    if (!f) {
      errors.push(
        new PluginLoadError(C.UNKNOWN, config.name, `is not installed (${config.source}); installed: ${[...found.keys()].sort().join(', ') || 'none'}`),
      );
      continue;
    }
    let raw: unknown;
    try {
      raw = await importDeclaration(f);
    } catch (e) {
      errors.push(e instanceof PluginLoadError ? e : new PluginLoadError(C.LOAD, f.name, messageOf(e)));
      continue;
    }
    const r = preparePlugin(raw, config, {
      model,
      os: opts.os,
      templates: opts.templates,
      known: new Set(found.keys()),
      found: f,
      validCron: (expression) => opts.validCron(expression),
    });
    errors.push(...r.errors);
    if (r.plugin) loaded.push(r.plugin);
  }
  const { ordered, errors: cycle } = orderPlugins(loaded);
  errors.push(...cycle);
  if (errors.length > 0) throw new PluginsInvalidError(errors);
  return ordered;
}
