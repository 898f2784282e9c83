/** Semantic checks on the normalized model, whatever format it came from. */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { isAbsolute } from 'node:path';
import { Code, error, parseSource, warning, type Diagnostic, type SourceRef } from './errors.js';
import type { InterfaceAddress } from './format.js';
import type { CarpModel, VhidConfig } from './model.js';
import { cidrContains, cidrsOverlap, splitCidr, type Cidr } from './netaddr.js';
import { vmacDiagnostics } from './vmac.js';

/** A vhid without a password (carpd check, and start-up's warnings). */
export const WARN_NO_PASSWORD = 'CARPD_WARN_NO_PASSWORD';

/** The kernels strlcpy the key into 20 bytes, so only 19 bytes of a password count. */
export const MAX_PASSWORD_BYTES = 19;

/** 224.0.0.0/4 by the first octet: FreeBSD PR 284872 tested the last one, so x.x.x.224 looked multicast. */
function isMulticast4(a: string): boolean {
  const first = Number(a.split('.')[0]);
  return first >= 224 && first <= 239;
}

function isMulticast6(a: string): boolean {
  return /^ff[0-9a-f]{0,2}:/i.test(a);
}

/** Where a field of a vhid was set: its own line when known, else the vhid's. */
export function locate(v: VhidConfig, field?: string): SourceRef {
  return (field !== undefined ? v.fieldSources?.[field] : undefined) ?? v.fieldSources?.header ?? parseSource(v.source);
}

/**
 * A warning per vhid without a password, for `carpd check` and `carpd run`'s start-up (not part
 * of validateModel: every parser's tests load password-less examples). CARP's HMAC is its only
 * authentication: with no password anyone on the segment can forge the vhid's adverts (advskew 0,
 * or a bow-out) and take its addresses. The kernels and ucarp accept it, so it is no error.
 */
export function passwordWarnings(model: CarpModel): Diagnostic[] {
  return model.vhids
    .filter((v) => v.password === '' && v.version !== 3)
    .map((v) =>
      warning(
        locate(v, 'password'),
        WARN_NO_PASSWORD,
        `vhid ${v.vhid} on ${v.interface} has no password: anyone on the segment can forge its adverts and take its addresses; set pass or passfile`,
      ),
    );
}

