/**
 * The control socket: a unix socket (mode 0600) speaking JSON lines. Each request is one JSON
 * object on a line, `{"cmd":"status"}`; each answer is one line, `{"ok":true,"data":…}` or
 * `{"ok":false,"code":"CARPD_ERR_…","error":"…"}`. `events` with `follow` keeps the connection and
 * streams `{"event":…}` lines. A malformed request is refused and counted; it never takes the
 * daemon down. Also here: the event ring the daemon and the plugin host publish to, the status
 * and stats reports (with diagnosis), their text form for carpctl, and the client.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../ports/logger.js';
import { DEFAULT_GROUP } from '../core/demotion.js';
import type { CarpState } from '../core/machine.js';
import { netstatLines, type CarpStats } from '../proto/counters.js';
import { LOG } from '../ports/logger.js';
import type { Engine, TransitionEvent, VhidStatus } from './engine.js';
import type { Maintenance, MaintenanceIntent } from './maintenance.js';
import { renderMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';

export const DEFAULT_CONTROL_PATH = '/var/run/carpd.sock';
/** How many events `carpctl events` can look back on. */
export const EVENT_RING_SIZE = 1000;
/** The ledger name of `carpctl demote`. */
export const ADMIN_DEMOTER = 'admin';
/** A MASTER that has heard no peer for this long gets a diagnosis line. */
export const NO_PEER_MS = 60_000;

const MAX_LINE = 64 * 1024;
const MAX_CLIENTS = 64;
const IDLE_MS = 30_000;
/** A follower this far behind is cut off rather than buffered without bound. */
const MAX_BACKLOG = 1024 * 1024;

// --- events ---

export type TransitionRecord = { type: 'transition' } & TransitionEvent;

/** One plugin hook run, as the plugin host reports it. */
export interface HookRunEvent {
  type: 'hook';
  time: string;
  plugin: string;
  hook: string;
  /** The vhid (or scope) and transition that caused the run. */
  key?: string;
  seq?: number;
  durationMs: number;
  /** The plugin host's HookResult. */
  result: 'ok' | 'error' | 'timeout';
  error?: string;
}

/** An admin action or daemon-level change (demote, state, maintenance, reload). */
export interface AdminEvent {
  type: 'admin';
  time: string;
  action: string;
  detail: string;
}

export type DaemonEvent = TransitionRecord | HookRunEvent | AdminEvent;

/** Per plugin and hook: runs by result and their total duration, over the daemon's life. */
export interface HookTotals {
  plugin: string;
  hook: string;
  count: number;
  sumMs: number;
  results: Record<string, number>;
}

/** The last EVENT_RING_SIZE events, live subscribers, and running totals for metrics. */
export class EventLog {
  private readonly ring: DaemonEvent[] = [];
  private readonly listeners = new Set<(e: DaemonEvent) => void>();
  readonly hooks = new Map<string, HookTotals>();
  /** Transitions per vhid key and target state. */
  readonly transitions = new Map<string, Partial<Record<CarpState, number>>>();

  constructor(readonly size = EVENT_RING_SIZE) {}

