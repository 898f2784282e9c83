/** The status and stats reports (with diagnosis) the control socket answers, and their text form for carpctl. */
import { DEFAULT_GROUP } from '../core/demotion.js';
import type { CarpState } from '../core/machine.js';
import type { MaintenanceIntent } from '../ports/intent-store.js';
import { netstatLines, type CarpStats } from '../proto/counters.js';
import type { StateSource, VhidStatus } from '../ports/state-source.js';
import type { DaemonEvent, EventLog, TransitionRecord } from './event-log.js';
import type { Maintenance } from './maintenance.js';
import { engineLabel, limitations } from './engine-caps.js';

/** A MASTER that has heard no peer for this long gets a diagnosis line. */
export const NO_PEER_MS = 60_000;

export interface VhidReport extends VhidStatus {
  badAuth: { src: string; count: number }[];
  /** Why a vhid looks the way it does, in words. */
  diagnosis: string[];
}

export interface GroupDemotion {
  group: string;
  total: number;
  by: { by: string; count: number }[];
}

export interface StatusData {
  /** Who runs CARP: `carpd`, `kernel (freebsd)`, `keepalived`. */
  engine?: string;
  /** What that engine cannot do (engine-caps.ts). */
  limits?: string[];
  vhids: VhidReport[];
  demotion: GroupDemotion[];
  maintenance?: MaintenanceIntent & { demote: number };
  lastTransition?: TransitionRecord;
}

export interface VhidCounters {
  key: string;
  state: CarpState;
  advertsSent: number;
  advertsReceived: number;
  transitionsToMaster: number;
  badauth: number;
  /** VIPs re-added after they vanished while MASTER, and removed while not MASTER (carpd's engine). */
  vipRestored?: number;
  vipRemoved?: number;
}

export interface ControlCounters {
  connections: number;
  requests: number;
  /** Requests refused as malformed (not JSON, unknown command, bad arguments, too long). */
  malformed: number;
  /** Well-formed requests that failed (no such vhid, state not writable, …). */
  failed: number;
  /** Connections turned away (too many clients). */
  refused: number;
}

export interface StatsData {
  counters: CarpStats;
  vhids: VhidCounters[];
  badAuth: { src: string; key: string; count: number }[];
  control?: ControlCounters;
}

/** Bad-authentication counts as `{src, key, count}` (the engine keys them `src vhid@if`). */
export function badAuthList(engine: StateSource): { src: string; key: string; count: number }[] {
  return [...engine.badAuthByPeer].map(([peer, count]) => {
    const sp = peer.indexOf(' ');
    return { src: peer.slice(0, sp), key: peer.slice(sp + 1), count };
  });
}

/** Diagnosis lines for one vhid. */
export function diagnose(v: VhidStatus, badAuth: { src: string; count: number }[]): string[] {
  const out: string[] = [];
  if (v.state === 'MASTER') {
    const silentMs = v.peerHeardAgoMs ?? v.upMs;
    if (silentMs >= NO_PEER_MS) {
      out.push(`MASTER but hearing no peer for ${Math.floor(silentMs / 1000)} s (split-brain risk if a peer is up: multicast filtered?)`);
    }
  } else if (v.state === 'BACKUP') {
    const h = v.lastHeard;
    if (h?.vrrp) out.push(`backup, master is ${h.src} (prio ${h.vrrp.priority} interval ${h.vrrp.intervalCs})`);
    else if (h) out.push(`backup, master is ${h.src} (advskew ${h.advskew}${h.demote ? `, demote ${h.demote}` : ''})`);
    else out.push('backup, no master heard yet');
  } else {
    out.push(`INIT: ${v.lastReason || 'not started'}`);
  }
  for (const b of badAuth) out.push(`bad authentication from ${b.src} ×${b.count}`);
  return out;
}

/** The VIP reconcile's repairs of a vhid, in words (nothing when there were none). */
function vipRepairs(engine: StateSource, key: string): string[] {
  const c = engine.vhidStats(key);
  const out: string[] = [];
  if (c?.vipRestored) out.push(`VIP re-added ${plural(c.vipRestored, 'time')} after it vanished from the interface while MASTER (see the log)`);
  if (c?.vipRemoved) out.push(`VIP removed ${plural(c.vipRemoved, 'time')} from the interface while not MASTER (see the log)`);
  return out;
}

/** Every demotion group in use, with its total and who holds what. */
export function demotionReport(engine: StateSource, vhids: VhidStatus[] = engine.status()): GroupDemotion[] {
  const groups = new Set<string>([DEFAULT_GROUP]);
  for (const v of vhids) for (const g of v.groups) groups.add(g);
  for (const e of engine.ledger.entries()) groups.add(e.group);
  return [...groups]
    .sort((a, b) => (a === DEFAULT_GROUP ? -1 : b === DEFAULT_GROUP ? 1 : a.localeCompare(b)))
    .map((group) => ({
      group,
      total: engine.ledger.total(group),
      by: engine.ledger
        .entries()
        .filter((e) => e.group === group)
        .map((e) => ({ by: e.by, count: e.count })),
    }));
}

