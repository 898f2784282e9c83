/** Parser for carpd's native `carpd.conf` (ini) into the normalized model, with file:line diagnostics. */
import ini from 'ini';
import { isIPv4, isIPv6 } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { Code, error, type Diagnostic, type SourceRef } from './errors.js';
import type { CarpModel, ExtraSection, GlobalConfig, MasterDownFormula, VhidConfig } from './model.js';
import { formatMode, readPassfile as readPassfileFromDisk, worldReadable, type PassfileResult } from './passfile.js';

export interface CarpdIniOptions {
  /** Mode of the file, for the "inline pass in a world-readable file" check; unchecked when absent. */
  fileMode?: number;
  /** Reads a `passfile`; the real one by default, a fake in tests. */
  readPassfile?: (path: string) => PassfileResult;
}

export interface CarpdIniResult {
  model: CarpModel;
  diagnostics: Diagnostic[];
  /** Only the `[carpd]` keys this file set, so that several files merge key by key. */
  globalSet: Partial<GlobalConfig>;
}

/** Defaults of the kernel sysctls: allow on, preempt off, log at OpenBSD's LOG_CRIT (2). */
export function defaultGlobal(): GlobalConfig {
  return { allow: true, preempt: false, log: 2 };
}

/** Every vhid is in this demotion group (OpenBSD's interface group of all carp interfaces). */
export const CARP_GROUP = 'carp';

const RESERVED_PREFIXES = ['plugin.', 'health.', 'group.'];
const RESERVED_NAMES = ['maintenance'];

const GLOBAL_KEYS = ['allow', 'preempt', 'log', 'control', 'master_down', 'ifdown_demotion'];
const VHID_KEYS = [
  'vhid', 'interface', 'address', 'advbase', 'advskew', 'pass', 'passfile',
  'group', 'peer', 'srcip', 'upscript', 'downscript', 'xparam',
];

const OPTIONAL_TEXT_KEYS = ['peer', 'srcip', 'upscript', 'downscript', 'xparam'] as const;
type OptionalTextKey = (typeof OPTIONAL_TEXT_KEYS)[number];

export const DEFAULT_ADVBASE = 1;
export const DEFAULT_ADVSKEW = 0;

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
export function parseCarpdIni(text: string, file: string, opts: CarpdIniOptions = {}): CarpdIniResult {
  const diagnostics: Diagnostic[] = [];
  const at = (line: number): SourceRef => ({ file, line });
  const globalSet: Partial<GlobalConfig> = {};
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
        setGlobal(tok, globalSet, globalLines, diagnostics, at);
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
  for (const sec of vhidSections) {
    const v = buildVhid(sec, file, opts, diagnostics);
    if (v !== undefined) vhids.push(v);
  }
  const model: CarpModel = { global: { ...defaultGlobal(), ...globalSet }, vhids };
  if (extra.length > 0) model.extra = extra;
  return { model, diagnostics, globalSet };
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
  switch (e.key) {
    case 'allow':
    case 'preempt': {
      const b = parseBool(e.value);
      if (b === undefined) bad('yes or no');
      else set[e.key] = b;
      break;
    }
    case 'log': {
      const n = parseUint(e.value);
      if (n === undefined || n > 7) bad('0..7');
      else set.log = n;
      break;
    }
    case 'ifdown_demotion': {
      const n = parseUint(e.value);
      if (n === undefined || n > 255) bad('0..255');
      else set.ifdownDemotion = n;
      break;
    }
    case 'master_down':
      if (e.value === 'freebsd' || e.value === 'openbsd') set.masterDown = e.value as MasterDownFormula;
      else bad('freebsd or openbsd');
      break;
    case 'control':
      if (e.value === '') bad('a path');
      else set.control = e.value;
      break;
  }
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
    fieldSources,
  };
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
    const r = (opts.readPassfile ?? readPassfileFromDisk)(path);
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

function parseBool(s: string): boolean | undefined {
  const v = s.toLowerCase();
  if (v === 'yes' || v === 'true' || v === '1') return true;
  if (v === 'no' || v === 'false' || v === '0') return false;
  return undefined;
}

function parseUint(s: string): number | undefined {
  return /^\d+$/.test(s) ? Number(s) : undefined;
}
