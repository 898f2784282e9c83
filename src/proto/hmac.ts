import { createHmac, timingSafeEqual } from 'node:crypto';
import { parseIpv4 } from './ipv4.js';
import { CARP_ADVERTISEMENT, CARP_MD_LEN, CARP_VERSION } from './carp-header.js';

/** The kernels strlcpy the passphrase into a 20-byte sc_key: at most 19 bytes survive. */
export const CARP_KEY_MAXLEN = 19;

/** An address that makeAuthContext cannot parse (a configuration error, never a packet error). */
export class AddressError extends Error {
  readonly code = 'CARPD_ERR_ADDRESS';
  constructor(readonly address: string) {
    super(`not an IPv4 or IPv6 address: ${JSON.stringify(address)}`);
    this.name = 'AddressError';
  }
}

/**
 * Everything per vhid that the HMAC needs except the counter, computed once: the key and the
 * message prefix `version ‖ type ‖ vhid ‖ IPv4 addrs ‖ IPv6 addrs` in both variants.
 */
export interface AuthContext {
  readonly key: Buffer;
  readonly vhid: number;
  /** Prefix without link-local IPv6 addresses (OpenBSD HMAC_NOV6LL): what carpd signs. */
  readonly prefix: Buffer;
  /** Prefix with link-local IPv6 addresses, scope zeroed (FreeBSD); undefined when there are none. */
  readonly prefixLl: Buffer | undefined;
}

/** The key as the kernels hold it: bytes up to the first NUL, at most 19. */
function carpKey(password: string | Buffer): Buffer {
  const raw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const nul = raw.indexOf(0);
  return Buffer.from(raw.subarray(0, Math.min(nul < 0 ? raw.length : nul, CARP_KEY_MAXLEN)));
}

/** Parse an IPv6 address (no zone, no prefix) into 16 bytes; undefined if malformed. */
export function parseIpv6(s: string): Buffer | undefined {
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.includes('.', lastColon)) {
    // A dotted IPv4 tail ("::ffff:1.2.3.4") is the last two groups.
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    text = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = groupsOf(halves[0]!);
  const right = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!left || !right) return undefined;
  const fill = 8 - left.length - right.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const groups = [...left, ...new Array<number>(fill).fill(0), ...right];
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(g, i * 2));
  return buf;
}

type ParsedAddress = { family: 4; value: number } | { family: 6; bytes: Buffer; linkLocal: boolean };

/** Accepts `a.b.c.d`, IPv6, either with `/prefix`, IPv6 also with `%zone`; both are dropped. */
function parseAddress(input: string): ParsedAddress {
  const bare = input
    .trim()
    .replace(/\/\d{1,3}$/, '')
    .replace(/%[^%/]*$/, '');
  const v4 = parseIpv4(bare);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIpv6(bare);
  if (!v6) throw new AddressError(input);
  const linkLocal = v6[0] === 0xfe && (v6[1]! & 0xc0) === 0x80;
  // OpenBSD zeroes s6_addr16[1], where KAME embeds the scope of a link-local.
  if (linkLocal) v6.fill(0, 2, 4);
  return { family: 6, bytes: v6, linkLocal };
}

/**
 * Build the HMAC context of one vhid. Addresses are hashed like OpenBSD carp_hmac_prepare_ctx():
 * IPv4 ascending numerically, IPv6 ascending by bytes, each distinct address once; the
 * kernels' selection loops can never pick 0.0.0.0, 255.255.255.255, :: or ff..ff, nor do we.
 */
export function makeAuthContext(password: string | Buffer, vhid: number, addresses: string[]): AuthContext {
  const v4 = new Set<number>();
  const v6 = new Map<string, { bytes: Buffer; linkLocal: boolean }>();
  for (const a of addresses) {
    const p = parseAddress(a);
    if (p.family === 4) {
      if (p.value !== 0 && p.value !== 0xffffffff) v4.add(p.value);
    } else {
      const hex = p.bytes.toString('hex');
      if (!/^(0{32}|f{32})$/.test(hex)) v6.set(hex, p);
    }
  }
  const v4sorted = [...v4].sort((a, b) => a - b);
  const v6sorted = [...v6.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
  const build = (withLl: boolean): Buffer => {
    const six = v6sorted.filter((a) => withLl || !a.linkLocal);
    const buf = Buffer.alloc(3 + 4 * v4sorted.length + 16 * six.length);
    buf[0] = CARP_VERSION;
    buf[1] = CARP_ADVERTISEMENT;
    buf[2] = vhid & 0xff;
    v4sorted.forEach((n, i) => buf.writeUInt32BE(n, 3 + 4 * i));
    six.forEach((a, i) => a.bytes.copy(buf, 3 + 4 * v4sorted.length + 16 * i));
    return buf;
  };
  const hasLl = v6sorted.some((a) => a.linkLocal);
  return { key: carpKey(password), vhid: vhid & 0xff, prefix: build(false), prefixLl: hasLl ? build(true) : undefined };
}

function hmac(key: Buffer, prefix: Buffer, counter: bigint): Buffer {
  const c = Buffer.allocUnsafe(8);
  c.writeBigUInt64BE(BigInt.asUintN(64, counter));
  return createHmac('sha1', key).update(prefix).update(c).digest();
}

/** The 20-byte md carpd sends: HMAC-SHA1 without link-local IPv6 addresses. */
export function signAdvert(ctx: AuthContext, counter: bigint): Buffer {
  return hmac(ctx.key, ctx.prefix, counter);
}

/** True if md matches either variant (without or with link-locals), compared in constant time. */
export function verifyAdvert(ctx: AuthContext, counter: bigint, md: Buffer): boolean {
  if (md.length !== CARP_MD_LEN) return false;
  if (timingSafeEqual(hmac(ctx.key, ctx.prefix, counter), md)) return true;
  return ctx.prefixLl !== undefined && timingSafeEqual(hmac(ctx.key, ctx.prefixLl, counter), md);
}
