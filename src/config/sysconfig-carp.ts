/**
 * CentOS/RHEL ucarp: /etc/sysconfig/carp/vip-NNN.conf or /etc/ucarp/vip-NNN.conf, NNN being the
 * vhid. The VIP is in the `ifcfg-<VIP_INTERFACE>` file that ucarp's vip-up brings up (beside the
 * vip file, or in the network-scripts directory); newer packages give `VIP_ADDRESS` instead.
 * `vip-common.conf` beside it supplies defaults, as the init script sources it first.
 */
import { isIPv4 } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { Code, ConfigError, error, warning, type SourceRef } from './errors.js';
import { append, buildVhid, checkSecretMode, emptyResult, setGlobal, type FormatResult, type Located } from './format.js';
import type { ParseContext } from '../ports/config-files.js';
import { netmaskToPrefix } from './netaddr.js';
import { parseRcConf, reassignWarnings, type RcFile } from './rc-conf.js';
import { splitShellWords } from './shell-words.js';
import { ucarpOptions } from './ucarp-args.js';
import { parseUint } from './values.js';

export interface SysconfigOptions {
  fileMode?: number;
}

const KEYS = ['BIND_INTERFACE', 'VIP_INTERFACE', 'VIP_ADDRESS', 'PASSWORD', 'SOURCE_ADDRESS', 'OPTIONS'];
/** Where initscripts keeps ifcfg files. */
const NETWORK_SCRIPTS = '/etc/sysconfig/network-scripts';

/** The vhid a vip-NNN.conf name gives, or undefined. */
export function vhidFromName(file: string): number | undefined {
  const m = /^vip-(\d{1,3})\.conf$/.exec(basename(file));
  return m ? Number(m[1]) : undefined;
}