  /** Record an event and hand it to every follower. */
  publish(e: DaemonEvent): void {
    this.ring.push(e);
    if (this.ring.length > this.size) this.ring.splice(0, this.ring.length - this.size);
    if (e.type === 'transition') {
      const t = this.transitions.get(e.key) ?? {};
      t[e.to] = (t[e.to] ?? 0) + 1;
      this.transitions.set(e.key, t);
    } else if (e.type === 'hook') {
      const k = `${e.plugin}\0${e.hook}`;
      const h = this.hooks.get(k) ?? { plugin: e.plugin, hook: e.hook, count: 0, sumMs: 0, results: {} };
      h.count++;
      h.sumMs += e.durationMs;
      h.results[e.result] = (h.results[e.result] ?? 0) + 1;
      this.hooks.set(k, h);
    }
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // a broken follower must not stop the others
      }
    }
  }

  /** The newest `limit` events, oldest first. */
  recent(limit = this.size): DaemonEvent[] {
    return this.ring.slice(Math.max(0, this.ring.length - limit));
  }

  lastTransition(): TransitionRecord | undefined {
    for (let i = this.ring.length - 1; i >= 0; i--) {
      const e = this.ring[i]!;
      if (e.type === 'transition') return e;
    }
    return undefined;
  }

  subscribe(fn: (e: DaemonEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

// --- reports ---

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
export function badAuthList(engine: Engine): { src: string; key: string; count: number }[] {
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
    if (h) out.push(`backup, master is ${h.src} (advskew ${h.advskew}${h.demote ? `, demote ${h.demote}` : ''})`);
    else out.push('backup, no master heard yet');
  } else {
    out.push(`INIT: ${v.lastReason || 'not started'}`);
  }
  for (const b of badAuth) out.push(`bad authentication from ${b.src} ×${b.count}`);
  return out;
}

/** Every demotion group in use, with its total and who holds what. */
export function demotionReport(engine: Engine, vhids: VhidStatus[] = engine.status()): GroupDemotion[] {
  const groups = new Set<string>([DEFAULT_GROUP]);
  for (const v of vhids) for (const g of v.groups) groups.add(g);
  for (const e of engine.ledger.entries()) groups.add(e.group);
  return [...groups].sort((a, b) => (a === DEFAULT_GROUP ? -1 : b === DEFAULT_GROUP ? 1 : a.localeCompare(b))).map((group) => ({
    group,
    total: engine.ledger.total(group),
    by: engine.ledger.entries().filter((e) => e.group === group).map((e) => ({ by: e.by, count: e.count })),
  }));
}

/** The `status` report. */
export function statusReport(engine: Engine, events?: EventLog, maintenance?: Maintenance): StatusData {
  const bad = badAuthList(engine);
  const vhids = engine.status();
  const last = events?.lastTransition();
  return {
    vhids: vhids.map((v) => {
      const badAuth = bad.filter((b) => b.key === v.key).map(({ src, count }) => ({ src, count }));
      return { ...v, badAuth, diagnosis: diagnose(v, badAuth) };
    }),
    demotion: demotionReport(engine, vhids),
    ...(maintenance ? { maintenance: maintenance.state } : {}),
    ...(last ? { lastTransition: last } : {}),
  };
}

/** The `stats` report. */
export function statsReport(engine: Engine, control?: ControlCounters): StatsData {
  return {
    counters: { ...engine.stats },
    vhids: engine.status().map((s) => ({ key: s.key, state: s.state, ...(engine.vhidStats(s.key) ?? { advertsSent: 0, advertsReceived: 0, transitionsToMaster: 0, badauth: 0 }) })),
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
    out.push(`${v.interface}: carp: ${v.state} vhid ${v.vhid} advbase ${v.advbase} advskew ${v.advskew}`);
    out.push(`\taddresses: ${v.addresses.join(' ')}`);
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
    out.push(`\t${v.key}: ${plural(v.advertsSent, 'advert')} sent, ${plural(v.advertsReceived, 'advert')} received, ${plural(v.transitionsToMaster, 'transition')} to master, ${v.badauth} discarded for bad authentication`);
  }
  if (d.badAuth.length) out.push('bad authentication by peer:');
  for (const b of d.badAuth) out.push(`\t${b.src} vhid ${b.key}: ${b.count}`);
  if (d.control) out.push(`control: ${plural(d.control.requests, 'request')}, ${d.control.malformed} malformed, ${d.control.failed} failed, ${d.control.refused} refused`);
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

// --- protocol ---

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'stats' }
  | { cmd: 'metrics' }
  | { cmd: 'demote'; group?: string; delta?: number; reset?: boolean }
  | { cmd: 'state'; key: string; state: 'MASTER' | 'BACKUP' }
  | { cmd: 'maintenance'; on?: boolean }
  | { cmd: 'events'; follow?: boolean; limit?: number };

export type ControlResponse = { ok: true; data: unknown } | { ok: false; code: string; error: string };

/** Stable error codes of the control protocol. */
export const ControlCode = {
  MALFORMED: 'CARPD_ERR_CONTROL_MALFORMED',
  TOO_LONG: 'CARPD_ERR_CONTROL_TOO_LONG',
  BUSY: 'CARPD_ERR_CONTROL_BUSY',
  NO_VHID: 'CARPD_ERR_NO_VHID',
  NO_GROUP: 'CARPD_ERR_NO_GROUP',
  UNAVAILABLE: 'CARPD_ERR_CONTROL_UNAVAILABLE',
  INTERNAL: 'CARPD_ERR_CONTROL_INTERNAL',
  IN_USE: 'CARPD_ERR_CONTROL_IN_USE',
  NOT_SOCKET: 'CARPD_ERR_CONTROL_NOT_SOCKET',
  CONNECT: 'CARPD_ERR_CONTROL_CONNECT',
} as const;

/** A control-socket error with a stable code. */
export class ControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

/** Validate one request line. Throws ControlError(MALFORMED) with the reason. */
export function parseRequest(line: string): ControlRequest {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new ControlError(ControlCode.MALFORMED, 'not JSON');
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new ControlError(ControlCode.MALFORMED, 'not a JSON object');
  const r = o as Record<string, unknown>;
  const bad = (why: string): never => {
    throw new ControlError(ControlCode.MALFORMED, why);
  };
  const optBool = (k: string) => (r[k] === undefined || typeof r[k] === 'boolean' ? (r[k] as boolean | undefined) : bad(`"${k}" must be true or false`));
  switch (r.cmd) {
    case 'status':
    case 'stats':
    case 'metrics':
      return { cmd: r.cmd };
    case 'demote': {
      const group = r.group === undefined ? undefined : typeof r.group === 'string' && /^[A-Za-z0-9_.-]{1,32}$/.test(r.group) ? r.group : bad('"group" must be a group name');
      const reset = optBool('reset');
      const delta = r.delta;
      if (reset && delta !== undefined) bad('"delta" and "reset" exclude each other');
      if (!reset && (typeof delta !== 'number' || !Number.isInteger(delta) || delta === 0 || Math.abs(delta) > 255)) bad('"delta" must be a non-zero integer in -255..255');
      return { cmd: 'demote', ...(group !== undefined ? { group } : {}), ...(reset ? { reset } : { delta: delta as number }) };
    }
    case 'state': {
      if (typeof r.key !== 'string' || !/^\d{1,3}@[A-Za-z0-9_.:@-]{1,15}$/.test(r.key)) bad('"key" must be VHID@IF');
      if (r.state !== 'MASTER' && r.state !== 'BACKUP') bad('"state" must be MASTER or BACKUP');
      return { cmd: 'state', key: r.key as string, state: r.state as 'MASTER' | 'BACKUP' };
    }
    case 'maintenance': {
      const on = optBool('on');
      return on === undefined ? { cmd: 'maintenance' } : { cmd: 'maintenance', on };
    }
    case 'events': {
      const follow = optBool('follow');
      const limit = r.limit;
      if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > EVENT_RING_SIZE)) bad(`"limit" must be an integer in 0..${EVENT_RING_SIZE}`);
      return { cmd: 'events', ...(follow !== undefined ? { follow } : {}), ...(limit !== undefined ? { limit: limit as number } : {}) };
    }
    default:
      return bad(typeof r.cmd === 'string' ? `unknown command ${JSON.stringify(r.cmd.slice(0, 40))}` : 'no "cmd"');
  }
}

