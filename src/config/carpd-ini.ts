/** Parser for carpd's native `carpd.conf` (ini) into the normalized model, with file:line diagnostics. */
import ini from 'ini';
import { isIPv4, isIPv6 } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { Code, error, parseSource, type Diagnostic, type SourceRef } from './errors.js';
import { CARP_GROUP, DEFAULT_ADVBASE, DEFAULT_ADVSKEW, type CarpdSections, type PendingRef } from './format.js';
import type {
  CarpModel, ExtraSection, FailurePolicy, Follow, GlobalConfig, GroupConfig, HealthConfig, MaintenanceConfig,
  MasterDownFormula, PluginConfig, VhidConfig,
} from './model.js';
import type { PassfileResult } from '../ports/config-files.js';
import { formatMode, worldReadable } from './passfile.js';
import { splitShellWords } from './shell-words.js';
import { parseBool, parseDuration, parseUint } from './values.js';

export { CARP_GROUP, DEFAULT_ADVBASE, DEFAULT_ADVSKEW };

export interface CarpdIniOptions {
  /** Mode of the file, for the "inline pass in a world-readable file" check; unchecked when absent. */
  fileMode?: number;
  /** Reads a `passfile` (the loader gives the real one, tests a fake). */
  readPassfile: (path: string) => PassfileResult;
  /** Whether the cron library that will run it accepts the expression. */
  validCron: (expression: string) => boolean;
}

export interface CarpdIniResult {
  model: CarpModel;
  diagnostics: Diagnostic[];
  /** Only the `[carpd]` keys this file set, so that several files merge key by key. */
  globalSet: Partial<GlobalConfig>;
  /** Where each of those keys was set. */
  globalSources: Partial<Record<keyof GlobalConfig, SourceRef>>;
  /** The typed reserved sections, with the names they refer to still to be resolved. */
  sections: CarpdSections;
}

/** Defaults of the kernel sysctls: allow on, preempt off, log at OpenBSD's LOG_CRIT (2). */
export function defaultGlobal(): GlobalConfig {
  return { allow: true, preempt: false, log: 2 };
}

const RESERVED_PREFIXES = ['plugin.', 'health.', 'group.'];
const RESERVED_NAMES = ['maintenance'];

const GLOBAL_KEYS = [
  'allow', 'preempt', 'log', 'control', 'master_down', 'ifdown_demotion', 'senderr_demotion', 'demotion',
  'state_dir', 'metrics', 'garp_refresh', 'pre_phase_budget', 'plugin_dir', 'template_dir', 'hook_timeout',
];
const VHID_KEYS = [
  'vhid', 'interface', 'address', 'advbase', 'advskew', 'pass', 'passfile',
  'group', 'peer', 'srcip', 'upscript', 'downscript', 'xparam', 'deadratio',
];

const OPTIONAL_TEXT_KEYS = ['peer', 'srcip', 'upscript', 'downscript', 'xparam'] as const;
type OptionalTextKey = (typeof OPTIONAL_TEXT_KEYS)[number];

// Tokenizer.
//
// We scan lines ourselves and use the `ini` package only to decode values (`ini.unsafe`:
// double-quoted JSON strings, `\;` `\#` escapes, inline `;`/`#` comments). `ini.parse` would not
// do here: it drops line numbers, keeps only the last of a repeated `address` key, splits
// `[vhid.lan]` into nested objects, turns `true`/`false`/`null` into non-strings, and reads a
// section header followed by an inline comment (as in DESIGN.md's sample) as a key.

type Token =
  | { kind: 'section'; name: string; line: number }
  | { kind: 'entry'; key: string; value: string; line: number }
  | { kind: 'error'; message: string; line: number };

