/**
 * The one port between whatever runs CARP and everything that follows it.
 *
 * A state source emits transitions with their reasons, reports status (vhids, VIPs, peers,
 * demotion) and takes admin actions (demote, force a state, maintenance through demotion).
 * The plugin host, carpctl, the event log, the metrics and `plan` talk only to this port.
 * carpd's own engine (src/daemon/engine.ts) is the first implementation; the kernels' CARP
 * (FreeBSD devd, OpenBSD route monitor) and keepalived follow it.
 */
import type { CarpState } from '../core/machine.js';
import type { DemotionEntry } from '../core/demotion.js';
import type { CarpStats } from '../proto/counters.js';

export type { CarpState };

/** Which engine runs the protocol. */
export type EngineKind = 'carpd' | 'kernel' | 'keepalived';

/** A state change of one vhid, with the reason the engine gives. */
export interface TransitionEvent {
  seq: number;
  /** ISO wall-clock time. */
  time: string;
  vhid: number;
  interface: string;
  /** `VHID@IF` (or `INSTANCE@name` for keepalived). */
  key: string;
  from: CarpState;
  to: CarpState;
  reason: string;
}

/** The last transition of a vhid. */
export interface LastTransition {
  seq: number;
  time: string;
  from: CarpState;
  to: CarpState;
  reason: string;
}

/** A peer's advert as the status reports it. */
export interface AdvertSeen {
  src: string;
  advbase: number;
  advskew: number;
  demote: number;
  /** A VRRPv3 advert: its priority and interval (centiseconds); the CARP fields are 0. */
  vrrp?: { priority: number; intervalCs: number };
}

/** A VRRPv3 vhid's election parameters (`version = 3`). */
export interface VrrpStatus {
  /** As configured, 1..255. */
  priority: number;
  /** As advertised: the configured priority lowered by demotion (never below 1; 255 never moves). */
  wirePriority: number;
  /** Our advertisement interval, centiseconds. */
  intervalCs: number;
  /** Master_Adver_Interval: learned from the master's adverts (RFC 5798 §6.4.2), centiseconds. */
  masterIntervalCs: number;
}

export interface VhidStatus {
  key: string;
  vhid: number;
  interface: string;
  name?: string;
  state: CarpState;
  advbase: number;
  advskew: number;
  wireAdvskew: number;
  demote: number;
  addresses: string[];
  /** Demotion groups, `carp` first. */
  groups: string[];
  masterSrc?: string;
  lastReason: string;
  lastAdvert?: AdvertSeen;
  /** The last transition, with its reason. */
  lastTransition?: LastTransition;
  /** The last advert heard from a peer for this vhid, and how long ago (ms). */
  lastHeard?: AdvertSeen & { agoMs: number };
  /** How long ago (ms) any CARP packet from a peer arrived on this vhid's interface; absent: never. */
  peerHeardAgoMs?: number;
  /** How long (ms) this vhid has been running. */
  upMs: number;
  /** Present for a VRRPv3 vhid. */
  vrrp?: VrrpStatus;
}

/** Per-vhid packet and transition counts. */
export interface VhidCounters {
  advertsSent: number;
  advertsReceived: number;
  transitionsToMaster: number;
  badauth: number;
  /** VIPs of a MASTER found missing from the kernel and added again (carpd's engine only). */
  vipRestored?: number;
  /** VIPs found on the interface while not MASTER and removed (carpd's engine only). */
  vipRemoved?: number;
}

/** A read-only view of the demotion ledger. */
export interface DemotionView {
  entries(): DemotionEntry[];
  held(group: string, by: string): number;
  total(group: string): number;
  forGroups(groups: readonly string[]): number;
}

/** What an engine can and cannot do; carpctl and the README say the same in one place. */
export interface StateSourceCapabilities {
  /** `carpctl force` works (keepalived has no forced state). */
  forceState: boolean;
  /** A pre-master hook runs before the VIP is added (false where the kernel adds it before we hear). */
  prePhaseHoldsVip: boolean;
  /** Packet counters (`carpctl stats`) come from this engine. */
  packetCounters: boolean;
}

export interface StateSource {
  readonly kind: EngineKind;
  readonly capabilities: StateSourceCapabilities;
  /** Every transition, after the engine has acted on the wire. Listeners never delay the protocol. */
  on(event: 'transition', fn: (ev: TransitionEvent) => void): unknown;
  off(event: 'transition', fn: (ev: TransitionEvent) => void): unknown;
  /**
   * The plugin host's pre-phase: called on every transition, it may return a promise the VIP step
   * waits for, at most `budgetMs`. Engines that cannot hold the VIP step ignore the promise.
   */
  setPhaseGate(gate: ((ev: TransitionEvent) => Promise<void> | undefined) | undefined, budgetMs?: number): void;
  /** Resolves when the VIP and ARP work queued so far for `key` has finished. */
  netSettled(key: string): Promise<void>;
  status(): VhidStatus[];
  vhidStats(key: string): VhidCounters | undefined;
  readonly stats: CarpStats;
  /** Bad authentication count per `src vhid@if`. */
  readonly badAuthByPeer: ReadonlyMap<string, number>;
  readonly ledger: DemotionView;
  /** Adjust a group's demotion on behalf of `by`; returns the group's total. */
  demote(group: string, by: string, delta: number): number;
  /** Set `by`'s demotion in a group to exactly `count`; returns the group's total. */
  setDemotion(group: string, by: string, count: number): number;
  /** Force a vhid's state as an admin action; false when there is no such vhid (or the engine cannot). */
  force(key: string, state: 'MASTER' | 'BACKUP', reason?: string, holdMs?: number): boolean;
  /** Gratuitous ARP for every VIP of every MASTER vhid; returns how many vhids. */
  refreshGarp(): number;
}
