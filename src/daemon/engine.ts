/**
 * The daemon loop: the thin shell around the pure node (src/core/node.ts). It owns the sockets,
 * the codec, the VIP commands and the one real timer on the Clock port; it turns packets, timer
 * expiry, link changes, command results and admin actions into the node's inputs, and performs
 * the node's effects in order. The protocol never waits on anything here: VIP changes and
 * gratuitous ARP run in a per-vhid queue after the advert has been sent, and the transition
 * listeners run after the advert has left.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { CarpSocket, RecvInfo6, Transport } from '../ports/transport.js';
import type { Clock } from '../ports/clock.js';
import { LOG, type Logger } from '../ports/logger.js';
import type { NetBackend } from '../ports/net.js';
import type { CarpModel, VhidConfig } from '../config/model.js';
import { groupsOf } from '../config/groups.js';
import { wireInterface } from '../config/vmac.js';
import { DEFAULT_GROUP } from '../core/demotion.js';
import { CarpNode, type NodeConfig, type NodeEffect, type NodeInput, type ReconfigureResult } from '../core/node.js';
import { buildAdvert, checkAdvert6 } from '../proto/advert.js';
import { CARP_GROUP_V6, isMulticast4, isMulticastAddress } from '../proto/ipv6.js';
import { checkPacket, type PacketResult } from '../proto/packet.js';
import { buildVrrp, checkVrrp, familyOf, VRRP_GROUP4, VRRP_GROUP6, VRRP_VERSION } from '../proto/vrrp.js';
import { dropCounter, newStats, type CarpStats, type DropReason } from '../proto/counters.js';
import { makeAuthContext, type AuthContext } from '../proto/hmac.js';
import type { DemotionView, LastTransition, StateSource, StateSourceCapabilities, TransitionEvent, VhidCounters, VhidStatus } from '../ports/state-source.js';
import { DropLog, RateLimiter } from './rate-limit.js';

export type { LastTransition, ReconfigureResult, TransitionEvent, VhidStatus };

export const CARP_GROUP = '224.0.0.18';

export interface EngineOptions {
  transport: Transport;
  net: NetBackend;
  clock: Clock;
  logger: Logger;
  /** Random source (tests pass a deterministic one). */
  random?: (n: number) => Buffer;
  /** Wall clock for event timestamps. */
  wallClock?: () => Date;
  /**
   * Make-before-break for planned handovers: when a demoted master yields to a peer's advert, keep
   * the VIP this long so the new master's gratuitous ARP lands before ours goes. 0 (default): off.
   */
  handoverHoldMs?: number;
  /**
   * How often the VIPs are compared with the kernel's address list, besides every kernel address
   * event (when the net backend can list addresses). Default VIP_CHECK_MS; 0: events only.
   */
  vipCheckMs?: number;
}

/** The periodic VIP reconcile: one address listing for all interfaces every 5 s. */
export const VIP_CHECK_MS = 5_000;

/** A peer's advert as last heard for a vhid, with the monotonic time it arrived. */
export interface HeardAdvert {
  src: string;
  advbase: number;
  advskew: number;
  demote: number;
  at: number;
  /** A VRRPv3 advert's priority and interval (centiseconds). */
  vrrp?: { priority: number; intervalCs: number };
}

/** What the shell keeps per vhid: the wire side the node does not see. */
interface Wire {
  cfg: VhidConfig;
  ctx: AuthContext;
  /** Our last advert's counter (random at first): where the node starts numbering this vhid. */
  counter: bigint;
  stats: VhidCounters;
  /** Serializes VIP and ARP work for this vhid so add/del never reorder. */
  netQueue: Promise<void>;
  /** Monotonic time the vhid was started. */
  startedAt: number;
  lastHeard?: HeardAdvert;
  lastTransition?: LastTransition;
  /**
   * The last advert handed to the node: a mixed vhid's peer sends the same advert (same counter,
   * same HMAC) over IPv4 and IPv6 (FreeBSD carp_send_ad_locked()), and the second copy is not a
   * second election input nor a replay.
   */
  fed?: { counter: bigint; family: 4 | 6 };
}

/**
 * The address families a vhid advertises over: those of its addresses, like FreeBSD
 * carp_send_ad_locked() (IPv4 when sc_naddrs, IPv6 when sc_naddrs6). No address: IPv4.
 */
export function familiesOf(cfg: Pick<VhidConfig, 'addresses'>): Array<4 | 6> {
  const six = cfg.addresses.some((a) => a.includes(':'));
  const four = cfg.addresses.some((a) => !a.includes(':'));
  return six && four ? [4, 6] : six ? [6] : [4];
}

/**
 * Which unicast rules apply to the vhid's adverts of one family: `freebsd` (peer/peer6: no
 * TTL check), `openbsd` (carppeer: IPv4 only, TTL checked, multicast adverts ignored), or
 * undefined (multicast). FreeBSD carp_input_c() decides per family: `multicast =
 * IN_MULTICAST(sc_carpaddr)` for IPv4, `IN6_IS_ADDR_MULTICAST(&sc_carpaddr6)` for IPv6.
 */
export function unicastMode(cfg: Pick<VhidConfig, 'peer' | 'peer6' | 'unicast'>, family: 4 | 6): 'freebsd' | 'openbsd' | undefined {
  const peer = family === 4 ? cfg.peer : cfg.peer6;
  if (peer === undefined || isMulticastAddress(peer)) return undefined;
  if (cfg.unicast === 'openbsd') return family === 4 ? 'openbsd' : undefined;
  return 'freebsd';
}

/** How long a closing socket is left to flush a bow-out queued on a full buffer. */
const SOCKET_FLUSH_MS = 20;
/** How many distinct bad-authentication sources are counted one by one. */
export const MAX_BADAUTH_PEERS = 1024;

