/**
 * The model written back out as carpd.conf, FreeBSD rc.conf or OpenBSD hostname.carpN files, for
 * `carpd convert`. Every vhid, address, advbase, advskew and password survives; what a target
 * format cannot say is listed in `warnings`, and what it cannot say safely in `errors`.
 */
import { isIPv4 } from 'node:net';
import { defaultGlobal } from './carpd-ini.js';
import { CARP_GROUP } from './format.js';
import type { CarpModel, GlobalConfig, VhidConfig } from './model.js';
import { splitCidr } from './netaddr.js';
import { quoteShellWord } from './shell-words.js';
import { formatDuration } from './values.js';

export type ConvertTarget = 'carpd.conf' | 'rc.conf' | 'hostname.carp';
export const CONVERT_TARGETS: readonly ConvertTarget[] = ['carpd.conf', 'rc.conf', 'hostname.carp'];

export interface ConvertResult {
  text: string;
  /** Settings the target cannot carry and that were left out. */
  warnings: string[];
  /** Settings the target cannot carry and that would change meaning if left out; no text is usable then. */
  errors: string[];
}

export interface ConvertOptions {
  /** Where the model came from, named in a header comment. */
  from?: string[];
}

/** Converts `model` to `to`. */
export function convertModel(model: CarpModel, to: ConvertTarget, opts: ConvertOptions = {}): ConvertResult {
  switch (to) {
    case 'carpd.conf':
      return toCarpdConf(model, opts);
    case 'rc.conf':
      return toRcConf(model, opts);
    case 'hostname.carp':
      return toHostnameCarp(model, opts);
  }
}

function header(comment: string, model: CarpModel, opts: ConvertOptions, what: string): string[] {
  const lines = [`${comment} ${what}, written by carpd convert${opts.from?.length ? ` from ${opts.from.join(', ')}` : ''}.`];
  if (model.vhids.some((v) => v.password !== '')) {
    lines.push(`${comment} Keep it chmod 600: it holds CARP passwords (carpd check refuses them in a world-readable file).`);
  }
  return lines;
}

/** Groups beyond the implicit `carp`. */
function extraGroups(v: VhidConfig): string[] {
  return (v.groups ?? []).filter((g) => g !== CARP_GROUP);
}

// carpd.conf

