/** What every config front-end returns, and the helpers they share to build vhids from it. */
import { basename } from 'node:path';
import { Code, error, type Diagnostic, type SourceRef } from './errors.js';
import type { CarpSpec } from './ifconfig-words.js';
import type { GlobalConfig, GroupConfig, HealthConfig, MaintenanceConfig, PluginConfig, ExtraSection, VhidConfig } from './model.js';
import { cidrContains, splitCidr } from './netaddr.js';
import { formatMode, worldReadable } from './passfile.js';

export const DEFAULT_ADVBASE = 1;
export const DEFAULT_ADVSKEW = 0;
/** Every vhid is in this demotion group (OpenBSD's interface group of all carp interfaces). */
export const CARP_GROUP = 'carp';

/** An address an interface of this host carries (not a VIP): tells subnets and parents. */
export interface InterfaceAddress {
  name: string;
  cidr: string;
  where: SourceRef;
}

/** A name in carpd.conf that must be resolved once every file is read. */
export interface PendingRef {
  kind: 'vhid' | 'group';
  ref: string;
  where: SourceRef;
  /** Called with the resolved vhid key (kind vhid) or the group name. */
  resolve(key: string): void;
}

/** The typed reserved sections of carpd.conf. */
export interface CarpdSections {
  extra: ExtraSection[];
  plugins: PluginConfig[];
  health: HealthConfig[];
  maintenance?: MaintenanceConfig;
  groups: GroupConfig[];
  /** `[vhid.NAME]` section names → vhid keys. */
  sectionKeys: Map<string, string>;
  refs: PendingRef[];
}

export interface FormatResult {
  vhids: VhidConfig[];
  /** Only the global keys the file set, so that several files merge key by key. */
  globalSet: Partial<GlobalConfig>;
  globalSources: Partial<Record<keyof GlobalConfig, SourceRef>>;
  diagnostics: Diagnostic[];
  /** Addresses of the host's own interfaces that the file (or a file it read) gives. */
  interfaces: InterfaceAddress[];
  /** Other files read on the way (sourced files, hostname.vlanN, ifcfg-*). */
  included: string[];
  carpd?: CarpdSections;
}

export function emptyResult(): FormatResult {
  return { vhids: [], globalSet: {}, globalSources: {}, diagnostics: [], interfaces: [], included: [] };
}

/**
 * Appends `items` to `into`. Not `into.push(...items)`: spreading passes every item as an argument,
 * and 100,000 diagnostics (garbage on every line of a 4 MiB file) overflow the stack.
 */
export function append<T>(into: T[], items: readonly T[]): void {
  for (const x of items) into.push(x);
}

/** Records a global key and where it was set. */
export function setGlobal<K extends keyof GlobalConfig>(r: FormatResult, key: K, value: GlobalConfig[K], where: SourceRef): void {
  r.globalSet[key] = value;
  r.globalSources[key] = where;
}

/** `file:line`, or just `file` when there is no line. */
export function formatRef(r: SourceRef): string {
  return r.line > 0 ? `${r.file}:${r.line}` : r.file;
}

/** The model's `source`: the file's base name and the line. */
export function sourceOf(where: SourceRef): string {
  return `${basename(where.file)}:${where.line}`;
}

/** An inline password in a world-readable file is an error on the password's line. */
export function checkSecretMode(diags: Diagnostic[], where: SourceRef, mode: number | undefined, what = 'a pass'): void {
  if (mode !== undefined && worldReadable(mode)) {
    diags.push(error(where, Code.CONFIG_MODE, `${where.file} holds ${what} but is world-readable (mode ${formatMode(mode)}); chmod o-r it`));
  }
}

/** A value and the line that set it. */
export interface Located<T> {
  value: T;
  where: SourceRef;
}

/** The CARP settings of one vhid gathered from one or more ifconfig lines. */
export interface MergedSpec {
  vhid?: Located<number>;
  advbase?: Located<number>;
  advskew?: Located<number>;
  pass?: Located<string>;
  peer?: Located<string>;
  peer6?: Located<string>;
  unicast?: Located<'freebsd' | 'openbsd'>;
  /** `mcast` / `-carppeer` / `mcast6` was on a line: that family's peer is the group again. */
  mcast?: boolean;
  mcast6?: boolean;
  carpdev?: Located<string>;
  addresses: Located<string>[];
  groups: Located<string>[];
  first: SourceRef;
}

