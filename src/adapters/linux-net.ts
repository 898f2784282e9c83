/**
 * Linux NetBackend: VIPs with iproute2, gratuitous ARP and unsolicited neighbour advertisements
 * as whole frames on an AF_PACKET socket (link-layer.ts), and link state from sysfs.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { run } from './exec.js';
import { spawnStream, type SpawnStream, type StreamingChild } from './kernel-spawn.js';
import { IFA_F_NODAD, LinkLayer, LinkLayerError, RtNetlink, type AddrRequest, type LinkFrame } from './link-layer.js';
import { ETHERTYPE_ARP, gratuitousArp, ipv4Bytes, macBytes } from '../proto/arp.js';
import { ETHERTYPE_IPV6, ipv6Bytes, unsolicitedNa } from '../proto/ndp.js';
import type { RunResult } from '../ports/exec.js';
import type { Logger } from '../ports/logger.js';
import type { NetBackend } from '../ports/net.js';

/** Error with a stable code for a failed address, ARP or link operation. */
export class NetError extends Error {
  constructor(
    readonly code: 'CARPD_ERR_NET' | 'CARPD_ERR_NO_TOOL',
    message: string,
  ) {
    super(message);
    this.name = 'NetError';
  }
}

export interface LinuxNetOptions {
  logger?: Logger;
  /** Limit for each `ip` command. Default 5000 ms. */
  timeoutMs?: number;
  /** How often watchLinks polls sysfs. Default 200 ms. */
  pollMs?: number;
  /** Starts `ip monitor` (tests pass a fake). */
  spawn?: SpawnStream;
  /** Where net.ipv4.conf lives. Default /proc/sys/net/ipv4/conf. */
  sysctlDir?: string;
  /** Sends gratuitous ARP and NA frames (tests pass one on a fake FFI). */
  link?: LinkLayer;
  /** Adds and deletes VIPs over rtnetlink; `null` uses `ip -batch` only. */
  netlink?: RtNetlink | null;
  /** getifaddrs(3) (os.networkInterfaces; tests pass a fake). */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

/** How long after `ip monitor address` exits it is started again. */
const MONITOR_RESTART_MS = 1_000;

const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;

function checkIfname(ifname: string): void {
  if (!IFNAME_RE.test(ifname) || ifname === '.' || ifname === '..') {
    throw new NetError('CARPD_ERR_NET', `bad interface name ${JSON.stringify(ifname)}`);
  }
}

interface Vip {
  address: string;
  family: 4 | 6;
  /** address/prefix, a bare address taking /32 or /128. */
  cidr: string;
}

/** Parse and normalize a VIP; throws NetError on anything that is not address[/prefix]. */
export function parseVip(cidr: string): Vip {
  const [address = '', prefix, extra] = cidr.split('/');
  const family = isIP(address);
  if ((family !== 4 && family !== 6) || extra !== undefined) throw new NetError('CARPD_ERR_NET', `bad address ${JSON.stringify(cidr)}`);
  const max = family === 4 ? 32 : 128;
  const len = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (!(len >= 0 && len <= max)) throw new NetError('CARPD_ERR_NET', `bad prefix length in ${JSON.stringify(cidr)}`);
  return { address, family, cidr: `${address}/${len}` };
}

/** The Linux NetBackend. Commands run in the process's network namespace. */
export class LinuxNet implements NetBackend {
  private readonly logger: Logger | undefined;
  private readonly timeoutMs: number;
  private readonly pollMs: number;
  /** VIPs this backend added, per interface: primaryAddress never reports one of them. */
  private readonly added = new Map<string, Set<string>>();
  private readonly ipQueue: IpJob[] = [];
  private readonly netlink: RtNetlink | undefined;
  private netlinkBroken = false;
  private readonly garpQueue: GarpJob[] = [];
  private readonly link: LinkLayer;
  private readonly interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
  private readonly spawn: SpawnStream;
  private readonly sysctlDir: string;

  constructor(opts: LinuxNetOptions = {}) {
    this.logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.pollMs = opts.pollMs ?? 200;
    this.spawn = opts.spawn ?? spawnStream;
    this.sysctlDir = opts.sysctlDir ?? '/proc/sys/net/ipv4/conf';
    this.link = opts.link ?? new LinkLayer();
    this.interfaces = opts.interfaces ?? networkInterfaces;
    this.netlink = opts.netlink === null ? undefined : (opts.netlink ?? new RtNetlink());
  }