export interface ControlDeps {
  engine: Engine;
  events: EventLog;
  logger: Logger;
  maintenance?: Maintenance;
  /** Log level in force (net.inet.carp.log), read on every use so a reload takes effect. */
  logLevel?: () => number;
}

/** The control socket server. */
export class ControlServer {
  readonly stats: ControlCounters = { connections: 0, requests: 0, malformed: 0, failed: 0, refused: 0 };
  private server: Server | undefined;
  private path: string | undefined;
  private readonly clients = new Set<Socket>();
  private readonly limiter = new RateLimiter(60_000);

  constructor(private readonly deps: ControlDeps) {}

  /** Hand an event to the ring and every `events --follow` client (the plugin host's hook runs go here). */
  publish(e: DaemonEvent): void {
    this.deps.events.publish(e);
  }

  private log(level: number, msg: string): void {
    if (level <= (this.deps.logLevel?.() ?? LOG.INFO)) this.deps.logger.log(level, msg);
  }

  /**
   * Listen on `path` with mode 0600. A stale socket left by a dead daemon is replaced; a live one
   * (another carpd) or a file that is not a socket is an error.
   */
  async listen(path: string): Promise<void> {
    await clearStaleSocket(path);
    const server = createServer((sock) => this.onConnection(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket file is created inside listen(): a tight umask leaves no window where it is
      // group- or world-accessible.
      const old = process.umask(0o177);
      try {
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(old);
      }
    });
    chmodSync(path, 0o600);
    server.on('error', (err) => this.log(LOG.ERR, `carpd: control: ${err.message}`));
    this.server = server;
    this.path = path;
  }

