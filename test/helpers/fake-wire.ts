/**
 * A fake clock and an in-memory multicast wire joining N engines, for fast deterministic
 * multi-node tests of the real daemon loop. Nothing here touches the network.
 */
import type { CarpSocket, OpenSocketOptions, RecvInfo6, Transport } from '../../src/ports/transport.js';
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
  /** 4, or 6 for an IPv6 socket (it hears only IPv6 ports, and gets the payload and a RecvInfo6). */
  family: 4 | 6;
  srcip: string;
  /** Whether the socket joined the group (OpenBSD carppeer interfaces do not). */
  joined: boolean;
  cb?: (pkt: Buffer, info?: RecvInfo6) => void;
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
  /** Every packet put on the wire: [time, node, payload], with the family and destination. */
  readonly log: { at: number; node: string; payload: Buffer; family: 4 | 6; dst?: string }[] = [];
  /** The hop limit / TTL packets arrive with (255 on one link; 254 as if routed once). */
  ttl = 255;

  constructor(private readonly time: FakeTime) {}

  /**
   * `addr6Of` gives the node's IPv6 link-local on an interface; by default one made from its
   * IPv4 address (10.0.0.2 → fe80::a00:2).
   */
  transport(node: string, addrOf: (ifname: string) => string, addr6Of: (ifname: string) => string = (i) => linkLocalOf(addrOf(i))): Transport {
    return {
      addresses6: (ifname) => [addr6Of(ifname)],
      open: (opts: OpenSocketOptions): CarpSocket => {
        const family = opts.family ?? 4;
        const srcip = family === 6 ? addr6Of(opts.ifname) : (opts.srcip ?? addrOf(opts.ifname));
        const port: Port = { node, ifname: opts.ifname, family, srcip, joined: opts.join ?? true, closed: false };
        this.ports.push(port);
        return {
          ifname: opts.ifname,
          family,
          send: (payload, dst) => this.send(port, Buffer.from(payload), dst),
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

  private send(from: Port, payload: Buffer, dst?: string): void {
    if (from.closed) return;
    if (this.failing.has(from.node)) {
      queueMicrotask(() => from.errCb?.(new Error('send: Network is unreachable')));
      return;
    }
    this.sent++;
    this.log.push({ at: this.time.now, node: from.node, payload, family: from.family, ...(dst ? { dst } : {}) });
    if (this.isolated.has(from.node)) return;
    const group = from.family === 6 ? 'ff02::12' : '224.0.0.18';
    const to4 = dst ?? group;
    const pkt =
      from.family === 6
        ? payload
        : Buffer.concat([encodeIpv4Header({ src: from.srcip, dst: to4, ttl: this.ttl, tos: 0x10, protocol: 112, payloadLength: payload.length }), payload]);
    const info: RecvInfo6 | undefined = from.family === 6 ? { family: 6, src: from.srcip, hopLimit: this.ttl === 255 ? 255 : undefined } : undefined;
    const multicast = dst === undefined || dst === group;
    for (const to of this.ports) {
      if (to === from || to.closed || to.ifname !== from.ifname || to.node === from.node || to.family !== from.family || this.isolated.has(to.node)) continue;
      // A unicast advert reaches its addressee only; a multicast one every port that joined the group.
      if (multicast ? !to.joined : to.srcip !== dst) continue;
      this.time.schedule(this.time.now + this.latencyMs, () => to.cb?.(pkt, info));
    }
  }
}

/** A link-local made from an IPv4 address: 10.0.0.2 → fe80::a00:2. */
export function linkLocalOf(v4addr: string): string {
  const o = v4addr.split('.').map(Number);
  if (o.length !== 4 || o.some((x) => !Number.isInteger(x))) return 'fe80::1';
  return `fe80::${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
}

/** Deliver an IPv6 advert payload to `node`'s IPv6 socket on `ifname` now, with a chosen hop limit (forged packets). */
export function inject6(wire: FakeWire, node: string, payload: Buffer, src: string, hopLimit: number, ifname = 'eth0'): boolean {
  const port = wire.ports.find((p) => p.node === node && p.ifname === ifname && p.family === 6 && !p.closed);
  if (!port?.cb) return false;
  port.cb(payload, { family: 6, src, hopLimit: hopLimit === 255 ? 255 : undefined });
  return true;
}

/** An IPv4 address/prefix as numbers; undefined for IPv6 (which has no primary/secondary rule). */
function v4(cidr: string): { addr: number; len: number } | undefined {
  const [a = '', p] = cidr.split('/');
  const o = a.split('.').map(Number);
  if (o.length !== 4 || o.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return undefined;
  return { addr: ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0, len: p === undefined ? 32 : Number(p) };
}

/** Same prefix length and same subnet: Linux's test for "secondary of" (inet_ifa_match with equal masks). */
function sameSubnet(a: string, b: string): boolean {
  const x = v4(a);
  const y = v4(b);
  if (!x || !y || x.len !== y.len) return false;
  const mask = x.len === 0 ? 0 : (~0 << (32 - x.len)) >>> 0;
  return (x.addr & mask) >>> 0 === (y.addr & mask) >>> 0;
}

/**
 * Records VIP and ARP actions; links can be flipped by tests. The addresses are kept per interface
 * in the kernel's order, the node's own address first (a bare address in `addrs` taking /24), and
 * follow Linux's primary/secondary rule (net/ipv4/devinet.c): the first IPv4 address of a subnet
 * and prefix length is its primary, the later ones its secondaries, and deleting a primary deletes
 * its secondaries too unless `promote` is set for the interface (promote_secondaries, 0 by default
 * as in the kernel), when the next one becomes primary.
 */
export class FakeNet implements NetBackend {
  readonly actions: string[] = [];
  readonly links = new Map<string, boolean>();
  /** Interface → addresses (`addr/prefix`), in order. */
  readonly kernel = new Map<string, string[]>();
  /** promote_secondaries per interface (absent: 0). */
  readonly promote = new Map<string, number>();
  /** Secondaries the kernel deleted with their primary (`cidr@ifname`), in order. */
  readonly cascaded: string[] = [];
  /** How many of the next addVip calls fail (like `ip addr add` timing out). */
  failAdds = 0;
  private watcher?: (ifname: string, up: boolean) => void;
  private addressWatcher?: { ifnames: Set<string>; cb: (ifname: string) => void };

  constructor(private readonly addrs: Record<string, string>) {
    for (const [ifname, a] of Object.entries(addrs)) this.kernel.set(ifname, [a.includes('/') ? a : `${a}/24`]);
  }

  /** The VIPs on the interfaces (every address but the node's own), as `cidr@ifname`. */
  get vips(): Set<string> {
    const out = new Set<string>();
    for (const [ifname, list] of this.kernel) {
      const own = this.addrs[ifname]?.split('/')[0];
      for (const cidr of list) if (cidr.split('/')[0] !== own) out.add(`${cidr}@${ifname}`);
    }
    return out;
  }

  async addVip(ifname: string, cidr: string): Promise<void> {
    if (this.failAdds > 0) {
      this.failAdds--;
      this.actions.push(`add-failed ${cidr} ${ifname}`);
      throw new Error('ip: timed out');
    }
    this.actions.push(`add ${cidr} ${ifname}`);
    this.kernelAdd(ifname, cidr);
  }
  async delVip(ifname: string, cidr: string): Promise<void> {
    this.actions.push(`del ${cidr} ${ifname}`);
    this.kernelDel(ifname, cidr);
  }

  /** `ip addr add` as the kernel does it (already there: nothing happens). */
  kernelAdd(ifname: string, cidr: string): void {
    let list = this.kernel.get(ifname);
    if (!list) this.kernel.set(ifname, (list = []));
    const addr = cidr.split('/')[0];
    if (list.some((c) => c.split('/')[0] === addr)) return;
    list.push(cidr);
    this.addressEvent(ifname);
  }

  /** `ip addr del` as the kernel does it: a primary takes its secondaries unless promote is on. Returns what went. */
  kernelDel(ifname: string, cidr: string): string[] {
    const list = this.kernel.get(ifname) ?? [];
    const addr = cidr.split('/')[0];
    const i = list.findIndex((c) => c.split('/')[0] === addr);
    if (i < 0) return [];
    const gone = list[i]!;
    const primary = !list.slice(0, i).some((c) => sameSubnet(c, gone));
    let removed = [gone];
    if (primary && (this.promote.get(ifname) ?? 0) === 0) removed = [gone, ...list.slice(i + 1).filter((c) => sameSubnet(c, gone))];
    for (const c of removed.slice(1)) this.cascaded.push(`${c}@${ifname}`);
    this.kernel.set(
      ifname,
      list.filter((c) => !removed.includes(c)),
    );
    this.addressEvent(ifname);
    return removed;
  }

  /** Whether `cidr` is the primary address of its subnet on the interface now. */
  isPrimary(ifname: string, cidr: string): boolean {
    const list = this.kernel.get(ifname) ?? [];
    const addr = cidr.split('/')[0];
    const i = list.findIndex((c) => c.split('/')[0] === addr);
    return i >= 0 && !list.slice(0, i).some((c) => sameSubnet(c, list[i]!));
  }

  private addressEvent(ifname: string): void {
    const w = this.addressWatcher;
    // The kernel's event arrives later, from another process (ip monitor): never inside the call.
    if (w?.ifnames.has(ifname)) queueMicrotask(() => w.cb(ifname));
  }

  async addresses(ifnames: string[]): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    for (const ifname of ifnames) {
      const list = this.kernel.get(ifname);
      if (list) out[ifname] = [...list];
    }
    return out;
  }
  watchAddresses(ifnames: string[], cb: (ifname: string) => void): () => void {
    const w = { ifnames: new Set(ifnames), cb };
    this.addressWatcher = w;
    return () => {
      if (this.addressWatcher === w) this.addressWatcher = undefined;
    };
  }
  promoteSecondaries(ifname: string, set: boolean): number | undefined {
    if (!this.kernel.has(ifname)) return undefined;
    const before = this.promote.get(ifname) ?? 0;
    if (set) this.promote.set(ifname, 1);
    return before;
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