  /**
   * Every address of `ifnames`, from getifaddrs(3) (os.networkInterfaces(), one netlink dump in
   * glibc): no process is spawned, so a check costs well under a millisecond with hundreds of VIPs
   * and never stalls the advert loop the way an `ip` spawn can. libuv leaves out interfaces that
   * are not up and running, so an interface whose link is down is not in the result, and the
   * reconcile leaves it alone (its vhids are INIT). An IPv4 address with a label (`eth0:1`) is
   * listed under that label: it counts for its interface.
   */
  async addresses(ifnames: string[]): Promise<Record<string, string[]>> {
    for (const ifname of ifnames) checkIfname(ifname);
    return interfaceAddresses(networkInterfaces(), ifnames);
  }

  /**
   * `ip -o monitor address`: one line per address added or deleted anywhere in the namespace;
   * `cb` hears those of `ifnames`. Started again a second after it exits; the periodic check
   * covers the gap.
   */
  watchAddresses(ifnames: string[], cb: (ifname: string) => void): () => void {
    for (const ifname of ifnames) checkIfname(ifname);
    const wanted = new Set(ifnames);
    let stopped = false;
    let child: StreamingChild | undefined;
    let restart: NodeJS.Timeout | undefined;
    let partial = '';
    let said = false;
    const start = () => {
      partial = '';
      child = this.spawn(['ip', '-o', 'monitor', 'address'], undefined, {
        onStdout: (chunk) => {
          const lines = (partial + chunk).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) {
            const ifname = monitorIfname(line);
            if (ifname === undefined || !wanted.has(ifname)) continue;
            try {
              cb(ifname);
            } catch (err) {
              this.log(3, `address watcher callback failed for ${ifname}: ${(err as Error).message}`);
            }
          }
        },
        onExit: (detail) => {
          child = undefined;
          if (stopped) return;
          if (!said) this.log(4, `ip monitor address: ${detail}; VIPs are checked periodically only until it runs again`);
          said = true;
          restart = setTimeout(start, MONITOR_RESTART_MS);
          restart.unref();
        },
      });
    };
    start();
    return () => {
      stopped = true;
      if (restart) clearTimeout(restart);
      child?.stop();
    };
  }

  /** net.ipv4.conf.IFNAME.promote_secondaries before, set to 1 when asked; undefined when unreadable. */
  promoteSecondaries(ifname: string, set: boolean): number | undefined {
    checkIfname(ifname);
    const file = `${this.sysctlDir}/${ifname}/promote_secondaries`;
    try {
      const before = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
      if (set && before !== 1) writeFileSync(file, '1\n');
      return Number.isNaN(before) ? undefined : before;
    } catch (err) {
      this.log(7, `${file}: ${(err as Error).message}`);
      return undefined;
    }
  }

  async addVip(ifname: string, cidr: string): Promise<void> {
    checkIfname(ifname);
    const vip = parseVip(cidr);
    const argv = vip.family === 4 ? ['ip', 'addr', 'add', vip.cidr, 'dev', ifname] : ['ip', '-6', 'addr', 'add', vip.cidr, 'dev', ifname, 'nodad'];
    // EEXIST: "RTNETLINK answers: File exists", or with extack "Error: ipv4: Address already assigned."
    await this.ipCommand(argv, /File exists|already assigned/i, { op: 'add', ifname, vip });
    let set = this.added.get(ifname);
    if (!set) this.added.set(ifname, (set = new Set()));
    set.add(vip.address);
  }

  async delVip(ifname: string, cidr: string): Promise<void> {
    checkIfname(ifname);
    const vip = parseVip(cidr);
    const argv = ['ip', ...(vip.family === 6 ? ['-6'] : []), 'addr', 'del', vip.cidr, 'dev', ifname];
    // Already gone is what we wanted.
    await this.ipCommand(argv, /Cannot assign requested address|not found|No such address/i, { op: 'del', ifname, vip });
    this.added.get(ifname)?.delete(vip.address);
  }

