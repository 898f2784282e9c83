/**
 * Debian /etc/network/interfaces with the ucarp package's `ucarp-*` options (its if-up.d hook
 * starts one ucarp per stanza that has ucarp-vid, ucarp-vip and ucarp-password). The
 * `iface IF:ucarp` stanza, which ucarp's vip-up brings up, gives the VIP's netmask. `source` and
 * `source-directory` lines are followed.
 */
import { isIPv4 } from 'node:net';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { Code, error, warning, type Diagnostic, type SourceRef } from './errors.js';
import { buildVhid, checkSecretMode, emptyResult, formatRef, setGlobal, type FormatResult, type Located } from './format.js';
import type { ParseContext } from '../ports/config-files.js';
import { netmaskToPrefix, splitCidr } from './netaddr.js';
import { MAX_INCLUDE_DEPTH, MAX_INCLUDES } from './limits.js';
import { FACILITIES } from './ucarp-args.js';
import { parseUint } from './values.js';

export interface InterfacesOptions {
  fileMode?: number;
}

const UCARP_OPTIONS = [
  'ucarp-vid',
  'ucarp-vip',
  'ucarp-password',
  'ucarp-advskew',
  'ucarp-advbase',
  'ucarp-master',
  'ucarp-upscript',
  'ucarp-downscript',
  'ucarp-xparam',
  'ucarp-facility',
  'ucarp-deadratio',
];
const TOP_LEVEL = ['auto', 'mapping', 'source', 'source-directory', 'rename', 'no-auto-down', 'no-scripts'];

/**
 * What one parse has read: each sourced file is read once (by its identity, see ReadResult.id),
 * whatever the number of `source` lines that name it. Without this, eight files that each say
 * `source DIR/*` were read 8^8 times and ended in "Maximum call stack size exceeded".
 */
interface Includes {
  seen: Set<string>;
  count: number;
}

interface Option {
  key: string;
  value: string;
  where: SourceRef;
}

interface Stanza {
  name: string;
  family: string;
  method: string;
  where: SourceRef;
  options: Option[];
  mode: number | undefined;
}

/** Parses /etc/network/interfaces and what it sources. */
export function parseDebianInterfaces(text: string, file: string, ctx: ParseContext, opts: InterfacesOptions = {}): FormatResult {
  const r = emptyResult();
  const stanzas: Stanza[] = [];
  readFile(text, file, opts.fileMode, ctx, r, stanzas, [file], 0, { seen: new Set([file]), count: 0 });

  // Every static address of an interface tells its subnet; the IF:ucarp alias is the VIP itself.
  for (const s of stanzas) {
    if (s.name.endsWith(':ucarp')) continue;
    const cidr = stanzaAddress(s, r.diagnostics);
    if (cidr) r.interfaces.push({ name: s.name.split(':')[0]!, cidr: cidr.value, where: cidr.where });
  }

  let preempt: Located<boolean> | undefined;
  for (const s of stanzas) {
    const ucarp = s.options.filter((o) => o.key.startsWith('ucarp-'));
    if (ucarp.length === 0) continue;
    const byKey = new Map<string, Option>();
    for (const o of ucarp) {
      if (!UCARP_OPTIONS.includes(o.key)) {
        r.diagnostics.push(error(o.where, Code.CONFIG_KEY, `unknown option "${o.key}"`));
        continue;
      }
      const first = byKey.get(o.key);
      if (first) {
        r.diagnostics.push(error(o.where, Code.CONFIG_DUPLICATE, `"${o.key}" already set at ${formatRef(first.where)}`));
        continue;
      }
      byKey.set(o.key, o);
    }
    const v = ucarpStanza(s, byKey, stanzas, r.diagnostics);
    if (v === undefined) continue;
    r.vhids.push(v.vhid);
    if (v.preempt) {
      if (preempt && preempt.value !== v.preempt.value) {
        r.diagnostics.push(
          warning(
            v.preempt.where,
            Code.WARN_PREEMPT,
            `ucarp-master differs from ${formatRef(preempt.where)}; carpd's preempt is one setting for every vhid, the last one wins`,
          ),
        );
      }
      preempt = v.preempt;
    }
  }
  if (preempt) setGlobal(r, 'preempt', preempt.value, preempt.where);
  return r;
}

