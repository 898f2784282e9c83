/**
 * The CARP subset of ifconfig's arguments, as FreeBSD rc.conf (`ifconfig_em0_alias0="…"`) and
 * OpenBSD hostname.if(5) lines write them: addresses with netmask/prefixlen/broadcast, the carp
 * keywords (vhid advbase advskew pass state peer carppeer carpdev …) and the interface keywords
 * that may sit on the same line (up, description, group, -inet6 …).
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { Code, error, warning, type Diagnostic, type SourceRef } from './errors.js';
import { netmaskToPrefix, splitCidr } from './netaddr.js';
import { parseUint } from './values.js';

/** What one ifconfig line says about CARP. Absent fields were not on the line. */
export interface CarpSpec {
  where: SourceRef;
  af?: 'inet' | 'inet6';
  /** CIDR strings, prefixes applied. */
  addresses: string[];
  vhid?: number;
  advbase?: number;
  advskew?: number;
  pass?: string;
  /** FreeBSD `peer` or OpenBSD `carppeer`: the IPv4 unicast peer. */
  peer?: string;
  /** FreeBSD `peer6`: the IPv6 unicast peer. */
  peer6?: string;
  /** Whose unicast rules the line's peer words mean: `peer`/`peer6` FreeBSD's, `carppeer` OpenBSD's. */
  unicast?: 'freebsd' | 'openbsd';
  /** FreeBSD `mcast` / OpenBSD `-carppeer`: back to 224.0.0.18. FreeBSD `mcast6`: back to ff02::12. */
  mcast?: boolean;
  mcast6?: boolean;
  carpdev?: string;
  /** FreeBSD 14 `carpver 2|3`: 3 is VRRPv3, with `vrrpprio` and `vrrpinterval` (centiseconds). */
  version?: 2 | 3;
  vrrpprio?: number;
  vrrpinterval?: number;
  groups: string[];
  /** True when the line said anything CARP-specific (vhid, pass, carpdev, …). */
  carp: boolean;
}

/** Keywords taking one argument that mean something to carpd. */
const CARP_VALUE_KEYS = ['vhid', 'advbase', 'advskew', 'pass', 'peer', 'peer6', 'carppeer', 'carpdev', 'state', 'carpver', 'vrrpprio', 'vrrpinterval'];
/** Keywords taking one argument that carpd accepts and has no use for. */
const IGNORED_VALUE_KEYS = ['description', 'descr', 'mtu', 'metric', 'media', 'mediaopt', 'rdomain', 'priority'];
/** Flags carpd accepts and has no use for. */
/** `create`: NetBSD ifconfig.carpN's first line (ifconfig.if(5)); the vhid exists once carpd runs it. */
const IGNORED_FLAGS = ['up', 'alias', '-inet6', '-description', '-descr', 'NONE', 'create'];
/** Keywords of carp(4) features carpd does not have. */
const UNSUPPORTED: Record<string, { arg: boolean; why: string }> = {
  carpnodes: { arg: true, why: 'carpnodes (several vhids on one carp interface) is not supported; use one carp interface per vhid' },
  balancing: { arg: true, why: 'ARP/IP balancing is not supported' },
  '-alias': { arg: false, why: '-alias removes an address; it has no place in a configuration' },
  delete: { arg: false, why: 'delete removes an address; it has no place in a configuration' },
  dhcp: { arg: false, why: 'a carp interface cannot use DHCP' },
  autoconf: { arg: false, why: 'a carp interface cannot use autoconf' },
};

export interface ParseWordsOptions {
  /**
   * OpenBSD netstart's positional `inet ADDR [NETMASK [BROADCAST]]` and
   * `inet6 ADDR [PREFIXLEN]` right after the address family (and `alias`).
   */
  positional?: boolean;
}

/**
 * Parses one line's words. Errors and warnings go to `diags`, located at `where`. An unknown
 * keyword ends the line (what follows could be anything, a password included); it is named only
 * when it looks like a keyword and the line holds no `pass`.
 */
