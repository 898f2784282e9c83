/**
 * Parser for carpd's native `carpd.conf` (ini) into the normalized model, with file:line
 * diagnostics. The lexer is ini-lexer.ts; which keys a section takes, and how each value is
 * read, is the table in ini-schema.ts. Here: sections in file order, and the rules across keys.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import type { PassfileResult } from '../ports/config-files.js';
import { Code, error, warning, type Diagnostic, type SourceRef } from './errors.js';
import { CARP_GROUP, DEFAULT_ADVBASE, DEFAULT_ADVSKEW, type CarpdSections } from './format.js';
import { tokenizeIni } from './ini-lexer.js';
import {
  CARPD_SECTION,
  copyFields,
  GROUP_NAME,
  GROUP_SECTION,
  HEALTH_SECTION,
  MAINTENANCE_SECTION,
  matches,
  PLUGIN_SECTION,
  readSection,
  RESERVED_SECTIONS,
  VHID_SECTION,
  type Located,
  type ParserContext,
  type SectionValues,
} from './ini-schema.js';
import type { CarpModel, ExtraSection, Follow, GlobalConfig, GroupConfig, HealthConfig, MaintenanceConfig, PluginConfig, VhidConfig } from './model.js';
import { formatMode, worldReadable } from './passfile.js';
import { splitShellWords } from './shell-words.js';

export { CARP_GROUP, DEFAULT_ADVBASE, DEFAULT_ADVSKEW };

export interface CarpdIniOptions extends ParserContext {
  /** Mode of the file, for the "inline pass in a world-readable file" check; unchecked when absent. */
  fileMode?: number;
  /** Reads a `passfile` (the loader gives the real one, tests a fake). */
  readPassfile: (path: string) => PassfileResult;
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

const DEFAULT_HEALTH_INTERVAL_MS = 10_000;
const DEFAULT_DEMOTE = 240;
const PLUGIN_NAME = /^[a-z][a-z0-9-]*$/;

/** A section as read from the file: its header and its entries. */
interface RawSection {
  name: string;
  header: SourceRef;
  entries: Located[];
}

/** Parses one carpd.conf. Diagnostics name `file` as given; model `source`s use its basename. */
export function parseCarpdIni(text: string, file: string, opts: CarpdIniOptions): CarpdIniResult {
  const diagnostics: Diagnostic[] = [];
  const at = (line: number): SourceRef => ({ file, line });
  const seen = new Map<string, number>();
  const sections: RawSection[] = [];
  const extra: ExtraSection[] = [];
  let current: RawSection | 'skip' | undefined;

  for (const tok of tokenizeIni(text)) {
    if (tok.kind === 'error') {
      diagnostics.push(error(at(tok.line), Code.CONFIG_SYNTAX, tok.message));
    } else if (tok.kind === 'section') {
      const first = seen.get(tok.name);
      if (first !== undefined) {
        diagnostics.push(error(at(tok.line), Code.CONFIG_DUPLICATE, `section [${tok.name}] already defined at line ${first}`));
        current = 'skip';
        continue;
      }
      seen.set(tok.name, tok.line);
      const known = matches(CARPD_SECTION, tok.name) || matches(VHID_SECTION, tok.name) || RESERVED_SECTIONS.some((s) => matches(s, tok.name));
      if (!known) {
        diagnostics.push(error(at(tok.line), Code.CONFIG_SECTION, `unknown section [${tok.name}]`));
        current = 'skip';
        continue;
      }
      current = { name: tok.name, header: at(tok.line), entries: [] };
      sections.push(current);
      // The reserved sections' text also goes to plugins as it is.
      if (RESERVED_SECTIONS.some((s) => matches(s, tok.name))) extra.push({ name: tok.name, source: `${file}:${tok.line}`, entries: [] });
    } else if (current === undefined) {
      diagnostics.push(error(at(tok.line), Code.CONFIG_SYNTAX, `"${tok.key}" outside of any section`));
    } else if (current !== 'skip') {
      const sec = current;
      sec.entries.push({ key: tok.key, value: tok.value, where: at(tok.line) });
      const x = extra.find((s) => s.name === sec.name);
      if (x) x.entries.push({ key: tok.key, value: tok.value, source: `${file}:${tok.line}` });
    }
  }

  const globalSet: Partial<GlobalConfig> = {};
  const globalSources: Partial<Record<keyof GlobalConfig, SourceRef>> = {};
  const carpd = sections.find((s) => matches(CARPD_SECTION, s.name));
  if (carpd) copyFields(CARPD_SECTION, readSection(CARPD_SECTION, '[carpd]', carpd.header, carpd.entries, diagnostics, opts), globalSet, globalSources);

  const vhids: VhidConfig[] = [];
  const sectionKeys = new Map<string, string>();
  for (const sec of sections.filter((s) => matches(VHID_SECTION, s.name))) {
    const v = buildVhid(sec, file, opts, diagnostics);
    if (v !== undefined) {
      vhids.push(v);
      sectionKeys.set(sec.name.slice(VHID_SECTION.name.length), v.key);
    }
  }
  const typed = typedSections(sections, extra, diagnostics, opts);
  typed.sectionKeys = sectionKeys;
  const model: CarpModel = { global: { ...defaultGlobal(), ...globalSet }, vhids };
  if (extra.length > 0) model.extra = extra;
  if (typed.plugins.length > 0) model.plugins = typed.plugins;
  if (typed.health.length > 0) model.health = typed.health;
  if (typed.maintenance) model.maintenance = typed.maintenance;
  if (typed.groups.length > 0) model.groups = typed.groups;
  return { model, diagnostics, globalSet, globalSources, sections: typed };
}

