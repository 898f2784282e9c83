/** IPv4/IPv6 address arithmetic for the config layer: netmasks, subnets, ranges. */
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  ip: string;
  prefix: number;
  family: 4 | 6;
}

/** `a.b.c.d/n` or `v6/n` into its parts; undefined unless well formed. */
export function splitCidr(s: string): Cidr | undefined {
  const slash = s.lastIndexOf('/');
  if (slash === -1) return undefined;
  const ip = s.slice(0, slash);
  const p = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (isIPv4(ip) && prefix <= 32) return { ip, prefix, family: 4 };
  if (isIPv6(ip) && prefix <= 128) return { ip, prefix, family: 6 };
  return undefined;
}

/** An IPv4 netmask as FreeBSD/OpenBSD ifconfig take it: dotted, hex (`0xffffff00`) or a prefix length. */
export function netmaskToPrefix(s: string): number | undefined {
  const t = s.startsWith('/') ? s.slice(1) : s;
  if (/^\d{1,2}$/.test(t)) return Number(t) <= 32 ? Number(t) : undefined;
  let bits: number;
  if (/^0x[0-9a-f]{1,8}$/i.test(t)) bits = parseInt(t.slice(2), 16);
  else if (isIPv4(t)) bits = ipv4ToInt(t);
  else return undefined;
  // Contiguous ones from the top: inverting gives 2^k - 1.
  const inv = ~bits >>> 0;
  if ((inv & (inv + 1)) !== 0) return undefined;
  return 32 - Math.log2(inv + 1);
}

/** The dotted netmask of a prefix length (24 → 255.255.255.0). */
export function prefixToNetmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.');
}

export function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0);
}

function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** An IPv6 address as a 128-bit integer. */
export function ipv6ToBigInt(ip: string): bigint {
  let s = ip.toLowerCase().replace(/%.*$/, '');
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const n = ipv4ToInt(dotted[1]!);
    s = s.slice(0, -dotted[1]!.length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

/** One spelling per address: IPv4 as is, IPv6 as a full-width lower-case hex string. */
export function canonicalIp(ip: string): string {
  if (isIPv4(ip)) return ip;
  if (isIPv6(ip)) return ipv6ToBigInt(ip).toString(16).padStart(32, '0');
  return ip.toLowerCase();
}

/** Whether `ip` lies in `cidr` (same family only). */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  if (cidr.family === 4) {
    if (!isIPv4(ip)) return false;
    if (cidr.prefix === 0) return true;
    const mask = (0xffffffff << (32 - cidr.prefix)) >>> 0;
    return (ipv4ToInt(ip) & mask) >>> 0 === (ipv4ToInt(cidr.ip) & mask) >>> 0;
  }
  if (!isIPv6(ip)) return false;
  const shift = BigInt(128 - cidr.prefix);
  return ipv6ToBigInt(ip) >> shift === ipv6ToBigInt(cidr.ip) >> shift;
}

/** Whether two networks overlap: the shorter prefix holds the other's address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  return a.prefix <= b.prefix ? cidrContains(a, b.ip) : cidrContains(b, a.ip);
}

/**
 * FreeBSD's `_aliases` ranges: `192.0.2.1-5` is 192.0.2.1 … 192.0.2.5 (the last octet only).
 * Undefined for anything that is not such a range; at most 256 addresses.
 */
export function expandIpv4Range(s: string): string[] | undefined {
  const m = /^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/.exec(s);
  if (m === null || !isIPv4(`${m[1]}${m[2]}`)) return undefined;
  const from = Number(m[2]);
  const to = Number(m[3]);
  if (to < from || to > 255) return undefined;
  const base = ipv4ToInt(`${m[1]}0`);
  const out: string[] = [];
  for (let i = from; i <= to; i++) out.push(intToIpv4(base + i));
  return out;
}