export class Engine extends EventEmitter implements StateSource {
  readonly kind = 'carpd' as const;
  readonly capabilities: StateSourceCapabilities = { forceState: true, prePhaseHoldsVip: true, packetCounters: true };
  readonly stats: CarpStats = newStats();
  /** Bad authentication count per `src vhid@if`. */
  readonly badAuthByPeer = new Map<string, number>();
  private readonly node = new CarpNode();
  private readonly wires = new Map<string, Wire>();
  /** interface → vhid number → key */
  private readonly byIf = new Map<string, Map<number, string>>();
  private readonly sockets = new Map<string, CarpSocket>();
  /** The IPv6 sockets, per interface, for vhids with IPv6 addresses. */
  private readonly sockets6 = new Map<string, CarpSocket>();
  /** The interface's IPv6 source (its link-local), asked once per interface. */
  private readonly ifAddress6 = new Map<string, string | undefined>();
  /** Whether each interface's IPv4 socket joined 224.0.0.18 (OpenBSD carppeer-only interfaces do not). */
  private readonly joined4 = new Map<string, boolean>();
  private readonly ownAddresses = new Set<string>();
  private readonly ifAddress = new Map<string, string | undefined>();
  /** Send errors reported per interface, to tell a good send from a failed one. */
  private readonly sendErrors = new Map<string, number>();
  /** Adverts sent in this turn per interface, with the error count before the first: reported together. */
  private readonly sentThisTurn = new Map<string, { count: number; errorsBefore: number }>();
  /** Monotonic time a CARP packet from a peer last arrived, per interface. */
  private readonly peerHeard = new Map<string, number>();
  private readonly limiter = new RateLimiter(60_000);
  /** Bad packets, logged per reason and interface with a summary per minute (never per source). */
  private readonly drops = new DropLog();
  /** Effects waiting to be performed, in the order the node produced them. */
  private readonly outbox: NodeEffect[] = [];
  private performing = false;
  private phaseGate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined;
  /** The transition just emitted: the node puts each `phase` right after its `transition`. */
  private lastEvent: TransitionEvent | undefined;
  private lastReconfigure: ReconfigureResult | undefined;
  private stopLinks?: () => void;
  private stopAddresses?: () => void;
  /** A VIP check is reading the kernel's list; another asked for meanwhile runs after it. */
  private checking = false;
  private checkAgain: string | undefined;
  /**
   * Per vhid key (kept across a reconfigure that rebuilds the wire): VIP adds and deletes queued or
   * running, and a count bumped as each is queued and as it ends. A kernel address list read while
   * either moved may not show that vhid's work yet.
   */
  private readonly vipWork = new Map<string, { busy: number; gen: number }>();
  /** promote_secondaries as last seen per interface, to say once when someone turns it off. */
  private readonly promoteSeen = new Map<string, number | undefined>();

  constructor(
    private model: CarpModel,
    private readonly opts: EngineOptions,
  ) {
    super();
  }

  /** The demotion ledger, read-only: changes go through demote/setDemotion. */
  get ledger(): DemotionView {
    return this.node.ledger;
  }

  private log(level: number, msg: string): void {
    if (level <= this.model.global.log || level <= 0) this.opts.logger.log(level, msg);
  }

  private random(n: number): Buffer {
    return (this.opts.random ?? randomBytes)(n);
  }

  /**
   * Step the node and perform its effects. The node's state moves at once, so a caller reads its
   * result straight after; effects of a step made while others are performed (a listener that
   * demotes) queue behind them, so nothing reorders.
   */
  private feed(input: NodeInput, now = this.opts.clock.now()): void {
    this.outbox.push(...this.node.step(input, now));
    if (!this.performing) {
      this.performing = true;
      try {
        for (let fx = this.outbox.shift(); fx; fx = this.outbox.shift()) this.perform(fx);
      } finally {
        this.performing = false;
      }
      // Send errors are reported in microtasks queued by each send(); one queued after the whole
      // burst sees them all, and tells the node about the burst's good sends in one input.
      if (this.sentThisTurn.size > 0) queueMicrotask(this.reportSends);
    }
    this.arm();
  }

  private reportSends = (): void => {
    const sent = [...this.sentThisTurn];
    this.sentThisTurn.clear();
    for (const [ifname, s] of sent) {
      if ((this.sendErrors.get(ifname) ?? 0) === s.errorsBefore) this.feed({ type: 'send-result', ifname, ok: true, count: s.count });
    }
  };

  /** Open sockets, create machines, and start every vhid (INIT → BACKUP when its link is up). */
  start(): void {
    if (this.node.isRunning) return;
    this.syncWires(this.model);
    this.watchLinks();
    this.promoteSecondaries([...this.byIf.keys()]);
    this.watchAddresses();
    this.feed({ type: 'start', config: this.nodeConfig(this.model), links: this.links() });
  }

  /**
   * Linux deletes every secondary address of a subnet with its primary unless
   * net.ipv4.conf.IF.promote_secondaries is 1 (net/ipv4/devinet.c, __inet_del_ifa()); a VIP that
   * became a subnet's primary would take the other VIPs with it when its vhid leaves. Set it on
   * carpd's interfaces, as keepalived does for its `promote_secondaries` instances
   * (keepalived/vrrp/vrrp_if_config.c, set_promote_secondaries()) and systemd's sysctl defaults do
   * for every interface. Left set at exit: the VIPs carpd deletes on the way out need it too.
   */
  private promoteSecondaries(ifnames: string[]): void {
    const net = this.opts.net;
    if (!net.promoteSecondaries) return;
    for (const ifname of ifnames) {
      if (this.promoteSeen.has(ifname)) continue;
      const before = net.promoteSecondaries(ifname, true);
      this.promoteSeen.set(ifname, before === undefined ? undefined : 1);
      if (before === 0) {
        this.log(
          LOG.WARN,
          `carp: ${ifname}: set net.ipv4.conf.${ifname}.promote_secondaries = 1 (was 0), so deleting a VIP that is its subnet's primary address does not delete the other VIPs of that subnet`,
        );
      } else if (before === undefined) {
        this.log(
          LOG.WARN,
          `carp: ${ifname}: cannot read or set net.ipv4.conf.${ifname}.promote_secondaries; VIPs lost with a deleted primary are re-added by the reconcile`,
        );
      }
    }
  }

