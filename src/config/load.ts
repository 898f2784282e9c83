/** Loading configuration files into one validated model: the one path for run, check and config. */
import { basename, dirname, extname } from 'node:path';
import { defaultGlobal, parseCarpdIni } from './carpd-ini.js';
import { parseDebianInterfaces } from './debian-interfaces.js';
import { capSorted, Code, error, warning, type Diagnostic, type SourceRef } from './errors.js';
import { NOT_REGULAR } from './limits.js';
import { append, CARP_GROUP, emptyResult, formatRef, type FormatResult, type InterfaceAddress, type PendingRef } from './format.js';
import type { ParseContext } from '../ports/config-files.js';
import { parseFreebsdRcConf } from './freebsd-carp.js';
import { isBundle, parseHostnameBundle, parseHostnameIf } from './hostname-carp.js';
import { parseLoaderConf } from './loader-conf.js';
import type { CarpModel, EngineName, ExtraSection, GlobalConfig, GroupConfig, HealthConfig, PluginConfig, VhidConfig } from './model.js';
import { canonicalIp } from './netaddr.js';
import { parseSysconfigVip } from './sysconfig-carp.js';
import { parseSysctlConf } from './sysctl-conf.js';
import { locate, validateModel, validateNetwork } from './validate.js';

export type ConfigFormat = 'carpd' | 'rc.conf' | 'loader.conf' | 'sysctl.conf' | 'hostname' | 'interfaces' | 'sysconfig';

/** Names `--format` takes, and what they mean. */
export const FORMAT_NAMES: Readonly<Record<string, ConfigFormat>> = {
  carpd: 'carpd',
  'carpd.conf': 'carpd',
  'rc.conf': 'rc.conf',
  rc: 'rc.conf',
  'loader.conf': 'loader.conf',
  loader: 'loader.conf',
  'sysctl.conf': 'sysctl.conf',
  sysctl: 'sysctl.conf',
  hostname: 'hostname',
  'hostname.if': 'hostname',
  'hostname.carp': 'hostname',
  interfaces: 'interfaces',
  debian: 'interfaces',
  sysconfig: 'sysconfig',
  'vip.conf': 'sysconfig',
  centos: 'sysconfig',
};

export interface LoadOptions {
  /** Force a format (a FORMAT_NAMES key) instead of detecting it per file. */
  format?: string;
  /** Absolute paths written inside configs (`source /etc/…`, network-scripts) are looked up under this root. */
  root?: string;
  /**
   * The platform carpd runs on (process.platform, or CARPD_KERNEL_OS in tests): on the BSDs there
   * is no default engine. Absent: the engine defaults to carpd.
   */
  platform?: string;
  /** `carpd run --engine` (the rc.d scripts' carpd_engine): overrides the files' engine. */
  engine?: EngineName;
}

export interface LoadResult {
  model: CarpModel;
  diagnostics: Diagnostic[];
  /** Addresses of this host's own interfaces that the files gave (for subnet checks). */
  interfaces: InterfaceAddress[];
}

/**
 * Guesses a file's format from its name, then its content. carpd.conf is recognized by its
 * `[carpd]`/`[vhid.…]` sections, or by a `.conf`/`.ini` name when the content has a section header
 * or nothing at all.
 */