/** All diagnostics for a model; messages never contain a password. */
export function validateModel(model: CarpModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  const byKey = new Map<string, VhidConfig>();
  const addressOwner = new Map<string, VhidConfig>();

  for (const v of model.vhids) {
    checkRange(out, v, 'vhid', v.vhid, 1, 255, Code.VHID);
    checkRange(out, v, 'advbase', v.advbase, 1, 255, Code.ADVBASE);
    checkRange(out, v, 'advskew', v.advskew, 0, 254, Code.ADVSKEW);

    if (!/^[^\s/]{1,15}$/.test(v.interface) || v.interface === '.' || v.interface === '..') {
      out.push(error(locate(v, 'interface'), Code.INTERFACE, `"${v.interface}" is not an interface name (1..15 characters, no "/" or spaces)`));
    }

    if (Buffer.byteLength(v.password, 'utf8') > MAX_PASSWORD_BYTES) {
      out.push(
        error(
          locate(v, 'password'),
          Code.PASSWORD_LENGTH,
          `password is longer than ${MAX_PASSWORD_BYTES} bytes; the kernels silently truncate it to ` +
            `${MAX_PASSWORD_BYTES} bytes, so peers would not interoperate`,
        ),
      );
    }

    const first = byKey.get(v.key);
    if (first !== undefined) {
      out.push(error(locate(v), Code.VHID_DUPLICATE, `vhid ${v.vhid} on ${v.interface} is already defined at ${formatRef(locate(first))}`));
    } else {
      byKey.set(v.key, v);
    }

    if (v.addresses.length === 0) {
      out.push(error(locate(v), Code.NO_ADDRESS, `vhid ${v.vhid} on ${v.interface} has no address`));
    }
    const own = new Set<string>();
    v.addresses.forEach((a, i) => {
      const where = locate(v, `addresses.${i}`);
      if (!isCidr(a)) {
        out.push(error(where, Code.ADDRESS, `"${a}" is not an IPv4 or IPv6 address or CIDR`));
        return;
      }
      const ip = hostPart(a);
      if (own.has(ip)) {
        out.push(warning(where, Code.WARN_ADDRESS_DUPLICATE, `${ip} is listed twice in vhid ${v.vhid}`));
        return;
      }
      own.add(ip);
      const other = addressOwner.get(ip);
      if (other !== undefined && other.key !== v.key) {
        out.push(warning(where, Code.WARN_ADDRESS_DUPLICATE, `${ip} is also an address of ${other.key} (${formatRef(locate(other))})`));
      } else {
        addressOwner.set(ip, v);
      }
    });

    if (v.peer !== undefined && !isIPv4(v.peer)) {
      out.push(error(locate(v, 'peer'), Code.PEER, `peer "${v.peer}" is not an IPv4 address`));
    } else if (v.peer !== undefined && isMulticast4(v.peer)) {
      // The first octet decides (FreeBSD PR 284872 tested the last one): 198.51.100.224 is unicast.
      out.push(error(locate(v, 'peer'), Code.PEER, `peer ${v.peer} is a multicast address; leave peer out (FreeBSD: mcast) for the multicast group`));
    }
    if (v.peer6 !== undefined && !isIPv6(v.peer6.replace(/%[^%]*$/, ''))) {
      out.push(error(locate(v, 'peer6'), Code.PEER, `peer6 "${v.peer6}" is not an IPv6 address`));
    } else if (v.peer6 !== undefined && isMulticast6(v.peer6)) {
      out.push(error(locate(v, 'peer6'), Code.PEER, `peer6 ${v.peer6} is a multicast address; leave peer6 out (FreeBSD: mcast6) for ff02::12`));
    }
    if (v.unicast === 'openbsd' && v.peer6 !== undefined) {
      out.push(
        error(
          locate(v, 'peer6'),
          Code.PEER,
          `unicast = openbsd (carppeer) is IPv4 only: OpenBSD sends IPv6 adverts to ff02::12 always; use unicast = freebsd for peer6`,
        ),
      );
    }
    if (v.unicast !== undefined && v.peer === undefined && v.peer6 === undefined) {
      out.push(warning(locate(v, 'unicast'), Code.WARN_IGNORED, `unicast = ${v.unicast} has no effect without peer or peer6`));
    }
    if (v.srcip !== undefined && isIP(v.srcip) === 0) {
      out.push(error(locate(v, 'srcip'), Code.SRCIP, `srcip "${v.srcip}" is not an IP address`));
    }
    for (const g of v.groups ?? []) {
      // Same rules as OpenBSD interface groups, which carpdemote names.
      if (!/^[A-Za-z_][A-Za-z0-9_-]{0,14}$/.test(g) || /\d$/.test(g)) {
        out.push(error(locate(v, 'groups'), Code.GROUP, `group "${g}" must be 1..15 letters, digits, "_" or "-", start with a letter and not end in a digit`));
      }
    }
    for (const key of ['upscript', 'downscript'] as const) {
      const script = v[key];
      if (script !== undefined && !isAbsolute(script)) {
        out.push(warning(locate(v, key), Code.WARN_SCRIPT_PATH, `${key} "${script}" is not an absolute path; it is looked up from carpd's working directory`));
      }
    }
  }
  out.push(...vmacDiagnostics(model));
  return out;
}

function checkRange(out: Diagnostic[], v: VhidConfig, field: 'vhid' | 'advbase' | 'advskew', value: number, min: number, max: number, code: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    out.push(error(locate(v, field), code, `${field} must be ${min}..${max}, not ${value}`));
  }
}