  private watchAddresses(): void {
    this.stopAddresses?.();
    const net = this.opts.net;
    if (!net.addresses || !net.watchAddresses) return;
    this.stopAddresses = net.watchAddresses([...this.byIf.keys()], () => this.checkVips('an address event'));
  }

  /**
   * Read the kernel's addresses of every interface (one listing) and hand them to the node, which
   * decides what to add back or remove. One check at a time; asks that arrive meanwhile become one
   * more check after it, so a burst of address events costs two listings, not one each.
   */
  private checkVips(why: string): void {
    const net = this.opts.net;
    if (!net.addresses || !this.node.isRunning) return;
    if (this.checking) {
      this.checkAgain ??= why;
      return;
    }
    this.checking = true;
    const ifnames = [...this.byIf.keys()];
    const gens = new Map([...this.vipWork].map(([key, v]) => [key, v.gen]));
    this.watchPromote(ifnames);
    net
      .addresses(ifnames)
      .then(
        (addresses) => {
          const skip = [...this.vipWork].filter(([key, v]) => v.busy > 0 || v.gen !== gens.get(key)).map(([key]) => key);
          this.feed({ type: 'vip-check', addresses, skip, why });
        },
        (err: unknown) => {
          if (this.limiter.allow('vip-check'))
            this.log(LOG.WARN, `carp: cannot list the addresses of ${ifnames.join(', ')}: ${err instanceof Error ? err.message : String(err)}`);
        },
      )
      .finally(() => {
        this.checking = false;
        const again = this.checkAgain;
        this.checkAgain = undefined;
        if (again !== undefined) this.checkVips(again);
      });
  }

  /** Someone turned promote_secondaries off again: say so once; the reconcile covers for it. */
  private watchPromote(ifnames: string[]): void {
    const net = this.opts.net;
    if (!net.promoteSecondaries) return;
    for (const ifname of ifnames) {
      const was = this.promoteSeen.get(ifname);
      const now = net.promoteSecondaries(ifname, false);
      this.promoteSeen.set(ifname, now);
      if (now === 0 && was !== 0) {
        this.log(
          LOG.WARN,
          `carp: ${ifname}: net.ipv4.conf.${ifname}.promote_secondaries is 0 again: deleting a primary address deletes the VIPs of its subnet; carpd re-adds what a MASTER loses`,
        );
      }
    }
  }

  private links(): Record<string, boolean> {
    return Object.fromEntries([...this.byIf.keys()].map((i) => [i, this.opts.net.linkUp(i)]));
  }

  private nodeConfig(model: CarpModel): NodeConfig {
    return {
      preempt: model.global.preempt,
      masterDown: model.global.masterDown ?? 'freebsd',
      ifdownDemotion: model.global.ifdownDemotion ?? 240,
      senderrDemotion: model.global.senderrDemotion ?? 240,
      handoverHoldMs: this.opts.handoverHoldMs ?? 0,
      // A backend that cannot list addresses (ucarp mode: the scripts own the VIPs) is not checked.
      vipCheckMs: this.opts.net.addresses ? (this.opts.vipCheckMs ?? VIP_CHECK_MS) : 0,
      replayProtection: model.global.replayProtection ?? 'once',
      // net.inet.carp.demotion (sysctl.conf) or `demotion` in carpd.conf, and [group.NAME] demote.
      demotions: [
        ...(model.global.demotion ? [{ group: DEFAULT_GROUP, count: model.global.demotion }] : []),
        ...(model.groups ?? []).map((g) => ({ group: g.name, count: g.demote ?? 0 })),
      ],
      vhids: model.vhids.map((cfg) => {
        const srcip = cfg.srcip ?? this.interfaceAddress(cfg.interface);
        const srcip6 = familiesOf(cfg).includes(6) ? this.interfaceAddress6(wireInterface(cfg)) : undefined;
        return {
          key: cfg.key,
          vhid: cfg.vhid,
          // vmac: the node sends, adds VIPs, announces and reconciles on the macvlan (see wireInterface).
          ifname: wireInterface(cfg),
          addresses: cfg.addresses,
          advbase: cfg.advbase,
          advskew: cfg.advskew,
          deadRatio: cfg.deadRatio ?? 3,
          ...(srcip ? { srcip } : {}),
          ...(srcip6 ? { srcip6 } : {}),
          groups: groupsOf(cfg, model),
          ...(cfg.version === 3 ? { version: 3 as const, priority: cfg.priority ?? 100, intervalCs: cfg.intervalCs ?? 100 } : {}),
          fingerprint: canonical(cfg),
          ...(this.wires.has(cfg.key) ? { counter: this.wires.get(cfg.key)!.counter } : {}),
        };
      }),
    };
  }

  /** The wire side of every vhid in `model`: sockets for new interfaces, auth contexts kept while the password and addresses are. */
  private syncWires(model: CarpModel): void {
    const now = this.opts.clock.now();
    for (const cfg of model.vhids) {
      const w = this.wires.get(cfg.key);
      if (
        w &&
        w.cfg.password === cfg.password &&
        w.cfg.addresses.join(',') === cfg.addresses.join(',') &&
        w.cfg.interface === cfg.interface &&
        w.cfg.vhid === cfg.vhid &&
        wireInterface(w.cfg) === wireInterface(cfg)
      ) {
        w.cfg = cfg;
        continue;
      }
      this.socketFor(cfg, model);
      this.wires.set(cfg.key, {
        cfg,
        ctx: makeAuthContext(cfg.password, cfg.vhid, cfg.addresses),
        counter: w?.counter ?? this.random(8).readBigUInt64BE(0),
        stats: w?.stats ?? { advertsSent: 0, advertsReceived: 0, transitionsToMaster: 0, badauth: 0, vipRestored: 0, vipRemoved: 0 },
        netQueue: w?.netQueue ?? Promise.resolve(),
        startedAt: w?.startedAt ?? now,
        ...(w?.lastHeard ? { lastHeard: w.lastHeard } : {}),
        ...(w?.lastTransition ? { lastTransition: w.lastTransition } : {}),
      });
    }
    this.byIf.clear();
    for (const cfg of model.vhids) {
      let m = this.byIf.get(wireInterface(cfg));
      if (!m) this.byIf.set(wireInterface(cfg), (m = new Map<number, string>()));
      m.set(cfg.vhid, cfg.key);
    }
    // A reload that adds a multicast vhid to a carppeer-only interface (or takes the last one
    // away) changes whether the interface belongs in 224.0.0.18: a fresh IPv4 socket says so.
    for (const [ifname, socket] of [...this.sockets]) {
      const need = model.vhids.some((v) => wireInterface(v) === ifname && unicastMode(v, 4) !== 'openbsd');
      const first = model.vhids.find((v) => wireInterface(v) === ifname);
      if (!first || this.joined4.get(ifname) === need) continue;
      socket.close();
      this.sockets.delete(ifname);
      this.openSocket(ifname, first.interface, 4, first.srcip, need);
    }
  }