/**
 * Merges the lines of one vhid. A setting given twice with different values is an error on the
 * later line (the kernels would silently keep the last one); passwords are never shown.
 */
export function mergeSpecs(specs: CarpSpec[], diags: Diagnostic[]): MergedSpec {
  const m: MergedSpec = { addresses: [], groups: [], first: specs[0]!.where };
  for (const s of specs) {
    if (s.mcast) m.mcast = true;
    if (s.mcast6) m.mcast6 = true;
    for (const key of ['vhid', 'advbase', 'advskew', 'pass', 'peer', 'peer6', 'unicast', 'carpdev'] as const) {
      const value = s[key];
      if (value === undefined) continue;
      const prev = m[key] as Located<string | number> | undefined;
      if (prev === undefined) {
        (m[key] as Located<string | number>) = { value, where: s.where };
      } else if (prev.value !== value) {
        const shown = key === 'pass' ? 'a different pass' : `${key} ${value}`;
        const was = key === 'pass' ? 'the pass' : `${key} ${prev.value}`;
        diags.push(error(s.where, Code.CONFIG_CONFLICT, `${shown} conflicts with ${was} set at ${formatRef(prev.where)}`));
      }
    }
    for (const a of s.addresses) m.addresses.push({ value: a, where: s.where });
    for (const g of s.groups) if (!m.groups.some((x) => x.value === g)) m.groups.push({ value: g, where: s.where });
  }
  return m;
}

export interface VhidBuild {
  vhid: number;
  interface: string;
  /** The line that introduced the vhid (the model's `source`). */
  header: SourceRef;
  addresses: Located<string>[];
  advbase?: Located<number>;
  advskew?: Located<number>;
  password?: Located<string>;
  name?: string;
  interfaceWhere?: SourceRef;
  groups?: Located<string>[];
  peer?: Located<string>;
  peer6?: Located<string>;
  unicast?: Located<'freebsd' | 'openbsd'>;
  srcip?: Located<string>;
  upscript?: Located<string>;
  downscript?: Located<string>;
  xparam?: Located<string>;
  deadRatio?: Located<number>;
}

/** A VhidConfig with its `fieldSources`, from located parts. */
export function buildVhid(b: VhidBuild): VhidConfig {
  const fs: Record<string, SourceRef> = { header: b.header };
  const v: VhidConfig = {
    key: `${b.vhid}@${b.interface}`,
    vhid: b.vhid,
    interface: b.interface,
    addresses: [],
    advbase: b.advbase?.value ?? DEFAULT_ADVBASE,
    advskew: b.advskew?.value ?? DEFAULT_ADVSKEW,
    password: b.password?.value ?? '',
    source: sourceOf(b.header),
    groups: [CARP_GROUP],
  };
  if (b.name !== undefined) v.name = b.name;
  if (b.interfaceWhere) fs.interface = b.interfaceWhere;
  b.addresses.forEach((a, i) => {
    v.addresses.push(a.value);
    fs[`addresses.${i}`] = a.where;
  });
  for (const key of ['advbase', 'advskew'] as const) {
    const f = b[key];
    if (f) fs[key] = f.where;
  }
  if (b.password) fs.password = b.password.where;
  for (const g of b.groups ?? []) {
    if (!v.groups!.includes(g.value)) v.groups!.push(g.value);
    fs.groups ??= g.where;
  }
  for (const key of ['peer', 'peer6', 'srcip', 'upscript', 'downscript', 'xparam'] as const) {
    const f = b[key];
    if (f) {
      v[key] = f.value;
      fs[key] = f.where;
    }
  }
  if (b.unicast && (b.peer || b.peer6)) {
    v.unicast = b.unicast.value;
    fs.unicast = b.unicast.where;
  }
  if (b.deadRatio) {
    v.deadRatio = b.deadRatio.value;
    fs.deadRatio = b.deadRatio.where;
  }
  v.fieldSources = fs;
  return v;
}

/**
 * The interface whose subnet holds the first address any subnet holds: how FreeBSD's legacy
 * carpN and OpenBSD's carp without carpdev find their parent.
 */
export function parentBySubnet(addresses: Located<string>[], interfaces: InterfaceAddress[]): InterfaceAddress | undefined {
  for (const a of addresses) {
    const ip = a.value.split('/')[0]!;
    for (const i of interfaces) {
      const c = splitCidr(i.cidr);
      if (c === undefined || c.prefix === (c.family === 4 ? 32 : 128)) continue;
      if (cidrContains(c, ip)) return i;
    }
  }
  return undefined;
}