/** The `status` report. */
export function statusReport(engine: StateSource, events?: EventLog, maintenance?: Maintenance): StatusData {
  const bad = badAuthList(engine);
  const vhids = engine.status();
  const last = events?.lastTransition();
  return {
    engine: engineLabel(engine),
    ...(engine.kind !== 'carpd' ? { limits: limitations(engine) } : {}),
    vhids: vhids.map((v) => {
      const badAuth = bad.filter((b) => b.key === v.key).map(({ src, count }) => ({ src, count }));
      return { ...v, badAuth, diagnosis: [...diagnose(v, badAuth), ...vipRepairs(engine, v.key)] };
    }),
    demotion: demotionReport(engine, vhids),
    ...(maintenance ? { maintenance: maintenance.state } : {}),
    ...(last ? { lastTransition: last } : {}),
  };
}

/** The `stats` report. */
export function statsReport(engine: StateSource, control?: ControlCounters): StatsData {
  return {
    counters: { ...engine.stats },
    vhids: engine
      .status()
      .map((s) => ({ key: s.key, state: s.state, ...(engine.vhidStats(s.key) ?? { advertsSent: 0, advertsReceived: 0, transitionsToMaster: 0, badauth: 0 }) })),
    badAuth: badAuthList(engine),
    ...(control ? { control: { ...control } } : {}),
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `carpctl status` in words: ifconfig's line per vhid, its details and diagnosis, then the node. */
export function formatStatus(d: StatusData): string[] {
  const out: string[] = [];
  for (const v of d.vhids) {
    // keepalived's instances have no interface until a state dump names it: the key stands in.
    // A VRRPv3 vhid as FreeBSD's ifconfig prints one (sbin/ifconfig/carp.c carp_status()).
    if (v.vrrp) out.push(`${v.interface || v.key}: vrrp: ${v.state} vrid ${v.vhid} prio ${v.vrrp.priority} interval ${v.vrrp.intervalCs}`);
    else out.push(`${v.interface || v.key}: carp: ${v.state} vhid ${v.vhid} advbase ${v.advbase} advskew ${v.advskew}`);
    out.push(`\taddresses: ${v.addresses.join(' ')}`);
    if (v.vrrp && v.vrrp.wirePriority !== v.vrrp.priority) out.push(`\tdemoted: advertising prio ${v.vrrp.wirePriority}`);
    if (v.demote > 0) out.push(`\tdemoted: advertising advskew ${v.wireAdvskew} demote ${v.demote}`);
    if (v.state === 'MASTER') out.push(`\tmaster: this node${v.masterSrc ? ` (${v.masterSrc})` : ''}`);
    if (v.lastTransition) {
      const t = v.lastTransition;
      out.push(`\tlast transition: ${t.from} -> ${t.to} (${t.reason}) at ${t.time}`);
    }
    for (const l of v.diagnosis) out.push(`\t${l}`);
  }
  for (const g of d.demotion) {
    const by = g.by.map((e) => `${e.by} ${e.count}`).join(', ');
    out.push(`demotion: group ${g.group} ${g.total}${by ? ` (${by})` : ''}`);
  }
  if (d.maintenance) {
    const m = d.maintenance;
    out.push(m.on ? `maintenance: on since ${m.since} (${m.by})${m.until ? ` until ${m.until}` : ''}, demote ${m.demote}` : 'maintenance: off');
  }
  if (d.engine !== undefined) out.push(`engine: ${d.engine}`);
  for (const l of d.limits ?? []) out.push(`\t${l}`);
  if (d.lastTransition) {
    const t = d.lastTransition;
    out.push(`last transition: ${t.key} ${t.from} -> ${t.to} (${t.reason}) at ${t.time}`);
  }
  return out;
}

/** `carpctl stats` in netstat's words, then per vhid and per peer. */
export function formatStats(d: StatsData): string[] {
  const out = ['carp:', ...netstatLines(d.counters, true)];
  if (d.vhids.length) out.push('per vhid:');
  for (const v of d.vhids) {
    out.push(
      `\t${v.key}: ${plural(v.advertsSent, 'advert')} sent, ${plural(v.advertsReceived, 'advert')} received, ${plural(v.transitionsToMaster, 'transition')} to master, ${v.badauth} discarded for bad authentication${v.vipRestored ? `, ${plural(v.vipRestored, 'VIP')} re-added after vanishing` : ''}${v.vipRemoved ? `, ${plural(v.vipRemoved, 'VIP')} removed while not MASTER` : ''}`,
    );
  }
  if (d.badAuth.length) out.push('bad authentication by peer:');
  for (const b of d.badAuth) out.push(`\t${b.src} vhid ${b.key}: ${b.count}`);
  if (d.control)
    out.push(`control: ${plural(d.control.requests, 'request')}, ${d.control.malformed} malformed, ${d.control.failed} failed, ${d.control.refused} refused`);
  return out;
}

/** One line per event for `carpctl events`. */
export function formatEvent(e: DaemonEvent): string {
  switch (e.type) {
    case 'transition':
      return `${e.time} seq ${e.seq} carp: ${e.key}: ${e.from} -> ${e.to} (${e.reason})`;
    case 'hook':
      return `${e.time} hook ${e.plugin} ${e.hook}${e.key ? ` ${e.key}` : ''}${e.seq !== undefined ? ` seq ${e.seq}` : ''}: ${e.result} in ${e.durationMs} ms${e.error ? `: ${e.error}` : ''}`;
    case 'admin':
      return `${e.time} ${e.action}: ${e.detail}`;
  }
}
