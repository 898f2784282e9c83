/**
 * FreeBSD /etc/rc.conf into the model: kernel CARP aliases (`ifconfig_<if>_alias<N>`,
 * `ifconfig_<if>_aliases`), the legacy cloned `carpN` interfaces, the ucarp port's `ucarp_*`
 * variables and carpd's own `carpd_*` ones. Variables of anything else are left alone.
 */
import { isIPv4 } from 'node:net';
import { resolve as resolvePath, dirname } from 'node:path';
import { Code, error, warning, type Diagnostic, type SourceRef } from './errors.js';
import { append, buildVhid, checkSecretMode, emptyResult, mergeSpecs, parentBySubnet, setGlobal, type FormatResult, type Located } from './format.js';
import type { ParseContext } from '../ports/config-files.js';
import { interfaceAddresses, parseCarpWords, type CarpSpec } from './ifconfig-words.js';
import { expandIpv4Range } from './netaddr.js';
import { parseRcConf, reassignWarnings, type RcVar } from './rc-conf.js';
import type { VhidConfig, VlanInfo } from './model.js';
import { FACILITIES } from './ucarp-args.js';
import { parseRcBool, parseUint } from './values.js';

export interface RcConfOptions {
  /** Mode of the file, for the "pass in a world-readable file" check; unchecked when absent. */
  fileMode?: number;
}

const UCARP_VARS = [
  'ucarp_enable',
  'ucarp_if',
  'ucarp_src',
  'ucarp_addr',
  'ucarp_vhid',
  'ucarp_pass',
  'ucarp_passfile',
  'ucarp_preempt',
  'ucarp_advbase',
  'ucarp_advskew',
  'ucarp_upscript',
  'ucarp_downscript',
  'ucarp_deadratio',
  'ucarp_shutdown',
  'ucarp_facility',
  'ucarp_xparam',
];
const CARPD_VARS = ['carpd_enable', 'carpd_config', 'carpd_flags', 'carpd_engine'];
/** `carpd run` options that make sense in carpd_flags. */
const CARPD_RUN_OPTIONS = ['-c', '--config', '--control', '--log-level', '--log-file', '--format', '--engine'];
const CARPD_RUN_FLAGS = ['--log-timestamps'];

/** A CARP interface name of the legacy (FreeBSD < 10) kind. */
const CARP_IF = /^carp\d+$/;

interface IfEntry {
  iface: string;
  words: string[];
  where: SourceRef;
}