  /**
   * IPv4: one gratuitous ARP request (sender and target both the VIP, src/proto/arp.ts). IPv6: one
   * unsolicited neighbour advertisement with the override flag to ff02::1 from the interface's
   * link-local address (src/proto/ndp.ts). `srcMac` is the Ethernet source and the announced
   * address: the interface's own MAC by default, 00:00:5e:00:01:VHID for a virtual MAC.
   *
   * Calls made in the same turn of the event loop go out together: one address lookup and one
   * sendto per frame on the interface's packet socket, so 255 vhids becoming MASTER announce every
   * VIP within milliseconds, in this process. The VIP must be on the interface (as arping, which
   * binds to it, required): a GARP for an address we do not hold would steal it.
   */
  garp(ifname: string, cidr: string, srcMac?: string): Promise<void> {
    let vip: Vip;
    let mac: Buffer | undefined;
    try {
      checkIfname(ifname);
      vip = parseVip(cidr);
      mac = srcMac === undefined ? undefined : macBytes(srcMac);
    } catch (err) {
      return Promise.reject(err instanceof NetError ? err : new NetError('CARPD_ERR_NET', (err as Error).message));
    }
    return new Promise((resolve, reject) => {
      this.garpQueue.push({ ifname, vip, mac, resolve, reject });
      if (this.garpQueue.length === 1) process.nextTick(() => void this.flushGarp());
    });
  }

  private async flushGarp(): Promise<void> {
    const batch = this.garpQueue.splice(0);
    // One getifaddrs(3) for the whole batch: the addresses held, the MAC, the link-local source.
    const all = this.interfaces();
    const byIf = new Map<string, GarpJob[]>();
    for (const job of batch) {
      let list = byIf.get(job.ifname);
      if (!list) byIf.set(job.ifname, (list = []));
      list.push(job);
    }
    await Promise.all(
      [...byIf].map(async ([ifname, jobs]) => {
        const info = interfaceInfo(all, ifname);
        const ready: { job: GarpJob; frame: LinkFrame }[] = [];
        for (const job of jobs) {
          try {
            ready.push({ job, frame: this.frameFor(ifname, info, job) });
          } catch (err) {
            job.reject(err instanceof NetError ? err : new NetError('CARPD_ERR_NET', (err as Error).message));
          }
        }
        if (ready.length === 0) return;
        let results: (LinkLayerError | undefined)[];
        try {
          results = await this.link.send(
            ifname,
            ready.map((r) => r.frame),
          );
        } catch (err) {
          const e = new NetError('CARPD_ERR_NET', `gratuitous ARP/NA on ${ifname}: ${(err as Error).message}`);
          this.log(7, e.message);
          for (const r of ready) r.job.reject(e);
          return;
        }
        ready.forEach((r, i) => {
          const err = results[i];
          if (err)
            r.job.reject(
              new NetError(
                'CARPD_ERR_NET',
                `${r.job.vip.family === 4 ? 'gratuitous ARP' : 'unsolicited NA'} for ${r.job.vip.address} on ${ifname}: ${err.message}`,
              ),
            );
          else r.job.resolve();
        });
      }),
    );
  }

  private frameFor(ifname: string, info: IfInfo, job: GarpJob): LinkFrame {
    const { vip } = job;
    if (!info.addresses.has(addressKey(vip.address)))
      throw new NetError('CARPD_ERR_NET', `${vip.address} is not on ${ifname}: not announcing an address this node does not hold`);
    const mac = job.mac ?? info.mac;
    if (!mac) throw new NetError('CARPD_ERR_NET', `${ifname} has no Ethernet address`);
    if (vip.family === 4) return { frame: gratuitousArp(mac, vip.address), ethertype: ETHERTYPE_ARP };
    // nd6_na_output() sends from the link-local address; without one (IPv6 link-local
    // generation off), the VIP itself is an address of the interface and a valid source.
    return { frame: unsolicitedNa(mac, info.linkLocal ?? vip.address, vip.address), ethertype: ETHERTYPE_IPV6 };
  }

  /** Close the packet sockets. */
  close(): void {
    this.link.close();
  }

  /**
   * The interface's first IPv4 address that is not one of our VIPs. Read with getifaddrs(3)
   * (os.networkInterfaces(), a netlink dump in glibc): no process is spawned, so a link coming
   * back does not stall the advert loop. The kernel lists the primary address first.
   */
  primaryAddress(ifname: string): string | undefined {
    checkIfname(ifname);
    const ours = this.added.get(ifname);
    for (const a of networkInterfaces()[ifname] ?? []) {
      if (a.family === 'IPv4' && !ours?.has(a.address)) return a.address;
    }
    return undefined;
  }

  linkUp(ifname: string): boolean {
    checkIfname(ifname);
    return readLink(ifname);
  }

