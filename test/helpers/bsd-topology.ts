/**
 * The BSD kernels' CARP test harnesses, on Linux network namespaces, so their cases can be ported
 * with their own topology, commands and assertions.
 *
 * Upstream (FreeBSD `tests/sys/common/vnet.subr` and `tests/sys/netinet/carp.sh`, HalfBSD/freebsd-src
 * @569873ccb4c399d9a62f57b3eaccc31e648e1e90; OpenBSD `regress/sys/netinet/carp/carp_subr`; NetBSD
 * `tests/net/carp/t_basic.sh` rev 1.3) → here:
 *
 * | upstream                                   | here                                                    |
 * |--------------------------------------------|---------------------------------------------------------|
 * | `vnet_init` / `vnet_cleanup`               | `withVnet(prefix, fn)` (or `Vnet.init` + `cleanup()`)   |
 * | `vnet_mkjail NAME`                         | `vnet.mkjail(name)`: a netns, `lo` up, DAD off          |
 * | `vnet_mkepair` + moving the ends to jails  | `vnet.mkepair(jailA, jailB)`: veth `epairNa` in A, `epairNb` in B |
 * | `vnet_mkbridge` + `addm`                   | `vnet.mkbridge(jail, members)`: `bridge0` in that jail  |
 * | `jexec J CMD`                              | `vnet.exec(jail, argv)`; `vnet.check(...)` is `atf_check -s exit:0` |
 * | rc(8) netif / netstart applying addresses  | `vnet.netif(jail, files)`: the non-CARP address lines of an rc.conf or hostname.IF |
 * | `ifconfig IF add vhid …` (the kernel's CARP) | `vnet.carpd(jail, files)`: `carpd run -c FILE…` on the native config files |
 * | `is_master J IF`                           | `node.isMaster(ifname)`: `carpctl status` shows `IF: carp: MASTER` |
 * | `wait_for_carp J1 IF1 J2 IF2`              | `waitForCarp(n1, if1, n2, if2)`: bounded (15 s), fails on two masters (watched 1.5 s) |
 * | OpenBSD `wait_until CMD` (8 × 0.5 s)        | `waitUntil(fn)`                                         |
 * | the "B3" bridge topology of carp.sh         | `b3(vnet)`                                              |
 * | the routed topology of `unicast_v4`        | `routed(vnet)`                                          |
 * | one epair between two jails                | `pair(vnet, names)`                                     |
 *
 * Every namespace is named `PREFIX-xxxx-PID-JAIL` (src/lab/netns.ts `sweepStaleLabs` removes those
 * of dead runs); every interface is created inside a namespace of the run, never in the host's;
 * every carpd gets its own control socket, state dir and run dir under the run's scratch dir; and
 * `cleanup()` kills only the processes this run started (by pid), then whatever is left inside its
 * own namespaces, and deletes them. An `exit` handler does the same synchronously if the test
 * process dies first.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run, runSync, type RunResult } from '../../src/adapters/exec.js';
import { makeTempDir, removeTree } from '../../src/adapters/files.js';
import { startProcess } from '../../src/adapters/process.js';
import { sleep, sweepStaleLabs, waitFor, type Capture } from '../../src/lab/netns.js';

export { sleep, waitFor, type Capture };

export const CARPD_JS = fileURLToPath(new URL('../../src/cli/carpd.js', import.meta.url));
export const CARPCTL_JS = fileURLToPath(new URL('../../src/cli/carpctl.js', import.meta.url));

const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
const CMD_TIMEOUT_MS = 10_000;
/** wait_for_carp has no bound of its own upstream (ATF's 300 s applies); ours is 15 s. */
export const WAIT_FOR_CARP_MS = 15_000;

export interface Jail {
  /** The upstream jail name (`one`, `two`, `rd11`, …). */
  name: string;
  /** Its network namespace. */
  ns: string;
  /** A scratch directory of its own: `etc/` for config files, the carpd's socket, state and run dir. */
  dir: string;
}

export interface Epair {
  a: string;
  b: string;
}