/** Parses one rc.conf. Diagnostics name `file` as given. */
export function parseFreebsdRcConf(text: string, file: string, ctx: ParseContext, opts: RcConfOptions = {}): FormatResult {
  const r = emptyResult();
  const diags = r.diagnostics;
  const at = (line: number): SourceRef => ({ file, line });
  const rc = parseRcConf(text);
  for (const e of rc.errors) diags.push(error(at(e.line), Code.CONFIG_SYNTAX, e.message));
  append(diags, reassignWarnings(rc, file));
  const vars = rc.vars;

  const cloned = new Map<string, SourceRef>();
  const clonedVar = vars.get('cloned_interfaces');
  for (const w of words(clonedVar?.value ?? '')) cloned.set(w, at(clonedVar!.line));

  const kld = vars.get('kld_list');
  if (kld && words(kld.value).some((w) => w === 'carp' || w === 'if_carp' || w.endsWith('/carp.ko'))) {
    diags.push(
      warning(at(kld.line), Code.WARN_KERNEL_CARP, "kld_list loads the kernel's carp, which would own IP protocol 112 and take the adverts from carpd"),
    );
  }

  // carp_load belongs in loader.conf, but an rc.conf that says it shows the kernel's carp is meant.
  for (const name of ['carp_load', 'if_carp_load']) {
    const v = vars.get(name);
    if (v !== undefined && parseRcBool(v.value) === true) {
      diags.push(warning(at(v.line), Code.WARN_KERNEL_CARP, `${name}="YES": the kernel's carp would own IP protocol 112 and take the adverts from carpd`));
    }
  }

  const entries = interfaceEntries(vars, at, diags);
  const vlans = new Map<string, VlanInfo>();
  for (const e of entries) {
    const dev = e.words.indexOf('vlandev');
    const tag = e.words.indexOf('vlan');
    if (dev !== -1 && e.words[dev + 1] !== undefined) {
      const n = tag === -1 ? undefined : parseUint(e.words[tag + 1] ?? '');
      vlans.set(e.iface, n === undefined ? { device: e.words[dev + 1]! } : { device: e.words[dev + 1]!, tag: n });
    }
  }
  const carpSpecs = new Map<string, { iface: string; specs: CarpSpec[] }>();
  for (const e of entries) {
    const isCarpIf = CARP_IF.test(e.iface);
    const carpWords = e.words.some((w) => ['vhid', 'advskew', 'advbase', 'pass', 'carpdev'].includes(w));
    if (!isCarpIf && !carpWords) {
      for (const cidr of interfaceAddresses(e.words)) r.interfaces.push({ name: e.iface, cidr, where: e.where });
      continue;
    }
    const spec = parseCarpWords(e.words, e.where, diags);
    let group: string;
    if (isCarpIf) {
      group = e.iface;
    } else if (spec.vhid === undefined) {
      diags.push(error(e.where, Code.CONFIG_MISSING, `a CARP alias on ${e.iface} needs "vhid N"`));
      continue;
    } else {
      group = `${spec.vhid}@${e.iface}`;
    }
    const g = carpSpecs.get(group) ?? { iface: e.iface, specs: [] };
    g.specs.push(spec);
    carpSpecs.set(group, g);
  }

  for (const [name, where] of cloned) {
    if (CARP_IF.test(name) && !carpSpecs.has(name)) {
      diags.push(warning(where, Code.WARN_IGNORED, `${name} is in cloned_interfaces but has no ifconfig_${name} line`));
    }
  }

  for (const { iface, specs } of carpSpecs.values()) {
    const m = mergeSpecs(specs, diags);
    if (m.pass) checkSecretMode(diags, m.pass.where, opts.fileMode);
    if (m.vhid === undefined) {
      diags.push(error(m.first, Code.CONFIG_MISSING, `${iface} needs "vhid N"`));
      continue;
    }
    let parent = iface;
    let name: string | undefined;
    let interfaceWhere: SourceRef | undefined;
    if (CARP_IF.test(iface)) {
      name = iface;
      if (!cloned.has(iface)) {
        diags.push(warning(m.first, Code.WARN_IGNORED, `${iface} is not in cloned_interfaces, so FreeBSD would not create it; carpd uses it anyway`));
      }
      if (m.carpdev) {
        parent = m.carpdev.value;
        interfaceWhere = m.carpdev.where;
      } else {
        const found = parentBySubnet(m.addresses, r.interfaces);
        if (found === undefined) {
          const addr = m.addresses[0]?.value;
          diags.push(
            error(
              m.first,
              Code.PARENT,
              addr === undefined
                ? `cannot tell the parent interface of ${iface} without an address`
                : `cannot tell the parent interface of ${iface}: no ifconfig_<if>="inet …" line in this file has a ` + `subnet holding ${addr.split('/')[0]}`,
            ),
          );
          continue;
        }
        parent = found.name;
        interfaceWhere = found.where;
      }
    } else if (m.carpdev) {
      diags.push(warning(m.carpdev.where, Code.WARN_IGNORED, `carpd ignores carpdev on ${iface}: an alias's vhid runs on the interface it is configured on`));
    }
    const v = buildVhid({
      vhid: m.vhid.value,
      interface: parent,
      header: m.first,
      addresses: m.addresses,
      ...(m.advbase ? { advbase: m.advbase } : {}),
      ...(m.advskew ? { advskew: m.advskew } : {}),
      ...(m.pass ? { password: m.pass } : {}),
      ...(m.peer && !m.mcast ? { peer: m.peer } : {}),
      ...(m.peer6 && !m.mcast6 ? { peer6: m.peer6 } : {}),
      ...(m.unicast ? { unicast: m.unicast } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(interfaceWhere ? { interfaceWhere } : {}),
      groups: m.groups,
    });
    v.fieldSources!.vhid = m.vhid.where;
    vrrpFromSpecs(v, specs, diags);
    const vlan = vlans.get(parent);
    if (vlan) v.vlan = vlan;
    r.vhids.push(v);
  }

  ucarpVhid(vars, file, ctx, opts, r);
  carpdVars(vars, at, diags);
  const engineVar = vars.get('carpd_engine');
  if (engineVar !== undefined) {
    if (['carpd', 'kernel', 'keepalived'].includes(engineVar.value)) {
      r.globalSet.engine = engineVar.value as 'carpd' | 'kernel' | 'keepalived';
      r.globalSources.engine = at(engineVar.line);
    } else {
      diags.push(error(at(engineVar.line), Code.CONFIG_VALUE, `carpd_engine must be carpd, kernel or keepalived, not "${engineVar.value}"`));
    }
  }

  const ucarpOn = vars.get('ucarp_enable');
  const carpdOn = vars.get('carpd_enable');
  if (ucarpOn && carpdOn && parseRcBool(ucarpOn.value) && parseRcBool(carpdOn.value)) {
    diags.push(
      warning(
        at(Math.max(ucarpOn.line, carpdOn.line)),
        Code.WARN_IGNORED,
        'ucarp_enable and carpd_enable are both on: ucarp and carpd would both serve the ucarp vhid',
      ),
    );
  }
  return r;
}

/** The space-separated words of an rc.conf value (network.subr splits them unquoted). */
function words(value: string): string[] {
  return value.split(/\s+/).filter((w) => w !== '');
}

/** Words with network.subr's IPv4 ranges (`192.0.2.1-5[/len]`) expanded. */
function expandRanges(ws: string[]): string[] {
  return ws.flatMap((w) => {
    const m = /^(.*?)(\/\d+)?$/.exec(w)!;
    const range = expandIpv4Range(m[1]!);
    return range === undefined ? [w] : range.map((a) => a + (m[2] ?? ''));
  });
}

/**
 * Every ifconfig line per interface in the order network.subr applies them: `ifconfig_IF`,
 * `ifconfig_IF_ipv6`, `ifconfig_IF_alias0…` (stopping at the first missing number), then the
 * entries of `ifconfig_IF_aliases` (each `inet`/`inet6` starts one; `a.b.c.d-e` ranges expand).
 */
function interfaceEntries(vars: Map<string, RcVar>, at: (line: number) => SourceRef, diags: Diagnostic[]): IfEntry[] {
  const perIf = new Map<string, { main?: RcVar; ipv6: RcVar[]; aliases: Map<number, [string, RcVar]>; list?: RcVar }>();
  const get = (iface: string) => {
    let e = perIf.get(iface);
    if (e === undefined) {
      e = { ipv6: [], aliases: new Map() };
      perIf.set(iface, e);
    }
    return e;
  };
  for (const [name, v] of vars) {
    let m: RegExpExecArray | null;
    if ((m = /^ipv6_ifconfig_(.+?)(?:_alias\d+)?$/.exec(name))) {
      get(m[1]!).ipv6.push(v);
      continue;
    }
    if (!name.startsWith('ifconfig_') || name === 'ifconfig_DEFAULT') continue;
    const rest = name.slice('ifconfig_'.length);
    if ((m = /^(.+)_alias(\d+)$/.exec(rest))) get(m[1]!).aliases.set(Number(m[2]), [name, v]);
    else if ((m = /^(.+)_aliases$/.exec(rest))) get(m[1]!).list = v;
    else if ((m = /^(.+)_ipv6$/.exec(rest))) get(m[1]!).ipv6.push(v);
    else if (/^(.+)_(name|descr)$/.test(rest)) continue;
    else if (rest !== '') get(rest).main = v;
  }

  const out: IfEntry[] = [];
  for (const [iface, e] of perIf) {
    const push = (v: RcVar, w: string[]) => {
      if (w.length > 0) out.push({ iface, words: expandRanges(w), where: at(v.line) });
    };
    if (e.main) push(e.main, words(e.main.value));
    for (const v of e.ipv6) push(v, words(v.value));
    let n = 0;
    for (; e.aliases.has(n) && e.aliases.get(n)![1].value.trim() !== ''; n++) push(e.aliases.get(n)![1], words(e.aliases.get(n)![1].value));
    for (const [k, [name, v]] of e.aliases) {
      if (k > n) {
        diags.push(
          warning(at(v.line), Code.WARN_IGNORED, `${name} is never applied: FreeBSD stops at the first missing alias number (ifconfig_${iface}_alias${n})`),
        );
      }
    }
    if (e.list) {
      let cur: string[] = [];
      const flush = () => {
        push(e.list!, cur);
        cur = [];
      };
      for (const w of words(e.list.value)) {
        if (w === 'inet' || w === 'inet6') flush();
        cur.push(w);
      }
      flush();
    }
  }
  return out;
}

/** The ucarp port's variables: one vhid, as its rc script would start ucarp. */
function ucarpVhid(vars: Map<string, RcVar>, file: string, ctx: ParseContext, opts: RcConfOptions, r: FormatResult): void {
  const diags = r.diagnostics;
  const at = (line: number): SourceRef => ({ file, line });
  const seen: [string, RcVar][] = [];
  for (const [name, v] of vars) {
    if (!name.startsWith('ucarp_')) continue;
    if (!UCARP_VARS.includes(name)) {
      diags.push(error(at(v.line), Code.CONFIG_KEY, `unknown ucarp variable "${name}"`));
      continue;
    }
    seen.push([name, v]);
  }
  const val = (n: string) => vars.get(n);
  const defining = seen.filter(([n]) => !['ucarp_enable', 'ucarp_facility', 'ucarp_shutdown'].includes(n));
  if (defining.length === 0) return;
  const header = at(Math.min(...defining.map(([, v]) => v.line)));

  const num = (name: string): Located<number> | undefined => {
    const v = val(name);
    if (v === undefined) return undefined;
    const n = parseUint(v.value);
    if (n === undefined) {
      diags.push(error(at(v.line), Code.CONFIG_VALUE, `${name} must be a number, not "${v.value}"`));
      return undefined;
    }
    return { value: n, where: at(v.line) };
  };
  const text = (name: string): Located<string> | undefined => {
    const v = val(name);
    return v === undefined || v.value === '' ? undefined : { value: v.value, where: at(v.line) };
  };
  const bool = (name: string): boolean | undefined => {
    const v = val(name);
    if (v === undefined) return undefined;
    const b = parseRcBool(v.value);
    if (b === undefined) diags.push(error(at(v.line), Code.CONFIG_VALUE, `${name} must be YES or NO, not "${v.value}"`));
    return b;
  };

  bool('ucarp_enable');
  bool('ucarp_shutdown');
  const facility = val('ucarp_facility');
  if (facility && facility.value.toLowerCase() !== 'none' && !FACILITIES.has(facility.value.toLowerCase())) {
    diags.push(error(at(facility.line), Code.CONFIG_VALUE, `ucarp_facility "${facility.value}" is not a syslog facility`));
  }
  const preempt = bool('ucarp_preempt');
  if (preempt !== undefined) setGlobal(r, 'preempt', preempt, at(val('ucarp_preempt')!.line));

  const ifname = text('ucarp_if');
  const vhid = num('ucarp_vhid');
  const addr = text('ucarp_addr');
  const src = text('ucarp_src');
  if (ifname === undefined) diags.push(error(header, Code.CONFIG_MISSING, 'the ucarp variables need ucarp_if'));
  if (vhid === undefined && val('ucarp_vhid') === undefined) diags.push(error(header, Code.CONFIG_MISSING, 'the ucarp variables need ucarp_vhid'));
  if (addr !== undefined && !isIPv4(addr.value)) {
    diags.push(error(addr.where, Code.ADDRESS, `ucarp_addr must be an IPv4 address, not "${addr.value}"`));
  }
  if (src !== undefined && !isIPv4(src.value)) {
    diags.push(error(src.where, Code.SRCIP, `ucarp_src must be an IPv4 address, not "${src.value}"`));
  }

  let password: Located<string> | undefined;
  const pass = val('ucarp_pass');
  const passfile = text('ucarp_passfile');
  if (pass !== undefined && passfile !== undefined) {
    diags.push(error(at(Math.max(pass.line, passfile.where.line)), Code.CONFIG_CONFLICT, 'ucarp_pass and ucarp_passfile are exclusive'));
  } else if (pass !== undefined) {
    password = { value: pass.value, where: at(pass.line) };
    if (pass.value !== '') checkSecretMode(diags, password.where, opts.fileMode, 'ucarp_pass');
  } else if (passfile !== undefined) {
    const path = ctx.hostPath(resolvePath(dirname(file), passfile.value));
    const p = ctx.readPassfile(path);
    if (!p.ok) diags.push(error(passfile.where, p.code, p.message));
    else password = { value: p.password, where: passfile.where };
  }

  if (ifname === undefined || vhid === undefined) return;
  const deadRatio = num('ucarp_deadratio');
  if (deadRatio !== undefined && deadRatio.value === 0) {
    diags.push(error(deadRatio.where, Code.CONFIG_VALUE, "ucarp_deadratio can't be zero"));
  }
  const v = buildVhid({
    vhid: vhid.value,
    interface: ifname.value,
    header,
    interfaceWhere: ifname.where,
    addresses: addr !== undefined ? [{ value: `${addr.value}/32`, where: addr.where }] : [],
    ...optional('advbase', num('ucarp_advbase')),
    ...optional('advskew', num('ucarp_advskew')),
    ...optional('password', password),
    ...optional('srcip', src),
    ...optional('upscript', text('ucarp_upscript')),
    ...optional('downscript', text('ucarp_downscript')),
    ...optional('xparam', text('ucarp_xparam')),
    ...optional('deadRatio', deadRatio),
  });
  v.fieldSources!.vhid = vhid.where;
  r.vhids.push(v);
}

function optional<K extends string, T>(key: K, value: T | undefined): { [P in K]?: T } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: T };
}