  private watchLinks(): void {
    this.stopLinks?.();
    this.stopLinks = this.opts.net.watchLinks([...this.byIf.keys()], (ifname, up) => this.onLink(ifname, up));
  }

  /** The interface's own address, asked once per interface. */
  private interfaceAddress(ifname: string): string | undefined {
    if (!this.ifAddress.has(ifname)) this.ifAddress.set(ifname, this.opts.net.primaryAddress(ifname));
    return this.ifAddress.get(ifname);
  }

  /** The interface's IPv6 link-local (the kernel's source for ff02::12), asked once per interface. */
  private interfaceAddress6(ifname: string): string | undefined {
    if (!this.ifAddress6.has(ifname)) this.ifAddress6.set(ifname, this.opts.transport.addresses6?.(ifname)[0]);
    return this.ifAddress6.get(ifname);
  }

  /**
   * Open the sockets `cfg`'s families need on its wire interface (those missing): its own
   * interface, or with `vmac` its macvlan (src/config/vmac.ts), which sends from the vMAC and is
   * where the peer's adverts arrive (the macvlan driver hands a frame from a local macvlan's MAC
   * to that macvlan alone). The IPv4 source address is the parent's: a BACKUP's macvlan has none.
   */
  private socketFor(cfg: VhidConfig, model: CarpModel = this.model): void {
    const ifname = wireInterface(cfg);
    const onIf = model.vhids.filter((v) => wireInterface(v) === ifname);
    for (const family of familiesOf(cfg)) {
      if ((family === 4 ? this.sockets : this.sockets6).has(ifname)) continue;
      // OpenBSD carp_join_multicast(): no 224.0.0.18 membership when the peer is unicast. The
      // membership is per interface, so it is left out only when no vhid there is multicast.
      const join = family === 6 || onIf.some((v) => unicastMode(v, 4) !== 'openbsd');
      this.openSocket(ifname, cfg.interface, family, cfg.srcip, join);
    }
  }

  private openSocket(ifname: string, parent: string, family: 4 | 6, configuredSrc: string | undefined, join: boolean): void {
    let socket: CarpSocket;
    if (family === 6) {
      // Own adverts are told by source: the interface's IPv6 addresses, its link-local first.
      for (const i of new Set([ifname, parent])) for (const a of this.opts.transport.addresses6?.(i) ?? []) this.ownAddresses.add(a);
      socket = this.opts.transport.open({ ifname, family: 6, group: CARP_GROUP_V6, ...(join ? {} : { join }) });
      this.sockets6.set(ifname, socket);
    } else {
      const srcip = configuredSrc ?? this.interfaceAddress(parent);
      if (srcip) this.ownAddresses.add(srcip);
      socket = this.opts.transport.open({ ifname, ...(srcip ? { srcip } : {}), group: CARP_GROUP, ...(join ? {} : { join }) });
      this.sockets.set(ifname, socket);
      this.joined4.set(ifname, join);
    }
    this.listen(ifname, socket);
  }

  private listen(ifname: string, socket: CarpSocket): void {
    socket.onMessage((pkt, info) => this.onPacket(ifname, pkt, info));
    socket.onSendError((err) => {
      if (this.limiter.allow(`senderr ${ifname}`)) this.log(LOG.WARN, `carp: send error on ${ifname}: ${err.message}`);
      this.sendErrors.set(ifname, (this.sendErrors.get(ifname) ?? 0) + 1);
      this.feed({ type: 'send-result', ifname, ok: false });
    });
    // A receive error is not a send error: counted on its own, and the adapter reopens the socket.
    socket.onReceiveError?.((err) => {
      this.stats.carps_ierrors++;
      if (this.limiter.allow(`recverr ${ifname}`)) this.log(LOG.WARN, `carp: receive error on ${ifname}: ${err.message}; reopening the socket`);
    });
  }