function buildVhid(sec: RawSection, file: string, opts: CarpdIniOptions, diagnostics: Diagnostic[]): VhidConfig | undefined {
  const read = readSection(VHID_SECTION, `[${sec.name}]`, sec.header, sec.entries, diagnostics, opts);
  const fieldSources: Record<string, SourceRef> = { header: sec.header };
  // Located even when the value was bad, so later checks can point at the line.
  for (const row of VHID_SECTION.keys) {
    const e = read.given.get(row.key);
    if (row.field !== undefined && e !== undefined) fieldSources[row.field] = e.where;
  }
  const fields: Partial<VhidConfig> & Record<string, unknown> = { advbase: DEFAULT_ADVBASE, advskew: DEFAULT_ADVSKEW };
  copyFields(VHID_SECTION, read, fields);

  const addresses: string[] = [];
  for (const e of read.repeated.get('address') ?? []) {
    for (const item of splitList(e, diagnostics)) {
      fieldSources[`addresses.${addresses.length}`] = e.where;
      addresses.push(normalizeAddress(item));
    }
  }
  const groups = [CARP_GROUP];
  for (const e of read.repeated.get('group') ?? []) {
    fieldSources.groups ??= e.where;
    for (const g of splitList(e, diagnostics)) if (!groups.includes(g)) groups.push(g);
  }
  const password = readPassword(read, file, opts, diagnostics, fieldSources);
  vrrpKeys(read.given, fields.version, diagnostics);

  // Without vhid and interface there is no key; the error is already reported.
  const { vhid, interface: ifname } = fields;
  if (vhid === undefined || ifname === undefined) return undefined;
  return {
    ...fields,
    key: `${vhid}@${ifname}`,
    vhid,
    interface: ifname,
    addresses,
    advbase: fields.advbase!,
    advskew: fields.advskew!,
    password,
    source: `${basename(file)}:${sec.header.line}`,
    groups,
    fieldSources,
  };
}

/**
 * Keys of the other protocol. A VRRP vhid (version = 3) has no advbase, advskew or password
 * (FreeBSD ignores `pass` with `carpver 3`; RFC 5798 dropped authentication), so they are warned
 * about and ignored. priority and interval without version = 3 are errors: a CARP vhid would
 * silently not use them.
 */
function vrrpKeys(given: ReadonlyMap<string, { where: SourceRef }>, version: number | undefined, diagnostics: Diagnostic[]): void {
  if (version === 3) {
    // `peer` too: FreeBSD's vrrp_send_ad_locked() always sends to the group.
    for (const key of ['advbase', 'advskew', 'pass', 'passfile', 'deadratio', 'peer']) {
      const e = given.get(key);
      if (e)
        diagnostics.push(
          warning(e.where, Code.WARN_IGNORED, `${key} is CARP's and is ignored with version = 3 (VRRPv3 uses priority and interval, and has no password)`),
        );
    }
    return;
  }
  for (const key of ['priority', 'interval']) {
    const e = given.get(key);
    if (e) diagnostics.push(error(e.where, Code.CONFIG_CONFLICT, `${key} is VRRPv3's; set version = 3 to use it (CARP uses advbase and advskew)`));
  }
}

