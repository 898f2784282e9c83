/**
 * Virtual MAC (`vmac = yes` in a carpd.conf vhid section): a private-mode macvlan per vhid, named
 * `carpv<VHID>` with MAC 00:00:5e:00:01:VHID (src/config/vmac.ts), holding the vhid's VIPs and
 * sending its adverts, so that the neighbours' ARP caches keep one MAC across a failover, as with
 * the kernels' CARP. The way keepalived does it (`use_vmac`, keepalived/vrrp/vrrp_vmac.c
 * netlink_link_add_vmac(), vrrp_if_config.c), through `ip` and /proc/sys:
 *
 * - **Private mode.** macvlan_handle_frame() (drivers/net/macvlan.c) hands a multicast frame whose
 *   *source* MAC is one of its own macvlans' MACs to that macvlan only, and consumes it: the peer's
 *   adverts carry the same vMAC, so the parent's socket never sees them and carpd must listen on
 *   the macvlan (checked here: a raw socket on the parent got nothing, one on the macvlan got every
 *   advert). keepalived found (issue #1209) that bridge and VEPA modes do not receive them at all.
 * - **sysctls** (the values before are remembered and put back when the vhid goes):
 *   - on the macvlan: `arp_ignore=1` (it must not answer ARP for the parent's address with the
 *     vMAC), `accept_local=1`, `rp_filter=0` (the adverts' source is routed via the parent, and the
 *     macvlan of a BACKUP has no address), `promote_secondaries=1`; IPv6: `addrgenmode none` (no
 *     link-local), `accept_dad=0`, `dad_transmits=0`, `router_solicitations=0`, `accept_ra=0`, so
 *     a BACKUP's macvlan sends no DAD, RS or MLD from the vMAC (keepalived issue #175, PR #1985);
 *   - on the parent: `arp_ignore=1` and `arp_filter=1`, so the parent does not answer ARP for a
 *     VIP with its own MAC, and still answers for its own address; and, beyond keepalived's list,
 *     `arp_announce=2`: a MASTER's reply from the VIP leaves by the parent's route, and the ARP
 *     request it sends for the client then carried the VIP as sender address with the parent's
 *     MAC (arp_solicit() in net/ipv4/arp.c takes the packet's source when it is any local
 *     address), which rewrote the client's entry for the VIP to the parent MAC (seen in
 *     test/integration/vmac.test.ts before this was set); with 2 the parent's own address is used;
 *   - `net.ipv4.conf.all.rp_filter` is max()ed with every interface's value by the kernel: when it
 *     is set, its value moves to each interface (and `default`) and `all` goes to 0, as keepalived
 *     does (vrrp_if_config.c, and its doc/NOTE_vrrp_vmac.txt on `conf.all` overriding);
 *   - IGMP and MLD reports are dropped on their way out of the macvlans by carpd's nftables table
 *     `inet carpd_vmac` (filter() below): joining 224.0.0.18 on a BACKUP's macvlan, or deleting
 *     an IPv6 VIP from an old MASTER's, would send one from the vMAC and move the vMAC to the wrong
 *     switch port (keepalived #1957, #882). Without nft, `net.ipv4.igmp_link_local_mcast_reports=0`
 *     (netns-wide) stops the IGMP ones.
 * - **Crash safety.** The values before are also written to `<state_dir>/vmac-sysctl.json`: after a
 *   kill -9 the next start finds its own macvlans (reused when they match, replaced when not) and
 *   the file, so the values it puts back at the end are the ones from before the first start, not
 *   the ones the killed daemon left behind.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CarpModel } from '../config/model.js';
import { vmacAddress, vmacName } from '../config/vmac.js';
import type { RunCommand } from '../ports/exec.js';
import { LOG, type Logger } from '../ports/logger.js';

const IP_TIMEOUT_MS = 5_000;
const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;
export const VMAC_STATE_FILE = 'vmac-sysctl.json';

/** One macvlan as wanted. */
export interface VmacSpec {
  name: string;
  parent: string;
  mac: string;
}