  private onPacket(ifname: string, pkt: Buffer, info?: RecvInfo6): void {
    const table = this.byIf.get(ifname);
    if (!table) return;
    const wireOf = (vhid: number) => {
      const key = table.get(vhid);
      return key === undefined ? undefined : this.wires.get(key);
    };
    const family = info ? 6 : 4;
    const modes = [...table.values()].map((key) => this.wires.get(key)).map((w) => (w ? unicastMode(w.cfg, family) : undefined));
    // FreeBSD unicast vhids skip the TTL / hop-limit check: it then waits for the vhid lookup.
    const exempt = modes.includes('freebsd')
      ? (vhid: number) => {
          const w = wireOf(vhid);
          return w !== undefined && unicastMode(w.cfg, family) === 'freebsd';
        }
      : undefined;
    // OpenBSD carp_proto_input_if(): a vhid matches only when `ismulti == IN_MULTICAST(sc_peer)`,
    // so a carppeer vhid ignores multicast adverts and, on its interface, a multicast vhid
    // ignores unicast ones. Anything else is not matched: badvhid, like the kernel.
    const openbsd = modes.includes('openbsd');
    const matched = (vhid: number, dst: string) => {
      const w = wireOf(vhid);
      if (!w) return undefined;
      if (openbsd) {
        const mode = unicastMode(w.cfg, 4);
        if (mode === 'openbsd' && isMulticast4(dst)) return undefined;
        if (mode === undefined && !isMulticast4(dst)) return undefined;
      }
      return w;
    };
    let res: PacketResult;
    if (info) {
      // IPv6: the version nibble picks the check, as checkPacket does for IPv4. VRRP checks the
      // hop limit always, unicast or not (FreeBSD vrrp_input_c()); the adapter's filters say
      // whether it was 255. The pseudo-header's destination is the group: unicast VRRP is not sent.
      if (pkt.length > 0 && pkt[0]! >> 4 === VRRP_VERSION) {
        const r = checkVrrp(pkt, { family: 6, src: info.src, dst: VRRP_GROUP6, ttl: info.hopLimit ?? 0 }, (vrid) => {
          const w = matched(vrid, VRRP_GROUP6);
          if (!w) return undefined;
          return w.cfg.version === 3 ? { version: 3, addresses: w.cfg.addresses } : { version: 2, addresses: [] };
        });
        res = r.ok ? { ...r, version: 3 } : r;
      } else {
        const r = checkAdvert6(
          { payload: pkt, src: info.src, dst: CARP_GROUP_V6, hopLimit: info.hopLimit },
          (vhid, dst) => {
            const w = matched(vhid, dst);
            return w?.cfg.version === 3 ? undefined : w?.ctx;
          },
          exempt,
        );
        // A CARP advert for a VRRP vhid: badver, as carp_input_c() counts it (and checkPacket).
        if (!r.ok && r.reason === 'badvhid' && r.vhid !== undefined && wireOf(r.vhid)?.cfg.version === 3) res = { ...r, reason: 'badver' };
        else res = r.ok ? { ...r, version: 2 } : r;
      }
    } else {
      res = checkPacket(
        pkt,
        (vhid, dst) => {
          const w = matched(vhid, dst);
          if (!w) return undefined;
          return w.cfg.version === 3 ? { version: 3, addresses: w.cfg.addresses } : { version: 2, ctx: w.ctx };
        },
        exempt,
      );
    }
    if (!res.ok) {
      if (res.src && this.ownAddresses.has(res.src)) return;
      this.peerHeard.set(ifname, this.opts.clock.now());
      this.stats[family === 6 ? 'carps_ipackets6' : 'carps_ipackets']++;
      let line = `carp: ${ifname}: packet from ${res.src ?? '?'} dropped: ${res.reason}`;
      if (res.reason === 'badauth' && res.vhid !== undefined) {
        const w = wireOf(res.vhid);
        if (w) w.stats.badauth++;
        let peer = `${res.src ?? '?'} ${res.vhid}@${ifname}`;
        // Bounded: a flood from spoofed sources lands in one bucket.
        if (!this.badAuthByPeer.has(peer) && this.badAuthByPeer.size >= MAX_BADAUTH_PEERS) peer = `* ${res.vhid}@${ifname}`;
        this.badAuthByPeer.set(peer, (this.badAuthByPeer.get(peer) ?? 0) + 1);
        line = `carp: ${res.vhid}@${ifname}: bad authentication from ${res.src} vhid ${res.vhid}: check the password and the vhid's address list`;
      }
      this.dropped(res.reason, ifname, res.src, line);
      return;
    }
    if (this.ownAddresses.has(res.src)) return; // our own advert looped back
    const now = this.opts.clock.now();
    this.peerHeard.set(ifname, now);
    this.stats[family === 6 ? 'carps_ipackets6' : 'carps_ipackets']++;
    if (res.version === 3) {
      this.onVrrp(ifname, res, wireOf(res.advert.vrid), now);
      return;
    }
    const w = wireOf(res.header.vhid);
    if (!w) return;
    const { advbase, advskew, demote, counter } = res.header;
    // The other family's copy of an advert the node has just taken: one election input, not two.
    if (w.fed && w.fed.counter === counter && w.fed.family !== family) return;
    if (this.model.global.log >= LOG.DEBUG)
      this.log(LOG.DEBUG, `carp: ${w.cfg.key}: advert from ${res.src} advbase ${advbase} advskew ${advskew} demote ${demote} counter ${counter}`);
    // The node judges the counter (src/core/replay.ts) before the election; a replay is counted
    // by the 'replay' effect, and only an advert it took is the vhid's last heard.
    const replays = this.stats.carps_replay;
    this.feed({ type: 'advert', key: w.cfg.key, advert: { src: res.src, advbase, advskew, demote }, counter }, now);
    if (this.stats.carps_replay !== replays) return;
    w.fed = { counter, family };
    w.stats.advertsReceived++;
    w.lastHeard = { src: res.src, advbase, advskew, demote, at: now };
  }

  /**
   * A checked VRRPv3 advert: no counter, so the node's replay check is skipped (there is nothing
   * to check), and the election is the VRRP machine's. A different address list is taken, as
   * keepalived and FreeBSD take it, but counted and logged (carps_badaddrs).
   */
  private onVrrp(ifname: string, res: Extract<PacketResult, { version: 3 }>, w: Wire | undefined, now: number): void {
    if (!w) return;
    const { priority, intervalCs, addresses } = res.advert;
    if (!res.addressesMatch) {
      this.stats.carps_badaddrs++;
      if (this.limiter.allow(`badaddrs ${w.cfg.key}`))
        this.log(
          LOG.WARN,
          `carp: ${w.cfg.key}: VRRP advert from ${res.src} lists ${addresses.join(' ') || 'no address'}, not this vrid's; accepted (as keepalived does)`,
        );
    }
    if (this.model.global.log >= LOG.DEBUG)
      this.log(LOG.DEBUG, `carp: ${w.cfg.key}: vrrp advert from ${res.src} on ${ifname} prio ${priority} interval ${intervalCs} checksum ${res.checksumForm}`);
    this.feed({ type: 'advert', key: w.cfg.key, advert: { src: res.src, advbase: 0, advskew: 0, demote: 0, vrrp: { priority, intervalCs } } }, now);
    w.stats.advertsReceived++;
    w.lastHeard = { src: res.src, advbase: 0, advskew: 0, demote: 0, at: now, vrrp: { priority, intervalCs } };
  }