/** `pass` or `passfile` (at most one); none means the empty password, as kernel CARP without `pass`. */
function readPassword(read: SectionValues, file: string, opts: CarpdIniOptions, diagnostics: Diagnostic[], fieldSources: Record<string, SourceRef>): string {
  const pass = read.given.get('pass');
  const passfile = read.given.get('passfile');
  if (pass !== undefined && passfile !== undefined) {
    const later = pass.where.line > passfile.where.line ? pass : passfile;
    const earlier = later === pass ? passfile : pass;
    diagnostics.push(error(later.where, Code.CONFIG_CONFLICT, `"pass" and "passfile" are exclusive ("${earlier.key}" is set at line ${earlier.where.line})`));
    return '';
  }
  if (pass !== undefined) {
    const where = pass.where;
    fieldSources.password = where;
    if (pass.value !== '' && opts.fileMode !== undefined && worldReadable(opts.fileMode)) {
      diagnostics.push(
        error(where, Code.CONFIG_MODE, `${file} holds a pass but is world-readable (mode ${formatMode(opts.fileMode)}); ` + 'chmod o-r it or use passfile'),
      );
    }
    return pass.value;
  }
  if (passfile !== undefined) {
    const where = passfile.where;
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
      diagnostics.push(error(where, Code.CONFIG_VALUE, `passfile ${path} is empty; leave out pass and passfile for no password`));
    }
    return r.password;
  }
  return '';
}