  /** Stop accepting, drop every client, remove the socket file. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    if (this.path) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
      this.path = undefined;
    }
  }

  private onConnection(sock: Socket): void {
    sock.on('error', () => undefined);
    if (this.clients.size >= MAX_CLIENTS) {
      this.stats.refused++;
      sock.end(`${JSON.stringify(fail(ControlCode.BUSY, 'too many control connections'))}\n`);
      return;
    }
    this.clients.add(sock);
    this.stats.connections++;
    sock.setEncoding('utf8');
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    let buf = '';
    let unsubscribe: (() => void) | undefined;
    sock.on('close', () => {
      this.clients.delete(sock);
      unsubscribe?.();
    });
    sock.on('data', (chunk: string) => {
      if (unsubscribe) return; // a follower only listens
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0 && !sock.destroyed) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        const follow = this.handle(sock, line);
        if (follow) {
          unsubscribe = follow;
          buf = '';
          return;
        }
      }
      if (buf.length > MAX_LINE) {
        this.refuse(sock, new ControlError(ControlCode.TOO_LONG, `request longer than ${MAX_LINE} bytes`));
        buf = '';
        sock.end();
      }
    });
  }

  private send(sock: Socket, r: ControlResponse | { event: DaemonEvent }): void {
    if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
  }

  private refuse(sock: Socket, err: ControlError): void {
    this.stats.malformed++;
    if (this.limiter.allow(err.code)) this.log(LOG.WARN, `carpd: control: request refused: ${err.message}`);
    this.send(sock, fail(err.code, err.message));
  }

  /** Answer one line; returns an unsubscribe function when the client now follows events. */
  private handle(sock: Socket, line: string): (() => void) | undefined {
    this.stats.requests++;
    let req: ControlRequest;
    try {
      req = parseRequest(line);
    } catch (err) {
      this.refuse(sock, err instanceof ControlError ? err : new ControlError(ControlCode.MALFORMED, String(err)));
      return undefined;
    }
    try {
      if (req.cmd === 'events') {
        this.send(sock, { ok: true, data: { events: this.deps.events.recent(req.limit) } });
        if (!req.follow) return undefined;
        sock.setTimeout(0);
        return this.deps.events.subscribe((e) => {
          if (sock.writableLength > MAX_BACKLOG) sock.destroy();
          else this.send(sock, { event: e });
        });
      }
      this.send(sock, { ok: true, data: this.execute(req) });
    } catch (err) {
      this.stats.failed++;
      const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : ControlCode.INTERNAL;
      this.send(sock, fail(code, err instanceof Error ? err.message : String(err)));
    }
    return undefined;
  }