export function parseCarpWords(words: string[], where: SourceRef, diags: Diagnostic[], opts: ParseWordsOptions = {}): CarpSpec {
  const spec: CarpSpec = { where, addresses: [], groups: [], carp: false };
  const holdsPass = words.includes('pass');
  const bare: string[] = [];
  let unknownSeen = false;
  let v4prefix: number | undefined;
  let v6prefix: number | undefined;
  const err = (code: string, message: string) => diags.push(error(where, code, message));

  let i = 0;
  if (opts.positional && (words[0] === 'inet' || words[0] === 'inet6')) {
    spec.af = words[0];
    i = 1;
    if (words[i] === 'alias') i++;
    const addr = words[i];
    if (addr !== undefined && looksLikeAddress(addr)) {
      bare.push(addr);
      i++;
      if (spec.af === 'inet') {
        const mask = words[i];
        if (mask !== undefined && (mask === 'NONE' || isNetmaskWord(mask))) {
          if (mask !== 'NONE') v4prefix = netmaskToPrefix(mask);
          i++;
          const bc = words[i];
          if (bc !== undefined && (bc === 'NONE' || isIPv4(bc))) i++;
        }
      } else if (words[i] !== undefined && /^\d{1,3}$/.test(words[i]!)) {
        v6prefix = Number(words[i]);
        i++;
      }
    }
  }

  for (; i < words.length; i++) {
    const w = words[i]!;
    const next = words[i + 1];
    if (w === 'inet' || w === 'inet6') {
      spec.af = w;
      continue;
    }
    if (IGNORED_FLAGS.includes(w)) continue;
    // FreeBSD ifconfig(8) `mcast` / `mcast6`, OpenBSD `-carppeer`: the default multicast group.
    if (w === 'mcast' || w === '-carppeer' || w === 'mcast6') {
      if (w === 'mcast6') spec.mcast6 = true;
      else spec.mcast = true;
      spec.carp = true;
      continue;
    }
    if (w === 'down') {
      diags.push(warning(where, Code.WARN_IGNORED, 'carpd ignores "down": the vhid runs as long as carpd does'));
      continue;
    }
    if (w === 'lladdr') {
      lladdr(next, err, diags, where);
      i++;
      continue;
    }
    const unsupported = UNSUPPORTED[w];
    if (unsupported !== undefined) {
      err(Code.UNSUPPORTED, unsupported.why);
      if (unsupported.arg) i++;
      continue;
    }
    const takesValue = CARP_VALUE_KEYS.includes(w) || IGNORED_VALUE_KEYS.includes(w) || ['netmask', 'prefixlen', 'broadcast', 'group', '-group'].includes(w);
    if (takesValue) {
      if (next === undefined) {
        err(Code.CONFIG_VALUE, `"${w}" needs a value`);
        break;
      }
      i++;
      applyValue(
        spec,
        w,
        next,
        err,
        (p) => (v4prefix = p),
        (p) => (v6prefix = p),
        diags,
        where,
      );
      continue;
    }
    if (looksLikeAddress(w)) {
      bare.push(w);
      continue;
    }
    // Only the first unknown word is reported: what follows it could be its argument, or a
    // password split by a space, so it is skipped rather than named.
    if (!unknownSeen) {
      const named = !holdsPass && /^-?[a-z][a-z0-9_]{0,19}$/.test(w);
      err(Code.CONFIG_KEY, named ? `unknown keyword "${w}"` : `unexpected word ${i + 1}`);
      unknownSeen = true;
    }
  }

  for (const a of bare) {
    const cidr = splitCidr(a);
    if (cidr !== undefined) {
      spec.addresses.push(a);
    } else if (isIPv4(a)) {
      spec.addresses.push(`${a}/${v4prefix ?? 32}`);
    } else if (isIPv6(a)) {
      spec.addresses.push(`${a}/${v6prefix ?? 128}`);
    } else {
      // A malformed CIDR: kept verbatim for validateModel to report on this line.
      spec.addresses.push(a);
    }
  }
  if (spec.af !== undefined) {
    for (const a of spec.addresses) {
      const fam = isIP(a.split('/')[0]!);
      if ((spec.af === 'inet' && fam === 6) || (spec.af === 'inet6' && fam === 4)) {
        err(Code.ADDRESS, `${a} is not an ${spec.af === 'inet' ? 'IPv4' : 'IPv6'} address, yet the line says ${spec.af}`);
      }
    }
  }
  return spec;
}

function applyValue(
  spec: CarpSpec,
  key: string,
  value: string,
  err: (code: string, message: string) => void,
  setV4: (p: number) => void,
  setV6: (p: number) => void,
  diags: Diagnostic[],
  where: SourceRef,
): void {
  const num = (): number | undefined => {
    const n = parseUint(value);
    if (n === undefined) err(Code.CONFIG_VALUE, `${key} must be a number, not "${value}"`);
    return n;
  };
  switch (key) {
    case 'vhid':
    case 'advbase':
    case 'advskew': {
      const n = num();
      if (n !== undefined) spec[key] = n;
      spec.carp = true;
      break;
    }
    case 'pass':
      spec.pass = value;
      spec.carp = true;
      break;
    case 'peer':
    case 'carppeer':
      spec.peer = value;
      // FreeBSD `peer` (ip_carp.c since 137818006de5): no TTL check, group still joined.
      // OpenBSD `carppeer`: TTL 255 still required, no group membership.
      spec.unicast = key === 'peer' ? 'freebsd' : 'openbsd';
      spec.carp = true;
      break;
    case 'peer6':
      spec.peer6 = value;
      spec.unicast ??= 'freebsd';
      spec.carp = true;
      break;
    case 'carpdev':
      spec.carpdev = value;
      spec.carp = true;
      break;
    case 'state':
      if (!['master', 'backup', 'init'].includes(value.toLowerCase())) {
        err(Code.CONFIG_VALUE, `state must be master, backup or init, not "${value}"`);
      } else {
        diags.push(warning(where, Code.WARN_IGNORED, `carpd ignores "state ${value}": every vhid starts in INIT and elects as the kernels do at boot`));
      }
      spec.carp = true;
      break;
    // FreeBSD 14 sbin/ifconfig/carp.c setcarp_version(), setvrrp_prio(), setvrrp_interval(): the
    // same ranges, and the messages say what ifconfig says.
    case 'carpver':
      if (value === '2' || value === '3') spec.version = Number(value) as 2 | 3;
      else err(Code.CONFIG_VALUE, `carpver: version must be 2 or 3, not "${value}"`);
      spec.carp = true;
      break;
    case 'vrrpprio': {
      const n = parseUint(value);
      if (n === undefined || n < 1 || n > 255) err(Code.CONFIG_VALUE, `vrrpprio must be 1..255, not "${value}"`);
      else spec.vrrpprio = n;
      spec.carp = true;
      break;
    }
    case 'vrrpinterval': {
      const n = parseUint(value);
      if (n === undefined || n < 1 || n > 4095) err(Code.CONFIG_VALUE, `vrrpinterval must be 1..4095 centiseconds, not "${value}"`);
      else spec.vrrpinterval = n;
      spec.carp = true;
      break;
    }
    case 'netmask': {
      const p = netmaskToPrefix(value);
      if (p === undefined) err(Code.CONFIG_VALUE, `netmask "${value}" is not a netmask (dotted, 0xhex or a prefix length)`);
      else setV4(p);
      break;
    }
    case 'prefixlen': {
      const n = parseUint(value);
      if (n === undefined || n > 128) err(Code.CONFIG_VALUE, `prefixlen must be 0..128, not "${value}"`);
      else setV6(n);
      break;
    }
    case 'group':
      if (!spec.groups.includes(value) && value !== 'carp') spec.groups.push(value);
      break;
    default:
      // broadcast, -group and the ignored keys: nothing for carpd.
      break;
  }
}