/** The macvlans a model asks for, one per vmac vhid. */
export function vmacSpecs(model: CarpModel): VmacSpec[] {
  return model.vhids.filter((v) => v.vmac).map((v) => ({ name: vmacName(v.vhid), parent: v.interface, mac: vmacAddress(v.vhid) }));
}

/** sysctls a macvlan gets (relative to /proc/sys). */
export function macvlanSysctls(name: string): [string, string][] {
  return [
    [`net/ipv4/conf/${name}/arp_ignore`, '1'],
    [`net/ipv4/conf/${name}/accept_local`, '1'],
    [`net/ipv4/conf/${name}/rp_filter`, '0'],
    [`net/ipv4/conf/${name}/promote_secondaries`, '1'],
    [`net/ipv6/conf/${name}/accept_dad`, '0'],
    [`net/ipv6/conf/${name}/dad_transmits`, '0'],
    [`net/ipv6/conf/${name}/router_solicitations`, '0'],
    [`net/ipv6/conf/${name}/accept_ra`, '0'],
  ];
}

/** sysctls the parent of a macvlan gets. */
export function parentSysctls(parent: string): [string, string][] {
  return [
    [`net/ipv4/conf/${parent}/arp_ignore`, '1'],
    [`net/ipv4/conf/${parent}/arp_filter`, '1'],
    [`net/ipv4/conf/${parent}/arp_announce`, '2'],
  ];
}

export const IGMP_LL_REPORTS = 'net/ipv4/igmp_link_local_mcast_reports';

/** carpd's nftables table that keeps IGMP and MLD reports from leaving a macvlan. */
export const VMAC_TABLE = 'carpd_vmac';

/**
 * The table, replaced atomically (the flood guard's idiom: `table; delete table; table {…}` in one
 * transaction, so a leftover from a kill -9 is replaced, not doubled). Reports go through the
 * LOCAL_OUT hook (net/ipv4/igmp.c igmpv3_sendpack() → ip_local_out(); net/ipv6/mcast.c
 * mld_sendpack() → NF_HOOK(NF_INET_LOCAL_OUT)), so an output chain sees them, as keepalived's
 * PR #1403 filter does; its issue #2452 is why MLDv1 reports and dones are in the set too.
 */