function splitList(e: Located, diagnostics: Diagnostic[]): string[] {
  const items = e.value.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) {
    diagnostics.push(error(e.where, Code.CONFIG_VALUE, `empty item in "${e.key}" list`));
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

/** Plugins, health checks, maintenance and groups from their sections; names are resolved later. */
function typedSections(sections: RawSection[], extra: ExtraSection[], diagnostics: Diagnostic[], cx: ParserContext): CarpdSections {
  const out: CarpdSections = { extra, plugins: [], health: [], groups: [], sectionKeys: new Map(), refs: [] };
  for (const sec of sections) {
    const name = sec.name.slice(sec.name.indexOf('.') + 1);
    const read = (schema: typeof PLUGIN_SECTION) => readSection(schema, `[${sec.name}]`, sec.header, sec.entries, diagnostics, cx);
    if (matches(PLUGIN_SECTION, sec.name)) {
      if (!PLUGIN_NAME.test(name)) {
        diagnostics.push(error(sec.header, Code.CONFIG_SECTION, `plugin name "${name}" must be lower-case letters, digits and "-", starting with a letter`));
        continue;
      }
      const p = pluginSection(name, sec, read(PLUGIN_SECTION), out);
      if (p) out.plugins.push(p);
    } else if (matches(HEALTH_SECTION, sec.name)) {
      const h = healthSection(name, sec, read(HEALTH_SECTION), diagnostics, out);
      if (h) out.health.push(h);
    } else if (matches(GROUP_SECTION, sec.name)) {
      if (!GROUP_NAME.test(name) || /\d$/.test(name)) {
        diagnostics.push(
          error(sec.header, Code.GROUP, `group "${name}" must be 1..15 letters, digits, "_" or "-", start with a letter and not end in a digit`),
        );
        continue;
      }
      out.groups.push(groupSection(name, sec, read(GROUP_SECTION), diagnostics, out));
    } else if (matches(MAINTENANCE_SECTION, sec.name)) {
      out.maintenance = maintenanceSection(sec, read(MAINTENANCE_SECTION), diagnostics);
    }
  }
  return out;
}

/** `follow`: a vhid (section name, key or carp interface name), `group:NAME`, or `node`. */
function followOf(e: Located, out: CarpdSections): Follow {
  if (e.value === 'node') return { kind: 'node' };
  if (e.value.startsWith('group:')) {
    const group = e.value.slice('group:'.length);
    out.refs.push({ kind: 'group', ref: group, where: e.where, resolve: () => undefined });
    return { kind: 'group', group };
  }
  const f: { kind: 'vhid'; ref: string } = { kind: 'vhid', ref: e.value };
  out.refs.push({ kind: 'vhid', ref: e.value, where: e.where, resolve: (key) => (f.ref = key) });
  return f;
}

function pluginSection(name: string, sec: RawSection, read: SectionValues, out: CarpdSections): PluginConfig | undefined {
  const follow = read.given.get('follow');
  if (follow === undefined) return undefined;
  // Options the plugin declares are checked by the plugin host; a repeated one is a list.
  const options: Record<string, string> = {};
  for (const e of read.rest) options[e.key] = options[e.key] === undefined ? e.value : `${options[e.key]},${e.value}`;
  const p: PluginConfig = { name, follow: followOf(follow, out), options, source: sourceText(sec.header) };
  copyFields(PLUGIN_SECTION, read, p as unknown as Record<string, unknown>);
  return p;
}

function healthSection(name: string, sec: RawSection, read: SectionValues, diagnostics: Diagnostic[], out: CarpdSections): HealthConfig | undefined {
  const cmd = read.given.get('command');
  let command: string[] | undefined;
  if (cmd !== undefined) {
    const w = splitShellWords(cmd.value);
    if (!w.ok) diagnostics.push(error(cmd.where, Code.CONFIG_VALUE, `command: ${w.message}`));
    else if (w.words.length === 0) diagnostics.push(error(cmd.where, Code.CONFIG_VALUE, 'command needs a value'));
    else command = w.words;
  }
  const interval = read.given.get('interval');
  const schedule = read.given.get('schedule');
  if (interval && schedule) {
    const later = interval.where.line > schedule.where.line ? interval : schedule;
    diagnostics.push(error(later.where, Code.CONFIG_CONFLICT, '"interval" and "schedule" are exclusive'));
  }
  const group = read.given.get('group');
  if (read.values.has('group')) out.refs.push({ kind: 'group', ref: group!.value, where: group!.where, resolve: () => undefined });
  const h: HealthConfig = { name, command: command ?? [], rise: 1, fall: 1, demote: DEFAULT_DEMOTE, group: CARP_GROUP, source: sourceText(sec.header) };
  copyFields(HEALTH_SECTION, read, h as unknown as Record<string, unknown>);
  if (schedule === undefined) h.intervalMs = (read.values.get('interval') as number | undefined) ?? DEFAULT_HEALTH_INTERVAL_MS;
  return command === undefined ? undefined : h;
}

function maintenanceSection(sec: RawSection, read: SectionValues, diagnostics: Diagnostic[]): MaintenanceConfig {
  const m: MaintenanceConfig = { source: sourceText(sec.header) };
  copyFields(MAINTENANCE_SECTION, read, m as unknown as Record<string, unknown>);
  const enter = read.given.get('enter');
  const leave = read.given.get('leave');
  const duration = read.given.get('duration');
  if (leave && duration) {
    const later = leave.where.line > duration.where.line ? leave : duration;
    diagnostics.push(error(later.where, Code.CONFIG_CONFLICT, '"leave" and "duration" are exclusive'));
    delete m.leave;
    delete m.durationMs;
  }
  if (enter && !leave && !duration) {
    diagnostics.push(error(enter.where, Code.CONFIG_MISSING, 'a maintenance window needs "leave" (cron) or "duration"'));
  }
  const end = leave ?? duration;
  if (!enter && end) diagnostics.push(error(end.where, Code.CONFIG_MISSING, `"${end.key}" needs "enter"`));
  return m;
}

function groupSection(name: string, sec: RawSection, read: SectionValues, diagnostics: Diagnostic[], out: CarpdSections): GroupConfig {
  const g: GroupConfig = { name, members: [], source: sourceText(sec.header) };
  for (const e of read.repeated.get('vhid') ?? []) {
    for (const ref of e.value.split(',').map((x) => x.trim())) {
      if (ref === '') {
        diagnostics.push(error(e.where, Code.CONFIG_VALUE, 'empty item in "vhid" list'));
        continue;
      }
      const i = g.members.push(ref) - 1;
      out.refs.push({ kind: 'vhid', ref, where: e.where, resolve: (key) => (g.members[i] = key) });
    }
  }
  copyFields(GROUP_SECTION, read, g as unknown as Record<string, unknown>);
  return g;
}

/** A section header's `file:line`, with the file path as given (as ExtraSection.source). */
function sourceText(where: SourceRef): string {
  return `${where.file}:${where.line}`;
}