/**
 * OpenBSD `lladdr MAC` on a carp interface. carpd sources adverts from the parent's own MAC, which
 * is what OpenBSD's regress carp_2/carp_4 configure (`lladdr $(the parent's lladdr)`, so
 * `sc_realmac` is set: ip_carp.c carp_setrun()); carpd cannot check the parent's MAC at parse
 * time, so any other unicast MAC is accepted with a warning saying what carpd does. The virtual
 * MAC form 00:00:5e:00:01:xx stays unsupported here (a hand-set vMAC).
 */
function lladdr(value: string | undefined, err: (code: string, message: string) => void, diags: Diagnostic[], where: SourceRef): void {
  if (value === undefined || !/^[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}$/i.test(value)) {
    err(Code.CONFIG_VALUE, `lladdr needs a MAC address, not "${value ?? ''}"`);
  } else if (/^0?0:0?0:5e:0?0:0?1:/i.test(value)) {
    err(Code.UNSUPPORTED, "a hand-set virtual MAC (lladdr 00:00:5e:00:01:xx) is not supported; carpd sends from the parent's MAC");
  } else {
    diags.push(warning(where, Code.WARN_IGNORED, `carpd sends from the parent's own MAC; "lladdr ${value}" is right only if that is the parent's MAC`));
  }
}

/** An address, CIDR, or something that was meant to be an IPv4 one (digits and dots). */
export function looksLikeAddress(w: string): boolean {
  if (isIP(w) !== 0 || splitCidr(w) !== undefined) return true;
  return /^\d+\.[0-9.]*(\/\d*)?$/.test(w);
}

function isNetmaskWord(w: string): boolean {
  return (isIPv4(w) || /^0x[0-9a-f]{8}$/i.test(w)) && netmaskToPrefix(w) !== undefined;
}

/**
 * A lenient read of a non-carp interface line (`inet 192.0.2.2 netmask 0xffffff00 mtu 9000`,
 * `192.0.2.2/24`, `inet6 2001:db8::2 prefixlen 64`, `DHCP`): its addresses as CIDR, nothing else.
 * Words it does not know are an interface's business, not carpd's.
 */
export function interfaceAddresses(words: string[], positional = false): string[] {
  const out: string[] = [];
  const bare: string[] = [];
  let v4prefix: number | undefined;
  let v6prefix: number | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const next = words[i + 1];
    if (w === 'netmask' && next !== undefined) {
      v4prefix = netmaskToPrefix(next);
      i++;
    } else if (w === 'prefixlen' && next !== undefined) {
      v6prefix = parseUint(next);
      i++;
    } else if (['broadcast', 'description', 'descr', 'vlan', 'vlandev', 'vnetid', 'parent', 'mtu', 'media', 'mediaopt', 'lladdr', 'group'].includes(w)) {
      i++;
    } else if (isIP(w) !== 0 || splitCidr(w) !== undefined) {
      bare.push(w);
      if (positional && isIPv4(w) && next !== undefined && isNetmaskWord(next)) {
        v4prefix = netmaskToPrefix(next);
        i++;
      } else if (positional && isIPv6(w) && next !== undefined && /^\d{1,3}$/.test(next)) {
        v6prefix = Number(next);
        i++;
      }
    }
  }
  for (const a of bare) {
    if (splitCidr(a) !== undefined) out.push(a);
    else if (isIPv4(a)) out.push(`${a}/${v4prefix ?? 32}`);
    else out.push(`${a}/${v6prefix ?? 128}`);
  }
  return out;
}
