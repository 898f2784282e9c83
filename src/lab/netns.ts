/**
 * Throwaway network topologies in network namespaces, for tests, `carpd lab` and benchmarks.
 *
 * A lab is a "switch" namespace holding a Linux bridge and one namespace per node, each with a
 * veth `eth0` whose other end sits on the bridge. Every name carries a random id and our pid, so
 * labs never collide, and everything a lab made is removed by `destroy()`, on process exit and on
 * SIGINT/SIGTERM. Traffic stays inside the lab: no interface is ever created in the host's
 * namespace (veth pairs are created inside the switch namespace and moved straight to the node).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { run, runSync } from '../adapters/exec.js';
import type { RunResult } from '../ports/exec.js';
import { listDir, makeTempDir, removeTree } from '../adapters/files.js';
import { startProcess, type ChildProcess, type Stdio } from '../adapters/process.js';

/** PATH for lab commands: node may live in /usr/local/bin. */
const LAB_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
const CMD_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 1_000;
const NETNS_DIR = '/var/run/netns';

export interface LabNodeSpec {
  name: string;
  /** CIDR; default 198.18.0.N/24 (RFC 2544 benchmarking range), N = position + 1. */
  address?: string;
}

export interface LabOptions {
  /** Start of every namespace name; letters, digits and dashes. Default `carpd`. */
  prefix?: string;
  nodes: Array<string | LabNodeSpec>;
  /**
   * true (default): nodes hang off a bridge in a switch namespace.
   * false: exactly two nodes joined back to back by one veth pair.
   */
  bridge?: boolean;
}

export interface LabNode {
  name: string;
  /** The node's namespace. */
  ns: string;
  ifname: 'eth0';
  /** IPv4 address without prefix. */
  address: string;
  /** Address with prefix length. */
  cidr: string;
  mac: string;
  /** The other end of eth0: on the bridge in `lab.switchNs`, or the peer node's eth0. */
  peerNs: string;
  peerIfname: string;
}

export interface Capture {
  file: string;
  /** Stops tcpdump and resolves once it has exited, so the file is complete. */
  stop(): Promise<void>;
}

export interface LabSpawnOptions {
  env?: Record<string, string>;
  stdio?: Stdio;
  cwd?: string;
}