export function vmacRuleset(): string {
  return [
    `table inet ${VMAC_TABLE}`,
    `delete table inet ${VMAC_TABLE}`,
    `table inet ${VMAC_TABLE} {`,
    '  chain out {',
    '    type filter hook output priority 0; policy accept;',
    '    oifname "carpv*" ip protocol igmp drop',
    '    oifname "carpv*" icmpv6 type { mld-listener-report, mld-listener-done, mld2-listener-report } drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** What `ip -d -j link show` says about an existing interface, as far as it matters here. */
export interface LinkFacts {
  kind?: string;
  mode?: string;
  mac?: string;
  parent?: string;
}

/** Whether an existing interface is the macvlan wanted (then it is reused). */
export function matches(facts: LinkFacts, spec: VmacSpec): boolean {
  return facts.kind === 'macvlan' && facts.mode === 'private' && facts.mac?.toLowerCase() === spec.mac && facts.parent === spec.parent;
}

/** Parse `ip -d -j link show dev NAME`. */
export function parseLink(json: string): LinkFacts | undefined {
  let arr: unknown;
  try {
    arr = JSON.parse(json);
  } catch {
    return undefined;
  }
  const l = Array.isArray(arr) ? (arr[0] as Record<string, unknown> | undefined) : undefined;
  if (!l) return undefined;
  const info = l.linkinfo as { info_kind?: string; info_data?: { mode?: string } } | undefined;
  return {
    ...(info?.info_kind ? { kind: info.info_kind } : {}),
    ...(info?.info_data?.mode ? { mode: info.info_data.mode } : {}),
    ...(typeof l.address === 'string' ? { mac: l.address } : {}),
    ...(typeof l.link === 'string' ? { parent: l.link } : {}),
  };
}

export interface VmacOptions {
  run: RunCommand;
  logger: Logger;
  /** Where the values before are kept across a kill -9 (the daemon's state_dir). */
  stateDir?: string;
  /** Default /proc/sys (unit tests pass a directory of their own). */
  procSys?: string;
}

export class LinuxVmac {
  private readonly procSys: string;
  private readonly stateFile: string | undefined;
  /** sysctl path → its value before carpd first changed it. */
  private originals = new Map<string, string>();
  /** Macvlans carpd has set up, by name. */
  private readonly live = new Map<string, VmacSpec>();
  private loaded = false;
  /** The nftables table is loaded. */
  private filtered = false;
  private warnedNft = false;

  constructor(private readonly opts: VmacOptions) {
    this.procSys = opts.procSys ?? '/proc/sys';
    this.stateFile = opts.stateDir ? join(opts.stateDir, VMAC_STATE_FILE) : undefined;
  }

  /** The macvlans now set up. */
  names(): string[] {
    return [...this.live.keys()];
  }

  /**
   * Create (or reuse) the macvlan of every vmac vhid in `model` and set the sysctls, before the
   * engine opens its sockets on them. Macvlans of vhids no longer in the model are left for
   * prune(), after the engine has bowed out on them.
   */
  async apply(model: CarpModel): Promise<void> {
    this.loadOriginals();
    const specs = vmacSpecs(model);
    if (specs.length === 0) {
      // Values a killed run left changed, and no vmac vhid now: put them back.
      if (this.live.size === 0 && this.originals.size > 0) this.restoreAll();
      return;
    }
    await this.filter();
    this.globals();
    for (const spec of specs) {
      for (const n of [spec.name, spec.parent]) {
        if (!IFNAME_RE.test(n)) throw new Error(`vmac: bad interface name ${JSON.stringify(n)}`);
      }
      const have = this.live.get(spec.name);
      if (have && have.parent === spec.parent && have.mac === spec.mac) continue;
      await this.ensureLink(spec);
      for (const [p, v] of parentSysctls(spec.parent)) this.set(p, v);
      this.live.set(spec.name, spec);
    }
  }

  /** Delete the macvlans `model` no longer asks for, and put back what they alone needed. */
  async prune(model: CarpModel): Promise<void> {
    const keep = new Set(vmacSpecs(model).map((s) => s.name));
    for (const name of [...this.live.keys()]) if (!keep.has(name)) await this.drop(name);
    if (this.live.size === 0) {
      await this.unfilter();
      this.restoreAll();
    } else this.restoreParents();
  }

  /** Delete every macvlan and put every sysctl back (clean stop). */
  async remove(): Promise<void> {
    for (const name of [...this.live.keys()]) await this.drop(name);
    await this.unfilter();
    this.restoreAll();
  }

  private async drop(name: string): Promise<void> {
    this.live.delete(name);
    const r = await this.ip(['link', 'del', 'dev', name]);
    if (r.exitCode !== 0 && !/Cannot find device|does not exist/i.test(r.stderr)) {
      this.opts.logger.log(LOG.WARN, `carpd: vmac: cannot delete ${name}: ${r.stderr.trim()}`);
    }
  }

  private async ensureLink(spec: VmacSpec): Promise<void> {
    const shown = await this.ip(['-d', '-j', 'link', 'show', 'dev', spec.name]);
    if (shown.exitCode === 0) {
      const facts = parseLink(shown.stdout);
      if (facts && matches(facts, spec)) {
        this.opts.logger.log(LOG.INFO, `carpd: vmac: reusing ${spec.name} (macvlan private ${spec.mac} on ${spec.parent})`);
      } else {
        // Left by a killed carpd with another parent or address, or a stranger's interface of that
        // name: carpd owns the carpv* names (src/config/vmac.ts).
        this.opts.logger.log(
          LOG.WARN,
          `carpd: vmac: replacing ${spec.name} (${JSON.stringify(facts ?? {})}) with a private macvlan ${spec.mac} on ${spec.parent}`,
        );
        await this.must(['link', 'del', 'dev', spec.name]);
        await this.create(spec);
      }
    } else {
      await this.create(spec);
    }
    for (const [p, v] of macvlanSysctls(spec.name)) this.setOwn(p, v);
    await this.must(['link', 'set', 'dev', spec.name, 'up']);
  }

  private async create(spec: VmacSpec): Promise<void> {
    await this.must(['link', 'add', 'link', spec.parent, 'name', spec.name, 'address', spec.mac, 'type', 'macvlan', 'mode', 'private']);
    // Before it goes up: no link-local address, so no DAD, RS or MLD from the vMAC (keepalived #175).
    await this.must(['link', 'set', 'dev', spec.name, 'addrgenmode', 'none']);
  }

  /** IGMP reports for 224.0.0.X off, and conf.all.rp_filter moved to the interfaces. */
  /**
   * No IGMP or MLD report from a macvlan: with the vMAC as source one moves the vMAC to the
   * sender's switch port, and a BACKUP sends them when it joins 224.0.0.18 (keepalived #1957,
   * #882) and an old MASTER when it deletes an IPv6 VIP (the solicited-node group's change report;
   * test/integration/vmac.test.ts catches both). Without nft, the IGMP half has a kernel knob,
   * net.ipv4.igmp_link_local_mcast_reports=0 (Linux ≥ 4.2, netns-wide; RFC 4541 §2.1.2 has
   * snooping switches flood 224.0.0.X anyway, keepalived #1792); MLD has none, so carpd says so.
   */
  private async filter(): Promise<void> {
    if (this.filtered) return;
    const r = await this.opts.run(['nft', '-f', '-'], { timeoutMs: IP_TIMEOUT_MS, input: vmacRuleset() });
    if (r.exitCode === 0) {
      this.filtered = true;
      return;
    }
    this.set(IGMP_LL_REPORTS, '0');
    if (!this.warnedNft) {
      this.warnedNft = true;
      this.opts.logger.log(
        LOG.WARN,
        `carpd: vmac: cannot load the nftables table inet ${VMAC_TABLE} (${(r.stderr || r.spawnError || 'failed').trim()}): IGMP reports for 224.0.0.X are off netns-wide instead; MLD reports from an IPv6 VIP's macvlan are not stopped`,
      );
    }
  }

  private async unfilter(): Promise<void> {
    if (!this.filtered) return;
    this.filtered = false;
    const r = await this.opts.run(['nft', 'delete', 'table', 'inet', VMAC_TABLE], { timeoutMs: IP_TIMEOUT_MS });
    if (r.exitCode !== 0 && !/No such file or directory/.test(r.stderr))
      this.opts.logger.log(LOG.WARN, `carpd: vmac: cannot delete table inet ${VMAC_TABLE}: ${r.stderr.trim()}`);
  }

  private globals(): void {
    const all = this.read('net/ipv4/conf/all/rp_filter');
    if (all === undefined || all === '0') return;
    const level = Number(all);
    let ifnames: string[] = [];
    try {
      ifnames = readdirSync(join(this.procSys, 'net/ipv4/conf'));
    } catch {
      // no /proc/sys: nothing to move
    }
    for (const i of ifnames) {
      if (i === 'all' || i.startsWith('carpv')) continue;
      const p = `net/ipv4/conf/${i}/rp_filter`;
      const cur = Number(this.read(p) ?? '0');
      if (cur < level) this.set(p, String(level));
    }
    this.set('net/ipv4/conf/all/rp_filter', '0');
    this.opts.logger.log(LOG.WARN, `carpd: vmac: net.ipv4.conf.all.rp_filter was ${all}: moved to each interface and set to 0, so the macvlans can receive`);
  }

  private read(rel: string): string | undefined {
    try {
      return readFileSync(join(this.procSys, rel), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  /** Set a sysctl carpd puts back later; the value before is remembered once (and persisted). */
  private set(rel: string, value: string): void {
    const before = this.read(rel);
    if (before === undefined) {
      this.opts.logger.log(LOG.WARN, `carpd: vmac: cannot read ${rel.replaceAll('/', '.')}`);
      return;
    }
    if (!this.originals.has(rel)) {
      this.originals.set(rel, before);
      this.saveOriginals();
    }
    if (before !== value) this.write(rel, value);
  }

  /** A macvlan's own sysctl: it goes with the interface, nothing to put back. */
  private setOwn(rel: string, value: string): void {
    if (this.read(rel) === undefined) return; // IPv6 off in this kernel, say
    this.write(rel, value);
  }

  private write(rel: string, value: string): void {
    try {
      writeFileSync(join(this.procSys, rel), `${value}\n`);
    } catch (err) {
      this.opts.logger.log(LOG.WARN, `carpd: vmac: cannot set ${rel.replaceAll('/', '.')} = ${value}: ${(err as Error).message}`);
    }
  }

  /** Parents no longer carrying a macvlan get their values back. */
  private restoreParents(): void {
    const parents = new Set([...this.live.values()].map((s) => s.parent));
    for (const [rel, v] of [...this.originals]) {
      const m = /^net\/ipv4\/conf\/([^/]+)\/(arp_ignore|arp_filter)$/.exec(rel);
      if (!m || parents.has(m[1]!)) continue;
      this.write(rel, v);
      this.originals.delete(rel);
    }
    this.saveOriginals();
  }

  private restoreAll(): void {
    // conf.all last: every interface has its own value back before the max() changes again.
    const entries = [...this.originals].sort(([a], [b]) => Number(a.includes('/all/')) - Number(b.includes('/all/')));
    for (const [rel, v] of entries) if (this.read(rel) !== undefined) this.write(rel, v);
    this.originals.clear();
    if (this.stateFile) rmSync(this.stateFile, { force: true });
  }

  private loadOriginals(): void {
    if (this.loaded || !this.stateFile) return;
    this.loaded = true;
    try {
      const obj = JSON.parse(readFileSync(this.stateFile, 'utf8')) as Record<string, unknown>;
      for (const [k, v] of Object.entries(obj)) if (typeof v === 'string' && !this.originals.has(k)) this.originals.set(k, v);
      this.opts.logger.log(LOG.INFO, `carpd: vmac: ${this.originals.size} sysctl value(s) from a previous run in ${this.stateFile}`);
    } catch {
      // none: a clean start
    }
  }

  private saveOriginals(): void {
    if (!this.stateFile) return;
    try {
      if (this.originals.size === 0) {
        rmSync(this.stateFile, { force: true });
        return;
      }
      mkdirSync(dirname(this.stateFile), { recursive: true });
      const tmp = `${this.stateFile}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(Object.fromEntries(this.originals), null, 1)}\n`, { mode: 0o600 });
      renameSync(tmp, this.stateFile);
    } catch (err) {
      this.opts.logger.log(LOG.WARN, `carpd: vmac: cannot write ${this.stateFile}: ${(err as Error).message}`);
    }
  }

  private ip(args: string[]) {
    return this.opts.run(['ip', ...args], { timeoutMs: IP_TIMEOUT_MS });
  }

  private async must(args: string[]): Promise<void> {
    const r = await this.ip(args);
    if (r.exitCode !== 0) throw new Error(`vmac: ip ${args.join(' ')}: ${(r.stderr || r.spawnError || 'failed').trim()}`);
  }
}
