/**
 * The control socket's wire protocol: JSON lines over a unix socket. Each request is one JSON
 * object on a line, `{"cmd":"status"}`; each answer is one line, `{"ok":true,"data":…}` or
 * `{"ok":false,"code":"CARPD_ERR_…","error":"…"}`. `events` with `follow` keeps the connection and
 * streams `{"event":…}` lines.
 */
import { LISTEN_CODES } from '../ports/local-socket.js';
import { EVENT_RING_SIZE } from './event-log.js';

export const DEFAULT_CONTROL_PATH = '/var/run/carpd.sock';
/** The longest request line accepted. */
export const MAX_LINE = 64 * 1024;

/** One message as it goes on the wire. */
export function frame(msg: unknown): string {
  return `${JSON.stringify(msg)}\n`;
}

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
  /** The engine lacks the capability (engine-caps.ts says which and why). */
  UNSUPPORTED: 'CARPD_ERR_ENGINE_UNSUPPORTED',
  INTERNAL: 'CARPD_ERR_CONTROL_INTERNAL',
  ...LISTEN_CODES,
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
      const group =
        r.group === undefined
          ? undefined
          : typeof r.group === 'string' && /^[A-Za-z0-9_.-]{1,32}$/.test(r.group)
            ? r.group
            : bad('"group" must be a group name');
      const reset = optBool('reset');
      const delta = r.delta;
      if (reset && delta !== undefined) bad('"delta" and "reset" exclude each other');
      if (!reset && (typeof delta !== 'number' || !Number.isInteger(delta) || delta === 0 || Math.abs(delta) > 255))
        bad('"delta" must be a non-zero integer in -255..255');
      return { cmd: 'demote', ...(group !== undefined ? { group } : {}), ...(reset ? { reset } : { delta: delta as number }) };
    }
    case 'state': {
      // INSTANCE@NAME is keepalived's key: accepted here so the engine itself can say what it cannot do.
      if (typeof r.key !== 'string' || !/^(\d{1,3}@[A-Za-z0-9_.:@-]{1,15}|INSTANCE@[A-Za-z0-9_.:@-]{1,64})$/.test(r.key))
        bad('"key" must be VHID@IF or INSTANCE@NAME');
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
      if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > EVENT_RING_SIZE))
        bad(`"limit" must be an integer in 0..${EVENT_RING_SIZE}`);
      return { cmd: 'events', ...(follow !== undefined ? { follow } : {}), ...(limit !== undefined ? { limit: limit as number } : {}) };
    }
    default:
      return bad(typeof r.cmd === 'string' ? `unknown command ${JSON.stringify(r.cmd.slice(0, 40))}` : 'no "cmd"');
  }
}
