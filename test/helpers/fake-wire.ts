/**
 * A fake clock and an in-memory multicast wire joining N engines, for fast deterministic
 * multi-node tests of the real daemon loop. Nothing here touches the network.
 */
import type { CarpSocket, OpenSocketOptions, Transport } from '../../src/ports/transport.js';
import type { Clock } from '../../src/ports/clock.js';
import type { Logger } from '../../src/ports/logger.js';
import type { NetBackend } from '../../src/ports/net.js';
import type { CarpModel, VhidConfig } from '../../src/config/model.js';
import { Engine, type TransitionEvent } from '../../src/daemon/engine.js';
import { encodeIpv4Header } from '../../src/proto/ipv4.js';

interface Scheduled {
  at: number;
  order: number;
  fn: () => void;
}

/** Shared simulated time. Each node gets its own Clock port with one timer, as in the daemon. */
export class FakeTime {
  now = 0;
  private queue: Scheduled[] = [];
  private order = 0;

  schedule(at: number, fn: () => void): Scheduled {
    const s = { at, order: this.order++, fn };
    this.queue.push(s);
    return s;
  }

  cancel(s: Scheduled | undefined): void {
    if (!s) return;
    const i = this.queue.indexOf(s);
    if (i >= 0) this.queue.splice(i, 1);
  }

  clock(): Clock {
    let armed: Scheduled | undefined;
    return {
      now: () => this.now,
      setTimer: (at, cb) => {
        this.cancel(armed);
        armed = this.schedule(Math.max(at, this.now), () => {
          armed = undefined;
          cb();
        });
      },
      clearTimer: () => {
        this.cancel(armed);
        armed = undefined;
      },
    };
  }

  /** Run everything due up to now + ms, in time order. Bounded. */
  advance(ms: number): void {
    const target = this.now + ms;
    for (let i = 0; i < 1_000_000; i++) {
      let next: Scheduled | undefined;
      for (const s of this.queue) {
        if (s.at <= target && (!next || s.at < next.at || (s.at === next.at && s.order < next.order))) next = s;
      }
      if (!next) break;
      this.cancel(next);
      this.now = next.at;
      next.fn();
    }
    this.now = target;
  }
}

interface Port {
  node: string;
  ifname: string;
  srcip: string;
  cb?: (pkt: Buffer) => void;
  errCb?: (err: Error) => void;
  closed: boolean;
}

/** Broadcast segments keyed by interface name; every node's `ifname` on a segment hears the others. */
export class FakeWire {
  readonly ports: Port[] = [];
  /** Nodes cut off from the wire (partition). */
  readonly isolated = new Set<string>();
  /** Nodes whose sends fail (reported like the raw socket does, in a microtask). */
  readonly failing = new Set<string>();
  latencyMs = 0.2;
  sent = 0;
  /** Every packet put on the wire: [time, node, payload]. */
  readonly log: { at: number; node: string; payload: Buffer }[] = [];

  constructor(private readonly time: FakeTime) {}

  transport(node: string, addrOf: (ifname: string) => string): Transport {
    return {
      open: (opts: OpenSocketOptions): CarpSocket => {
        const port: Port = { node, ifname: opts.ifname, srcip: opts.srcip ?? addrOf(opts.ifname), closed: false };
        this.ports.push(port);
        return {
          ifname: opts.ifname,
          send: (payload) => this.send(port, Buffer.from(payload)),
          onMessage: (cb) => {
            port.cb = cb;
          },
          onSendError: (cb) => {
            port.errCb = cb;
          },
          close: () => {
            port.closed = true;
          },
        };
      },
    };
  }

  private send(from: Port, payload: Buffer): void {
    if (from.closed) return;
    if (this.failing.has(from.node)) {
      queueMicrotask(() => from.errCb?.(new Error('send: Network is unreachable')));
      return;
    }
    this.sent++;
    this.log.push({ at: this.time.now, node: from.node, payload });
    if (this.isolated.has(from.node)) return;
    const header = encodeIpv4Header({ src: from.srcip, dst: '224.0.0.18', ttl: 255, tos: 0x10, protocol: 112, payloadLength: payload.length });
    const pkt = Buffer.concat([header, payload]);
    for (const to of this.ports) {
      if (to === from || to.closed || to.ifname !== from.ifname || to.node === from.node || this.isolated.has(to.node)) continue;
      this.time.schedule(this.time.now + this.latencyMs, () => to.cb?.(pkt));
    }
  }
}