  watchLinks(ifnames: string[], cb: (ifname: string, up: boolean) => void): () => void {
    for (const ifname of ifnames) checkIfname(ifname);
    const last = new Map(ifnames.map((ifname) => [ifname, readLink(ifname)]));
    const timer = setInterval(() => {
      for (const [ifname, was] of last) {
        const up = readLink(ifname);
        if (up === was) continue;
        last.set(ifname, up);
        try {
          cb(ifname, up);
        } catch (err) {
          this.log(3, `link watcher callback failed for ${ifname}: ${(err as Error).message}`);
        }
      }
    }, this.pollMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Run one `ip` command, batched with the others asked for in the same turn of the loop (the
   * flush is a nextTick: Node runs it once the promise chains that asked have all run, without
   * waiting for the next loop iteration and whatever I/O it brings first): 255
   * vhids becoming MASTER at once cost one `ip -batch` process, not 255 (each spawn blocks the
   * event loop for milliseconds). A failed batch is retried command by command, so every caller
   * gets its own result. `benign` failures (already there, already gone) count as success.
   */
  private ipCommand(argv: string[], benign: RegExp, change: IpJob['change']): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ipQueue.push({ argv, benign, change, resolve, reject });
      if (this.ipQueue.length === 1) process.nextTick(() => void this.flushIp());
    });
  }

  private async flushIp(): Promise<void> {
    const batch = this.ipQueue.splice(0);
    if (this.netlink && !this.netlinkBroken) {
      try {
        this.applyNetlink(this.netlink, batch);
        return;
      } catch (err) {
        // No koffi, no libc, no socket: `ip` still works, only slower.
        this.netlinkBroken = true;
        this.log(4, `rtnetlink unavailable, adding VIPs with ip -batch: ${(err as Error).message}`);
      }
    }
    if (batch.length === 1) {
      const b = batch[0]!;
      const r = await run(b.argv, { timeoutMs: this.timeoutMs, urgent: true });
      if (r.exitCode !== 0 && !b.benign.test(r.stderr)) b.reject(this.failed(b.argv, r));
      else b.resolve();
      return;
    }
    // Arguments were validated (interface name, parsed address), so a line is safe to join. Batch
    // lines take no `-6`: the address says its family.
    const input =
      batch
        .map((b) =>
          b.argv
            .slice(1)
            .filter((a) => a !== '-6')
            .join(' '),
        )
        .join('\n') + '\n';
    const r = await run(['ip', '-force', '-batch', '-'], { timeoutMs: this.timeoutMs, input, urgent: true });
    const failed = batchFailures(r.stderr);
    batch.forEach((b, i) => {
      const why = failed.get(i + 1);
      if (r.exitCode !== 0 && failed.size === 0) b.reject(this.failed(b.argv, r));
      else if (why !== undefined && !b.benign.test(why)) b.reject(this.failed(b.argv, { ...r, stderr: why }));
      else b.resolve();
    });
  }

  /**
   * The batch over rtnetlink (RtNetlink in link-layer.ts): what `ip` would have done, in this
   * process. Each caller gets its own result, worded as `ip` words it ("RTNETLINK answers: File
   * exists"), so the benign patterns hold for both paths. Throws only when netlink cannot be used
   * at all, before any change was made.
   */
  private applyNetlink(nl: RtNetlink, batch: IpJob[]): void {
    const reqs: AddrRequest[] = [];
    const sent: IpJob[] = [];
    for (const b of batch) {
      const { op, ifname, vip } = b.change;
      const ifindex = this.link.ifindex(ifname);
      if (ifindex <= 0) {
        b.reject(this.failed(b.argv, { exitCode: 1, stdout: '', stderr: `Cannot find device "${ifname}"`, timedOut: false, canceled: false }));
        continue;
      }
      const address = vip.family === 4 ? ipv4Bytes(vip.address) : ipv6Bytes(vip.address);
      const prefix = Number(vip.cidr.split('/')[1]);
      reqs.push({ op, ifindex, family: vip.family, address, prefix, flags: vip.family === 6 && op === 'add' ? IFA_F_NODAD : 0 });
      sent.push(b);
    }
    if (reqs.length === 0) return;
    const results = nl.apply(reqs);
    sent.forEach((b, i) => {
      const errno = results[i]!;
      const why = errno === 0 ? '' : `RTNETLINK answers: ${nl.strerror(errno)}`;
      if (errno !== 0 && !b.benign.test(why)) b.reject(this.failed(b.argv, { exitCode: 2, stdout: '', stderr: why, timedOut: false, canceled: false }));
      else b.resolve();
    });
  }

  private failed(argv: string[], r: RunResult): NetError {
    const err = new NetError('CARPD_ERR_NET', `${argv.join(' ')}: ${oneLine(r)}`);
    this.log(7, err.message);
    return err;
  }

  private log(level: number, message: string): void {
    this.logger?.log(level, message);
  }
}

