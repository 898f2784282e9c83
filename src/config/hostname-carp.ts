/**
 * OpenBSD /etc/hostname.carpN (hostname.if(5)): each line is ifconfig arguments for the carp
 * interface named by the file. Both the old positional form (`inet ADDR NETMASK BROADCAST …`) and
 * the modern one (`ADDR/LEN carpdev em0 vhid 1 …`) are read. The parent comes from `carpdev`, or
 * else from the subnet of a sibling hostname.IF; a `carpdev vlanN` is looked up in hostname.vlanN.
 * Also reads a bundle of such files, one `# ==> hostname.carpN <==` block each, as
 * `carpd convert --to hostname.carp` prints them.
 */
import { basename, dirname, join } from 'node:path';
import { Code, error, warning, type SourceRef } from './errors.js';
import { append, buildVhid, checkSecretMode, emptyResult, mergeSpecs, parentBySubnet, type FormatResult, type InterfaceAddress } from './format.js';
import type { ParseContext } from '../ports/config-files.js';
import { interfaceAddresses, parseCarpWords, type CarpSpec } from './ifconfig-words.js';
import type { VlanInfo } from './model.js';
import { splitShellWords } from './shell-words.js';
import { parseSysctlConf } from './sysctl-conf.js';
import { parseUint } from './values.js';

export interface HostnameOptions {
  fileMode?: number;
  /** The interface the file configures; by default from the name `hostname.IF`. */
  ifname?: string;
  /** Sibling files by name (`hostname.em0` → text), used instead of the directory (bundles). */
  siblings?: Map<string, string>;
}

/** The header of one file in a bundle: `# ==> hostname.carp0 <==`. */
export const BUNDLE_HEADER = /^# ==> (\S+) <==\s*$/;

const CARP_IF = /^carp\d+$/;
/** OpenBSD `hostname.IF`, or NetBSD `ifconfig.IF` (ifconfig.if(5): the same ifconfig lines, `create` first). */
const PREFIX = /^(hostname|ifconfig)\./;

/** True when `text` is a bundle of files rather than one file. */
export function isBundle(text: string): boolean {
  return text.split(/\r?\n/).some((l) => BUNDLE_HEADER.test(l));
}

/** Parses one hostname.IF file. A non-carp interface's file only contributes its addresses. */
export function parseHostnameIf(text: string, file: string, ctx: ParseContext, opts: HostnameOptions = {}): FormatResult {
  const r = emptyResult();
  const ifname = opts.ifname ?? basename(file).replace(PREFIX, '');
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);

  if (!CARP_IF.test(ifname)) {
    const info = interfaceInfo(text, file, ifname);
    append(r.interfaces, info.addresses);
    return r;
  }

  const specs: CarpSpec[] = [];
  lines.forEach((raw, i) => {
    const where: SourceRef = { file, line: i + 1 };
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) return;
    if (s.startsWith('!')) {
      r.diagnostics.push(warning(where, Code.WARN_IGNORED, 'carpd does not run "!command" lines; this one is ignored'));
      return;
    }
    const w = splitShellWords(s, { comments: true });
    if (!w.ok) {
      r.diagnostics.push(error(where, Code.CONFIG_SYNTAX, w.message));
      return;
    }
    if (['rtsol', 'dest', 'dhcp', 'autoconf'].includes(w.words[0] ?? '') || (w.words[0] === 'inet6' && w.words[1] === 'autoconf')) {
      r.diagnostics.push(error(where, Code.UNSUPPORTED, `a carp interface cannot use "${w.words.slice(0, 2).join(' ')}"`));
      return;
    }
    const spec = parseCarpWords(w.words, where, r.diagnostics, { positional: true });
    // OpenBSD's carp(4) speaks CARP only: FreeBSD's VRRP words would be silently lost here.
    if (spec.version === 3 || spec.vrrpprio !== undefined || spec.vrrpinterval !== undefined) {
      r.diagnostics.push(error(where, Code.UNSUPPORTED, 'OpenBSD carp(4) has no VRRPv3 (carpver 3, vrrpprio, vrrpinterval are FreeBSD 14 words)'));
    }
    specs.push(spec);
  });

  if (specs.length === 0) {
    r.diagnostics.push(error({ file, line: 1 }, Code.CONFIG_MISSING, `${ifname} has no configuration`));
    return r;
  }
  const m = mergeSpecs(specs, r.diagnostics);
  if (m.pass) checkSecretMode(r.diagnostics, m.pass.where, opts.fileMode);
  if (m.vhid === undefined) {
    r.diagnostics.push(error(m.first, Code.CONFIG_MISSING, `${ifname} needs "vhid N"`));
    return r;
  }

  const siblings = readSiblings(file, ctx, opts);
  let parent: string;
  let interfaceWhere: SourceRef;
  let vlan: VlanInfo | undefined;
  if (m.carpdev) {
    parent = m.carpdev.value;
    interfaceWhere = m.carpdev.where;
    const sib = siblings.get(parent);
    if (sib) {
      append(r.interfaces, sib.addresses);
      if (sib.vlan) vlan = sib.vlan;
      if (sib.file !== file) r.included.push(sib.file);
    }
  } else {
    const all = [...siblings.values()].flatMap((s) => s.addresses);
    const found = parentBySubnet(m.addresses, all);
    if (found === undefined) {
      r.diagnostics.push(
        error(m.first, Code.PARENT, `${ifname} has no carpdev, and no hostname.IF beside it has a subnet holding its address; add "carpdev IF"`),
      );
      return r;
    }
    parent = found.name;
    interfaceWhere = found.where;
    const sib = siblings.get(parent)!;
    append(r.interfaces, sib.addresses);
    if (sib.vlan) vlan = sib.vlan;
    if (sib.file !== file) r.included.push(sib.file);
  }

  const v = buildVhid({
    vhid: m.vhid.value,
    interface: parent,
    header: m.first,
    name: ifname,
    interfaceWhere,
    addresses: m.addresses,
    groups: m.groups,
    ...(m.advbase ? { advbase: m.advbase } : {}),
    ...(m.advskew ? { advskew: m.advskew } : {}),
    ...(m.pass ? { password: m.pass } : {}),
    ...(m.peer && !m.mcast ? { peer: m.peer } : {}),
    ...(m.peer6 && !m.mcast6 ? { peer6: m.peer6 } : {}),
    ...(m.unicast ? { unicast: m.unicast } : {}),
  });
  v.fieldSources!.vhid = m.vhid.where;
  if (vlan) v.vlan = vlan;
  r.vhids.push(v);
  return r;
}