/** Splits ini text into section headers and `key = value` entries, with 1-based line numbers. */
export function tokenizeIni(text: string): Token[] {
  const tokens: Token[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const s = raw.trim();
    if (s === '' || s.startsWith(';') || s.startsWith('#')) return;
    if (s.startsWith('[')) {
      const close = s.indexOf(']');
      if (close === -1) {
        tokens.push({ kind: 'error', line, message: 'unterminated section header' });
      } else if (!isBlankOrComment(s.slice(close + 1))) {
        tokens.push({ kind: 'error', line, message: 'unexpected text after section header' });
      } else {
        tokens.push({ kind: 'section', name: s.slice(1, close).trim(), line });
      }
      return;
    }
    const eq = s.indexOf('=');
    if (eq === -1) {
      // The line is not echoed: it might be a password written without `pass =`.
      tokens.push({ kind: 'error', line, message: 'expected "key = value"' });
      return;
    }
    const key = s.slice(0, eq).trim();
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(key)) {
      tokens.push({ kind: 'error', line, message: 'invalid key name' });
      return;
    }
    const decoded = decodeValue(s.slice(eq + 1));
    if (typeof decoded === 'string') tokens.push({ kind: 'entry', key, value: decoded, line });
    else tokens.push({ kind: 'error', line, message: `${decoded.error} for "${key}"` });
  });
  return tokens;
}

function isBlankOrComment(s: string): boolean {
  const t = s.trim();
  return t === '' || t.startsWith(';') || t.startsWith('#');
}

/** Decodes one value: `"json string"`, `'literal'`, or bare text up to an inline comment. */
function decodeValue(raw: string): string | { error: string } {
  const v = raw.trim();
  const q = v[0];
  if (q !== '"' && q !== "'") return ini.unsafe(v);
  let end = -1;
  for (let i = 1; i < v.length; i++) {
    if (q === '"' && v[i] === '\\') {
      i++;
    } else if (v[i] === q) {
      end = i;
      break;
    }
  }
  if (end === -1) return { error: 'unterminated quoted value' };
  if (!isBlankOrComment(v.slice(end + 1))) return { error: 'unexpected text after quoted value' };
  const quoted = v.slice(0, end + 1);
  // Single quotes are literal; ini.unsafe would JSON.parse their content ('12' → a number).
  if (q === "'") return quoted.slice(1, -1);
  const out: unknown = ini.unsafe(quoted);
  // ini.unsafe returns its input unchanged when JSON.parse fails.
  if (typeof out !== 'string' || out === quoted) return { error: 'invalid escape in quoted value' };
  return out;
}

// Interpretation.

interface Entry {
  key: string;
  value: string;
  line: number;
}

type Section =
  | { kind: 'carpd' }
  | { kind: 'vhid'; name: string; line: number; entries: Entry[] }
  | { kind: 'extra'; section: ExtraSection }
  | { kind: 'skip' };

/** Parses one carpd.conf. Diagnostics name `file` as given; model `source`s use its basename. */
export function parseCarpdIni(text: string, file: string, opts: CarpdIniOptions): CarpdIniResult {
  const diagnostics: Diagnostic[] = [];
  const at = (line: number): SourceRef => ({ file, line });
  const globalSet: Partial<GlobalConfig> = {};
  const globalSources: Partial<Record<keyof GlobalConfig, SourceRef>> = {};
  const globalLines = new Map<string, number>();
  const vhidSections: Extract<Section, { kind: 'vhid' }>[] = [];
  const extra: ExtraSection[] = [];
  const seenSections = new Map<string, number>();
  let current: Section | undefined;

  for (const tok of tokenizeIni(text)) {
    if (tok.kind === 'error') {
      diagnostics.push(error(at(tok.line), Code.CONFIG_SYNTAX, tok.message));
      continue;
    }
    if (tok.kind === 'section') {
      const first = seenSections.get(tok.name);
      if (first !== undefined) {
        diagnostics.push(error(at(tok.line), Code.CONFIG_DUPLICATE,
          `section [${tok.name}] already defined at line ${first}`));
        current = { kind: 'skip' };
        continue;
      }
      seenSections.set(tok.name, tok.line);
      current = openSection(tok.name, tok.line, file);
      if (current.kind === 'skip') {
        diagnostics.push(error(at(tok.line), Code.CONFIG_SECTION, `unknown section [${tok.name}]`));
      } else if (current.kind === 'vhid') {
        vhidSections.push(current);
      } else if (current.kind === 'extra') {
        extra.push(current.section);
      }
      continue;
    }
    if (current === undefined) {
      diagnostics.push(error(at(tok.line), Code.CONFIG_SYNTAX, `"${tok.key}" outside of any section`));
      continue;
    }
    switch (current.kind) {
      case 'carpd':
        setGlobal(tok, globalSet, globalSources, globalLines, diagnostics, at);
        break;
      case 'vhid':
        current.entries.push(tok);
        break;
      case 'extra':
        current.section.entries.push({ key: tok.key, value: tok.value, source: `${file}:${tok.line}` });
        break;
      case 'skip':
        break;
    }
  }

  const vhids: VhidConfig[] = [];
  const sectionKeys = new Map<string, string>();
  for (const sec of vhidSections) {
    const v = buildVhid(sec, file, opts, diagnostics);
    if (v !== undefined) {
      vhids.push(v);
      sectionKeys.set(sec.name, v.key);
    }
  }
  const sections = typedSections(extra, diagnostics, opts.validCron);
  sections.sectionKeys = sectionKeys;
  const model: CarpModel = { global: { ...defaultGlobal(), ...globalSet }, vhids };
  if (extra.length > 0) model.extra = extra;
  if (sections.plugins.length > 0) model.plugins = sections.plugins;
  if (sections.health.length > 0) model.health = sections.health;
  if (sections.maintenance) model.maintenance = sections.maintenance;
  if (sections.groups.length > 0) model.groups = sections.groups;
  return { model, diagnostics, globalSet, globalSources, sections };
}

