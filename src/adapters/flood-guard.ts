/**
 * The flood guard (`[carpd] flood_guard = nft`): carpd's own nftables table, `inet carpd_guard`,
 * that drops forged CARP in the kernel before it reaches the raw socket.
 *
 * Why in the kernel: a raw socket takes every protocol-112 packet into one receive buffer, and
 * carpd can only tell a forged advert from a real one after it has been read and its HMAC checked.
 * Measured here without the guard: 213,000 forged adverts/s from one source filled the buffer, the
 * master's own adverts were dropped with the junk, and the backup took over. A bigger buffer only
 * delays that. The table drops, at prerouting before conntrack (priority raw), on carpd's own
 * interfaces only, protocol 112 only:
 *
 * - what carpd would drop anyway, without looking at a key: TTL other than 255, a version/type
 *   byte other than 0x21 (CARP v2 advertisement), a vhid carpd does not serve there (the same
 *   checks, in the same order, as checkAdvert in src/proto/advert.ts and FreeBSD's carp_input);
 * - sources that cannot be a peer: not in a subnet of the interface (its IPv4 prefixes, minus the
 *   VIPs) and not a configured unicast peer. Random spoofed sources mostly stop here;
 * - more than a peer could send: per source, more than (vhids on the interface) + 2 packets a
 *   second, with a burst of 2 × vhids + 4 (a peer sends one advert per vhid per advbase, advbase is
 *   at least 1 s, and a master that starts or bows out sends all its vhids at once), counted in a
 *   dynamic set (a `meter`). A full set drops new sources rather than letting them through. The
 *   rate is kept low on purpose: spoofed sources inside the segment's subnet each get that much
 *   through, so a /24 lets at most 252 × 3 = 756 forged adverts a second reach carpd for one
 *   vhid (with 2 × vhids + 8 it was 2,520/s, and a backup on this 2-core machine lost its master
 *   once in 30 s at that rate).
 *
 * What it cannot do: an attacker who sends from a legitimate peer's own address at line rate
 * shares that peer's per-source budget, and only the HMAC tells them apart. Another VRRP/CARP
 * speaker on the same host and interface would lose the adverts of vhids carpd does not serve.
 *
 * The table is carpd's alone: created (atomically replaced) at start and on reload, deleted at
 * exit. After a kill -9 it stays until the next start replaces it, which is idempotent
 * (`table; delete table; table {…}` in one transaction), or `nft delete table inet carpd_guard`.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { isIPv4 } from 'node:net';
import type { CarpModel } from '../config/model.js';
import type { RunCommand } from '../ports/exec.js';
import { LOG, type Logger } from '../ports/logger.js';

export const GUARD_TABLE = 'carpd_guard';
const NFT_TIMEOUT_MS = 10_000;
const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;
/** The CARP v2 advertisement's first byte: version 2 in the high nibble, type 1 in the low. */
const CARP_V2_ADVERT = 0x21;
const MAX_SET = 65_535;

/** What the table says about one interface. */
export interface GuardInterface {
  ifname: string;
  vhids: number[];
  /** Sources allowed (networks `a.b.c.d/len` or single addresses); empty: any source. */
  sources: string[];
  /** Packets per second per source. */
  rate: number;
  /** Packets a source may send at once above the rate. */
  burst: number;
  /** Size of the per-source set. */
  setSize: number;
}

/** Network address of an IPv4 CIDR (`198.18.0.7/24` → `198.18.0.0/24`). */
export function networkOf(cidr: string): string | undefined {
  const [addr, lenText] = cidr.split('/');
  const len = Number(lenText ?? '32');
  if (!addr || !isIPv4(addr) || !Number.isInteger(len) || len < 0 || len > 32) return undefined;
  const n = addr.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const net = (n & mask) >>> 0;
  return `${[net >>> 24, (net >>> 16) & 255, (net >>> 8) & 255, net & 255].join('.')}/${len}`;
}

/** Each interface's IPv4 prefixes (os.networkInterfaces' shape). */
export type InterfaceAddresses = () => NodeJS.Dict<NetworkInterfaceInfo[]>;