export interface Lab {
  readonly id: string;
  /** The switch namespace, or undefined for a back-to-back lab. */
  readonly switchNs: string | undefined;
  readonly bridge: string | undefined;
  readonly nodes: LabNode[];
  /** A scratch directory removed by destroy(). */
  readonly dir: string;
  node(name: string): LabNode;
  /** Every namespace the lab made (switch first). */
  namespaces(): string[];
  /** Run argv inside `ns` (`ip netns exec`), bounded. */
  exec(ns: string, argv: string[], opts?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** Start argv inside `ns`; the process is tracked and killed by destroy(). */
  spawn(ns: string, argv: string[], opts?: LabSpawnOptions): ChildProcess;
  /** Signal one tracked process, by its pid only. */
  kill(child: ChildProcess, signal?: NodeJS.Signals): void;
  /** Wait (bounded) for a spawned process to exit; SIGKILL if it has not after timeoutMs. */
  waitExit(child: ChildProcess, timeoutMs?: number): Promise<number | null>;
  capture(ns: string, ifname: string, filter?: string | string[]): Promise<Capture>;
  /** Drop carrier on the node's eth0 by downing the far end. */
  linkDown(node: LabNode | string): Promise<void>;
  linkUp(node: LabNode | string): Promise<void>;
  destroy(): Promise<void>;
}

/** Thrown when a lab command fails; carries the command's output. */
export class LabError extends Error {
  readonly code = 'CARPD_ERR_LAB';
  constructor(
    message: string,
    readonly result?: RunResult,
  ) {
    super(message);
    this.name = 'LabError';
  }
}

/** Bounded polling: resolves with the predicate's first truthy value, rejects on timeout. */
export async function waitFor<T>(predicate: () => T | Promise<T>, opts: { timeoutMs: number; intervalMs?: number; what?: string }): Promise<NonNullable<T>> {
  const interval = opts.intervalMs ?? 50;
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value as NonNullable<T>;
    if (Date.now() >= deadline) throw new LabError(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what ?? 'condition'}`);
    await sleep(Math.min(interval, Math.max(1, deadline - Date.now())));
  }
}

const TIMEOUT = Symbol('timeout');

/** `p`, or TIMEOUT after `ms`; the timer is cleared either way so it never keeps the process alive. */
async function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<typeof TIMEOUT>((r) => (timer = setTimeout(() => r(TIMEOUT), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- cleanup registry: every live lab, torn down synchronously if the process dies ---

const liveLabs = new Set<LabImpl>();
let handlersInstalled = false;

function onExit(): void {
  for (const lab of liveLabs) lab.destroySync();
}

function onSignal(signal: NodeJS.Signals): void {
  onExit();
  uninstallHandlers();
  // Die of the same signal, as if we had never caught it, unless someone else handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

const PREFIX_RE = /^[a-z][a-z0-9-]{0,15}$/;
const NODE_NAME_RE = /^[a-z][a-z0-9]{0,11}$/;

/** Build a lab. On any failure, whatever was made is removed before the error propagates. */
export async function createLab(opts: LabOptions): Promise<Lab> {
  const prefix = opts.prefix ?? 'carpd';
  if (!PREFIX_RE.test(prefix)) throw new LabError(`bad lab prefix ${JSON.stringify(prefix)}`);
  const bridged = opts.bridge ?? true;
  const specs = opts.nodes.map((n) => (typeof n === 'string' ? { name: n } : n));
  if (specs.length === 0 || specs.length > 250) throw new LabError('a lab needs 1..250 nodes');
  if (!bridged && specs.length !== 2) throw new LabError('a lab without a bridge needs exactly two nodes');
  const seen = new Set<string>();
  for (const s of specs) {
    if (!NODE_NAME_RE.test(s.name) || seen.has(s.name)) throw new LabError(`bad or duplicate node name ${JSON.stringify(s.name)}`);
    seen.add(s.name);
  }
  await sweepStaleLabs(prefix);

  const id = `${randomBytes(2).toString('hex')}-${process.pid}`;
  const lab = new LabImpl(id, prefix, bridged);
  liveLabs.add(lab);
  installHandlers();
  try {
    await lab.build(specs);
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}

/** Build a lab, run fn, and always destroy the lab. */
export async function withLab<T>(opts: LabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await createLab(opts);
  try {
    return await fn(lab);
  } finally {
    await lab.destroy();
  }
}

/**
 * Remove namespaces left by labs of a process that no longer exists (killed with SIGKILL, say).
 * Only names of our exact shape `PREFIX-xxxx-PID-…` with a dead PID are touched.
 */
export async function sweepStaleLabs(prefix = 'carpd'): Promise<string[]> {
  let names: string[];
  try {
    names = await listDir(NETNS_DIR);
  } catch {
    return [];
  }
  const re = new RegExp(`^${prefix.replace(/-/g, '\\-')}-[0-9a-f]{4}-(\\d+)-[a-z0-9]+$`);
  const removed: string[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    await killNsPids(name);
    const r = await run(['ip', 'netns', 'del', name], { timeoutMs: CMD_TIMEOUT_MS });
    if (r.exitCode === 0) removed.push(name);
  }
  return removed;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

class LabImpl implements Lab {
  readonly nodes: LabNode[] = [];
  readonly switchNs: string | undefined;
  readonly bridge: string | undefined;
  readonly dir: string;
  private readonly made: string[] = [];
  private readonly children = new Map<number, ChildProcess>();
  private destroyed = false;
  private destroying: Promise<void> | undefined;

  constructor(
    readonly id: string,
    private readonly prefix: string,
    bridged: boolean,
  ) {
    this.switchNs = bridged ? this.nsName('sw') : undefined;
    this.bridge = bridged ? 'br0' : undefined;
    this.dir = makeTempDir(`${prefix}-lab-`);
  }

  private nsName(suffix: string): string {
    return `${this.prefix}-${this.id}-${suffix}`;
  }

  async build(specs: LabNodeSpec[]): Promise<void> {
    const sw = this.switchNs;
    if (sw) {
      await this.addNs(sw);
      await this.ip(['-n', sw, 'link', 'set', 'lo', 'up']);
      // The switch is a plain L2 bridge: no IPv6 of its own (MLD and DAD noise in captures).
      await this.checked(sw, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await this.ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0', 'forward_delay', '0']);
      await this.ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    }
    for (const [i, spec] of specs.entries()) {
      const cidr = spec.address ?? `198.18.0.${i + 1}/24`;
      const [address] = cidr.split('/');
      const ns = this.nsName(spec.name);
      const mac = `02:00:00:00:00:${hex2(i + 1)}`;
      await this.addNs(ns);
      await this.ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      // Before eth0 exists, so it inherits it: IPv6 addresses usable at once (no DAD wait).
      await this.checked(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
      this.nodes.push({
        name: spec.name,
        ns,
        ifname: 'eth0',
        address: address!,
        cidr: cidr.includes('/') ? cidr : `${cidr}/24`,
        mac,
        peerNs: sw ?? '',
        peerIfname: sw ? `v${i}` : 'eth0',
      });
    }
    if (sw) {
      for (const [i, node] of this.nodes.entries()) {
        await this.ip([
          '-n',
          sw,
          'link',
          'add',
          node.peerIfname,
          'address',
          `02:00:00:00:01:${hex2(i + 1)}`,
          'type',
          'veth',
          'peer',
          'name',
          'eth0',
          'address',
          node.mac,
          'netns',
          node.ns,
        ]);
        await this.ip(['-n', sw, 'link', 'set', node.peerIfname, 'master', 'br0']);
        await this.ip(['-n', sw, 'link', 'set', node.peerIfname, 'up']);
      }
    } else {
      const [a, b] = this.nodes as [LabNode, LabNode];
      a.peerNs = b.ns;
      b.peerNs = a.ns;
      await this.ip(['-n', a.ns, 'link', 'add', 'eth0', 'address', a.mac, 'type', 'veth', 'peer', 'name', 'eth0', 'address', b.mac, 'netns', b.ns]);
    }
    for (const node of this.nodes) {
      await this.ip(['-n', node.ns, 'addr', 'add', node.cidr, 'dev', 'eth0']);
      await this.ip(['-n', node.ns, 'link', 'set', 'eth0', 'up']);
    }
  }

  node(name: string): LabNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new LabError(`no node ${name} in lab ${this.id}`);
    return node;
  }

  namespaces(): string[] {
    return [...this.made];
  }

  private async addNs(ns: string): Promise<void> {
    this.assertAlive();
    // Record first: if `add` half-succeeds, destroy still tries to delete it.
    this.made.push(ns);
    await this.ip(['netns', 'add', ns]);
  }

  private async ip(args: string[]): Promise<RunResult> {
    const r = await run(['ip', ...args], { timeoutMs: CMD_TIMEOUT_MS, env: LAB_ENV });
    if (r.exitCode !== 0) throw new LabError(`ip ${args.join(' ')}: ${r.stderr.trim() || r.spawnError || `exit ${r.exitCode}`}`, r);
    return r;
  }

  private async checked(ns: string, argv: string[]): Promise<RunResult> {
    const r = await this.exec(ns, argv);
    if (r.exitCode !== 0) throw new LabError(`${argv.join(' ')} in ${ns}: ${r.stderr.trim() || r.spawnError || `exit ${r.exitCode}`}`, r);
    return r;
  }

  private assertOwned(ns: string): void {
    if (!this.made.includes(ns)) throw new LabError(`namespace ${ns} is not part of lab ${this.id}`);
  }

  private assertAlive(): void {
    if (this.destroyed) throw new LabError(`lab ${this.id} is destroyed`);
  }

  async exec(ns: string, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    this.assertAlive();
    this.assertOwned(ns);
    const runOpts: Parameters<typeof run>[1] = { timeoutMs: opts.timeoutMs ?? CMD_TIMEOUT_MS, env: LAB_ENV };
    if (opts.input !== undefined) runOpts.input = opts.input;
    return run(['ip', 'netns', 'exec', ns, ...argv], runOpts);
  }

  spawn(ns: string, argv: string[], opts: LabSpawnOptions = {}): ChildProcess {
    this.assertAlive();
    this.assertOwned(ns);
    if (argv.length === 0) throw new LabError('spawn: empty argv');
    // `ip netns exec` execs the command, so the pid we track is the command's own.
    const child = startProcess(['ip', 'netns', 'exec', ns, ...argv], {
      env: { ...LAB_ENV, ...opts.env },
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
      cwd: opts.cwd,
    });
    const pid = child.pid;
    if (pid !== undefined) {
      this.children.set(pid, child);
      child.once('exit', () => this.children.delete(pid));
    }
    // An 'error' without a listener would crash the test; the caller sees the exit instead.
    child.on('error', () => undefined);
    return child;
  }

  kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
    const pid = child.pid;
    if (pid === undefined || !this.children.has(pid) || hasExited(child)) return;
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }

  async waitExit(child: ChildProcess, timeoutMs = 5_000): Promise<number | null> {
    if (hasExited(child)) return child.exitCode;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const first = await raceTimeout(exited, timeoutMs);
    if (first !== TIMEOUT) return first;
    this.kill(child, 'SIGKILL');
    const last = await raceTimeout(exited, KILL_GRACE_MS);
    return last === TIMEOUT ? null : last;
  }

  async capture(ns: string, ifname: string, filter: string | string[] = []): Promise<Capture> {
    const file = join(this.dir, `${ns}-${ifname}-${randomBytes(3).toString('hex')}.pcap`);
    const expr = typeof filter === 'string' ? (filter ? [filter] : []) : filter;
    // -Z root: tcpdump would otherwise drop to user tcpdump and fail to write into our 0700 dir.
    // --immediate-mode: without it the kernel ring hands packets over in blocks (up to 1 s late),
    // and a block not yet handed over when we stop tcpdump is lost.
    const child = this.spawn(ns, ['tcpdump', '-i', ifname, '-w', file, '-U', '-n', '-Z', 'root', '--immediate-mode', ...expr], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let listening = false;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      if (stderr.length < 65536) stderr += chunk;
      if (stderr.includes('listening on')) listening = true;
    });
    try {
      await waitFor(() => listening || hasExited(child), { timeoutMs: 5_000, intervalMs: 20, what: `tcpdump on ${ns}/${ifname}` });
    } catch (err) {
      this.kill(child, 'SIGKILL');
      await this.waitExit(child, KILL_GRACE_MS);
      throw err;
    }
    if (!listening) throw new LabError(`tcpdump on ${ns}/${ifname} failed: ${stderr.trim()}`);
    return {
      file,
      stop: async () => {
        this.kill(child, 'SIGINT');
        await this.waitExit(child, 3_000);
      },
    };
  }

  private async setPeer(node: LabNode | string, state: 'up' | 'down'): Promise<void> {
    this.assertAlive();
    const n = typeof node === 'string' ? this.node(node) : node;
    await this.ip(['-n', n.peerNs, 'link', 'set', n.peerIfname, state]);
  }

  linkDown(node: LabNode | string): Promise<void> {
    return this.setPeer(node, 'down');
  }

  linkUp(node: LabNode | string): Promise<void> {
    return this.setPeer(node, 'up');
  }

  destroy(): Promise<void> {
    this.destroying ??= this.destroyAsync();
    return this.destroying;
  }

  private async destroyAsync(): Promise<void> {
    this.destroyed = true;
    const children = [...this.children.values()].filter((c) => !hasExited(c));
    for (const c of children) signalPid(c.pid, 'SIGTERM');
    await Promise.all(children.map((c) => this.waitExit(c, KILL_GRACE_MS)));
    for (const ns of [...this.made].reverse()) {
      // Anything still in our namespaces was started by us (a child's children, a daemon that
      // forked); left alive, it would keep the namespace and its interfaces in existence.
      await killNsPids(ns);
      await run(['ip', 'netns', 'del', ns], { timeoutMs: CMD_TIMEOUT_MS, env: LAB_ENV });
    }
    this.made.length = 0;
    removeTree(this.dir);
    this.forget();
  }

  /** Last-resort teardown from an 'exit' or signal handler, where nothing async runs. */
  destroySync(): void {
    this.destroyed = true;
    for (const c of this.children.values()) if (!hasExited(c)) signalPid(c.pid, 'SIGKILL');
    for (const ns of [...this.made].reverse()) {
      const r = runSync(['ip', 'netns', 'pids', ns], { timeoutMs: CMD_TIMEOUT_MS, env: LAB_ENV });
      for (const pid of parsePids(r.stdout)) signalPid(pid, 'SIGKILL');
      runSync(['ip', 'netns', 'del', ns], { timeoutMs: CMD_TIMEOUT_MS, env: LAB_ENV });
    }
    this.made.length = 0;
    removeTree(this.dir);
    this.forget();
  }

  private forget(): void {
    liveLabs.delete(this);
    if (liveLabs.size === 0) uninstallHandlers();
  }
}

/** SIGKILL every process inside one of our namespaces. */
async function killNsPids(ns: string): Promise<void> {
  const r = await run(['ip', 'netns', 'pids', ns], { timeoutMs: CMD_TIMEOUT_MS, env: LAB_ENV });
  if (r.exitCode !== 0) return;
  for (const pid of parsePids(r.stdout)) signalPid(pid, 'SIGKILL');
}

function parsePids(text: string): number[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+$/.test(l))
    .map(Number)
    .filter((pid) => pid > 1 && pid !== process.pid);
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function signalPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}