/** Reads one file's stanzas into `stanzas`, following `source` lines. */
function readFile(
  text: string,
  file: string,
  mode: number | undefined,
  ctx: ParseContext,
  r: FormatResult,
  stanzas: Stanza[],
  chain: string[],
  depth: number,
  includes: Includes,
): void {
  const raw = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let current: Stanza | undefined;
  for (let i = 0; i < raw.length; i++) {
    const where: SourceRef = { file, line: i + 1 };
    let s = raw[i]!;
    // A trailing backslash joins the next line; the logical line keeps its first line number.
    // The pieces are joined once: re-concatenating per line was quadratic (40k lines, 6.8 s).
    if (s.endsWith('\\') && i + 1 < raw.length) {
      const parts: string[] = [];
      while (s.endsWith('\\') && i + 1 < raw.length) {
        parts.push(s.slice(0, -1));
        s = raw[++i]!;
      }
      parts.push(s);
      s = parts.join(' ');
    }
    s = s.trim();
    if (s === '' || s.startsWith('#')) continue;
    const [word = '', ...rest] = s.split(/\s+/);
    const arg = s.slice(word.length).trim();
    if (word === 'iface') {
      const [name, family = '', method = ''] = rest;
      if (name === undefined) {
        r.diagnostics.push(error(where, Code.CONFIG_SYNTAX, 'iface needs a name, an address family and a method'));
        current = undefined;
        continue;
      }
      current = { name, family, method, where, options: [], mode };
      stanzas.push(current);
      continue;
    }
    if (word === 'source' || word === 'source-directory') {
      current = undefined;
      follow(word, arg, where, ctx, r, stanzas, chain, depth, includes);
      continue;
    }
    if (TOP_LEVEL.includes(word) || word.startsWith('allow-')) {
      current = undefined;
      continue;
    }
    if (current === undefined) {
      // Options of a mapping stanza (script, map) and anything else outside an iface.
      continue;
    }
    current.options.push({ key: word, value: arg, where });
  }
}

function follow(
  kind: string,
  arg: string,
  where: SourceRef,
  ctx: ParseContext,
  r: FormatResult,
  stanzas: Stanza[],
  chain: string[],
  depth: number,
  includes: Includes,
): void {
  if (arg === '') {
    r.diagnostics.push(error(where, Code.CONFIG_SYNTAX, `${kind} needs a path`));
    return;
  }
  // Relative paths are relative to the directory of the file that sources them.
  const pattern = isAbsolute(arg) ? ctx.hostPath(arg) : resolve(dirname(where.file), arg);
  let files: string[];
  if (kind === 'source-directory') {
    // run-parts' rules: only names of letters, digits, _ and -.
    files = (ctx.listDir(pattern) ?? []).filter((n) => /^[A-Za-z0-9_-]+$/.test(n)).map((n) => join(pattern, n));
  } else if (/[*?]/.test(basename(pattern))) {
    const re = globToRegExp(basename(pattern));
    files = (ctx.listDir(dirname(pattern)) ?? []).filter((n) => re.test(n)).map((n) => join(dirname(pattern), n));
  } else {
    files = [pattern];
  }
  for (const f of files) {
    if (chain.includes(f)) {
      r.diagnostics.push(error(where, Code.CONFIG_SYNTAX, `${f} is sourced in a loop`));
      continue;
    }
    if (includes.seen.has(f)) continue;
    if (depth >= MAX_INCLUDE_DEPTH) {
      r.diagnostics.push(error(where, Code.CONFIG_LIMIT, `${f} is sourced more than ${MAX_INCLUDE_DEPTH} files deep`));
      return;
    }
    if (includes.count >= MAX_INCLUDES) {
      r.diagnostics.push(error(where, Code.CONFIG_LIMIT, `more than ${MAX_INCLUDES} files are sourced; ${f} and the rest are not read`));
      return;
    }
    const t = ctx.readText(f);
    if (!t.ok) {
      // A wildcard matching nothing is fine for ifupdown; a named file that is missing is not.
      r.diagnostics.push(error(where, Code.CONFIG_READ, `cannot read ${f}: ${t.message}`));
      continue;
    }
    includes.seen.add(f);
    // The same file under another name (a symlink, a second path to it) is read once too.
    if (t.id !== undefined) {
      if (includes.seen.has(`id:${t.id}`)) continue;
      includes.seen.add(`id:${t.id}`);
    }
    includes.count++;
    r.included.push(f);
    readFile(t.text, f, t.mode, ctx, r, stanzas, [...chain, f], depth + 1, includes);
  }
}

/** `*` and `?` in the last path component; anything else is literal. */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[^/]*')
    .replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}

/** A static stanza's `address` (CIDR, or with `netmask`), as CIDR. */
function stanzaAddress(s: Stanza, diags: Diagnostic[]): Located<string> | undefined {
  const address = s.options.find((o) => o.key === 'address');
  if (address === undefined) return undefined;
  const a = address.value.split(/\s+/)[0]!;
  if (splitCidr(a)) return { value: a, where: address.where };
  const netmask = s.options.find((o) => o.key === 'netmask');
  let prefix = s.family === 'inet6' ? 128 : 32;
  if (netmask) {
    const p = s.family === 'inet6' ? parseUint(netmask.value) : netmaskToPrefix(netmask.value);
    if (p === undefined) {
      diags.push(error(netmask.where, Code.CONFIG_VALUE, `netmask "${netmask.value}" is not a netmask`));
    } else {
      prefix = p;
    }
  }
  // Only a real CIDR leaves here: callers take it apart with splitCidr(…)! (the fuzzer found
  // `address 10.0.0.x` and an inet6 `netmask 999` throwing TypeError there).
  const value = `${a}/${prefix}`;
  if (a.includes('/') || splitCidr(value) === undefined) {
    diags.push(error(address.where, Code.ADDRESS, `address "${a}" is not an IP address or CIDR`));
    return undefined;
  }
  return { value, where: address.where };
}