/** An ini value, JSON-quoted when it would not read back the same bare. */
function iniValue(s: string): string {
  if (s !== '' && s.trim() === s && !/[;#"'\\]/.test(s)) return s;
  return JSON.stringify(s);
}

export function toCarpdConf(model: CarpModel, opts: ConvertOptions = {}): ConvertResult {
  const out = header(';', model, opts, 'carpd.conf').concat('');
  const g = model.global;
  out.push('[carpd]');
  out.push(`allow = ${g.allow ? 'yes' : 'no'}`, `preempt = ${g.preempt ? 'yes' : 'no'}`, `log = ${g.log}`);
  const put = (key: string, value: string | number | undefined) => {
    if (value !== undefined) out.push(`${key} = ${typeof value === 'number' ? value : iniValue(value)}`);
  };
  put('control', g.control);
  put('master_down', g.masterDown);
  put('replay_protection', g.replayProtection);
  put('ifdown_demotion', g.ifdownDemotion);
  put('senderr_demotion', g.senderrDemotion);
  put('demotion', g.demotion);
  put('state_dir', g.stateDir);
  put('run_dir', g.runDir);
  put('metrics', g.metrics);
  put('garp_refresh', g.garpRefresh === undefined ? undefined : formatDuration(Math.round(g.garpRefresh * 1000)));
  put('pre_phase_budget', g.prePhaseBudgetMs === undefined ? undefined : `${g.prePhaseBudgetMs}ms`);
  put('plugin_dir', g.pluginDir);
  put('template_dir', g.templateDir);
  put('hook_timeout', g.hookTimeoutMs === undefined ? undefined : formatDuration(g.hookTimeoutMs));

  const used = new Set<string>();
  for (const v of model.vhids) {
    let name = v.name ?? `vhid${v.vhid}`;
    if (used.has(name)) name = `${name}_${v.interface}`;
    for (let i = 2; used.has(name); i++) name = `${v.name ?? `vhid${v.vhid}`}_${i}`;
    used.add(name);
    out.push('', `[vhid.${name}]`, `; from ${v.source}`, `vhid = ${v.vhid}`, `interface = ${iniValue(v.interface)}`);
    for (const a of v.addresses) out.push(`address = ${a}`);
    if (v.version === 3) {
      // VRRPv3 has priority and interval instead of advbase, advskew and a password.
      out.push('version = 3', `priority = ${v.priority ?? 100}`, `interval = ${formatDuration((v.intervalCs ?? 100) * 10)}`);
    } else {
      out.push(`advbase = ${v.advbase}`, `advskew = ${v.advskew}`);
      if (v.password !== '') out.push(`pass = ${iniValue(v.password)}`);
    }
    const groups = extraGroups(v);
    if (groups.length > 0) out.push(`group = ${groups.join(', ')}`);
    put('peer', v.peer);
    put('peer6', v.peer6);
    put('unicast', v.unicast);
    put('srcip', v.srcip);
    put('upscript', v.upscript);
    put('downscript', v.downscript);
    put('xparam', v.xparam);
    put('deadratio', v.deadRatio);
    if (v.vmac) out.push('vmac = yes');
  }
  for (const grp of model.groups ?? []) {
    out.push('', `[group.${grp.name}]`);
    if (grp.members.length > 0) out.push(`vhid = ${grp.members.join(', ')}`);
    put('demote', grp.demote);
  }
  for (const p of model.plugins ?? []) {
    out.push('', `[plugin.${p.name}]`);
    const f = p.follow;
    out.push(`follow = ${f.kind === 'node' ? 'node' : f.kind === 'group' ? `group:${f.group}` : iniValue(f.ref)}`);
    const pol = p.onFailure;
    if (pol) out.push(`on_failure = ${pol.kind === 'ignore' ? 'ignore' : pol.kind === 'retry' ? `retry ${pol.times}` : `demote ${pol.by}`}`);
    put('timeout', p.timeoutMs === undefined ? undefined : formatDuration(p.timeoutMs));
    for (const [k, value] of Object.entries(p.options)) out.push(`${k} = ${iniValue(value)}`);
  }
  for (const h of model.health ?? []) {
    out.push('', `[health.${h.name}]`, `command = ${iniValue(h.command.map(quoteShellWord).join(' '))}`);
    if (h.schedule !== undefined) out.push(`schedule = ${iniValue(h.schedule)}`);
    else if (h.intervalMs !== undefined) out.push(`interval = ${formatDuration(h.intervalMs)}`);
    put('timeout', h.timeoutMs === undefined ? undefined : formatDuration(h.timeoutMs));
    out.push(`rise = ${h.rise}`, `fall = ${h.fall}`, `demote = ${h.demote}`, `group = ${h.group}`);
  }
  const m = model.maintenance;
  if (m) {
    out.push('', '[maintenance]');
    put('enter', m.enter);
    put('leave', m.leave);
    put('duration', m.durationMs === undefined ? undefined : formatDuration(m.durationMs));
    put('demote', m.demote);
  }
  return { text: `${out.join('\n')}\n`, warnings: [], errors: [] };
}

// FreeBSD rc.conf

/** A double-quoted rc.conf value. */
function rcValue(s: string): string {
  return `"${s.replace(/[\\"$`]/g, '\\$&')}"`;
}

/** rc.conf variable names spell `.`, `-`, `/` and `+` in interface names as `_` (network.subr's ltr). */
function rcIf(name: string): string {
  return name.replace(/[.\-/+]/g, '_');
}

/** Fields only ucarp-style sources carry. */
function ucarpOnly(v: VhidConfig): string[] {
  return (['upscript', 'downscript', 'xparam', 'srcip', 'deadRatio'] as const).filter((k) => v[k] !== undefined);
}