function openSection(name: string, line: number, file: string): Section {
  if (name === 'carpd') return { kind: 'carpd' };
  if (name.startsWith('vhid.') && name.length > 'vhid.'.length) {
    return { kind: 'vhid', name: name.slice('vhid.'.length), line, entries: [] };
  }
  const reserved = RESERVED_NAMES.includes(name) ||
    RESERVED_PREFIXES.some((p) => name.startsWith(p) && name.length > p.length);
  if (reserved) return { kind: 'extra', section: { name, source: `${file}:${line}`, entries: [] } };
  return { kind: 'skip' };
}

function setGlobal(
  e: Entry,
  set: Partial<GlobalConfig>,
  sources: Partial<Record<keyof GlobalConfig, SourceRef>>,
  lines: Map<string, number>,
  diagnostics: Diagnostic[],
  at: (line: number) => SourceRef,
): void {
  const where = at(e.line);
  if (!GLOBAL_KEYS.includes(e.key)) {
    diagnostics.push(error(where, Code.CONFIG_KEY, `unknown key "${e.key}" in [carpd]`));
    return;
  }
  const first = lines.get(e.key);
  if (first !== undefined) {
    diagnostics.push(error(where, Code.CONFIG_DUPLICATE, `"${e.key}" already set at line ${first}`));
    return;
  }
  lines.set(e.key, e.line);
  const bad = (expected: string) =>
    diagnostics.push(error(where, Code.CONFIG_VALUE, `${e.key} must be ${expected}, not "${e.value}"`));
  const put = <K extends keyof GlobalConfig>(key: K, value: GlobalConfig[K]) => {
    set[key] = value;
    sources[key] = where;
  };
  const uint = (max: number): number | undefined => {
    const n = parseUint(e.value);
    if (n === undefined || n > max) bad(`0..${max}`);
    return n === undefined || n > max ? undefined : n;
  };
  const path = (key: 'control' | 'stateDir' | 'pluginDir' | 'templateDir') => {
    if (e.value === '') bad('a path');
    else put(key, e.value);
  };
  const duration = (bare: 'ms' | 's'): number | undefined => {
    const ms = parseDuration(e.value, bare);
    if (ms === undefined) bad(`a duration (500ms, 10s, 5m, 2h; a bare number is in ${bare === 'ms' ? 'milliseconds' : 'seconds'})`);
    return ms;
  };
  switch (e.key) {
    case 'allow':
    case 'preempt': {
      const b = parseBool(e.value);
      if (b === undefined) bad('yes or no');
      else put(e.key, b);
      break;
    }
    case 'log': {
      const n = uint(7);
      if (n !== undefined) put('log', n);
      break;
    }
    case 'ifdown_demotion':
    case 'senderr_demotion':
    case 'demotion': {
      const n = uint(255);
      const key = e.key === 'ifdown_demotion' ? 'ifdownDemotion' : e.key === 'senderr_demotion' ? 'senderrDemotion' : 'demotion';
      if (n !== undefined) put(key, n);
      break;
    }
    case 'master_down':
      if (e.value === 'freebsd' || e.value === 'openbsd') put('masterDown', e.value as MasterDownFormula);
      else bad('freebsd or openbsd');
      break;
    case 'control':
      path('control');
      break;
    case 'state_dir':
      path('stateDir');
      break;
    case 'plugin_dir':
      path('pluginDir');
      break;
    case 'template_dir':
      path('templateDir');
      break;
    case 'metrics':
      if (!isListenAddress(e.value)) bad('PORT, ADDRESS:PORT or [IPV6]:PORT');
      else put('metrics', e.value);
      break;
    case 'garp_refresh': {
      const ms = duration('s');
      if (ms !== undefined) put('garpRefresh', ms / 1000);
      break;
    }
    case 'pre_phase_budget': {
      const ms = duration('ms');
      if (ms !== undefined) put('prePhaseBudgetMs', ms);
      break;
    }
    case 'hook_timeout': {
      const ms = duration('s');
      if (ms !== undefined && ms === 0) bad('more than 0');
      else if (ms !== undefined) put('hookTimeoutMs', ms);
      break;
    }
  }
}

