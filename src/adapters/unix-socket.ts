/** The control socket's file: a unix socket at a path, 0600, replacing one a dead daemon left. */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { LISTEN_CODES, ListenError, type LocalListener } from '../ports/local-socket.js';

export async function listenUnix(path: string, onConnection: (sock: Socket) => void): Promise<LocalListener> {
  await clearStaleSocket(path);
  // Half-open: a client may send its requests and shut down its side (`nc -U`, socat) and still
  // get every answer; the control server answers one request per turn and ends the connection
  // itself once the input is used up.
  const server = createServer({ allowHalfOpen: true }, onConnection);
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
  return {
    onError: (cb) => void server.on('error', cb),
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}

/** Remove a socket file no daemon answers on; refuse a live one or a non-socket. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new ListenError(LISTEN_CODES.NOT_SOCKET, `${path} exists and is not a socket`);
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
  if (alive) throw new ListenError(LISTEN_CODES.IN_USE, `${path} is in use by another process (another carpd?)`);
  unlinkSync(path);
}