/** The guard's view of the model: per interface, its vhids, the sources a peer may have, the rate. */
export function guardPlan(model: CarpModel, addrs: InterfaceAddresses = networkInterfaces): GuardInterface[] {
  const all = addrs();
  const byIf = new Map<string, { vhids: Set<number>; vips: Set<string>; peers: Set<string> }>();
  for (const v of model.vhids) {
    let e = byIf.get(v.interface);
    if (!e) byIf.set(v.interface, (e = { vhids: new Set(), vips: new Set(), peers: new Set() }));
    e.vhids.add(v.vhid);
    for (const a of v.addresses) e.vips.add(a.split('/')[0]!);
    if (v.peer && isIPv4(v.peer)) e.peers.add(v.peer);
  }
  const out: GuardInterface[] = [];
  for (const [ifname, e] of byIf) {
    const nets = new Set<string>();
    let span = 0;
    for (const a of all[ifname] ?? []) {
      // The VIPs come and go with the state; they are not where peers live.
      if (a.family !== 'IPv4' || e.vips.has(a.address) || !a.cidr) continue;
      const net = networkOf(a.cidr);
      if (!net || nets.has(net)) continue;
      nets.add(net);
      span += 2 ** (32 - Number(net.split('/')[1]));
    }
    const sources = nets.size === 0 ? [] : [...nets, ...e.peers];
    const n = e.vhids.size;
    out.push({
      ifname,
      vhids: [...e.vhids].sort((a, b) => a - b),
      sources,
      rate: n + 2,
      burst: 2 * n + 4,
      setSize: sources.length === 0 ? MAX_SET : Math.max(64, Math.min(MAX_SET, span + e.peers.size)),
    });
  }
  return out.sort((a, b) => (a.ifname < b.ifname ? -1 : 1));
}

/** The `nft -f` script: replace the table as one transaction (idempotent after a kill -9). */
export function guardRuleset(ifs: GuardInterface[]): string {
  const lines = [
    `table inet ${GUARD_TABLE}`,
    `delete table inet ${GUARD_TABLE}`,
    `table inet ${GUARD_TABLE} {`,
    '\tcomment "carpd flood_guard = nft: created at start, removed at exit"',
  ];
  const vmap: string[] = [];
  ifs.forEach((g, i) => {
    if (!IFNAME_RE.test(g.ifname)) throw new Error(`flood guard: bad interface name ${JSON.stringify(g.ifname)}`);
    lines.push(`\tset src_${i} {`, '\t\ttype ipv4_addr', `\t\tsize ${g.setSize}`, '\t\tflags dynamic,timeout', '\t\ttimeout 30s', '\t}');
    vmap.push(`"${g.ifname}" : jump if_${i}`);
  });
  lines.push('\tchain prerouting {', '\t\ttype filter hook prerouting priority raw; policy accept;');
  if (vmap.length) lines.push(`\t\tmeta nfproto ipv4 ip protocol 112 iifname vmap { ${vmap.join(', ')} }`);
  lines.push('\t}');
  ifs.forEach((g, i) => {
    lines.push(
      `\tchain if_${i} {`,
      '\t\tip ttl != 255 counter drop comment "badttl"',
      `\t\t@th,0,8 != 0x${CARP_V2_ADVERT.toString(16)} counter drop comment "badver"`,
      `\t\t@th,8,8 != { ${g.vhids.join(', ')} } counter drop comment "badvhid"`,
    );
    if (g.sources.length) lines.push(`\t\tip saddr != { ${g.sources.join(', ')} } counter drop comment "badsrc"`);
    lines.push(
      `\t\tupdate @src_${i} { ip saddr limit rate over ${g.rate}/second burst ${g.burst} packets } counter drop comment "flood"`,
      // The update above breaks (adds nothing) when the set is full: such a source is dropped too.
      `\t\tip saddr != @src_${i} counter drop comment "full"`,
      '\t}',
    );
  });
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

export interface FloodGuard {
  apply(model: CarpModel): Promise<void>;
  remove(): Promise<void>;
}

/** The nftables guard. Failing to set it up is logged, never fatal: CARP runs without it. */
export class NftFloodGuard implements FloodGuard {
  private installed = false;

  constructor(
    private readonly run: RunCommand,
    private readonly logger: Logger,
    private readonly addrs: InterfaceAddresses = networkInterfaces,
  ) {}

  async apply(model: CarpModel): Promise<void> {
    const plan = guardPlan(model, this.addrs);
    const r = await this.run(['nft', '-f', '-'], { input: guardRuleset(plan), timeoutMs: NFT_TIMEOUT_MS });
    if (r.exitCode !== 0) {
      const why = r.spawnError ?? (r.stderr.trim() || `exit ${String(r.exitCode)}`);
      this.logger.log(LOG.ERR, `carpd: flood_guard: cannot load table inet ${GUARD_TABLE}: ${why}; running without it`);
      return;
    }
    this.installed = true;
    const desc = plan.map((g) => `${g.ifname} (vhids ${g.vhids.join(',')}, ${g.sources.length ? g.sources.join(' ') : 'any source'}, ${g.rate}/s per source)`);
    this.logger.log(LOG.INFO, `carpd: flood_guard: table inet ${GUARD_TABLE} loaded: ${desc.join('; ')}`);
  }

  async remove(): Promise<void> {
    if (!this.installed) return;
    this.installed = false;
    const r = await this.run(['nft', 'delete', 'table', 'inet', GUARD_TABLE], { timeoutMs: NFT_TIMEOUT_MS });
    if (r.exitCode !== 0 && !/No such file/i.test(r.stderr)) {
      this.logger.log(LOG.ERR, `carpd: flood_guard: cannot delete table inet ${GUARD_TABLE}: ${r.spawnError ?? r.stderr.trim()}`);
    }
  }
}