/** Records VIP and ARP actions; links can be flipped by tests. */
export class FakeNet implements NetBackend {
  readonly vips = new Set<string>();
  readonly actions: string[] = [];
  readonly links = new Map<string, boolean>();
  /** How many of the next addVip calls fail (like `ip addr add` timing out). */
  failAdds = 0;
  private watcher?: (ifname: string, up: boolean) => void;

  constructor(private readonly addrs: Record<string, string>) {}

  async addVip(ifname: string, cidr: string): Promise<void> {
    if (this.failAdds > 0) {
      this.failAdds--;
      this.actions.push(`add-failed ${cidr} ${ifname}`);
      throw new Error('ip: timed out');
    }
    this.actions.push(`add ${cidr} ${ifname}`);
    this.vips.add(`${cidr}@${ifname}`);
  }
  async delVip(ifname: string, cidr: string): Promise<void> {
    this.actions.push(`del ${cidr} ${ifname}`);
    this.vips.delete(`${cidr}@${ifname}`);
  }
  async garp(ifname: string, cidr: string): Promise<void> {
    this.actions.push(`garp ${cidr} ${ifname}`);
  }
  primaryAddress(ifname: string): string | undefined {
    return this.addrs[ifname];
  }
  linkUp(ifname: string): boolean {
    return this.links.get(ifname) ?? true;
  }
  watchLinks(_ifnames: string[], cb: (ifname: string, up: boolean) => void): () => void {
    this.watcher = cb;
    return () => {
      this.watcher = undefined;
    };
  }
  setLink(ifname: string, up: boolean): void {
    this.links.set(ifname, up);
    this.watcher?.(ifname, up);
  }
}

export const silent: Logger = { log: () => undefined };

export interface SimNode {
  name: string;
  engine: Engine;
  net: FakeNet;
  events: TransitionEvent[];
  logs: string[];
}

/** A seeded PRNG (mulberry32) so counters are deterministic. */
export function seeded(seed: number): (n: number) => Buffer {
  let a = seed >>> 0;
  return (n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      b[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
    }
    return b;
  };
}

export function vhidCfg(vhid: number, advskew: number, over: Partial<VhidConfig> = {}): VhidConfig {
  const ifname = over.interface ?? 'eth0';
  return {
    key: `${vhid}@${ifname}`,
    vhid,
    interface: ifname,
    addresses: [`198.18.0.${100 + vhid}/24`],
    advbase: 1,
    advskew,
    password: 'secret',
    source: 'test:1',
    ...over,
  };
}

/** A simulated cluster: nodes on one fake wire and one fake time. */
export class Sim {
  readonly time = new FakeTime();
  readonly wire = new FakeWire(this.time);
  readonly nodes = new Map<string, SimNode>();

  add(
    name: string,
    index: number,
    vhids: VhidConfig[],
    global: Partial<CarpModel['global']> = {},
    extra: Omit<Partial<CarpModel>, 'global' | 'vhids'> = {},
  ): SimNode {
    const addr = `198.18.0.${index}`;
    const net = new FakeNet({ eth0: addr, eth1: `198.18.1.${index}` });
    const logs: string[] = [];
    const model: CarpModel = { global: { allow: true, preempt: false, log: 7, ...global }, vhids, ...extra };
    const engine = new Engine(model, {
      transport: this.wire.transport(name, (ifname) => net.primaryAddress(ifname) ?? addr),
      net,
      clock: this.time.clock(),
      logger: { log: (_l, m) => logs.push(m) },
      random: seeded(index * 7919),
      wallClock: () => new Date(Date.UTC(2026, 0, 1) + this.time.now),
    });
    const node: SimNode = { name, engine, net, events: [], logs };
    engine.on('transition', (e: TransitionEvent) => node.events.push(e));
    this.nodes.set(name, node);
    return node;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  state(name: string, key: string): string | undefined {
    return this.node(name)
      .engine.status()
      .find((s) => s.key === key)?.state;
  }

  /** Names of the nodes that are MASTER for `key`. */
  masters(key: string): string[] {
    return [...this.nodes.keys()].filter((n) => this.state(n, key) === 'MASTER');
  }

  /** Crash a node: it stops sending and hearing, with no bow-out (kill -9). */
  crash(name: string): void {
    this.wire.isolated.add(name);
    this.nodes.delete(name);
  }
}