/** `9112`, `127.0.0.1:9112`, `[::1]:9112` or `host:9112`, port 1..65535. */
function isListenAddress(s: string): boolean {
  const m = /^(?:(\[[^\]]+\]|[^:\[\]]+):)?(\d{1,5})$/.exec(s);
  if (m === null) return false;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return false;
  const host = m[1];
  if (host === undefined) return true;
  if (host.startsWith('[')) return isIPv6(host.slice(1, -1));
  return isIPv4(host) || /^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(host);
}

function buildVhid(
  sec: Extract<Section, { kind: 'vhid' }>,
  file: string,
  opts: CarpdIniOptions,
  diagnostics: Diagnostic[],
): VhidConfig | undefined {
  const at = (line: number): SourceRef => ({ file, line });
  const header = at(sec.line);
  const where = `[vhid.${sec.name}]`;
  const single = new Map<string, Entry>();
  const addressEntries: Entry[] = [];
  const groupEntries: Entry[] = [];

  for (const e of sec.entries) {
    if (!VHID_KEYS.includes(e.key)) {
      diagnostics.push(error(at(e.line), Code.CONFIG_KEY, `unknown key "${e.key}" in ${where}`));
      continue;
    }
    if (e.key === 'address') {
      addressEntries.push(e);
      continue;
    }
    if (e.key === 'group') {
      groupEntries.push(e);
      continue;
    }
    const first = single.get(e.key);
    if (first !== undefined) {
      diagnostics.push(error(at(e.line), Code.CONFIG_DUPLICATE, `"${e.key}" already set at line ${first.line}`));
      continue;
    }
    single.set(e.key, e);
  }

  const fieldSources: Record<string, SourceRef> = { header };
  const integer = (key: string, fallback: number | undefined): number | undefined => {
    const e = single.get(key);
    if (e === undefined) return fallback;
    fieldSources[key] = at(e.line);
    const n = parseUint(e.value);
    if (n === undefined) {
      diagnostics.push(error(at(e.line), Code.CONFIG_VALUE, `${key} must be a number, not "${e.value}"`));
      return fallback;
    }
    return n;
  };
  const text = (key: string): string | undefined => {
    const e = single.get(key);
    if (e === undefined) return undefined;
    fieldSources[key] = at(e.line);
    if (e.value === '') {
      diagnostics.push(error(at(e.line), Code.CONFIG_VALUE, `${key} needs a value`));
      return undefined;
    }
    return e.value;
  };

  const vhid = integer('vhid', undefined);
  if (vhid === undefined) {
    if (!single.has('vhid')) diagnostics.push(error(header, Code.CONFIG_MISSING, `${where} has no "vhid"`));
  }
  const ifname = text('interface');
  if (ifname === undefined) {
    if (!single.has('interface')) diagnostics.push(error(header, Code.CONFIG_MISSING, `${where} has no "interface"`));
  }
  const advbase = integer('advbase', DEFAULT_ADVBASE)!;
  const advskew = integer('advskew', DEFAULT_ADVSKEW)!;
  const deadRatio = integer('deadratio', undefined);
  if (deadRatio === 0) diagnostics.push(error(at(single.get('deadratio')!.line), Code.CONFIG_VALUE, "deadratio can't be zero"));

  const addresses: string[] = [];
  for (const e of addressEntries) {
    for (const item of splitList(e, diagnostics, at)) {
      fieldSources[`addresses.${addresses.length}`] = at(e.line);
      addresses.push(normalizeAddress(item));
    }
  }

  const groups = [CARP_GROUP];
  for (const e of groupEntries) {
    fieldSources.groups ??= at(e.line);
    for (const g of splitList(e, diagnostics, at)) if (!groups.includes(g)) groups.push(g);
  }

  const password = readPassword(single, file, opts, diagnostics, fieldSources);
  const optional: Partial<Pick<VhidConfig, OptionalTextKey>> = {};
  for (const key of OPTIONAL_TEXT_KEYS) {
    const value = text(key);
    if (value !== undefined) optional[key] = value;
  }

  // Without vhid and interface there is no key; the error is already reported.
  if (vhid === undefined || ifname === undefined) return undefined;
  const v: VhidConfig = {
    key: `${vhid}@${ifname}`,
    vhid,
    interface: ifname,
    addresses,
    advbase,
    advskew,
    password,
    source: `${basename(file)}:${sec.line}`,
    groups,
    ...optional,
    ...(deadRatio !== undefined && deadRatio > 0 ? { deadRatio } : {}),
    fieldSources,
  };
  if (fieldSources.deadratio) {
    fieldSources.deadRatio = fieldSources.deadratio;
    delete fieldSources.deadratio;
  }
  return v;
}