/** The vhid of one stanza's ucarp-* options. */
function ucarpStanza(
  s: Stanza,
  o: Map<string, Option>,
  stanzas: Stanza[],
  diags: Diagnostic[],
): { vhid: ReturnType<typeof buildVhid>; preempt?: Located<boolean> } | undefined {
  const vid = o.get('ucarp-vid');
  const vip = o.get('ucarp-vip');
  const password = o.get('ucarp-password');
  let ok = true;
  for (const [key, opt] of [
    ['ucarp-vid', vid],
    ['ucarp-vip', vip],
    ['ucarp-password', password],
  ] as const) {
    if (opt === undefined) {
      diags.push(error(s.where, Code.CONFIG_MISSING, `iface ${s.name} has ucarp options but no ${key}; ifup would not start ucarp`));
      ok = false;
    }
  }
  const num = (key: string): Located<number> | undefined => {
    const opt = o.get(key);
    if (opt === undefined) return undefined;
    const n = parseUint(opt.value);
    if (n === undefined) {
      diags.push(error(opt.where, Code.CONFIG_VALUE, `${key} must be a number, not "${opt.value}"`));
      ok = false;
      return undefined;
    }
    return { value: n, where: opt.where };
  };
  const text = (key: string): Located<string> | undefined => {
    const opt = o.get(key);
    return opt === undefined ? undefined : { value: opt.value, where: opt.where };
  };
  const vhid = num('ucarp-vid');
  const advbase = num('ucarp-advbase');
  const advskew = num('ucarp-advskew');
  const deadRatio = num('ucarp-deadratio');
  const facility = o.get('ucarp-facility');
  if (facility && !FACILITIES.has(facility.value.toLowerCase())) {
    diags.push(error(facility.where, Code.CONFIG_VALUE, `ucarp-facility "${facility.value}" is not a syslog facility`));
  }
  if (password) checkSecretMode(diags, password.where, s.mode, 'a ucarp-password');
  if (!ok || vhid === undefined || vip === undefined) return undefined;

  let address = vip.value;
  if (!isIPv4(address)) {
    diags.push(error(vip.where, Code.ADDRESS, `ucarp-vip must be an IPv4 address, not "${vip.value}"`));
    return undefined;
  }
  // The IF:ucarp stanza that vip-up brings up carries the VIP and its netmask.
  const physical = s.name.split(':')[0]!;
  const alias = stanzas.find((x) => x.name === `${physical}:ucarp` && x.family === 'inet');
  let addrWhere = vip.where;
  const aliasAddr = alias ? stanzaAddress(alias, diags) : undefined;
  if (aliasAddr) {
    const c = splitCidr(aliasAddr.value)!;
    if (c.ip !== address) {
      diags.push(
        warning(
          aliasAddr.where,
          Code.WARN_ADDRESS_DUPLICATE,
          `iface ${physical}:ucarp has address ${c.ip}, but ucarp-vip is ${address} (${formatRef(vip.where)}); using ucarp-vip`,
        ),
      );
    } else {
      addrWhere = aliasAddr.where;
    }
    address = `${address}/${c.prefix}`;
  } else {
    address = `${address}/32`;
  }

  let preempt: Located<boolean> | undefined;
  const master = o.get('ucarp-master');
  // The hook's own test: anything but no/off/false/0 means -P.
  if (master) preempt = { value: !/^(no|off|false|0)/.test(master.value), where: master.where };

  const own = stanzaAddress(s, diags);
  // `address` may be garbage (stanzaAddress only puts a prefix on it): no source address then.
  const ownCidr = own && s.family === 'inet' ? splitCidr(own.value) : undefined;
  const srcip = own && ownCidr ? { value: ownCidr.ip, where: own.where } : undefined;
  const v = buildVhid({
    vhid: vhid.value,
    interface: physical,
    header: s.where,
    interfaceWhere: s.where,
    addresses: [{ value: address, where: addrWhere }],
    ...(advbase ? { advbase } : {}),
    ...(advskew ? { advskew } : {}),
    ...(password ? { password: text('ucarp-password')! } : {}),
    ...(srcip ? { srcip } : {}),
    ...(o.has('ucarp-upscript') ? { upscript: text('ucarp-upscript')! } : {}),
    ...(o.has('ucarp-downscript') ? { downscript: text('ucarp-downscript')! } : {}),
    ...(o.has('ucarp-xparam') ? { xparam: text('ucarp-xparam')! } : {}),
    ...(deadRatio ? { deadRatio } : {}),
  });
  v.fieldSources!.vhid = vhid.where;
  return preempt ? { vhid: v, preempt } : { vhid: v };
}
