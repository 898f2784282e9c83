/**
 * Names for the kernel's vhids from pfSense's or OPNsense's `/conf/config.xml`: each CARP virtual
 * IP is a `<vip>` under `<virtualip>` with `<mode>carp</mode>`, the friendly interface name
 * (`wan`, `lan`, `optN`) in `<interface>`, `<vhid>`, and the admin's `<descr>`; the friendly name
 * maps to the real one through `<interfaces><wan><if>igb0</if>…`. Field names as pfSense's
 * interfaces.inc (interface_carp_configure() reads $vip['interface'], ['vhid'], ['advskew'] …) and
 * the pfsensible ansible VIP module spell them; OPNsense keeps the same fields, with a `uuid`
 * attribute on `<vip>` in its MVC model. Not a general XML parser: it reads these elements only,
 * and refuses input beyond its bounds. Pure: no I/O.
 */
import { IFNAME_RE, parseIntIn, reject, type Reject } from './text.js';

/** config.xml holds certificates and packages' settings; far more than this is not a firewall's config. */
export const MAX_CONFIG_XML = 16 * 1024 * 1024;
const MAX_VIPS = 4096;
const MAX_DESCR = 256;

export interface PfsenseCarpVip {
  vhid: number;
  /** The friendly name (`wan`) as written. */
  friendly: string;
  /** The real interface (`igb0`), when <interfaces> names it. */
  ifname?: string;
  descr?: string;
  subnet?: string;
}

export type PfsenseVips = { kind: 'vips'; vips: PfsenseCarpVip[]; names: Map<string, string> } | Reject;

function decode(s: string): string {
  const cdata = /^\s*<!\[CDATA\[([\s\S]*?)\]\]>\s*$/.exec(s);
  if (cdata) return cdata[1]!;
  return s.replace(/&(amp|lt|gt|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});/g, (_m, e: string) => {
    if (e === 'amp') return '&';
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    const n = e.startsWith('#x') ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1));
    return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : '';
  });
}

/** The text of the first `<tag>` directly findable in `body` (empty for `<tag/>`), or undefined. */
function field(body: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${tag}>)`).exec(body);
  if (!m) return undefined;
  return m[1] === undefined ? '' : decode(m[1]).trim();
}

/** Friendly interface name → real interface, from `<interfaces>`. */
function interfaceMap(xml: string): Map<string, string> {
  const out = new Map<string, string>();
  const block = /<interfaces(?:\s[^>]*)?>([\s\S]*?)<\/interfaces>/.exec(xml);
  if (!block) return out;
  const child = /<([A-Za-z_][\w.-]{0,31})(?:\s[^>]*)?>([\s\S]*?)<\/\1>/g;
  // Bounded: each match consumes its element.
  for (const m of block[1]!.matchAll(child)) {
    const real = field(m[2]!, 'if');
    if (real !== undefined && IFNAME_RE.test(real)) out.set(m[1]!, real);
    if (out.size > MAX_VIPS) break;
  }
  return out;
}

/** Reads the CARP VIPs and builds `VHID@IF` → description (several descriptions of one vhid joined by `, `). Never throws. */
export function parsePfsenseVips(xml: string): PfsenseVips {
  if (typeof xml !== 'string') return reject('not a string');
  if (xml.length > MAX_CONFIG_XML) return reject(`longer than ${MAX_CONFIG_XML} characters`);
  const text = xml.replace(/<!--[\s\S]*?-->/g, '');
  if (!/<(pfsense|opnsense)(?:\s[^>]*)?>/.test(text)) return reject('not a pfSense or OPNsense config.xml');
  const ifs = interfaceMap(text);
  const vips: PfsenseCarpVip[] = [];
  const names = new Map<string, string>();
  const block = /<virtualip(?:\s[^>]*)?>([\s\S]*?)<\/virtualip>/.exec(text);
  if (!block) return { kind: 'vips', vips, names };
  for (const m of block[1]!.matchAll(/<vip(?:\s[^>]*)?>([\s\S]*?)<\/vip>/g)) {
    if (vips.length >= MAX_VIPS) return reject(`more than ${MAX_VIPS} virtual IPs`);
    const body = m[1]!;
    if (field(body, 'mode') !== 'carp') continue;
    const vhid = parseIntIn(field(body, 'vhid'), 1, 255);
    const friendly = field(body, 'interface');
    if (vhid === undefined || !friendly) continue;
    const vip: PfsenseCarpVip = { vhid, friendly };
    const real = ifs.get(friendly) ?? (IFNAME_RE.test(friendly) ? friendly : undefined);
    if (real !== undefined) vip.ifname = real;
    const descr = field(body, 'descr');
    if (descr) vip.descr = descr.slice(0, MAX_DESCR);
    const subnet = field(body, 'subnet');
    if (subnet) vip.subnet = subnet;
    vips.push(vip);
    if (vip.ifname === undefined || vip.descr === undefined) continue;
    const key = `${vhid}@${vip.ifname}`;
    const had = names.get(key);
    if (had === undefined) names.set(key, vip.descr);
    else if (!had.split(', ').includes(vip.descr)) names.set(key, `${had}, ${vip.descr}`);
  }
  return { kind: 'vips', vips, names };
}
