/**
 * Linux NetBackend: VIPs with iproute2, gratuitous ARP with arping, unsolicited neighbour
 * advertisements on a raw ICMPv6 socket, and link state from sysfs.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { run } from './exec.js';
import { spawnStream, type SpawnStream, type StreamingChild } from './kernel-spawn.js';
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

export type ArpingFlavor = 'iputils' | 'habets' | 'none';

export interface LinuxNetOptions {
  logger?: Logger;
  /** Limit for each command (ip, arping). Default 5000 ms. */
  timeoutMs?: number;
  /** How often watchLinks polls sysfs. Default 200 ms. */
  pollMs?: number;
  /** Starts `ip monitor` (tests pass a fake). */
  spawn?: SpawnStream;
  /** Where net.ipv4.conf lives. Default /proc/sys/net/ipv4/conf. */
  sysctlDir?: string;
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
  private arping: Promise<ArpingFlavor> | undefined;
  /** VIPs this backend added, per interface: primaryAddress never reports one of them. */
  private readonly added = new Map<string, Set<string>>();
  private readonly ipQueue: { argv: string[]; benign: RegExp; resolve: () => void; reject: (e: Error) => void }[] = [];
  /** arping waits a second after its one packet: bound how many run at once. */
  private readonly arpingSlots = new Slots(ARPING_CONCURRENCY);
  private readonly spawn: SpawnStream;
  private readonly sysctlDir: string;

  constructor(opts: LinuxNetOptions = {}) {
    this.logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.pollMs = opts.pollMs ?? 200;
    this.spawn = opts.spawn ?? spawnStream;
    this.sysctlDir = opts.sysctlDir ?? '/proc/sys/net/ipv4/conf';
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
    await this.ipCommand(argv, /File exists|already assigned/i);
    let set = this.added.get(ifname);
    if (!set) this.added.set(ifname, (set = new Set()));
    set.add(vip.address);
  }

  async delVip(ifname: string, cidr: string): Promise<void> {
    checkIfname(ifname);
    const vip = parseVip(cidr);
    const argv = ['ip', ...(vip.family === 6 ? ['-6'] : []), 'addr', 'del', vip.cidr, 'dev', ifname];
    // Already gone is what we wanted.
    await this.ipCommand(argv, /Cannot assign requested address|not found|No such address/i);
    this.added.get(ifname)?.delete(vip.address);
  }

  /**
   * IPv4: one ARP request with sender and target both the VIP (arping -U). The VIP must already
   * be on the interface: iputils arping binds to it and fails otherwise.
   * IPv6: one unsolicited neighbour advertisement (override flag) to ff02::1.
   */
  async garp(ifname: string, cidr: string): Promise<void> {
    checkIfname(ifname);
    const vip = parseVip(cidr);
    if (vip.family === 6) {
      await sendUnsolicitedNa(ifname, vip.address);
      return;
    }
    const flavor = await this.arpingFlavor();
    if (flavor === 'none') throw new NetError('CARPD_ERR_NO_TOOL', 'no arping installed (apt install iputils-arping)');
    const argv =
      flavor === 'iputils' ? ['arping', '-U', '-c', '1', '-I', ifname, vip.address] : ['arping', '-U', '-c', '1', '-i', ifname, '-S', vip.address, vip.address];
    const r = await this.arpingSlots.run(() => this.cmd(argv));
    // Habets' arping exits 1 when nobody answered, which nobody does to a gratuitous ARP.
    const sent = r.exitCode === 0 || (flavor === 'habets' && r.exitCode === 1 && /\b[1-9]\d* packets transmitted/.test(r.stdout));
    if (!sent) throw this.failed(argv, r);
  }

  /** Which arping is installed; asked once. */
  arpingFlavor(): Promise<ArpingFlavor> {
    this.arping ??= this.cmd(['arping', '-V']).then((r) => {
      const flavor: ArpingFlavor = r.spawnError ? 'none' : /iputils/i.test(r.stdout + r.stderr) ? 'iputils' : 'habets';
      this.log(7, `arping flavor: ${flavor}`);
      return flavor;
    });
    return this.arping;
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
   * Run one `ip` command, batched with the others asked for in the same turn of the loop: 255
   * vhids becoming MASTER at once cost one `ip -batch` process, not 255 (each spawn blocks the
   * event loop for milliseconds). A failed batch is retried command by command, so every caller
   * gets its own result. `benign` failures (already there, already gone) count as success.
   */
  private ipCommand(argv: string[], benign: RegExp): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ipQueue.push({ argv, benign, resolve, reject });
      if (this.ipQueue.length === 1) setImmediate(() => void this.flushIp());
    });
  }

  private async flushIp(): Promise<void> {
    const batch = this.ipQueue.splice(0);
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

  private cmd(argv: string[]): Promise<RunResult> {
    return run(argv, { timeoutMs: this.timeoutMs });
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

const ARPING_CONCURRENCY = 32;

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

/** A counting semaphore: at most `n` jobs at once, the rest wait in order. */
class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly n: number) {}

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.busy >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.busy++;
    try {
      return await job();
    } finally {
      this.busy--;
      this.waiting.shift()?.();
    }
  }
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

