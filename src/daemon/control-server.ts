/**
 * The control socket server: refuses and counts a malformed request, never goes down for one;
 * bounds clients, idle time and follower backlog.
 */
import type { Socket } from 'node:net';
import { DEFAULT_GROUP } from '../core/demotion.js';
import type { ListenLocal, LocalListener } from '../ports/local-socket.js';
import { LOG, type Logger } from '../ports/logger.js';
import { ControlCode, ControlError, frame, MAX_LINE, parseRequest, type ControlRequest, type ControlResponse } from './control-protocol.js';
import type { StateSource } from '../ports/state-source.js';
import type { DaemonEvent, EventLog } from './event-log.js';
import type { Maintenance } from './maintenance.js';
import { renderMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { unsupported } from './engine-caps.js';
import { demotionReport, statsReport, statusReport, type ControlCounters } from './reports.js';

/** The ledger name of `carpctl demote`. */
export const ADMIN_DEMOTER = 'admin';

const MAX_CLIENTS = 64;
const IDLE_MS = 30_000;
/** A follower this far behind is cut off rather than buffered without bound. */
const MAX_BACKLOG = 1024 * 1024;
/** Unhandled request bytes read from one client before reading pauses (a request is at most MAX_LINE). */
const MAX_PENDING = 2 * MAX_LINE;

/** One client's connection: the unanswered input, and whether its answers are backed up. */
interface Conn {
  sock: Socket;
  buf: string;
  /** A step is queued with setImmediate. */
  scheduled: boolean;
  /** Waiting for 'drain': the client is not reading its answers. */
  blocked: boolean;
  /** The client has shut down its side: end ours once its requests are answered. */
  ended?: boolean;
  /** Set once the client follows events (it sends nothing more that is read). */
  unsubscribe?: () => void;
}

export interface ControlDeps {
  engine: StateSource;
  events: EventLog;
  /** How the socket is opened (adapters/unix-socket in the daemon). */
  listen: ListenLocal;
  logger: Logger;
  maintenance?: Maintenance;
  /** Log level in force (net.inet.carp.log), read on every use so a reload takes effect. */
  logLevel?: () => number;
}

/** The control socket server. */
export class ControlServer {
  readonly stats: ControlCounters = { connections: 0, requests: 0, malformed: 0, failed: 0, refused: 0 };
  private listener: LocalListener | undefined;
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

  /** Listen on `path` (0600; a stale socket is replaced, a live one refused: see ListenLocal). */
  async listen(path: string): Promise<void> {
    const listener = await this.deps.listen(path, (sock) => this.onConnection(sock));
    listener.onError((err) => this.log(LOG.ERR, `carpd: control: ${err.message}`));
    this.listener = listener;
  }

  /** Stop accepting, drop every client, remove the socket file. */
  async close(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    await listener?.close();
  }

  private onConnection(sock: Socket): void {
    sock.on('error', () => undefined);
    if (this.clients.size >= MAX_CLIENTS) {
      this.stats.refused++;
      sock.end(frame(fail(ControlCode.BUSY, 'too many control connections')));
      return;
    }
    this.clients.add(sock);
    this.stats.connections++;
    sock.setEncoding('utf8');
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    const conn: Conn = { sock, buf: '', scheduled: false, blocked: false };
    sock.on('close', () => {
      this.clients.delete(sock);
      conn.unsubscribe?.();
    });
    sock.on('end', () => {
      conn.ended = true;
      this.schedule(conn);
    });
    sock.on('data', (chunk: string) => {
      if (conn.unsubscribe) return; // a follower only listens
      conn.buf += chunk;
      // A line longer than a request can be is refused at once, whatever is queued before it.
      if (conn.buf.length - (conn.buf.lastIndexOf('\n') + 1) > MAX_LINE) {
        this.refuse(sock, new ControlError(ControlCode.TOO_LONG, `request longer than ${MAX_LINE} bytes`));
        conn.buf = '';
        sock.end();
        return;
      }
      // Stop reading while this much waits to be handled: the rest stays in the kernel's buffer.
      if (conn.buf.length > MAX_PENDING) sock.pause();
      this.schedule(conn);
    });
  }

  /**
   * Requests are answered one per turn of the event loop (a client that pipelines thousands of
   * them in one write held the loop for a second, adverts and timers included), and not at all
   * while the client does not read its answers: a write that returns false pauses the
   * connection until 'drain', so replies never pile up in memory (344 MB for one 60 KB write).
   */
  private schedule(conn: Conn): void {
    if (conn.scheduled || conn.blocked || conn.unsubscribe || conn.sock.destroyed) return;
    if (conn.buf.indexOf('\n') < 0) {
      // Everything the client sent is answered: close our side too (the socket is half-open).
      if (conn.ended) conn.sock.end();
      else if (conn.sock.isPaused()) conn.sock.resume();
      return;
    }
    conn.scheduled = true;
    setImmediate(() => {
      conn.scheduled = false;
      this.step(conn);
    });
  }

  /** Answers the next complete line of `conn`, then schedules the one after. */
  private step(conn: Conn): void {
    const { sock } = conn;
    if (sock.destroyed || conn.unsubscribe) return;
    const nl = conn.buf.indexOf('\n');
    if (nl < 0) return this.schedule(conn);
    const line = conn.buf.slice(0, nl).replace(/\r$/, '');
    conn.buf = conn.buf.slice(nl + 1);
    if (line.trim() !== '') {
      const follow = this.handle(sock, line);
      if (follow) {
        conn.unsubscribe = follow;
        conn.buf = '';
        if (sock.isPaused()) sock.resume();
        return;
      }
    }
    if (sock.writableNeedDrain && !conn.blocked) {
      conn.blocked = true;
      sock.pause();
      sock.once('drain', () => {
        conn.blocked = false;
        this.schedule(conn);
      });
      return;
    }
    if (conn.buf.length <= MAX_PENDING && sock.isPaused()) sock.resume();
    this.schedule(conn);
  }

  private send(sock: Socket, r: ControlResponse | { event: DaemonEvent }): void {
    if (!sock.destroyed) sock.write(frame(r));
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
        if (!engine.capabilities.forceState) throw unsupported(engine, 'forceState');
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