/** `pass` or `passfile` (at most one); none means the empty password, as kernel CARP without `pass`. */
function readPassword(
  single: Map<string, Entry>,
  file: string,
  opts: CarpdIniOptions,
  diagnostics: Diagnostic[],
  fieldSources: Record<string, SourceRef>,
): string {
  const pass = single.get('pass');
  const passfile = single.get('passfile');
  if (pass !== undefined && passfile !== undefined) {
    const later = pass.line > passfile.line ? pass : passfile;
    const earlier = later === pass ? passfile : pass;
    diagnostics.push(error({ file, line: later.line }, Code.CONFIG_CONFLICT,
      `"pass" and "passfile" are exclusive ("${earlier.key}" is set at line ${earlier.line})`));
    return '';
  }
  if (pass !== undefined) {
    const where = { file, line: pass.line };
    fieldSources.password = where;
    if (pass.value !== '' && opts.fileMode !== undefined && worldReadable(opts.fileMode)) {
      diagnostics.push(error(where, Code.CONFIG_MODE,
        `${file} holds a pass but is world-readable (mode ${formatMode(opts.fileMode)}); ` +
        'chmod o-r it or use passfile'));
    }
    return pass.value;
  }
  if (passfile !== undefined) {
    const where = { file, line: passfile.line };
    fieldSources.password = where;
    if (passfile.value === '') {
      diagnostics.push(error(where, Code.CONFIG_VALUE, 'passfile needs a value'));
      return '';
    }
    // A relative passfile is relative to the config file, not to wherever carpd was started.
    const path = resolve(dirname(file), passfile.value);
    const r = opts.readPassfile(path);
    if (!r.ok) {
      diagnostics.push(error(where, r.code, r.message));
      return '';
    }
    if (r.password === '') {
      diagnostics.push(error(where, Code.CONFIG_VALUE,
        `passfile ${path} is empty; leave out pass and passfile for no password`));
    }
    return r.password;
  }
  return '';
}

function splitList(e: Entry, diagnostics: Diagnostic[], at: (line: number) => SourceRef): string[] {
  const items = e.value.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) {
    diagnostics.push(error(at(e.line), Code.CONFIG_VALUE, `empty item in "${e.key}" list`));
  }
  return items.filter((s) => s !== '');
}