/** carpd's own rc variables: checked, since the rc.d script hands them to `carpd run`. */
function carpdVars(vars: Map<string, RcVar>, at: (line: number) => SourceRef, diags: Diagnostic[]): void {
  for (const [name, v] of vars) {
    if (!name.startsWith('carpd_')) continue;
    const where = at(v.line);
    if (!CARPD_VARS.includes(name)) {
      diags.push(error(where, Code.CONFIG_KEY, `unknown carpd variable "${name}"`));
      continue;
    }
    if (name === 'carpd_enable' && parseRcBool(v.value) === undefined) {
      diags.push(error(where, Code.CONFIG_VALUE, `carpd_enable must be YES or NO, not "${v.value}"`));
    }
    if (name === 'carpd_config' && words(v.value).length === 0) {
      diags.push(error(where, Code.CONFIG_VALUE, 'carpd_config needs at least one file'));
    }
    if (name === 'carpd_flags') {
      const w = words(v.value);
      for (let i = 0; i < w.length; i++) {
        const opt = w[i]!.includes('=') ? w[i]!.slice(0, w[i]!.indexOf('=')) : w[i]!;
        if (CARPD_RUN_FLAGS.includes(opt)) continue;
        if (CARPD_RUN_OPTIONS.includes(opt)) {
          if (!w[i]!.includes('=')) i++;
          continue;
        }
        diags.push(error(where, Code.CONFIG_VALUE, `carpd_flags: "${opt.startsWith('-') ? opt : `word ${i + 1}`}" is not an option of carpd run`));
        break;
      }
    }
  }
}

