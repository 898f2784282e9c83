/**
 * The soak's cluster: N carpd nodes in network namespaces on one bridge (src/lab/netns.ts), each
 * with its own config, control socket, state and run directory, and every VIP in one /24 that is
 * not the node's own subnet. So on each node the first VIP added becomes the primary address of
 * 198.18.1.0/24 and the others its secondaries: with promote_secondaries = 0 (forced here) Linux
 * deletes every secondary when that primary is deleted (net/ipv4/devinet.c, __inet_del_ifa), the
 * worst case for a CARP daemon that moves VIPs one by one.
 */
import { createWriteStream, mkdirSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { request } from '../../src/daemon/control-client.js';
import type { StatusData } from '../../src/daemon/reports.js';
import { CARPD_JS, writePassfile } from '../../src/lab/lab.js';
import { createLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import type { NodeObservation, VhidView } from './check.js';

export const ADVBASE = 1;
/** advskew of a node by its rank for a vhid: 0 for the preferred node, then 50, 100. */
export const SKEW_STEP = 50;
const TAIL_LINES = 40;
/** Per node; past it lines are counted but no longer written (a flooding carpd cannot fill the disk). */
const LOG_FILE_MAX_BYTES = 64 * 1024 * 1024;

export function nodeAddress(i: number): string {
  return `198.18.0.${i + 1}`;
}

/** The VIP of vhid v: all in 198.18.1.0/24, a subnet the nodes have no address of their own in. */
export function soakVip(v: number): string {
  return `198.18.1.${v}`;
}

export interface ClusterOptions {
  nodes: number;
  vhids: number;
  preempt: boolean;
  /** Where each node's full log is written (kept after the run). */
  logDir: string;
  /**
   * Set promote_secondaries back to 0 as soon as carpd has set it to 1 (an admin or a tool undoing
   * it): the kernel then deletes a subnet's secondaries with its primary, and carpd's reconcile
   * against the kernel's address list is what keeps its VIPs. Default on: the worst case.
   */
  revertPromote?: boolean;
  /** Called for every line a carpd prints. */
  onLine?: (node: SoakNode, line: string) => void;
  /** Called when a carpd exits that the soak did not stop. */
  onUnexpectedExit?: (node: SoakNode, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface SoakNode {
  name: string;
  index: number;
  lab: LabNode;
  conf: string;
  sock: string;
  child?: ChildProcess;
  /** True while the soak itself is stopping this carpd (kill -9, or the end of the run). */
  expectExit: boolean;
  startedAt: number;
  starts: number;
  lines: number;
  transitions: number;
  tail: string[];
  log: WriteStream;
  logBytes: number;
}

export class SoakCluster {
  readonly nodes: SoakNode[] = [];
  stopping = false;

  private constructor(
    readonly lab: Lab,
    readonly opts: ClusterOptions,
  ) {}

  static async create(opts: ClusterOptions): Promise<SoakCluster> {
    const names = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    const lab = await createLab({ prefix: 'carpdsoak', nodes: names.map((name, i) => ({ name, address: `${nodeAddress(i)}/24` })) });
    const c = new SoakCluster(lab, opts);
    try {
      await c.setUp(names);
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  }

  /** vhid v is preferred by node (v mod N): masters spread over the nodes. */
  preferred(v: number): string {
    return `n${(v % this.opts.nodes) + 1}`;
  }

  advskew(v: number, nodeIndex: number): number {
    return ((((nodeIndex - (v % this.opts.nodes)) % this.opts.nodes) + this.opts.nodes) % this.opts.nodes) * SKEW_STEP;
  }

  vhidList(): number[] {
    return Array.from({ length: this.opts.vhids }, (_, i) => i + 1);
  }

  private async setUp(names: string[]): Promise<void> {
    mkdirSync(this.opts.logDir, { recursive: true });
    const pass = writePassfile(this.lab.dir);
    for (const [i, name] of names.entries()) {
      const lab = this.lab.node(name);
      // The worst case on purpose: no promotion of secondaries when a primary goes.
      const r = await this.lab.exec(lab.ns, [
        'sysctl',
        '-qw',
        'net.ipv4.conf.all.promote_secondaries=0',
        'net.ipv4.conf.default.promote_secondaries=0',
        'net.ipv4.conf.eth0.promote_secondaries=0',
      ]);
      if (r.exitCode !== 0) throw new Error(`sysctl promote_secondaries in ${lab.ns}: ${r.stderr.trim()}`);
      const conf = join(this.lab.dir, `${name}.conf`);
      writeFileSync(conf, this.config(i, pass), { mode: 0o600 });
      for (const d of ['state', 'run']) mkdirSync(join(this.lab.dir, `${name}-${d}`), { recursive: true });
      this.nodes.push({
        name,
        index: i,
        lab,
        conf,
        sock: join(this.lab.dir, `${name}.sock`),
        expectExit: false,
        startedAt: 0,
        starts: 0,
        lines: 0,
        transitions: 0,
        tail: [],
        log: createWriteStream(join(this.opts.logDir, `${name}.log`), { flags: 'a' }),
        logBytes: 0,
      });
    }
  }

  private config(i: number, passfile: string): string {
    const lines = ['[carpd]', `preempt = ${this.opts.preempt ? 'yes' : 'no'}`, 'log = 5', ''];
    for (const v of this.vhidList()) {
      lines.push(
        `[vhid.v${v}]`,
        `vhid = ${v}`,
        'interface = eth0',
        `address = ${soakVip(v)}/24`,
        `advbase = ${ADVBASE}`,
        `advskew = ${this.advskew(v, i)}`,
        `passfile = ${passfile}`,
        '',
      );
    }
    return lines.join('\n');
  }

  node(name: string): SoakNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no soak node ${name}`);
    return n;
  }

  running(n: SoakNode): boolean {
    return n.child !== undefined && n.child.exitCode === null && n.child.signalCode === null;
  }

  /** Start carpd on a node (its previous process, if any, must be gone). */
  start(n: SoakNode): void {
    if (this.running(n)) throw new Error(`${n.name}: carpd already running (pid ${n.child!.pid})`);
    const child = this.lab.spawn(n.lab.ns, [process.execPath, CARPD_JS, 'run', '-c', n.conf, '--control', n.sock], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { STATE_DIRECTORY: join(this.lab.dir, `${n.name}-state`), RUNTIME_DIRECTORY: join(this.lab.dir, `${n.name}-run`) },
    });
    n.child = child;
    n.expectExit = false;
    n.startedAt = Date.now();
    n.starts++;
    const pid = child.pid;
    this.note(n, `--- soak: carpd started, pid ${pid ?? '?'} ---`);
    for (const s of [child.stdout, child.stderr]) {
      if (!s) continue;
      createInterface({ input: s }).on('line', (line) => {
        n.lines++;
        if (/: (INIT|BACKUP|MASTER) -> (INIT|BACKUP|MASTER) /.test(line)) n.transitions++;
        n.tail.push(line);
        if (n.tail.length > TAIL_LINES) n.tail.shift();
        this.note(n, line);
        if (this.opts.revertPromote !== false && /set net\.ipv4\.conf\.eth0\.promote_secondaries = 1/.test(line)) {
          void this.lab
            .exec(n.lab.ns, ['sysctl', '-qw', 'net.ipv4.conf.eth0.promote_secondaries=0'])
            .then((r) => this.note(n, `--- soak: promote_secondaries set back to 0 (${r.exitCode === 0 ? 'done' : `failed: ${r.stderr.trim()}`}) ---`));
        }
        this.opts.onLine?.(n, line);
      });
    }
    child.once('exit', (code, signal) => {
      this.note(n, `--- soak: carpd pid ${pid ?? '?'} exited, code ${code}, signal ${signal} ---`);
      if (!n.expectExit && !this.stopping) this.opts.onUnexpectedExit?.(n, code, signal);
    });
  }

  private note(n: SoakNode, line: string): void {
    if (n.logBytes > LOG_FILE_MAX_BYTES) return;
    const text = `${new Date().toISOString()} ${line}\n`;
    n.logBytes += text.length;
    n.log.write(text);
    if (n.logBytes > LOG_FILE_MAX_BYTES) n.log.write('--- soak: log file limit reached; further lines only counted ---\n');
  }

  /** kill -9 the node's carpd, by its pid, and wait (bounded) until it is gone. */
  async kill9(n: SoakNode): Promise<number | undefined> {
    const child = n.child;
    if (!child || !this.running(n)) return undefined;
    n.expectExit = true;
    this.lab.kill(child, 'SIGKILL');
    await this.lab.waitExit(child, 5_000);
    return child.pid;
  }

  signal(n: SoakNode, sig: NodeJS.Signals): boolean {
    if (!n.child || !this.running(n)) return false;
    this.lab.kill(n.child, sig);
    return true;
  }

  /** Run a command in the node's namespace; throws with its stderr on failure. */
  async exec(n: SoakNode, argv: string[], input?: string): Promise<string> {
    const r = await this.lab.exec(n.lab.ns, argv, { timeoutMs: 10_000, ...(input !== undefined ? { input } : {}) });
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} in ${n.name}: ${r.stderr.trim() || r.spawnError || `exit ${r.exitCode}`}`);
    return r.stdout;
  }

  /** Run a command in the switch namespace (the bridge all nodes hang off); throws on failure. */
  async execSwitch(argv: string[], input?: string): Promise<string> {
    const sw = this.lab.switchNs!;
    const r = await this.lab.exec(sw, argv, { timeoutMs: 10_000, ...(input !== undefined ? { input } : {}) });
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} in the switch: ${r.stderr.trim() || r.spawnError || `exit ${r.exitCode}`}`);
    return r.stdout;
  }

  /** What carpd says (the data of `carpctl status --json`) and what the kernel holds on eth0. */
  async observe(n: SoakNode): Promise<NodeObservation> {
    const o: NodeObservation = { name: n.name, running: this.running(n) };
    const [st, addrs] = await Promise.allSettled([
      o.running ? request(n.sock, { cmd: 'status' }, 3_000) : Promise.reject(new Error('not running')),
      this.exec(n, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']),
    ]);
    if (st.status === 'fulfilled') {
      if (st.value.ok) {
        const data = st.value.data as StatusData;
        o.vhids = new Map<number, VhidView>(data.vhids.map((v) => [v.vhid, { state: v.state, demote: v.demote }]));
      } else o.statusError = `${st.value.code}: ${st.value.error}`;
    } else o.statusError = (st.reason as Error).message;
    if (addrs.status === 'fulfilled') {
      o.addresses = new Set([...addrs.value.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!));
    } else o.addrError = (addrs.reason as Error).message;
    return o;
  }

  /**
   * SIGTERM every running carpd (by pid) and wait, bounded, for each: carpd's clean shutdown bows
   * out and removes its VIPs (README, `carpd run`). Returns per node the exit, the time it took and
   * the VIPs still on eth0 afterwards.
   */
  async stopAll(timeoutMs: number, vips: readonly string[]): Promise<Array<{ node: SoakNode; code: number | null; ms: number; left: string[] }>> {
    this.stopping = true;
    const running = this.nodes.filter((n) => this.running(n));
    return Promise.all(
      running.map(async (n) => {
        const t = Date.now();
        n.expectExit = true;
        this.lab.kill(n.child!, 'SIGTERM');
        const code = await this.lab.waitExit(n.child!, timeoutMs);
        const ms = Date.now() - t;
        const o = await this.observe(n);
        return { node: n, code, ms, left: vips.filter((a) => o.addresses?.has(a)) };
      }),
    );
  }

  async destroy(): Promise<void> {
    this.stopping = true;
    await this.lab.destroy();
    await Promise.all(this.nodes.map((n) => new Promise<void>((resolve) => n.log.end(resolve))));
  }
}
