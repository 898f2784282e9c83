/** A listening local (unix) socket, as the control server needs one. */
import type { Socket } from 'node:net';

/** Codes of a refused listen; the control protocol reports them unchanged. */
export const LISTEN_CODES = {
  IN_USE: 'CARPD_ERR_CONTROL_IN_USE',
  NOT_SOCKET: 'CARPD_ERR_CONTROL_NOT_SOCKET',
} as const;

export class ListenError extends Error {
  constructor(
    readonly code: (typeof LISTEN_CODES)[keyof typeof LISTEN_CODES],
    message: string,
  ) {
    super(message);
    this.name = 'ListenError';
  }
}

export interface LocalListener {
  /** Errors after listening started (the server keeps running). */
  onError(cb: (err: Error) => void): void;
  /** Stop accepting and remove the socket file; open connections are the caller's. */
  close(): Promise<void>;
}

/**
 * Listen on `path`, reachable by the owner only (0600). A stale socket left by a dead process is
 * replaced; a live one or a file that is not a socket is refused with a ListenError.
 */
export type ListenLocal = (path: string, onConnection: (sock: Socket) => void) => Promise<LocalListener>;