/** Parses one vip-NNN.conf (and the ifcfg files it names). */
export function parseSysconfigVip(text: string, file: string, ctx: ParseContext, opts: SysconfigOptions = {}): FormatResult {
  const r = emptyResult();
  const diags = r.diagnostics;
  const at = (line: number): SourceRef => ({ file, line });
  const vhid = vhidFromName(file);
  if (vhid === undefined) {
    diags.push(error(at(1), Code.CONFIG_VALUE, 'the file must be named vip-NNN.conf, NNN being the vhid'));
  }

  const dir = dirname(file);
  const env = new Map<string, string>();
  const common = basename(file) === 'vip-common.conf' ? undefined : ctx.readText(join(dir, 'vip-common.conf'));
  const commonFile = join(dir, 'vip-common.conf');
  let commonRc: RcFile | undefined;
  if (common?.ok) {
    r.included.push(commonFile);
    commonRc = parseRcConf(common.text);
    for (const e of commonRc.errors) diags.push(error({ file: commonFile, line: e.line }, Code.CONFIG_SYNTAX, e.message));
    append(diags, reassignWarnings(commonRc, commonFile));
    for (const [k, v] of commonRc.vars) env.set(k, v.value);
  }
  const rc = parseRcConf(text, env);
  for (const e of rc.errors) diags.push(error(at(e.line), Code.CONFIG_SYNTAX, e.message));
  append(diags, reassignWarnings(rc, file));
  for (const [name, v] of rc.vars) {
    if (!KEYS.includes(name)) diags.push(error(at(v.line), Code.CONFIG_KEY, `unknown variable "${name}"`));
  }
  const get = (name: string): Located<string> | undefined => {
    const own = rc.vars.get(name);
    if (own) return { value: own.value, where: at(own.line) };
    const c = commonRc?.vars.get(name);
    return c ? { value: c.value, where: { file: commonFile, line: c.line } } : undefined;
  };

  const bind = get('BIND_INTERFACE');
  const vipIf = get('VIP_INTERFACE');
  const vipAddr = get('VIP_ADDRESS');
  const password = get('PASSWORD');
  const source = get('SOURCE_ADDRESS');
  const options = get('OPTIONS');
  if (bind === undefined || bind.value === '') diags.push(error(at(1), Code.CONFIG_MISSING, 'BIND_INTERFACE is not set'));
  if (password === undefined || password.value === '') {
    diags.push(error(password?.where ?? at(1), Code.CONFIG_MISSING, 'PASSWORD is not set; the ucarp init script would skip this vhid'));
  } else {
    checkSecretMode(diags, password.where, password.where.file === file ? opts.fileMode : common?.ok ? common.mode : undefined, 'a PASSWORD');
  }
  if (source && source.value !== '' && !isIPv4(source.value)) {
    diags.push(error(source.where, Code.SRCIP, `SOURCE_ADDRESS must be an IPv4 address, not "${source.value}"`));
  }

  const searchDirs = [dir, join(dir, '..', 'network-scripts'), ctx.hostPath(NETWORK_SCRIPTS)];
  let address: Located<string> | undefined;
  if (vipIf && vipIf.value !== '') {
    const ifcfg = readIfcfg(vipIf.value, searchDirs, ctx, r);
    if (ifcfg === undefined) {
      diags.push(error(vipIf.where, Code.CONFIG_READ, `ifcfg-${vipIf.value} is not beside ${basename(file)} nor in ${NETWORK_SCRIPTS}; it holds the VIP`));
    } else if (ifcfg.address === undefined) {
      diags.push(error({ file: ifcfg.file, line: 1 }, Code.CONFIG_MISSING, `ifcfg-${vipIf.value} has no IPADDR`));
    } else {
      address = ifcfg.address;
    }
  } else if (vipAddr && vipAddr.value !== '') {
    if (!isIPv4(vipAddr.value)) diags.push(error(vipAddr.where, Code.ADDRESS, `VIP_ADDRESS must be an IPv4 address, not "${vipAddr.value}"`));
    else address = { value: `${vipAddr.value}/32`, where: vipAddr.where };
  } else {
    diags.push(error(at(1), Code.CONFIG_MISSING, 'neither VIP_INTERFACE nor VIP_ADDRESS is set'));
  }

  // The bound interface's own ifcfg tells its subnet, when it can be found.
  if (bind && bind.value !== '') {
    const own = readIfcfg(bind.value, searchDirs, ctx, r);
    if (own?.address) r.interfaces.push({ name: bind.value, cidr: own.address.value, where: own.address.where });
  }

  const o = options ? ucarpSettings(options, diags) : {};
  if (o.preempt) setGlobal(r, 'preempt', o.preempt.value, o.preempt.where);
  // Without the VIP (already reported) the vhid would only add a "no address" error.
  if (vhid === undefined || bind === undefined || bind.value === '' || address === undefined) return r;
  const srcip = o.srcip ?? (source && source.value !== '' ? source : undefined);
  const v = buildVhid({
    vhid,
    interface: bind.value,
    header: at(1),
    interfaceWhere: bind.where,
    addresses: [address],
    ...(password && password.value !== '' ? { password } : {}),
    ...(srcip ? { srcip } : {}),
    ...(o.advbase ? { advbase: o.advbase } : {}),
    ...(o.advskew ? { advskew: o.advskew } : {}),
    ...(o.upscript ? { upscript: o.upscript } : {}),
    ...(o.downscript ? { downscript: o.downscript } : {}),
    ...(o.xparam ? { xparam: o.xparam } : {}),
    ...(o.deadRatio ? { deadRatio: o.deadRatio } : {}),
  });
  v.fieldSources!.vhid = at(1);
  r.vhids.push(v);
  return r;
}

interface Ifcfg {
  file: string;
  address?: Located<string>;
}