  private onLink(ifname: string, up: boolean): void {
    if (up) this.reopenSocket(ifname);
    this.feed({ type: 'link', ifname, up });
  }

  /**
   * A fresh socket after the link comes back: SO_BINDTODEVICE and the group membership hold the
   * interface index of the moment, and an interface deleted and created again (ifdown/ifup of a
   * VLAN, a networkd restart) would leave the old socket deaf and mute.
   */
  private reopenSocket(ifname: string): void {
    const key = this.byIf.get(ifname)?.values().next().value;
    const first = key === undefined ? undefined : this.wires.get(key);
    if (!first) return;
    this.sockets.get(ifname)?.close();
    this.sockets.delete(ifname);
    this.sockets6.get(ifname)?.close();
    this.sockets6.delete(ifname);
    this.ifAddress.delete(first.cfg.interface);
    this.ifAddress6.delete(ifname);
    try {
      for (const key of this.byIf.get(ifname)!.values()) {
        const w = this.wires.get(key);
        if (w) this.socketFor(w.cfg);
      }
    } catch (err) {
      this.log(LOG.ERR, `carp: ${ifname}: cannot reopen the CARP socket: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private onTimer = (): void => {
    for (const line of this.drops.flush(this.opts.clock.now())) this.log(LOG.BADPKT, line);
    this.feed({ type: 'tick' });
  };

  /**
   * A dropped packet: counted, and logged per reason and interface, never per source (spoofed
   * sources must not buy a line each); the window's summary is due on the one timer.
   */
  private dropped(reason: DropReason, ifname: string, src: string | undefined, line: string): void {
    this.stats[dropCounter(reason)]++;
    const verdict = this.drops.note(this.opts.clock.now(), reason, ifname, src);
    if (verdict === 'log') this.log(LOG.BADPKT, line);
    if (verdict !== 'counted') this.arm();
  }

  /** Arm the one real timer for the node's earliest due time. */
  private arm(): void {
    // Stopped: nothing is due, and a timer left armed (a drop summary a minute away) would keep
    // the process from exiting after its shutdown.
    if (!this.node.isRunning) {
      this.opts.clock.clearTimer();
      return;
    }
    const nodeDue = this.node.nextDue();
    const dropsDue = this.drops.nextDue();
    const due = nodeDue === undefined ? dropsDue : dropsDue === undefined ? nodeDue : Math.min(nodeDue, dropsDue);
    if (due === undefined) this.opts.clock.clearTimer();
    else this.opts.clock.setTimer(due, this.onTimer);
  }

  private perform(fx: NodeEffect): void {
    switch (fx.type) {
      case 'send': {
        const w = this.wires.get(fx.key);
        if (!w) return;
        // The node numbers our adverts (src/core/replay.ts: newer than anything the vhid has seen).
        w.counter = fx.counter;
        if (fx.vrrp) {
          // VRRPv3 always goes to the group, whatever `peer` says, one advert per family the vhid
          // has VIPs in, each listing that family's VIPs (FreeBSD vrrp_send_ad_locked(): IPv4 when
          // sc_naddrs, IPv6 when sc_naddrs6; keepalived runs one instance per family). The
          // checksum is computed here with the pseudo-header of the address the socket sends from:
          // IPv4 the configured or interface address, IPv6 the interface link-local (the kernel's
          // source for ff02::12). Computing it in userland keeps IPV6_CHECKSUM off the shared
          // raw IPv6 socket, where it would corrupt CARP adverts (their sum has no pseudo-header).
          let sent = false;
          for (const family of familiesOf(w.cfg)) {
            if (!w.cfg.addresses.some((a) => familyOf(a) === family)) continue;
            const src = family === 4 ? (w.cfg.srcip ?? this.interfaceAddress(w.cfg.interface)) : this.interfaceAddress6(fx.ifname);
            const socket = (family === 4 ? this.sockets : this.sockets6).get(fx.ifname);
            if (!src || familyOf(src) !== family || !socket) {
              if (this.limiter.allow(`vrrp-send${family} ${fx.key}`))
                this.log(LOG.WARN, `carp: ${fx.key}: no IPv${family} VRRPv3 advert sent: no IPv${family} source address on ${fx.ifname}`);
              continue;
            }
            const dst = family === 4 ? VRRP_GROUP4 : VRRP_GROUP6;
            const payload = buildVrrp({ vrid: w.cfg.vhid, ...fx.vrrp, addresses: w.cfg.addresses }, { family, src, dst });
            const turn = this.sentThisTurn.get(fx.ifname);
            if (turn) turn.count++;
            else this.sentThisTurn.set(fx.ifname, { count: 1, errorsBefore: this.sendErrors.get(fx.ifname) ?? 0 });
            socket.send(payload, dst);
            this.stats[family === 6 ? 'carps_opackets6' : 'carps_opackets']++;
            sent = true;
          }
          if (sent) w.stats.advertsSent++;
          break;
        }
        const payload = buildAdvert(w.ctx, { advbase: fx.advbase, advskew: fx.advskew, demote: fx.demote, counter: fx.counter });
        // One advert, the same bytes over each family the vhid has addresses in (FreeBSD
        // carp_send_ad_locked() builds the header once and sends it over IPv4 and IPv6).
        let sent = false;
        for (const family of familiesOf(w.cfg)) {
          const socket = (family === 4 ? this.sockets : this.sockets6).get(fx.ifname);
          if (!socket) continue;
          const turn = this.sentThisTurn.get(fx.ifname);
          if (turn) turn.count++;
          else this.sentThisTurn.set(fx.ifname, { count: 1, errorsBefore: this.sendErrors.get(fx.ifname) ?? 0 });
          // OpenBSD carppeer is IPv4 only: its IPv6 adverts go to ff02::12 (carp_send_ad()).
          const dst = family === 4 ? w.cfg.peer : unicastMode(w.cfg, 6) ? w.cfg.peer6 : undefined;
          socket.send(payload, dst);
          this.stats[family === 6 ? 'carps_opackets6' : 'carps_opackets']++;
          sent = true;
        }
        if (sent) w.stats.advertsSent++;
        break;
      }
      case 'transition': {
        const w = this.wires.get(fx.key);
        if (!w) return;
        if (fx.to === 'MASTER') {
          w.stats.transitionsToMaster++;
          // netstat words carps_preempt "transitions to master".
          this.stats.carps_preempt++;
        }
        this.log(LOG.STATE, `carp: ${fx.key}: ${fx.from} -> ${fx.to} (${fx.reason})`);
        const ev: TransitionEvent = {
          seq: fx.seq,
          time: (this.opts.wallClock?.() ?? new Date()).toISOString(),
          vhid: w.cfg.vhid,
          interface: w.cfg.interface,
          key: fx.key,
          from: fx.from,
          to: fx.to,
          reason: fx.reason,
        };
        w.lastTransition = { seq: ev.seq, time: ev.time, from: ev.from, to: ev.to, reason: ev.reason };
        this.lastEvent = ev;
        // A listener that throws must not skip the effects that follow, nor crash the daemon.
        try {
          this.emit('transition', ev);
        } catch (err) {
          this.log(LOG.ERR, `carp: ${fx.key}: transition listener failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        break;
      }
      case 'phase': {
        const ev = this.lastEvent?.seq === fx.seq ? this.lastEvent : undefined;
        let gate: Promise<void> | undefined;
        try {
          gate = ev && this.phaseGate?.(ev);
        } catch (err) {
          this.log(LOG.ERR, `carp: ${fx.key}: pre-phase failed to start: ${err instanceof Error ? err.message : String(err)}`);
        }
        const done = () => this.feed({ type: 'phase-done', key: fx.key, seq: fx.seq });
        if (gate) gate.then(done, done);
        else done();
        break;
      }
      case 'vip': {
        const w = this.wires.get(fx.key);
        if (!w) return;
        let work = this.vipWork.get(fx.key);
        if (!work) this.vipWork.set(fx.key, (work = { busy: 0, gen: 0 }));
        const v = work;
        v.busy++;
        v.gen++;
        const done = () => {
          v.busy--;
          v.gen++;
        };
        if (fx.op === 'add') {
          this.enqueueNet(w, `add ${fx.cidr}`, async () => {
            try {
              await this.opts.net.addVip(fx.ifname, fx.cidr);
            } catch (err) {
              done();
              this.feed({ type: 'vip-result', key: fx.key, cidr: fx.cidr, ok: false, error: err instanceof Error ? err.message : String(err) });
              return;
            }
            done();
            this.feed({ type: 'vip-result', key: fx.key, cidr: fx.cidr, ok: true });
          });
        } else {
          this.enqueueNet(w, `del ${fx.cidr}`, () => this.opts.net.delVip(fx.ifname, fx.cidr).finally(done));
        }
        break;
      }
      case 'check-vips':
        this.checkVips('the periodic check');
        break;
      case 'vip-repaired': {
        const s = this.wires.get(fx.key)?.stats;
        if (s && fx.op === 'add') s.vipRestored = (s.vipRestored ?? 0) + 1;
        else if (s) s.vipRemoved = (s.vipRemoved ?? 0) + 1;
        break;
      }
      case 'garp': {
        const w = this.wires.get(fx.key);
        if (!w) return;
        // Started in queue order (after the VIP add) but not waited for: the send is batched with
        // every other vhid's of this turn (LinuxNet.garp), and nothing after it should wait.
        this.enqueueNet(w, `garp ${fx.cidr}`, async () => {
          // A MASTER that has already yielded again (a start-up race) announces nothing.
          if (this.node.state(fx.key) !== 'MASTER') return;
          this.opts.net.garp(fx.ifname, fx.cidr).catch((err: unknown) => {
            if (this.node.state(fx.key) !== 'MASTER') return; // the VIP went meanwhile; nothing to report
            if (this.limiter.allow(`garp ${fx.key}`))
              this.log(LOG.WARN, `carp: ${fx.key}: garp ${fx.cidr} failed: ${err instanceof Error ? err.message : String(err)}`);
          });
        });
        break;
      }
      case 'replay':
        this.dropped(
          'replay',
          this.wires.get(fx.key)?.cfg.interface ?? fx.key,
          fx.src,
          `carp: ${fx.key}: packet from ${fx.src} dropped: replay (counter ${fx.counter} seen before)`,
        );
        break;
      case 'log':
        this.log(fx.level, fx.message);
        break;
      case 'reconfigured':
        this.lastReconfigure = fx.result;
        break;
    }
  }