/** `a.b.c.d/0..32` or `ipv6/0..128`. */
export function isCidr(s: string): boolean {
  const slash = s.lastIndexOf('/');
  if (slash === -1) return false;
  const ip = s.slice(0, slash);
  const prefix = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix)) return false;
  const n = Number(prefix);
  if (isIPv4(ip)) return n <= 32;
  if (isIPv6(ip)) return n <= 128;
  return false;
}

function hostPart(cidr: string): string {
  return cidr.slice(0, cidr.lastIndexOf('/')).toLowerCase();
}

function formatRef(r: SourceRef): string {
  return r.line > 0 ? `${r.file}:${r.line}` : r.file;
}

/** A network, not a host: a prefix shorter than the address. */
function isNetwork(c: Cidr): boolean {
  return c.prefix < (c.family === 4 ? 32 : 128);
}

function isLinkLocal(c: Cidr): boolean {
  return c.family === 6 && /^fe[89ab]/i.test(c.ip);
}

/**
 * Checks that need the host's own interface addresses: a VIP outside every subnet of its parent
 * (a warning: a routed /32 can be meant), and one vhid used twice on one segment (an error: the
 * two would fight as one virtual router).
 */
export function validateNetwork(model: CarpModel, interfaces: readonly InterfaceAddress[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  // Each interface's subnets and each vhid's networks are worked out once: recomputing them per
  // vhid (and per pair of vhids) made 2,500 copies of one stanza take seconds.
  const byName = new Map<string, { c: Cidr; i: InterfaceAddress }[]>();
  for (const i of interfaces) {
    const c = splitCidr(i.cidr);
    if (c === undefined || !isNetwork(c) || isLinkLocal(c)) continue;
    const list = byName.get(i.name);
    // The same subnet given twice (a stanza repeated) is one subnet.
    if (list?.some((x) => x.i.cidr === i.cidr)) continue;
    if (list) list.push({ c, i });
    else byName.set(i.name, [{ c, i }]);
  }
  const subnets = (ifname: string) => byName.get(ifname) ?? [];

  for (const v of model.vhids) {
    const own = subnets(v.interface);
    v.addresses.forEach((a, idx) => {
      const c = splitCidr(a);
      if (c === undefined || isLinkLocal(c)) return;
      const same = own.filter((s) => s.c.family === c.family);
      if (same.length === 0 || same.some((s) => cidrContains(s.c, c.ip))) return;
      const where = same.map((s) => `${s.i.cidr} at ${formatRef(s.i.where)}`).join(', ');
      out.push(
        warning(locate(v, `addresses.${idx}`), Code.WARN_SUBNET, `${c.ip} is outside the subnet${same.length > 1 ? 's' : ''} of ${v.interface} (${where})`),
      );
    });
  }

  const nets = new Map<VhidConfig, Cidr[]>();
  const networks = (v: VhidConfig): Cidr[] => {
    let n = nets.get(v);
    if (n === undefined) {
      n = [...subnets(v.interface).map((s) => s.c), ...v.addresses.map(splitCidr).filter((c): c is Cidr => c !== undefined && isNetwork(c) && !isLinkLocal(c))];
      nets.set(v, n);
    }
    return n;
  };
  const seen: VhidConfig[] = [];
  for (const v of model.vhids) {
    for (const w of seen) {
      if (w.vhid !== v.vhid || w.interface === v.interface) continue;
      const shared = networks(v).find((a) => networks(w).some((b) => cidrsOverlap(a, b)));
      if (shared === undefined) continue;
      out.push(
        error(
          locate(v),
          Code.VHID_SEGMENT,
          `vhid ${v.vhid} on ${v.interface} is on the same segment (${shared.ip}/${shared.prefix}) as vhid ${w.vhid} on ` +
            `${w.interface} (${formatRef(locate(w))}); one segment needs distinct vhids`,
        ),
      );
      break;
    }
    seen.push(v);
  }
  return out;
}