/** ifcfg-IF from the first directory that has it: IPADDR with PREFIX or NETMASK. */
function readIfcfg(ifname: string, dirs: string[], ctx: ParseContext, r: FormatResult): Ifcfg | undefined {
  for (const d of dirs) {
    const file = join(d, `ifcfg-${ifname}`);
    const t = ctx.readText(file);
    if (!t.ok) continue;
    if (!r.included.includes(file)) r.included.push(file);
    const rc = parseRcConf(t.text);
    const at = (line: number): SourceRef => ({ file, line });
    for (const e of rc.errors) r.diagnostics.push(error(at(e.line), Code.CONFIG_SYNTAX, e.message));
    append(r.diagnostics, reassignWarnings(rc, file));
    const ip = rc.vars.get('IPADDR');
    if (ip === undefined) return { file };
    if (!isIPv4(ip.value)) {
      r.diagnostics.push(error(at(ip.line), Code.ADDRESS, `IPADDR must be an IPv4 address, not "${ip.value}"`));
      return { file };
    }
    const prefixVar = rc.vars.get('PREFIX');
    const maskVar = rc.vars.get('NETMASK');
    let prefix = 32;
    const fromPrefix = prefixVar ? parseUint(prefixVar.value) : undefined;
    const fromMask = maskVar ? netmaskToPrefix(maskVar.value) : undefined;
    if (prefixVar && (fromPrefix === undefined || fromPrefix > 32)) {
      r.diagnostics.push(error(at(prefixVar.line), Code.CONFIG_VALUE, `PREFIX must be 0..32, not "${prefixVar.value}"`));
    }
    if (maskVar && fromMask === undefined) {
      r.diagnostics.push(error(at(maskVar.line), Code.CONFIG_VALUE, `NETMASK "${maskVar.value}" is not a netmask`));
    }
    // initscripts: PREFIX wins over NETMASK.
    if (fromPrefix !== undefined && fromPrefix <= 32) {
      prefix = fromPrefix;
      if (fromMask !== undefined && fromMask !== fromPrefix) {
        r.diagnostics.push(warning(at(maskVar!.line), Code.WARN_IGNORED, `NETMASK disagrees with PREFIX ${fromPrefix}, which wins`));
      }
    } else if (fromMask !== undefined) {
      prefix = fromMask;
    }
    return { file, address: { value: `${ip.value}/${prefix}`, where: at(ip.line) } };
  }
  return undefined;
}

interface UcarpSettings {
  preempt?: Located<boolean>;
  advbase?: Located<number>;
  advskew?: Located<number>;
  deadRatio?: Located<number>;
  srcip?: Located<string>;
  upscript?: Located<string>;
  downscript?: Located<string>;
  xparam?: Located<string>;
}

/** OPTIONS: ucarp's own command-line options, parsed as ucarp parses them. */
function ucarpSettings(options: Located<string>, diags: ReturnType<typeof emptyResult>['diagnostics']): UcarpSettings {
  const where = options.where;
  const out: UcarpSettings = {};
  const words = splitShellWords(options.value);
  if (!words.ok) {
    diags.push(error(where, Code.CONFIG_SYNTAX, `OPTIONS: ${words.message}`));
    return out;
  }
  let list;
  try {
    list = ucarpOptions(words.words);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    diags.push(error(where, Code.CONFIG_VALUE, `OPTIONS: ${e.message}`));
    return out;
  }
  const num = (name: string, value: string): Located<number> | undefined => {
    const n = parseUint(value);
    if (n === undefined) diags.push(error(where, Code.CONFIG_VALUE, `OPTIONS: ${name} must be a number, not "${value}"`));
    return n === undefined ? undefined : { value: n, where };
  };
  for (const { short, value = '' } of list) {
    switch (short) {
      case 'P':
        out.preempt = { value: true, where };
        break;
      case 'b':
        out.advbase = num('--advbase', value);
        break;
      case 'k':
        out.advskew = num('--advskew', value);
        break;
      case 'r':
        out.deadRatio = num('--deadratio', value);
        break;
      case 's':
        out.srcip = { value, where };
        break;
      case 'u':
        out.upscript = { value, where };
        break;
      case 'd':
        out.downscript = { value, where };
        break;
      case 'x':
        out.xparam = { value, where };
        break;
      case 'i':
      case 'v':
      case 'a':
      case 'p':
      case 'o':
        // Named by option letter only: the value of -p is a password.
        diags.push(
          error(where, Code.CONFIG_CONFLICT, `OPTIONS: -${short} belongs in BIND_INTERFACE, the file name, VIP_INTERFACE or PASSWORD, not in OPTIONS`),
        );
        break;
      default:
        // -n -z -B -S -M -D -f -m: how ucarp runs, nothing carpd needs.
        break;
    }
  }
  return out;
}