/**
 * `carpver 3 vrrpprio N vrrpinterval N` (FreeBSD 14) on any line of the vhid: a VRRPv3 vhid. As
 * FreeBSD, advbase, advskew and pass mean nothing to it (warned); vrrpprio/vrrpinterval without
 * carpver 3 are refused, since ifconfig applies them to VRRP vhids only.
 */
function vrrpFromSpecs(v: VhidConfig, specs: CarpSpec[], diags: Diagnostic[]): void {
  const last = <K extends 'version' | 'vrrpprio' | 'vrrpinterval'>(k: K) => specs.filter((s) => s[k] !== undefined).pop();
  const ver = last('version');
  const prio = last('vrrpprio');
  const intv = last('vrrpinterval');
  if (ver?.version !== 3) {
    for (const s of [prio, intv]) {
      if (s) diags.push(error(s.where, Code.CONFIG_CONFLICT, `vrrpprio and vrrpinterval need "carpver 3" on vhid ${v.vhid}`));
    }
    return;
  }
  v.version = 3;
  v.priority = prio?.vrrpprio ?? 100;
  v.intervalCs = intv?.vrrpinterval ?? 100;
  v.fieldSources!.version = ver.where;
  if (prio) v.fieldSources!.priority = prio.where;
  if (intv) v.fieldSources!.intervalCs = intv.where;
  for (const s of specs) {
    const ignored = (['advbase', 'advskew', 'pass'] as const).filter((k) => s[k] !== undefined);
    if (ignored.length > 0) {
      diags.push(
        warning(
          s.where,
          Code.WARN_IGNORED,
          `${ignored.join(', ')} ignored on vhid ${v.vhid}: with carpver 3 (VRRPv3) FreeBSD uses vrrpprio and vrrpinterval, and no password`,
        ),
      );
    }
  }
}