  /** Run a request; throws ControlError (or a coded error) on failure. */
  execute(req: Exclude<ControlRequest, { cmd: 'events' }>): unknown {
    const { engine, events, maintenance } = this.deps;
    switch (req.cmd) {
      case 'status':
        return statusReport(engine, events, maintenance);
      case 'stats':
        return statsReport(engine, this.stats);
      case 'metrics':
        return { text: renderMetrics({ engine, events, ...(maintenance ? { maintenance } : {}), control: this.stats }) };
      case 'demote': {
        const group = req.group ?? DEFAULT_GROUP;
        if (!demotionReport(engine).some((g) => g.group === group)) throw new ControlError(ControlCode.NO_GROUP, `no vhid is in group ${group}`);
        const total = req.reset ? engine.setDemotion(group, ADMIN_DEMOTER, 0) : engine.demote(group, ADMIN_DEMOTER, req.delta!);
        const admin = engine.ledger.held(group, ADMIN_DEMOTER);
        const what = req.reset ? 'reset' : `${req.delta! > 0 ? '+' : ''}${req.delta}`;
        this.log(LOG.STATE, `carpd: demote: group ${group} ${what} by ${ADMIN_DEMOTER}: group total ${total}`);
        this.admin('demote', `group ${group} ${what}: ${ADMIN_DEMOTER} holds ${admin}, group total ${total}`);
        return { group, total, admin };
      }
      case 'state': {
        if (!engine.force(req.key, req.state, 'user requested')) throw new ControlError(ControlCode.NO_VHID, `no vhid ${req.key}`);
        this.admin('state', `${req.key} forced to ${req.state}`);
        return engine.status().find((s) => s.key === req.key);
      }
      case 'maintenance': {
        if (!maintenance) throw new ControlError(ControlCode.UNAVAILABLE, 'maintenance mode is not available in this mode');
        if (req.on === undefined) return maintenance.state;
        // Maintenance publishes its own event (onChange).
        maintenance.set(req.on, 'carpctl');
        return maintenance.state;
      }
    }
  }

  private admin(action: string, detail: string): void {
    this.deps.events.publish({ type: 'admin', time: new Date().toISOString(), action, detail });
  }
}

function fail(code: string, error: string): ControlResponse {
  return { ok: false, code, error };
}

/** Remove a socket file no daemon answers on; refuse a live one or a non-socket. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new ControlError(ControlCode.NOT_SOCKET, `${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = connect(path);
    const timer = setTimeout(() => {
      c.destroy();
      resolve(true); // something holds it but does not answer quickly: leave it alone
    }, 1000);
    c.once('connect', () => {
      clearTimeout(timer);
      c.destroy();
      resolve(true);
    });
    c.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (alive) throw new ControlError(ControlCode.IN_USE, `${path} is in use by another process (another carpd?)`);
  unlinkSync(path);
}

// --- client ---

/** Send one request and resolve with the answer. */
export function request(path: string, req: ControlRequest, timeoutMs = 5_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const c = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new ControlError(ControlCode.CONNECT, `no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(`${JSON.stringify(req)}\n`));
    c.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      c.destroy();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as ControlResponse);
      } catch {
        reject(new ControlError(ControlCode.MALFORMED, 'the daemon sent something that is not JSON'));
      }
    });
    c.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new ControlError(ControlCode.CONNECT, `cannot connect to ${path}: ${err.code ?? err.message}`));
    });
    c.once('close', () => {
      clearTimeout(timer);
      reject(new ControlError(ControlCode.CONNECT, `${path} closed the connection without an answer`));
    });
  });
}

/**
 * `events --follow`: calls `onEvent` for the recent events, then for each new one, until `stop()`
 * or the daemon goes away (then `done` resolves).
 */
export function followEvents(path: string, onEvent: (e: DaemonEvent) => void, limit?: number): { stop(): void; done: Promise<void> } {
  const c = connect(path);
  const done = new Promise<void>((resolve, reject) => {
    let buf = '';
    let answered = false;
    c.setEncoding('utf8');
    c.once('connect', () => c.write(`${JSON.stringify({ cmd: 'events', follow: true, ...(limit !== undefined ? { limit } : {}) })}\n`));
    c.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: { ok?: boolean; code?: string; error?: string; data?: { events: DaemonEvent[] }; event?: DaemonEvent };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue;
        }
        if (!answered) {
          answered = true;
          if (!msg.ok) {
            c.destroy();
            reject(new ControlError(msg.code ?? ControlCode.INTERNAL, msg.error ?? 'refused'));
            return;
          }
          for (const e of msg.data?.events ?? []) onEvent(e);
        } else if (msg.event) {
          onEvent(msg.event);
        }
      }
    });
    c.once('error', (err: NodeJS.ErrnoException) => reject(new ControlError(ControlCode.CONNECT, `cannot connect to ${path}: ${err.code ?? err.message}`)));
    c.once('close', () => resolve());
  });
  return { stop: () => c.destroy(), done };
}