/** One `carpd run` in a jail. */
export interface CarpdNode {
  jail: Jail;
  child: ChildProcess;
  /** The config files it was started with. */
  files: string[];
  /** Its control socket. */
  sock: string;
  /** stdout and stderr lines, bounded. */
  lines: string[];
  /** `carpctl -s SOCK ARGS…`: exit code and output. */
  ctl(...args: string[]): Promise<RunResult>;
  /** `carpctl status`, the ifconfig-like text. */
  status(): Promise<string>;
  /** upstream `is_master`: `carpctl status` has `IF: carp: MASTER`. */
  isMaster(ifname: string): Promise<boolean>;
  /** The state `carpctl status` shows for `IF` (`MASTER`, `BACKUP`, `INIT`), or undefined. */
  state(ifname: string): Promise<string | undefined>;
  /** Signal this carpd (by its pid only). */
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM and wait (bounded) for the exit code. */
  stop(): Promise<number | null>;
}

const live = new Set<Vnet>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const v of live) v.cleanupSync();
  });
}

export class Vnet {
  readonly jails: Jail[] = [];
  /** Every carpd started, for the failure report. */
  readonly nodes: CarpdNode[] = [];
  private readonly children = new Set<ChildProcess>();
  private epairs = 0;
  private dead = false;

  private constructor(
    readonly prefix: string,
    readonly id: string,
    readonly dir: string,
  ) {}

  /** `vnet_init`: a new run; names never collide with another run's. */
  static async init(prefix: string): Promise<Vnet> {
    if (!/^[a-z][a-z0-9-]{0,9}$/.test(prefix)) throw new Error(`bad prefix ${prefix}`);
    await sweepStaleLabs(prefix);
    const v = new Vnet(prefix, `${randomBytes(2).toString('hex')}-${process.pid}`, makeTempDir(`${prefix}-vnet-`));
    live.add(v);
    hookExit();
    return v;
  }