interface SiblingInfo {
  file: string;
  addresses: InterfaceAddress[];
  vlan?: VlanInfo;
}

/** What a non-carp hostname.IF says: its addresses, and for a VLAN its device and tag. */
function interfaceInfo(text: string, file: string, ifname: string): SiblingInfo {
  const info: SiblingInfo = { file, addresses: [] };
  let device: string | undefined;
  let tag: number | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const s = raw.trim();
    if (s === '' || s.startsWith('#') || s.startsWith('!')) return;
    const w = splitShellWords(s, { comments: true });
    if (!w.ok) return;
    for (const cidr of interfaceAddresses(w.words, true)) info.addresses.push({ name: ifname, cidr, where: { file, line: i + 1 } });
    for (let j = 0; j + 1 < w.words.length; j++) {
      const k = w.words[j];
      if (k === 'vlandev' || k === 'parent') device = w.words[j + 1];
      if (k === 'vnetid' || k === 'vlan') tag = parseUint(w.words[j + 1]!) ?? tag;
    }
  });
  if (device !== undefined) info.vlan = tag === undefined ? { device } : { device, tag };
  return info;
}

/** The non-carp hostname.IF files beside `file` (or in the bundle), by interface name. */
function readSiblings(file: string, ctx: ParseContext, opts: HostnameOptions): Map<string, SiblingInfo> {
  const out = new Map<string, SiblingInfo>();
  if (opts.siblings) {
    for (const [name, text] of opts.siblings) {
      const ifname = name.replace(/^hostname\./, '');
      if (name.startsWith('hostname.') && !CARP_IF.test(ifname)) out.set(ifname, interfaceInfo(text, file, ifname));
    }
  }
  const dir = dirname(file);
  for (const name of ctx.listDir(dir) ?? []) {
    const ifname = name.replace(PREFIX, '');
    if (!PREFIX.test(name) || CARP_IF.test(ifname) || out.has(ifname) || !/^[a-z]+\d+$/.test(ifname)) continue;
    const path = join(dir, name);
    const t = ctx.readText(path);
    if (t.ok) out.set(ifname, interfaceInfo(t.text, path, ifname));
  }
  return out;
}

/**
 * A bundle: `# ==> NAME <==` blocks, each parsed as the file NAME (hostname.IF or sysctl.conf)
 * with the bundle's own line numbers.
 */
export function parseHostnameBundle(text: string, file: string, ctx: ParseContext, opts: HostnameOptions = {}): FormatResult {
  const r = emptyResult();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const blocks: { name: string; from: number; to: number }[] = [];
  lines.forEach((l, i) => {
    const m = BUNDLE_HEADER.exec(l);
    if (m) {
      if (blocks.length > 0) blocks[blocks.length - 1]!.to = i;
      blocks.push({ name: m[1]!, from: i + 1, to: lines.length });
    } else if (blocks.length === 0 && l.trim() !== '' && !l.trim().startsWith('#')) {
      r.diagnostics.push(error({ file, line: i + 1 }, Code.CONFIG_SYNTAX, 'text before the first "# ==> FILE <==" header'));
    }
  });
  // Each block's text keeps its lines where they are in the bundle, so line numbers stay true.
  const padded = (b: { from: number; to: number }) => lines.map((l, i) => (i >= b.from && i < b.to ? l : '')).join('\n');
  const siblings = new Map(blocks.map((b) => [b.name, padded(b)]));
  for (const b of blocks) {
    let sub: FormatResult;
    if (b.name === 'sysctl.conf') {
      sub = parseSysctlConf(padded(b), file);
    } else if (b.name.startsWith('hostname.')) {
      sub = parseHostnameIf(padded(b), file, ctx, { ...opts, ifname: b.name.slice('hostname.'.length), siblings });
    } else {
      r.diagnostics.push(error({ file, line: b.from }, Code.CONFIG_FORMAT, `a bundle holds hostname.IF and sysctl.conf blocks, not "${b.name}"`));
      continue;
    }
    append(r.vhids, sub.vhids);
    append(r.diagnostics, sub.diagnostics);
    append(r.interfaces, sub.interfaces);
    Object.assign(r.globalSet, sub.globalSet);
    Object.assign(r.globalSources, sub.globalSources);
  }
  return r;
}