export function detectFormat(file: string, text: string): ConfigFormat | undefined {
  const base = basename(file);
  const dir = basename(dirname(file));
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^[;#]/.test(l));
  // NetBSD's /etc/ifconfig.IF (ifconfig.if(5)) holds the same ifconfig lines as OpenBSD's hostname.IF.
  if (/^hostname\./.test(base) || /^ifconfig\.[a-z]+\d+$/.test(base)) return 'hostname';
  if (/^vip-\d+\.conf$/.test(base)) return 'sysconfig';
  if (lines.some((l) => /^\[(carpd|vhid\.[^\]]*)\]/.test(l))) return 'carpd';
  if (/(^|\.)loader\.conf(\.local)?$/.test(base)) return 'loader.conf';
  if (/sysctl\.conf/.test(base) || dir === 'sysctl.d') return 'sysctl.conf';
  if (/(^|\.)rc\.conf(\.local)?$/.test(base) || dir === 'rc.conf.d') return 'rc.conf';
  if (base === 'interfaces' || dir === 'interfaces.d') return 'interfaces';
  if (text.split(/\r?\n/).some((l) => /^# ==> hostname\.\S+ <==/.test(l))) return 'hostname';
  if (lines.some((l) => /^iface\s+\S+\s+inet6?\s/.test(l))) return 'interfaces';
  if (lines.some((l) => /^net\.inet\.carp\.\w+\s*=/.test(l))) return 'sysctl.conf';
  if (lines.some((l) => /^(BIND_INTERFACE|VIP_INTERFACE)=/.test(l))) return 'sysconfig';
  if (lines.some((l) => /^(ifconfig_\w+|cloned_interfaces|ucarp_\w+|carpd_\w+|kld_list)\+?=/.test(l))) return 'rc.conf';
  if (lines.some((l) => /^(if_)?carp_load=/.test(l))) return 'loader.conf';
  const ext = extname(file).toLowerCase();
  if (ext !== '.conf' && ext !== '.ini') return undefined;
  if (lines.length === 0 || lines[0]!.startsWith('[')) return 'carpd';
  return undefined;
}

/** Parses one file's text in `format`. */
export function parseFormat(format: ConfigFormat, text: string, file: string, ctx: ParseContext, mode?: number): FormatResult {
  const fileMode = mode === undefined ? {} : { fileMode: mode };
  switch (format) {
    case 'carpd': {
      const r = parseCarpdIni(text, file, {
        ...fileMode,
        readPassfile: (path) => ctx.readPassfile(path),
        validCron: (expression) => ctx.validCron(expression),
      });
      return {
        ...emptyResult(),
        vhids: r.model.vhids,
        globalSet: r.globalSet,
        globalSources: r.globalSources,
        diagnostics: r.diagnostics,
        carpd: r.sections,
      };
    }
    case 'rc.conf':
      return parseFreebsdRcConf(text, file, ctx, fileMode);
    case 'loader.conf':
      return parseLoaderConf(text, file);
    case 'sysctl.conf':
      return parseSysctlConf(text, file);
    case 'hostname':
      return isBundle(text) ? parseHostnameBundle(text, file, ctx, fileMode) : parseHostnameIf(text, file, ctx, fileMode);
    case 'interfaces':
      return parseDebianInterfaces(text, file, ctx, fileMode);
    case 'sysconfig':
      return parseSysconfigVip(text, file, ctx, fileMode);
  }
}

/** carpd.conf's name for each global, for messages. */
const GLOBAL_NAMES: Record<keyof GlobalConfig, string> = {
  allow: 'allow',
  preempt: 'preempt',
  log: 'log',
  control: 'control',
  masterDown: 'master_down',
  replayProtection: 'replay_protection',
  ifdownDemotion: 'ifdown_demotion',
  senderrDemotion: 'senderr_demotion',
  stateDir: 'state_dir',
  runDir: 'run_dir',
  metrics: 'metrics',
  garpRefresh: 'garp_refresh',
  prePhaseBudgetMs: 'pre_phase_budget',
  pluginDir: 'plugin_dir',
  templateDir: 'template_dir',
  hookTimeoutMs: 'hook_timeout',
  demotion: 'demotion',
  engine: 'engine',
  devdSocket: 'devd_socket',
  kernelOs: 'kernel_os',
  keepalivedFifo: 'keepalived_fifo',
  keepalivedPidfile: 'keepalived_pidfile',
  keepalivedTrackFile: 'keepalived_track_file',
  keepalivedDumpDir: 'keepalived_dump_dir',
  floodGuard: 'flood_guard',
};

/**
 * Reads, parses, merges and validates `files`, in any mix of formats. Later files override
 * global settings (with a warning when the value changes); vhids add up, and the same vhid in two
 * files is a warning when identical, an error when not.
 */
export function loadConfig(files: string[], opts: LoadOptions, ctx: ParseContext): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const global = defaultGlobal();
  const globalFrom: Partial<Record<keyof GlobalConfig, SourceRef>> = {};
  const vhids: VhidConfig[] = [];
  const vhidFile = new Map<string, string>();
  const interfaces: InterfaceAddress[] = [];
  const extra: ExtraSection[] = [];
  const plugins: PluginConfig[] = [];
  const health: HealthConfig[] = [];
  const groups: GroupConfig[] = [];
  const refs: PendingRef[] = [];
  const sectionKeys = new Map<string, string>();
  let maintenance: CarpModel['maintenance'];
  const order: string[] = [];

  for (const file of files) {
    order.push(file);
    const read = ctx.readText(file);
    if (!read.ok) {
      // A whole-file error: `FILE: not a regular file`, `FILE: larger than N bytes`, `FILE: cannot read: …`.
      const reason = read.message === NOT_REGULAR || read.message.startsWith('larger than') ? read.message : `cannot read: ${read.message}`;
      diagnostics.push(error({ file, line: 0 }, Code.CONFIG_READ, reason));
      continue;
    }
    const forced = opts.format !== undefined ? FORMAT_NAMES[opts.format] : undefined;
    const format = opts.format !== undefined ? forced : detectFormat(file, read.text);
    if (format === undefined) {
      const named = opts.format !== undefined ? ` "${opts.format}"` : '';
      diagnostics.push(error({ file, line: 1 }, Code.CONFIG_FORMAT, `unknown configuration format${named}`));
      continue;
    }
    const r = parseFormat(format, read.text, file, ctx, read.mode);
    for (const f of r.included) if (!order.includes(f)) order.push(f);
    append(diagnostics, r.diagnostics);
    append(interfaces, r.interfaces);

    for (const [k, value] of Object.entries(r.globalSet) as [keyof GlobalConfig, GlobalConfig[keyof GlobalConfig]][]) {
      const where = r.globalSources[k] ?? { file, line: 1 };
      const prev = globalFrom[k];
      if (prev !== undefined && prev.file !== where.file && global[k] !== value) {
        diagnostics.push(warning(where, Code.WARN_OVERRIDE, `${GLOBAL_NAMES[k]} overrides the value set at ${formatRef(prev)}`));
      }
      (global as unknown as Record<string, unknown>)[k] = value;
      globalFrom[k] = where;
    }

    for (const v of r.vhids) {
      const firstFile = vhidFile.get(v.key);
      const first = firstFile !== undefined && firstFile !== file ? vhids.find((x) => x.key === v.key) : undefined;
      if (first === undefined) {
        vhids.push(v);
        if (firstFile === undefined) vhidFile.set(v.key, file);
        continue;
      }
      const differ = differences(first, v);
      if (differ.length === 0) {
        diagnostics.push(
          warning(
            locate(v),
            Code.WARN_DUPLICATE,
            `vhid ${v.vhid} on ${v.interface} is also defined, identically, at ${formatRef(locate(first))}; using that one`,
          ),
        );
      } else {
        diagnostics.push(
          error(
            locate(v),
            Code.CONFIG_CONFLICT,
            `vhid ${v.vhid} on ${v.interface} is already defined at ${formatRef(locate(first))}, differently (${differ.join(', ')})`,
          ),
        );
      }
    }

    if (r.carpd) {
      const c = r.carpd;
      append(extra, c.extra);
      append(refs, c.refs);
      for (const [name, key] of c.sectionKeys) if (!sectionKeys.has(name)) sectionKeys.set(name, key);
      mergeNamed(plugins, c.plugins, 'plugin', diagnostics);
      mergeNamed(health, c.health, 'health', diagnostics);
      mergeNamed(groups, c.groups, 'group', diagnostics);
      if (c.maintenance) {
        if (maintenance) {
          diagnostics.push(error(sourceRef(c.maintenance.source), Code.CONFIG_DUPLICATE, `[maintenance] is already defined at ${maintenance.source}`));
        } else {
          maintenance = c.maintenance;
        }
      }
    }
  }

  const model: CarpModel = { global, vhids };
  if (extra.length > 0) model.extra = extra;
  if (plugins.length > 0) model.plugins = plugins;
  if (health.length > 0) model.health = health;
  if (maintenance) model.maintenance = maintenance;
  if (groups.length > 0) model.groups = groups;
  if (opts.engine !== undefined) {
    global.engine = opts.engine;
    globalFrom.engine = { file: '--engine', line: 0 };
  }
  const engineDiags = engineDiagnostics(model, globalFrom.engine, diagnostics, opts.platform, order[0] ?? 'config');
  if (model.global.engine === 'kernel' || model.global.engine === 'keepalived' || (model.global.engine === undefined && engineDiags.length > 0)) {
    // The kernel's carp is what this engine follows, or the engine error says it in its place:
    // the warnings that it takes the adverts from carpd's own engine do not apply.
    for (let i = diagnostics.length - 1; i >= 0; i--) if (diagnostics[i]!.code === Code.WARN_KERNEL_CARP) diagnostics.splice(i, 1);
  }
  append(diagnostics, engineDiags);
  append(diagnostics, resolveRefs(refs, model, sectionKeys, model.global.engine === 'kernel' || model.global.engine === 'keepalived'));
  append(diagnostics, validateModel(model));
  append(diagnostics, validateNetwork(model, interfaces));
  // Report in file order (an included file right after the one that read it), then line order.
  const ranks = new Map<string, number>();
  order.forEach((f, i) => {
    if (!ranks.has(f)) ranks.set(f, i);
  });
  const rank = (d: Diagnostic) => ranks.get(d.file) ?? order.length;
  return { model, diagnostics: capSorted(dedupe(diagnostics), (a, b) => rank(a) - rank(b) || a.line - b.line), interfaces };
}

/** Each finding once: a file two others read (vip-common.conf, a sibling hostname.em0) is parsed by both. */
function dedupe(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics.filter((d) => {
    const k = `${d.severity}\0${d.file}\0${d.line}\0${d.code}\0${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The BSD a platform name (or kernel_os) means, if any. */
function bsdOf(platform: string | undefined): 'freebsd' | 'openbsd' | undefined {
  return platform === 'freebsd' || platform === 'openbsd' ? platform : undefined;
}

/**
 * Which engine runs CARP. On Linux carpd's own, by default. On the BSDs there is no default: the
 * kernel's carp owns IP protocol 112 once loaded, and carpd's engine cannot run beside it, so the
 * admin chooses; where the files load the kernel's carp, the answer is `engine = kernel`.
 */
function engineDiagnostics(
  model: CarpModel,
  engineAt: SourceRef | undefined,
  diagnostics: readonly Diagnostic[],
  platform: string | undefined,
  firstFile: string,
): Diagnostic[] {
  const g = model.global;
  const os = g.kernelOs ?? bsdOf(platform);
  if (g.engine === 'kernel' && os === undefined) {
    return [
      error(
        engineAt ?? { file: firstFile, line: 0 },
        Code.ENGINE,
        `engine = kernel follows FreeBSD's or OpenBSD's CARP, and this is ${platform ?? 'not a BSD'}; set kernel_os = freebsd or openbsd, or choose engine = carpd or keepalived`,
      ),
    ];
  }
  if (g.engine !== undefined || os === undefined) return [];
  const kernelCarp = diagnostics.find((d) => d.code === Code.WARN_KERNEL_CARP);
  if (kernelCarp !== undefined) {
    return [
      error(
        { file: kernelCarp.file, line: kernelCarp.line },
        Code.ENGINE,
        `no engine is set, and this file loads the kernel's carp: set engine = kernel in [carpd] (carpd_engine="kernel" in rc.conf). ` +
          'The kernel then runs CARP and carpd follows it; carpd cannot own IP protocol 112 beside it',
      ),
    ];
  }
  return [
    error(
      { file: firstFile, line: 0 },
      Code.ENGINE,
      `no engine is set, and on ${os} there is no default: set engine = kernel in [carpd] to follow the kernel's CARP ` +
        `(pfSense, OPNsense, ${os === 'openbsd' ? 'hostname.carpN' : 'ifconfig vhid'} configs), or engine = carpd with the kernel's carp not loaded`,
    ),
  ];
}