  /** `vnet_mkjail NAME`: a namespace with loopback up and IPv6 DAD off (FreeBSD's `no_dad`). */
  async mkjail(name: string): Promise<Jail> {
    this.alive();
    if (!/^[a-z][a-z0-9]{0,9}$/.test(name) || this.jails.some((j) => j.name === name)) throw new Error(`bad or duplicate jail ${name}`);
    const jail: Jail = { name, ns: `${this.prefix}-${this.id}-${name}`, dir: join(this.dir, name) };
    mkdirSync(join(jail.dir, 'etc'), { recursive: true });
    // Recorded first: a half-made namespace is still deleted by cleanup().
    this.jails.push(jail);
    await this.host(['ip', 'netns', 'add', jail.ns]);
    await this.check(jail, ['ip', 'link', 'set', 'lo', 'up']);
    await this.check(jail, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    return jail;
  }

  /**
   * `vnet_mkepair`, with its ends already moved: a veth pair `epairNa` (in `a`) / `epairNb` (in
   * `b`), both up. `names` overrides the two names (OpenBSD's `pair11`/`pair12`). Both ends may
   * be in the same jail (carp.sh `switch` runs on one epair in one vnet).
   */
  async mkepair(a: Jail, b: Jail, names?: Epair): Promise<Epair> {
    this.alive();
    const n = this.epairs++;
    const e = names ?? { a: `epair${n}a`, b: `epair${n}b` };
    await this.check(a, ['ip', 'link', 'add', e.a, 'type', 'veth', 'peer', 'name', e.b, 'netns', b.ns]);
    await this.check(a, ['ip', 'link', 'set', e.a, 'up']);
    await this.check(b, ['ip', 'link', 'set', e.b, 'up']);
    return e;
  }

  /** `vnet_mkbridge` + `ifconfig bridgeN addm …`: a plain L2 bridge (no STP, no snooping) in `jail`. */
  async mkbridge(jail: Jail, members: string[], name = 'bridge0'): Promise<string> {
    await this.check(jail, ['ip', 'link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0', 'forward_delay', '0']);
    for (const m of members) await this.check(jail, ['ip', 'link', 'set', m, 'master', name]);
    await this.check(jail, ['ip', 'link', 'set', name, 'up']);
    return name;
  }

  /** `jexec JAIL ARGV…`, bounded; never throws for a failing command. */
  exec(jail: Jail, argv: string[], timeoutMs = CMD_TIMEOUT_MS): Promise<RunResult> {
    this.alive();
    this.owned(jail);
    return run(['ip', 'netns', 'exec', jail.ns, ...argv], { timeoutMs, env: ENV });
  }

  /** `atf_check -s exit:0 jexec JAIL ARGV…`: throws with the command's output otherwise. */
  async check(jail: Jail, argv: string[], timeoutMs = CMD_TIMEOUT_MS): Promise<RunResult> {
    const r = await this.exec(jail, argv, timeoutMs);
    if (r.exitCode !== 0) throw new Error(`jexec ${jail.name} ${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r;
  }

  /** `sysctl -w` in a jail. */
  async sysctl(jail: Jail, ...settings: string[]): Promise<void> {
    await this.check(jail, ['sysctl', '-qw', ...settings]);
  }

  /** The MAC address of `ifname` in `jail`. */
  async mac(jail: Jail, ifname: string): Promise<string> {
    const r = await this.check(jail, ['cat', `/sys/class/net/${ifname}/address`]);
    return r.stdout.trim();
  }

  /** Writes `files` (name → text, mode 0600, as a pass needs) into the jail's `etc/`; returns the paths in order. */
  etc(jail: Jail, files: Record<string, string>): string[] {
    return Object.entries(files).map(([name, text]) => {
      const path = join(jail.dir, 'etc', name);
      writeFileSync(path, text, { mode: 0o600 });
      chmodSync(path, 0o600);
      return path;
    });
  }

  /**
   * What FreeBSD's rc.d/netif or OpenBSD's netstart would do with the interface (non-CARP) lines
   * of the given files: `ifconfig_IF="inet A/L …"` / `ifconfig_IF_ipv6="inet6 A/L …"` /
   * `ifconfig_IF_aliasN="inet A/L"` without a vhid (rc.conf), and `inet A/L` / `inet A MASK` /
   * `inet6 A L` lines of an OpenBSD hostname.IF or NetBSD ifconfig.IF that is not a carpN. Lines with a vhid are carpd's. IPv6
   * addresses get `nodad` (upstream's `no_dad`). Anything else is left alone.
   */
  async netif(jail: Jail, files: Record<string, string>): Promise<void> {
    for (const [name, text] of Object.entries(files)) {
      for (const { ifname, words } of interfaceLines(name, text)) {
        if (words.includes('vhid')) continue;
        for (const cidr of cidrsOf(words)) {
          const v6 = cidr.includes(':');
          await this.check(jail, ['ip', ...(v6 ? ['-6'] : []), 'addr', 'add', cidr, 'dev', ifname, ...(v6 ? ['nodad'] : [])]);
        }
        await this.check(jail, ['ip', 'link', 'set', ifname, 'up']);
      }
    }
  }

  /**
   * Writes `files` into the jail's etc/ and runs `carpd run -c FILE…` there, with a control
   * socket, state dir (`STATE_DIRECTORY`) and run dir (`--run-dir`, the instance lock) of its own.
   * Resolves once the control socket answers.
   */
  async carpd(jail: Jail, files: Record<string, string>, opts: { args?: string[] } = {}): Promise<CarpdNode> {
    this.alive();
    this.owned(jail);
    const paths = this.etc(jail, files);
    const sock = join(jail.dir, 'carpd.sock');
    const runDir = join(jail.dir, 'run');
    mkdirSync(runDir, { recursive: true });
    const argv = [
      'ip',
      'netns',
      'exec',
      jail.ns,
      process.execPath,
      CARPD_JS,
      'run',
      ...paths.flatMap((p) => ['-c', p]),
      '--control',
      sock,
      '--run-dir',
      runDir,
      ...(opts.args ?? []),
    ];
    const child = startProcess(argv, { env: { ...ENV, STATE_DIRECTORY: join(jail.dir, 'state') }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.on('error', () => undefined);
    this.track(child);
    const lines: string[] = [];
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s! }).on('line', (l) => {
        if (lines.length < 4000) lines.push(l);
      });
    }
    const ctl = (...args: string[]) => run([process.execPath, CARPCTL_JS, '-s', sock, ...args], { timeoutMs: CMD_TIMEOUT_MS, env: ENV });
    const state = async (ifname: string) => {
      const r = await ctl('status');
      if (r.exitCode !== 0) return undefined;
      // carp.sh is_master greps `(carp|vrrp)`: a carpver 3 vhid prints `IF: vrrp: STATE …`.
      return new RegExp(`^${ifname}: (?:carp|vrrp): (\\w+) `, 'm').exec(r.stdout)?.[1];
    };
    const node: CarpdNode = {
      jail,
      child,
      files: paths,
      sock,
      lines,
      ctl,
      status: async () => (await ctl('status')).stdout,
      isMaster: async (ifname) => (await state(ifname)) === 'MASTER',
      state,
      signal: (sig) => signal(child, sig),
      stop: async () => {
        signal(child, 'SIGTERM');
        return waitExit(child, 5_000);
      },
    };
    this.nodes.push(node);
    try {
      await waitFor(async () => exited(child) || (await ctl('status')).exitCode === 0, { timeoutMs: 10_000, intervalMs: 50, what: `carpd in ${jail.name}` });
    } catch (err) {
      throw withLog(err, [node]);
    }
    if (exited(child)) throw withLog(new Error(`carpd in ${jail.name} exited with ${child.exitCode ?? child.signalCode}`), [node]);
    return node;
  }

  /** tcpdump -w in a jail, until `stop()`; read the file with test/helpers/netns.ts `readPcap`. */
  async capture(jail: Jail, ifname: string, filter: string[] = []): Promise<Capture> {
    const file = join(jail.dir, `${ifname}-${randomBytes(3).toString('hex')}.pcap`);
    const child = startProcess(['ip', 'netns', 'exec', jail.ns, 'tcpdump', '-i', ifname, '-w', file, '-U', '-n', '-Z', 'root', '--immediate-mode', ...filter], {
      env: ENV,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.on('error', () => undefined);
    this.track(child);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c.slice(0, 4096)));
    await waitFor(() => err.includes('listening on') || exited(child), { timeoutMs: 5_000, intervalMs: 20, what: `tcpdump in ${jail.name}` });
    if (exited(child)) throw new Error(`tcpdump in ${jail.name}: ${err}`);
    return {
      file,
      stop: async () => {
        signal(child, 'SIGINT');
        await waitExit(child, 3_000);
      },
    };
  }

  /** Start a long-running command in a jail (a background ping); tracked and killed by cleanup(). */
  spawn(jail: Jail, argv: string[]): ChildProcess {
    this.alive();
    this.owned(jail);
    const child = startProcess(['ip', 'netns', 'exec', jail.ns, ...argv], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    child.on('error', () => undefined);
    this.track(child);
    return child;
  }

  /** `vnet_cleanup`: stop what this run started, then delete its namespaces and scratch dir. */
  async cleanup(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    for (const c of this.children) signal(c, 'SIGTERM');
    await Promise.all([...this.children].map((c) => waitExit(c, 2_000)));
    for (const j of [...this.jails].reverse()) {
      const r = await run(['ip', 'netns', 'pids', j.ns], { timeoutMs: CMD_TIMEOUT_MS, env: ENV });
      for (const pid of pidsOf(r.stdout)) killPid(pid);
      await run(['ip', 'netns', 'del', j.ns], { timeoutMs: CMD_TIMEOUT_MS, env: ENV });
    }
    removeTree(this.dir);
    live.delete(this);
  }

  /** cleanup() for an `exit` handler, where nothing async runs. */
  cleanupSync(): void {
    if (this.dead) return;
    this.dead = true;
    for (const c of this.children) signal(c, 'SIGKILL');
    for (const j of [...this.jails].reverse()) {
      const r = runSync(['ip', 'netns', 'pids', j.ns], { timeoutMs: CMD_TIMEOUT_MS, env: ENV });
      for (const pid of pidsOf(r.stdout)) killPid(pid);
      runSync(['ip', 'netns', 'del', j.ns], { timeoutMs: CMD_TIMEOUT_MS, env: ENV });
    }
    removeTree(this.dir);
    live.delete(this);
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  private host(argv: string[]): Promise<RunResult> {
    return run(argv, { timeoutMs: CMD_TIMEOUT_MS, env: ENV }).then((r) => {
      if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
      return r;
    });
  }

  private alive(): void {
    if (this.dead) throw new Error('vnet already cleaned up');
  }

  private owned(jail: Jail): void {
    if (!this.jails.includes(jail)) throw new Error(`jail ${jail.name} is not part of this run`);
  }
}

/** Run `fn` on a fresh Vnet and always clean it up (upstream's `*_cleanup` → `vnet_cleanup`). */
export async function withVnet<T>(prefix: string, fn: (vnet: Vnet) => Promise<T>): Promise<T> {
  const vnet = await Vnet.init(prefix);
  try {
    return await fn(vnet);
  } catch (err) {
    throw withLog(err, vnet.nodes);
  } finally {
    await vnet.cleanup();
  }
}

/** Adds the last lines of each carpd's output to an error, for the test report. */
export function withLog(err: unknown, nodes: CarpdNode[]): unknown {
  if (err instanceof Error && nodes.length > 0) {
    err.message += nodes.map((n) => `\n--- carpd in ${n.jail.name} ---\n${n.lines.slice(-40).join('\n')}`).join('');
  }
  return err;
}

/**
 * carp.sh `wait_for_carp J1 IF1 J2 IF2`: wait while neither side is MASTER, then fail if both
 * are. Upstream polls every 1 s with no bound, so its both-MASTER check looks at the nodes at
 * least a second into the election, when two nodes that cannot hear each other are both MASTER.
 * We poll every 100 ms for at most `timeoutMs`, then keep checking for `settleMs` (default 1.5 s:
 * upstream's 1 s plus our nodes' start-up skew) that the two are never MASTER together.
 */
export async function waitForCarp(n1: CarpdNode, if1: string, n2: CarpdNode, if2: string, timeoutMs = WAIT_FOR_CARP_MS, settleMs = 1_500): Promise<void> {
  await waitFor(async () => (await n1.isMaster(if1)) || (await n2.isMaster(if2)), { timeoutMs, intervalMs: 100, what: 'wait_for_carp: one MASTER' });
  const until = Date.now() + settleMs;
  do {
    const both = (await n1.isMaster(if1)) && (await n2.isMaster(if2));
    assert.ok(!both, 'wait_for_carp: Both jails are master');
    await sleep(100);
  } while (Date.now() < until);
}

/** OpenBSD carp_subr `wait_until`: up to 8 tries 0.5 s apart (4 s); true once `fn` holds. */
export async function waitUntil(fn: () => Promise<boolean>, tries = 8, intervalMs = 500): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await fn()) return true;
    await sleep(intervalMs);
  }
  return false;
}

export interface B3 {
  /** Holds `bridge0` with members `epairOne.a` and `epairTwo.a`. */
  one: Jail;
  /** Holds `epairOne.b`. */
  two: Jail;
  /** Holds `epairTwo.b`. */
  three: Jail;
  bridge: string;
  epairOne: Epair;
  epairTwo: Epair;
}

/**
 * carp.sh's bridge topology (basic_v4, basic_v6, vrrp_*, unicast_v6, unicast_ll_v6,
 * nd6_ns_source_mac): `vnet_mkjail one bridge0 epair0a epair1a; vnet_mkjail two epair0b;
 * vnet_mkjail three epair1b`, the a-ends members of the bridge, everything up. Addresses are the
 * case's (`vnet.netif` or `vnet.check`); `names` renames the jails (nd6_ns_source_mac's
 * `bridge`/`master`/`slave`).
 */
export async function b3(vnet: Vnet, names: [string, string, string] = ['one', 'two', 'three']): Promise<B3> {
  const one = await vnet.mkjail(names[0]);
  const two = await vnet.mkjail(names[1]);
  const three = await vnet.mkjail(names[2]);
  const epairOne = await vnet.mkepair(one, two);
  const epairTwo = await vnet.mkepair(one, three);
  const bridge = await vnet.mkbridge(one, [epairOne.a, epairTwo.a]);
  return { one, two, three, bridge, epairOne, epairTwo };
}

export interface Routed {
  /** The router: holds `epairOne.a` and `epairTwo.a`, IPv4 and IPv6 forwarding on. */
  one: Jail;
  two: Jail;
  three: Jail;
  epairOne: Epair;
  epairTwo: Epair;
}

/**
 * carp.sh `unicast_v4`'s topology: no bridge; jail one holds both a-ends and forwards
 * (`net.inet.ip.forwarding=1`, and IPv6 forwarding for unicast cases across a router), two and
 * three each hold a b-end. Adverts between two and three cross one router, so they arrive with
 * TTL / hop limit 254. Addresses and routes are the case's.
 */
export async function routed(vnet: Vnet): Promise<Routed> {
  const one = await vnet.mkjail('one');
  const two = await vnet.mkjail('two');
  const three = await vnet.mkjail('three');
  const epairOne = await vnet.mkepair(one, two);
  const epairTwo = await vnet.mkepair(one, three);
  await vnet.sysctl(one, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
  return { one, two, three, epairOne, epairTwo };
}

/** Two jails joined by one epair (carp.sh negative_demotion; OpenBSD's `pair11 … patch pair12`). */
export async function pair(vnet: Vnet, names: [string, string], ifnames?: Epair): Promise<{ a: Jail; b: Jail; epair: Epair }> {
  const a = await vnet.mkjail(names[0]);
  const b = await vnet.mkjail(names[1]);
  const epair = await vnet.mkepair(a, b, ifnames);
  return { a, b, epair };
}

/** `ping -n ARGS TARGET` from a jail (default `-c 3`, as carp.sh); iputils exits 0 when a reply arrived. */
export async function ping(vnet: Vnet, jail: Jail, target: string, args: string[] = ['-c', '3']): Promise<RunResult> {
  return vnet.exec(jail, ['ping', '-n', ...args, target], 30_000);
}

// --- helpers ---

interface IfLine {
  ifname: string;
  words: string[];
}

/** The interface lines of an rc.conf (`ifconfig_IF[_ipv6|_aliasN]="…"`) or a non-carp hostname.IF. */
function interfaceLines(name: string, text: string): IfLine[] {
  const out: IfLine[] = [];
  const base = name.split('/').pop()!;
  const m = /^(hostname|ifconfig)\.(.+)$/.exec(base);
  if (m) {
    const ifname = m[2]!;
    if (/^carp\d+$/.test(ifname)) return out;
    for (const l of text.split('\n')) {
      const s = l.trim();
      if (s && !s.startsWith('#') && !s.startsWith('!')) out.push({ ifname, words: s.split(/\s+/) });
    }
    return out;
  }
  for (const m of text.matchAll(/^ifconfig_([A-Za-z0-9]+?)(?:_ipv6|_alias\d+)?="([^"]*)"/gm)) {
    if (/^carp\d+$/.test(m[1]!)) continue;
    out.push({ ifname: m[1]!, words: m[2]!.split(/\s+/).filter(Boolean) });
  }
  return out;
}

/** `inet A/L`, `inet A netmask M`, `inet A M` (OpenBSD positional), `inet6 A/L`, `inet6 A prefixlen L`. */
function cidrsOf(words: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w !== 'inet' && w !== 'inet6') continue;
    let addr = words[i + 1];
    if (addr === 'alias') addr = words[++i + 1];
    if (!addr || !/[.:]/.test(addr)) continue;
    if (addr.includes('/')) {
      out.push(addr);
      continue;
    }
    const next = words[i + 2];
    const after = words[i + 3];
    if (w === 'inet') {
      const mask = next === 'netmask' ? after : next;
      out.push(`${addr}/${mask && /^\d+\.\d+\.\d+\.\d+$/.test(mask) ? maskLen(mask) : 32}`);
    } else {
      const len = next === 'prefixlen' ? after : next;
      out.push(`${addr}/${len && /^\d+$/.test(len) ? len : 64}`);
    }
  }
  return out;
}

function maskLen(mask: string): number {
  return mask.split('.').reduce((n, o) => n + Number(o).toString(2).replace(/0/g, '').length, 0);
}

function pidsOf(text: string): number[] {
  return text
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

function exited(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

function signal(c: ChildProcess, sig: NodeJS.Signals): void {
  if (c.pid === undefined || exited(c)) return;
  try {
    process.kill(c.pid, sig);
  } catch {
    // gone
  }
}

async function waitExit(c: ChildProcess, ms: number): Promise<number | null> {
  if (exited(c)) return c.exitCode;
  const done = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
  let t: NodeJS.Timeout | undefined;
  const res = await Promise.race([done, new Promise<'t'>((r) => (t = setTimeout(() => r('t'), ms)))]);
  clearTimeout(t);
  if (res !== 't') return res;
  signal(c, 'SIGKILL');
  await Promise.race([done, sleep(1_000)]);
  return c.exitCode;
}