/** Bare addresses get a host prefix; anything unparsable is kept verbatim for validateModel to report. */
export function normalizeAddress(a: string): string {
  if (a.includes('/')) return a;
  if (isIPv4(a)) return `${a}/32`;
  if (isIPv6(a)) return `${a}/128`;
  return a;
}


// The reserved sections, typed. Their text stays in `extra` as well.

const PLUGIN_NAME = /^[a-z][a-z0-9-]*$/;
const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,14}$/;
const HEALTH_KEYS = ['command', 'interval', 'schedule', 'timeout', 'rise', 'fall', 'demote', 'group'];
const MAINTENANCE_KEYS = ['enter', 'leave', 'duration', 'demote'];
const GROUP_KEYS = ['vhid', 'demote'];
const DEFAULT_HEALTH_INTERVAL_MS = 10_000;
const DEFAULT_DEMOTE = 240;

/** Plugins, health checks, maintenance and groups from their sections; names are resolved later. */
function typedSections(extra: ExtraSection[], diagnostics: Diagnostic[], validCron: (expression: string) => boolean): CarpdSections {
  const out: CarpdSections = { extra, plugins: [], health: [], groups: [], sectionKeys: new Map(), refs: [] };
  for (const sec of extra) {
    const header = parseSource(sec.source);
    const entries = sec.entries.map((e) => ({ ...e, where: parseSource(e.source) }));
    const [kind, ...rest] = sec.name.split('.');
    const name = rest.join('.');
    const ctx: SectionContext = { sec: sec.name, header, entries, diagnostics, refs: out.refs, validCron };
    if (kind === 'plugin') {
      const p = pluginSection(name, ctx);
      if (p) out.plugins.push(p);
    } else if (kind === 'health') {
      const h = healthSection(name, ctx);
      if (h) out.health.push(h);
    } else if (kind === 'group') {
      const g = groupSection(name, ctx);
      if (g) out.groups.push(g);
    } else if (sec.name === 'maintenance') {
      out.maintenance = maintenanceSection(ctx);
    }
  }
  return out;
}

interface LocatedEntry {
  key: string;
  value: string;
  where: SourceRef;
}

interface SectionContext {
  sec: string;
  header: SourceRef;
  entries: LocatedEntry[];
  diagnostics: Diagnostic[];
  refs: PendingRef[];
  validCron: (expression: string) => boolean;
}

/** The single value of each key; unknown and repeated keys are reported (when `known` is given). */
function singles(ctx: SectionContext, known: string[] | undefined): Map<string, LocatedEntry> {
  const out = new Map<string, LocatedEntry>();
  for (const e of ctx.entries) {
    if (known !== undefined && !known.includes(e.key)) {
      ctx.diagnostics.push(error(e.where, Code.CONFIG_KEY, `unknown key "${e.key}" in [${ctx.sec}]`));
      continue;
    }
    const first = out.get(e.key);
    if (first) {
      ctx.diagnostics.push(error(e.where, Code.CONFIG_DUPLICATE, `"${e.key}" already set at line ${first.where.line}`));
      continue;
    }
    out.set(e.key, e);
  }
  return out;
}

function bad(ctx: SectionContext, e: LocatedEntry, expected: string): void {
  ctx.diagnostics.push(error(e.where, Code.CONFIG_VALUE, `${e.key} must be ${expected}, not "${e.value}"`));
}

function durationOf(ctx: SectionContext, e: LocatedEntry | undefined): number | undefined {
  if (e === undefined) return undefined;
  const ms = parseDuration(e.value, 's');
  if (ms === undefined || ms === 0) bad(ctx, e, 'a duration above 0 (500ms, 10s, 5m, 2h; a bare number is in seconds)');
  return ms === 0 ? undefined : ms;
}

function intOf(ctx: SectionContext, e: LocatedEntry | undefined, min: number, max: number): number | undefined {
  if (e === undefined) return undefined;
  const n = parseUint(e.value);
  if (n === undefined || n < min || n > max) {
    bad(ctx, e, `${min}..${max}`);
    return undefined;
  }
  return n;
}