/** What differs between two definitions of one vhid, by field name (never by value). */
function differences(a: VhidConfig, b: VhidConfig): string[] {
  const out: string[] = [];
  const addrs = (v: VhidConfig) =>
    v.addresses
      .map((x) => {
        const [ip = '', len = ''] = x.split('/');
        return `${canonicalIp(ip)}/${len}`;
      })
      .sort()
      .join(' ');
  if (addrs(a) !== addrs(b)) out.push('addresses');
  if (a.advbase !== b.advbase) out.push('advbase');
  if (a.advskew !== b.advskew) out.push('advskew');
  if (a.password !== b.password) out.push('password');
  if (a.peer !== b.peer) out.push('peer');
  if (a.peer6 !== b.peer6) out.push('peer6');
  if (a.unicast !== b.unicast) out.push('unicast');
  return out;
}

function mergeNamed<T extends { name: string; source: string }>(into: T[], add: T[], kind: string, diagnostics: Diagnostic[]): void {
  for (const x of add) {
    const first = into.find((y) => y.name === x.name);
    if (first) {
      diagnostics.push(error(sourceRef(x.source), Code.CONFIG_DUPLICATE, `[${kind}.${x.name}] is already defined at ${first.source}`));
    } else {
      into.push(x);
    }
  }
}