  private enqueueNet(w: Wire, what: string, job: () => Promise<void>): void {
    w.netQueue = w.netQueue.then(job).catch((err: unknown) => {
      this.log(LOG.ERR, `carp: ${w.cfg.key}: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  /**
   * Install the plugin host's pre-phase: called on every transition, it may return a promise the
   * VIP step waits for, at most `budgetMs` (a named timer of the node, on the one clock).
   */
  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined, budgetMs = 500): void {
    this.phaseGate = gate;
    this.feed({ type: 'phase-gate', on: gate !== undefined, budgetMs });
  }

  /** Resolves when the VIP and ARP work queued so far for `key` has finished (the plugin host waits for it before `master` hooks). */
  netSettled(key: string): Promise<void> {
    return this.wires.get(key)?.netQueue ?? Promise.resolve();
  }

  /** Adjust a group's demotion on behalf of `by` (carpctl demote, plugins, health checks). */
  demote(group: string, by: string, delta: number): number {
    this.feed({ type: 'demote', group, by, delta });
    return this.node.ledger.total(group);
  }

  /** Set `by`'s demotion in a group to exactly `count`. */
  setDemotion(group: string, by: string, count: number): number {
    this.feed({ type: 'set-demotion', group, by, count });
    return this.node.ledger.total(group);
  }

  /** Force a vhid's state, as an admin action; emits the same events as the protocol. */
  force(key: string, state: 'MASTER' | 'BACKUP', reason = 'user requested', holdMs?: number): boolean {
    if (this.node.state(key) === undefined) return false;
    this.feed({ type: 'force', key, state, reason, ...(holdMs !== undefined ? { holdMs } : {}) });
    return true;
  }

  status(): VhidStatus[] {
    const now = this.opts.clock.now();
    const out: VhidStatus[] = [];
    for (const key of this.node.keys()) {
      const m = this.node.machine(key)!;
      const v = this.node.vhid(key)!;
      const w = this.wires.get(key);
      if (!w) continue;
      out.push({
        key,
        vhid: v.vhid,
        interface: w.cfg.interface,
        ...(w.cfg.name ? { name: w.cfg.name } : {}),
        state: m.state,
        advbase: v.advbase,
        advskew: v.advskew,
        wireAdvskew: m.wireAdvskew,
        demote: m.demoteByte,
        addresses: v.addresses,
        groups: [...v.groups],
        ...(m.masterSrc ? { masterSrc: m.masterSrc } : {}),
        lastReason: m.lastReason,
        ...(m.lastAdvert ? { lastAdvert: { ...m.lastAdvert } } : {}),
        ...(w.lastTransition ? { lastTransition: { ...w.lastTransition } } : {}),
        ...(w.lastHeard
          ? {
              lastHeard: {
                src: w.lastHeard.src,
                advbase: w.lastHeard.advbase,
                advskew: w.lastHeard.advskew,
                demote: w.lastHeard.demote,
                ...(w.lastHeard.vrrp ? { vrrp: { ...w.lastHeard.vrrp } } : {}),
                agoMs: now - w.lastHeard.at,
              },
            }
          : {}),
        ...(this.peerHeard.has(v.ifname) ? { peerHeardAgoMs: now - this.peerHeard.get(v.ifname)! } : {}),
        upMs: now - w.startedAt,
        ...('wirePriority' in m
          ? { vrrp: { priority: m.cfg.priority, wirePriority: m.wirePriority, intervalCs: m.cfg.intervalCs, masterIntervalCs: m.masterIntervalCs } }
          : {}),
      });
    }
    return out;
  }

  /** Gratuitous ARP for every VIP of every MASTER vhid (the periodic refresh). Returns how many vhids. */
  refreshGarp(): number {
    const n = this.node.keys().filter((k) => this.node.state(k) === 'MASTER').length;
    this.feed({ type: 'garp-refresh' });
    return n;
  }

  /**
   * Apply a new model (SIGHUP): vhids that appeared start, vhids that went away bow out and release
   * their VIPs, changed vhids are updated in place. Unchanged vhids keep their state and timers.
   */
  reconfigure(next: CarpModel): ReconfigureResult {
    const ifsBefore = new Set(this.byIf.keys());
    const keysBefore = new Set(this.wires.keys());
    this.model = next;
    if (!this.node.isRunning) {
      this.feed({ type: 'reconfigure', config: this.nodeConfig(next), links: {} });
      return this.lastReconfigure!;
    }
    this.syncWires(next);
    const ifsAfter = new Set(this.byIf.keys());
    if (ifsAfter.size !== ifsBefore.size || [...ifsAfter].some((i) => !ifsBefore.has(i))) {
      this.watchLinks();
      this.promoteSecondaries([...ifsAfter]);
      this.watchAddresses();
    }
    this.feed({ type: 'reconfigure', config: this.nodeConfig(next), links: this.links() });
    const nextKeys = new Set(next.vhids.map((v) => v.key));
    for (const key of keysBefore) {
      if (nextKeys.has(key)) continue;
      const w = this.wires.get(key)!;
      this.wires.delete(key);
      // The bow-out advert has left; the socket goes once its interface carries no vhid.
      if (!ifsAfter.has(wireInterface(w.cfg))) this.closeSocketAfter(w);
    }
    // A vhid that kept its key but moved to or from its macvlan (vmac turned on or off) leaves a
    // socket behind; the node already sends for it on the new one.
    for (const sockets of [this.sockets, this.sockets6]) {
      for (const [ifname, socket] of [...sockets]) {
        if (ifsAfter.has(ifname)) continue; // (sockets of removed vhids went in closeSocketAfter)
        sockets.delete(ifname);
        socket.close();
      }
    }
    return this.lastReconfigure!;
  }

  private closeSocketAfter(w: Wire): void {
    const ifname = wireInterface(w.cfg);
    const socket = this.sockets.get(ifname);
    const socket6 = this.sockets6.get(ifname);
    this.sockets.delete(ifname);
    this.sockets6.delete(ifname);
    this.peerHeard.delete(ifname);
    // A full socket buffer queues the bow-out until writable: give it a moment.
    void w.netQueue
      .then(() => new Promise((r) => setTimeout(r, SOCKET_FLUSH_MS)))
      .then(() => {
        socket?.close();
        socket6?.close();
      });
  }

  vhidStats(key: string): VhidCounters | undefined {
    return this.wires.get(key)?.stats;
  }

  /**
   * Clean shutdown: a bow-out advert from every master, VIPs removed, sockets closed.
   * Resolves when the VIP work has finished.
   */
  async stop(): Promise<void> {
    if (!this.node.isRunning) return;
    this.feed({ type: 'shutdown' });
    this.stopLinks?.();
    this.stopAddresses?.();
    this.stopAddresses = undefined;
    await Promise.all([...this.wires.values()].map((w) => w.netQueue));
    // The bow-outs went out with sendto(2); one queued on a full socket buffer needs a moment.
    await new Promise((r) => setTimeout(r, SOCKET_FLUSH_MS));
    for (const s of [...this.sockets.values(), ...this.sockets6.values()]) s.close();
    this.sockets.clear();
    this.sockets6.clear();
    // The drop windows still open end now, their summaries logged, and no timer stays armed.
    for (const line of this.drops.flush(this.opts.clock.now(), true)) this.log(LOG.BADPKT, line);
    this.opts.clock.clearTimer();
  }
}

/** A vhid's configuration minus where it came from, with keys in a fixed order, for comparison. */
function canonical(cfg: VhidConfig): string {
  const { source: _source, fieldSources: _fieldSources, ...rest } = cfg;
  return JSON.stringify(Object.fromEntries(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b))));
}