/** The sysctl.conf lines for the globals that differ from the kernels' defaults. */
function sysctlLines(g: GlobalConfig, freebsd: boolean, warnings: string[]): string[] {
  const d = defaultGlobal();
  const out: string[] = [];
  if (g.allow !== d.allow) out.push(`net.inet.carp.allow=${g.allow ? 1 : 0}`);
  if (g.preempt !== d.preempt) out.push(`net.inet.carp.preempt=${g.preempt ? 1 : 0}`);
  if (g.log !== d.log) out.push(`net.inet.carp.log=${g.log}`);
  const bsdOnly: [keyof GlobalConfig, string][] = [
    ['demotion', 'demotion'],
    ['ifdownDemotion', 'ifdown_demotion_factor'],
    ['senderrDemotion', 'senderr_demotion_factor'],
  ];
  for (const [k, knob] of bsdOnly) {
    const value = g[k];
    if (value === undefined) continue;
    if (freebsd) out.push(`net.inet.carp.${knob}=${value}`);
    else warnings.push(`OpenBSD has no net.inet.carp.${knob}; ${k} ${value} is left out`);
  }
  return out;
}

export function toRcConf(model: CarpModel, opts: ConvertOptions = {}): ConvertResult {
  const warnings: string[] = [];
  const errors: string[] = [];
  const out = header('#', model, opts, 'rc.conf lines');
  const sysctl = sysctlLines(model.global, true, warnings);
  if (sysctl.length > 0) {
    out.push('# These belong in /etc/sysctl.conf:');
    for (const l of sysctl) out.push(`#   ${l}`);
  }
  const aliasN = new Map<string, number>();
  const vlans = new Map<string, string>();
  let ucarp: VhidConfig | undefined;
  for (const v of model.vhids) {
    const extra = ucarpOnly(v);
    const single = v.addresses.length === 1 && splitCidr(v.addresses[0]!)?.prefix === 32 && isIPv4(v.addresses[0]!.split('/')[0]!);
    if (extra.length > 0 && ucarp === undefined && single && extraGroups(v).length === 0 && v.peer === undefined && v.version !== 3) {
      ucarp = v;
      continue;
    }
    if (extra.length > 0) {
      warnings.push(`vhid ${v.key}: rc.conf's kernel CARP lines have no ${extra.join(', ')}; left out (only one /32 IPv4 vhid can use the ucarp_* variables)`);
    }
    if (extraGroups(v).length > 0) warnings.push(`vhid ${v.key}: FreeBSD has no CARP demotion groups; group ${extraGroups(v).join(', ')} left out`);
    if (v.unicast === 'openbsd' && v.peer !== undefined) {
      warnings.push(`vhid ${v.key}: FreeBSD's peer skips the TTL check and keeps the multicast group, unlike OpenBSD's carppeer`);
    }
    if (/\s/.test(v.password)) {
      errors.push(`vhid ${v.key}: the password contains white space, which rc.conf's ifconfig lines cannot carry`);
      continue;
    }
    if (v.vlan && /^vlan\d+$/.test(v.interface)) vlans.set(v.interface, `vlan ${v.vlan.tag ?? v.interface.slice(4)} vlandev ${v.vlan.device}`);
    v.addresses.forEach((a, i) => {
      const n = aliasN.get(v.interface) ?? 0;
      aliasN.set(v.interface, n + 1);
      const af = splitCidr(a)?.family === 6 ? 'inet6' : 'inet';
      const words = [af, 'vhid', String(v.vhid)];
      if (i === 0 && v.version === 3) {
        // FreeBSD 14's words; its defaults (prio 100, interval 100 cs) are left implicit.
        words.push('carpver', '3');
        if ((v.priority ?? 100) !== 100) words.push('vrrpprio', String(v.priority));
        if ((v.intervalCs ?? 100) !== 100) words.push('vrrpinterval', String(v.intervalCs));
      } else if (i === 0) {
        if (v.advbase !== 1) words.push('advbase', String(v.advbase));
        if (v.advskew !== 0) words.push('advskew', String(v.advskew));
        if (v.password !== '') words.push('pass', v.password);
        if (v.peer !== undefined) words.push('peer', v.peer);
        if (v.peer6 !== undefined) words.push('peer6', v.peer6);
      }
      words.push('alias', a);
      out.push(`ifconfig_${rcIf(v.interface)}_alias${n}=${rcValue(words.join(' '))}`);
    });
  }
  if (vlans.size > 0) {
    out.push(`cloned_interfaces=${rcValue([...vlans.keys()].join(' '))}`);
    for (const [name, args] of vlans) out.push(`ifconfig_${rcIf(name)}=${rcValue(args)}`);
  }
  if (ucarp) {
    const v = ucarp;
    out.push('# The ucarp port (net/ucarp) or carpd reads these; enable one of them.');
    const put = (name: string, value: string | number | undefined) => {
      if (value !== undefined) out.push(`ucarp_${name}=${rcValue(String(value))}`);
    };
    put('if', v.interface);
    put('vhid', v.vhid);
    put('addr', v.addresses[0]!.split('/')[0]);
    put('src', v.srcip);
    if (v.password !== '') put('pass', v.password);
    put('advbase', v.advbase);
    put('advskew', v.advskew);
    put('preempt', model.global.preempt ? 'YES' : 'NO');
    put('upscript', v.upscript);
    put('downscript', v.downscript);
    put('xparam', v.xparam);
    put('deadratio', v.deadRatio);
  }
  return { text: `${out.join('\n')}\n`, warnings, errors };
}