function sourceRef(source: string): SourceRef {
  const m = /^(.*):(\d+)$/.exec(source);
  return m ? { file: m[1]!, line: Number(m[2]) } : { file: source, line: 0 };
}

/**
 * Resolves what carpd.conf sections name: a vhid by `[vhid.NAME]` section, key (`1@em0`), carp
 * interface name (`carp0`) or vhid number when only one vhid has it; a group by any vhid's
 * groups or a `[group.NAME]` section.
 */
function resolveRefs(refs: PendingRef[], model: CarpModel, sectionKeys: Map<string, string>, followed = false): Diagnostic[] {
  const out: Diagnostic[] = [];
  const groups = new Set<string>([CARP_GROUP]);
  for (const v of model.vhids) for (const g of v.groups ?? []) groups.add(g);
  for (const g of model.groups ?? []) groups.add(g.name);
  for (const ref of refs) {
    if (ref.kind === 'group') {
      // A followed engine's groups are the kernel's or keepalived's, not in carpd's files.
      if (!groups.has(ref.ref) && !followed) out.push(error(ref.where, Code.REFERENCE, `group "${ref.ref}" has no vhid and no [group.${ref.ref}] section`));
      continue;
    }
    const byNumber = model.vhids.filter((v) => String(v.vhid) === ref.ref);
    const key =
      sectionKeys.get(ref.ref) ??
      model.vhids.find((v) => v.key === ref.ref)?.key ??
      model.vhids.find((v) => v.name === ref.ref)?.key ??
      (byNumber.length === 1 ? byNumber[0]!.key : undefined);
    if (key === undefined && followed && /^[^@\s]+@[^@\s]+$/.test(ref.ref)) {
      // The kernel or keepalived defines the vhids: VHID@IF (INSTANCE@NAME) is taken as written.
      ref.resolve(ref.ref);
    } else if (key === undefined) {
      out.push(error(ref.where, Code.REFERENCE, `"${ref.ref}" names no vhid (a [vhid.NAME] section name, VHID@INTERFACE, a carp interface or a vhid number)`));
    } else {
      ref.resolve(key);
    }
  }
  return out;
}