// --- IPv6 unsolicited neighbour advertisement (RFC 4861 7.2.6) on a raw ICMPv6 socket ---

interface RawSocket6 {
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  send(buffer: Buffer, offset: number, length: number, address: string, cb: (err: Error | null, bytes: number) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  pauseRecv(): void;
  close(): void;
}
interface RawSocketModule6 {
  createSocket(options: { protocol: number; addressFamily: number }): RawSocket6;
  AddressFamily: { IPv6: number };
}

/** Linux option numbers for the NA socket. */
const NA_SOCKOPTS = {
  SOL_SOCKET: 1,
  SO_BINDTODEVICE: 25,
  IPPROTO_IPV6: 41,
  IPV6_MULTICAST_IF: 17,
  IPV6_MULTICAST_HOPS: 18,
} as const;
const IPPROTO_ICMPV6 = 58;
const NA_SEND_TIMEOUT_MS = 1_000;
const ND_NEIGHBOR_ADVERT = 136;
const ND_NA_FLAG_OVERRIDE = 0x20;
const ND_OPT_TARGET_LINKADDR = 2;

/** An IPv6 address in text form to its 16 bytes. */
export function ipv6Bytes(address: string): Buffer {
  if (isIP(address) !== 6) throw new NetError('CARPD_ERR_NET', `not an IPv6 address: ${address}`);
  let text = address.split('%')[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  return buf;
}

/** The ICMPv6 NA body; the kernel fills in the checksum on an ICMPv6 raw socket. */
export function neighborAdvert(target: string, mac: Buffer): Buffer {
  const buf = Buffer.alloc(32);
  buf[0] = ND_NEIGHBOR_ADVERT;
  buf[4] = ND_NA_FLAG_OVERRIDE;
  ipv6Bytes(target).copy(buf, 8);
  buf[24] = ND_OPT_TARGET_LINKADDR;
  buf[25] = 1;
  mac.copy(buf, 26, 0, 6);
  return buf;
}

async function sendUnsolicitedNa(ifname: string, target: string): Promise<void> {
  let mac: Buffer;
  let ifindex: number;
  try {
    mac = Buffer.from(
      readFileSync(`/sys/class/net/${ifname}/address`, 'utf8')
        .trim()
        .split(':')
        .map((b) => Number.parseInt(b, 16)),
    );
    ifindex = Number.parseInt(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'), 10);
  } catch {
    throw new NetError('CARPD_ERR_NET', `no such interface ${ifname}`);
  }
  if (mac.length !== 6) throw new NetError('CARPD_ERR_NET', `${ifname} has no Ethernet address`);
  const raw = createRequire(import.meta.url)('raw-socket') as RawSocketModule6;
  const o = NA_SOCKOPTS;
  let socket: RawSocket6;
  try {
    socket = raw.createSocket({ protocol: IPPROTO_ICMPV6, addressFamily: raw.AddressFamily.IPv6 });
  } catch (err) {
    throw new NetError('CARPD_ERR_NET', `cannot open ICMPv6 socket: ${(err as Error).message}`);
  }
  try {
    socket.pauseRecv();
    socket.setOption(o.SOL_SOCKET, o.SO_BINDTODEVICE, Buffer.from(ifname), ifname.length);
    socket.setOption(o.IPPROTO_IPV6, o.IPV6_MULTICAST_IF, ifindex);
    socket.setOption(o.IPPROTO_IPV6, o.IPV6_MULTICAST_HOPS, 255);
    const packet = neighborAdvert(target, mac);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('send timed out')), NA_SEND_TIMEOUT_MS);
      const done = (err?: Error | null): void => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      socket.on('error', done);
      socket.send(packet, 0, packet.length, 'ff02::1', done);
    });
  } catch (err) {
    throw new NetError('CARPD_ERR_NET', `unsolicited NA for ${target} on ${ifname}: ${(err as Error).message}`);
  } finally {
    socket.close();
  }
}