function cronOf(ctx: SectionContext, e: LocatedEntry | undefined): string | undefined {
  if (e === undefined) return undefined;
  if (!ctx.validCron(e.value)) {
    bad(ctx, e, 'a cron expression ("m h dom mon dow", optionally with seconds first)');
    return undefined;
  }
  return e.value;
}

/** `follow`: a vhid (section name, key or carp interface name), `group:NAME`, or `node`. */
function followOf(ctx: SectionContext, e: LocatedEntry): Follow {
  if (e.value === 'node') return { kind: 'node' };
  if (e.value.startsWith('group:')) {
    const group = e.value.slice('group:'.length);
    const f: Follow = { kind: 'group', group };
    ctx.refs.push({ kind: 'group', ref: group, where: e.where, resolve: () => undefined });
    return f;
  }
  const f: { kind: 'vhid'; ref: string } = { kind: 'vhid', ref: e.value };
  ctx.refs.push({ kind: 'vhid', ref: e.value, where: e.where, resolve: (key) => (f.ref = key) });
  return f;
}

function pluginSection(name: string, ctx: SectionContext): PluginConfig | undefined {
  if (!PLUGIN_NAME.test(name)) {
    ctx.diagnostics.push(error(ctx.header, Code.CONFIG_SECTION,
      `plugin name "${name}" must be lower-case letters, digits and "-", starting with a letter`));
    return undefined;
  }
  const options: Record<string, string> = {};
  const own = new Map<string, LocatedEntry>();
  for (const e of ctx.entries) {
    if (e.key === 'follow' || e.key === 'on_failure' || e.key === 'timeout') {
      const first = own.get(e.key);
      if (first) ctx.diagnostics.push(error(e.where, Code.CONFIG_DUPLICATE, `"${e.key}" already set at line ${first.where.line}`));
      else own.set(e.key, e);
    } else {
      options[e.key] = options[e.key] === undefined ? e.value : `${options[e.key]},${e.value}`;
    }
  }
  const follow = own.get('follow');
  if (follow === undefined) {
    ctx.diagnostics.push(error(ctx.header, Code.CONFIG_MISSING, `[${ctx.sec}] has no "follow" (a vhid, group:NAME or node)`));
    return undefined;
  }
  const p: PluginConfig = { name, follow: followOf(ctx, follow), options, source: sourceText(ctx.header) };
  const policy = own.get('on_failure');
  if (policy) {
    const f = failurePolicy(policy.value);
    if (f === undefined) bad(ctx, policy, 'ignore, retry N (1..10) or demote N (1..255)');
    else p.onFailure = f;
  }
  const timeout = durationOf(ctx, own.get('timeout'));
  if (timeout !== undefined) p.timeoutMs = timeout;
  return p;
}

function failurePolicy(s: string): FailurePolicy | undefined {
  const w = s.trim().split(/\s+/);
  if (w.length === 1 && w[0] === 'ignore') return { kind: 'ignore' };
  const n = w.length === 2 ? parseUint(w[1]!) : undefined;
  if (n === undefined) return undefined;
  if (w[0] === 'retry' && n >= 1 && n <= 10) return { kind: 'retry', times: n };
  if (w[0] === 'demote' && n >= 1 && n <= 255) return { kind: 'demote', by: n };
  return undefined;
}