// OpenBSD hostname.carpN

export function toHostnameCarp(model: CarpModel, opts: ConvertOptions = {}): ConvertResult {
  const warnings: string[] = [];
  const errors: string[] = [];
  const out = header('#', model, opts, 'OpenBSD hostname.carpN files, one "# ==> FILE <==" block each');
  const taken = new Set<string>();
  const names = new Map<VhidConfig, string>();
  for (const v of model.vhids) {
    if (v.name !== undefined && /^carp\d+$/.test(v.name) && !taken.has(v.name)) {
      taken.add(v.name);
      names.set(v, v.name);
    }
  }
  let next = 0;
  const vlans = new Map<string, string>();
  for (const v of model.vhids) {
    let name = names.get(v);
    if (name === undefined) {
      while (taken.has(`carp${next}`)) next++;
      name = `carp${next}`;
      taken.add(name);
    }
    // OpenBSD's carp(4) speaks CARP only: a VRRP vhid written as CARP would not talk to its peers.
    if (v.version === 3) errors.push(`vhid ${v.key}: OpenBSD carp(4) has no VRRPv3 (version = 3)`);
    const extra = ucarpOnly(v);
    if (extra.length > 0) warnings.push(`vhid ${v.key}: hostname.if has no ${extra.join(', ')}; left out (ifstated(8) can run commands on state changes)`);
    out.push('', `# ==> hostname.${name} <==`, `# vhid ${v.vhid} on ${v.interface}, from ${v.source}`);
    const words = ['vhid', String(v.vhid), 'carpdev', v.interface];
    if (v.advbase !== 1) words.push('advbase', String(v.advbase));
    if (v.advskew !== 0) words.push('advskew', String(v.advskew));
    if (v.password !== '') words.push('pass', v.password);
    out.push(words.map(quoteShellWord).join(' '));
    let v4 = 0;
    let v6 = 0;
    for (const a of v.addresses) {
      const six = splitCidr(a)?.family === 6;
      const n = six ? v6++ : v4++;
      out.push(`${six ? 'inet6' : 'inet'}${n > 0 ? ' alias' : ''} ${a}`);
    }
    if (v.peer !== undefined) out.push(`carppeer ${v.peer}`);
    if (v.peer !== undefined && v.unicast !== 'openbsd') {
      warnings.push(`vhid ${v.key}: OpenBSD's carppeer keeps the TTL 255 check and leaves the multicast group, unlike FreeBSD's peer`);
    }
    if (v.peer6 !== undefined) warnings.push(`vhid ${v.key}: OpenBSD has no IPv6 unicast peer; peer6 ${v.peer6} left out (IPv6 adverts go to ff02::12)`);
    for (const g of extraGroups(v)) out.push(`group ${quoteShellWord(g)}`);
    out.push('up');
    if (v.vlan && /^vlan\d+$/.test(v.interface)) vlans.set(v.interface, `vnetid ${v.vlan.tag ?? v.interface.slice(4)} parent ${v.vlan.device}`);
  }
  for (const [name, args] of vlans) out.push('', `# ==> hostname.${name} <==`, args, 'up');
  const sysctl = sysctlLines(model.global, false, warnings);
  if (sysctl.length > 0) out.push('', '# ==> sysctl.conf <==', ...sysctl);
  return { text: `${out.join('\n')}\n`, warnings, errors };
}