interface IpJob {
  argv: string[];
  benign: RegExp;
  change: { op: 'add' | 'del'; ifname: string; vip: Vip };
  resolve: () => void;
  reject: (e: Error) => void;
}

interface GarpJob {
  ifname: string;
  vip: Vip;
  mac: Buffer | undefined;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface IfInfo {
  /** Addresses held (labels `IF:x` folded in), without prefix or zone. */
  addresses: Set<string>;
  mac: Buffer | undefined;
  linkLocal: string | undefined;
}

/** An address compared by value: IPv6 text has many spellings of one address. */
function addressKey(address: string): string {
  return isIP(address) === 6 ? ipv6Bytes(address).toString('hex') : address;
}

/** What a GARP on `ifname` needs from os.networkInterfaces()'s answer. */
export function interfaceInfo(all: NodeJS.Dict<NetworkInterfaceInfo[]>, ifname: string): IfInfo {
  const info: IfInfo = { addresses: new Set(), mac: undefined, linkLocal: undefined };
  for (const [name, list] of Object.entries(all)) {
    if (name.split(':')[0] !== ifname || !list) continue;
    for (const a of list) {
      const address = a.address.replace(/%.*$/, '');
      info.addresses.add(addressKey(address));
      if (!info.mac && a.mac && a.mac !== '00:00:00:00:00:00') info.mac = macBytes(a.mac);
      if (a.family === 'IPv6' && /^fe[89ab]/i.test(address)) info.linkLocal ??= address;
    }
  }
  return info;
}

/** The addresses of `ifnames` (labels `IF:x` folded into `IF`) in os.networkInterfaces()'s answer, as `address/prefix`. */
export function interfaceAddresses(all: NodeJS.Dict<NetworkInterfaceInfo[]>, ifnames: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const wanted = new Set(ifnames);
  for (const [name, list] of Object.entries(all)) {
    const ifname = name.split(':')[0]!;
    if (!wanted.has(ifname) || !list) continue;
    const into = (out[ifname] ??= []);
    for (const a of list) if (a.cidr) into.push(a.cidr.replace(/%[^/]*/, ''));
  }
  return out;
}

/**
 * The interface an `ip -o monitor address` line is about: `3: eth0    inet 10.0.0.5/24 …` or
 * `Deleted 3: eth0    inet …` (with `[ADDR]` in front when ip monitors several kinds).
 */
export function monitorIfname(line: string): string | undefined {
  const m = /^(?:\[[A-Z]+\]\s*)?(?:Deleted\s+)?\d+:\s+([^\s@]+)(?:@\S+)?\s+inet6?\s/.exec(line);
  return m?.[1];
}

/**
 * `ip -force -batch -` reports each failed line as its error text followed by
 * `Command failed -:N`; returns line number → error text.
 */
export function batchFailures(stderr: string): Map<number, string> {
  const out = new Map<number, string>();
  let text: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /^Command failed -:(\d+)$/.exec(line.trim());
    if (m) {
      out.set(Number(m[1]), text.join('\n'));
      text = [];
    } else if (line.trim() !== '') text.push(line.trim());
  }
  return out;
}

function oneLine(r: RunResult): string {
  if (r.timedOut) return 'timed out';
  if (r.spawnError) return r.spawnError;
  const text = r.stderr.trim().split('\n').slice(-1)[0] ?? '';
  return text || (r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`);
}

/** Carrier present and the kernel calls the link usable. Unreadable means down. */
function readLink(ifname: string): boolean {
  try {
    const carrier = readFileSync(`/sys/class/net/${ifname}/carrier`, 'utf8').trim();
    if (carrier !== '1') return false;
    const operstate = readFileSync(`/sys/class/net/${ifname}/operstate`, 'utf8').trim();
    // Virtual interfaces without a notion of operstate (dummy, some tunnels) say "unknown".
    return operstate === 'up' || operstate === 'unknown';
  } catch {
    return false;
  }
}

/** Whether the kernel has an interface of this name. */
export function interfaceExists(ifname: string): boolean {
  return existsSync(`/sys/class/net/${ifname}`);
}

/** ucarp's pcap_lookupdev(): the first interface (by name) that is up and not loopback. */
export function firstUpInterface(): string | undefined {
  try {
    return readdirSync('/sys/class/net')
      .sort()
      .find((i) => i !== 'lo' && readFileSync(`/sys/class/net/${i}/operstate`, 'utf8').trim() === 'up');
  } catch {
    return undefined;
  }
}