function healthSection(name: string, ctx: SectionContext): HealthConfig | undefined {
  const k = singles(ctx, HEALTH_KEYS);
  const cmd = k.get('command');
  let command: string[] | undefined;
  if (cmd === undefined) {
    ctx.diagnostics.push(error(ctx.header, Code.CONFIG_MISSING, `[${ctx.sec}] has no "command"`));
  } else {
    const w = splitShellWords(cmd.value);
    if (!w.ok) ctx.diagnostics.push(error(cmd.where, Code.CONFIG_VALUE, `command: ${w.message}`));
    else if (w.words.length === 0) ctx.diagnostics.push(error(cmd.where, Code.CONFIG_VALUE, 'command needs a value'));
    else command = w.words;
  }
  const interval = k.get('interval');
  const schedule = k.get('schedule');
  if (interval && schedule) {
    const later = interval.where.line > schedule.where.line ? interval : schedule;
    ctx.diagnostics.push(error(later.where, Code.CONFIG_CONFLICT, '"interval" and "schedule" are exclusive'));
  }
  const group = k.get('group');
  if (group && !GROUP_NAME.test(group.value)) bad(ctx, group, 'a group name');
  if (group && GROUP_NAME.test(group.value)) {
    ctx.refs.push({ kind: 'group', ref: group.value, where: group.where, resolve: () => undefined });
  }
  const h: HealthConfig = {
    name,
    command: command ?? [],
    rise: intOf(ctx, k.get('rise'), 1, 100) ?? 1,
    fall: intOf(ctx, k.get('fall'), 1, 100) ?? 1,
    demote: intOf(ctx, k.get('demote'), 1, 255) ?? DEFAULT_DEMOTE,
    group: group?.value ?? CARP_GROUP,
    source: sourceText(ctx.header),
  };
  const sched = cronOf(ctx, schedule);
  if (sched !== undefined) h.schedule = sched;
  else if (schedule === undefined) h.intervalMs = durationOf(ctx, interval) ?? DEFAULT_HEALTH_INTERVAL_MS;
  const timeout = durationOf(ctx, k.get('timeout'));
  if (timeout !== undefined) h.timeoutMs = timeout;
  return command === undefined ? undefined : h;
}

function maintenanceSection(ctx: SectionContext): MaintenanceConfig {
  const k = singles(ctx, MAINTENANCE_KEYS);
  const m: MaintenanceConfig = { source: sourceText(ctx.header) };
  const enter = k.get('enter');
  const leave = k.get('leave');
  const duration = k.get('duration');
  const e = cronOf(ctx, enter);
  if (e !== undefined) m.enter = e;
  if (leave && duration) {
    const later = leave.where.line > duration.where.line ? leave : duration;
    ctx.diagnostics.push(error(later.where, Code.CONFIG_CONFLICT, '"leave" and "duration" are exclusive'));
  } else {
    const l = cronOf(ctx, leave);
    if (l !== undefined) m.leave = l;
    const d = durationOf(ctx, duration);
    if (d !== undefined) m.durationMs = d;
  }
  if (enter && !leave && !duration) {
    ctx.diagnostics.push(error(enter.where, Code.CONFIG_MISSING, 'a maintenance window needs "leave" (cron) or "duration"'));
  }
  if (!enter && (leave || duration)) {
    ctx.diagnostics.push(error((leave ?? duration)!.where, Code.CONFIG_MISSING, `"${(leave ?? duration)!.key}" needs "enter"`));
  }
  const demote = intOf(ctx, k.get('demote'), 1, 255);
  if (demote !== undefined) m.demote = demote;
  return m;
}

function groupSection(name: string, ctx: SectionContext): GroupConfig | undefined {
  if (!GROUP_NAME.test(name) || /\d$/.test(name)) {
    ctx.diagnostics.push(error(ctx.header, Code.GROUP,
      `group "${name}" must be 1..15 letters, digits, "_" or "-", start with a letter and not end in a digit`));
    return undefined;
  }
  const g: GroupConfig = { name, members: [], source: sourceText(ctx.header) };
  for (const e of ctx.entries) {
    if (!GROUP_KEYS.includes(e.key)) {
      ctx.diagnostics.push(error(e.where, Code.CONFIG_KEY, `unknown key "${e.key}" in [${ctx.sec}]`));
      continue;
    }
    if (e.key === 'vhid') {
      for (const ref of e.value.split(',').map((x) => x.trim())) {
        if (ref === '') {
          ctx.diagnostics.push(error(e.where, Code.CONFIG_VALUE, 'empty item in "vhid" list'));
          continue;
        }
        const i = g.members.push(ref) - 1;
        ctx.refs.push({ kind: 'vhid', ref, where: e.where, resolve: (key) => (g.members[i] = key) });
      }
    }
  }
  const demote = singles({ ...ctx, entries: ctx.entries.filter((e) => e.key === 'demote') }, undefined).get('demote');
  const n = intOf(ctx, demote, 0, 255);
  if (n !== undefined) g.demote = n;
  return g;
}

/** A section header's `file:line`, with the file path as given (as ExtraSection.source). */
function sourceText(where: SourceRef): string {
  return `${where.file}:${where.line}`;
}
