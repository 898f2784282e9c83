/** The control socket's client side, what carpctl uses: one request, or following the event stream. */
import { connect } from 'node:net';
import { ControlCode, ControlError, frame, type ControlRequest, type ControlResponse } from './control-protocol.js';
import type { DaemonEvent } from './event-log.js';

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
    c.once('connect', () => c.write(frame(req)));
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
    c.once('connect', () => c.write(frame({ cmd: 'events', follow: true, ...(limit !== undefined ? { limit } : {}) })));
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
