/**
 * A stand-in for devd's stream socket (/var/run/devd.pipe): a unix stream server that sends every
 * connected client every event line, and reads nothing from them (devd.cc new_client() shuts the
 * read side; notify_clients() writes the same bytes to all). It can be stopped and started again
 * on the same path, as devd restarting does, to test reconnects.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

export class FakeDevd {
  private server: Server | undefined;
  private readonly clients = new Set<Socket>();
  /** Every line sent, in order, for assertions. */
  readonly sent: string[] = [];

  constructor(readonly path: string) {}

  get clientCount(): number {
    return this.clients.size;
  }

  /** Listens on `path`, removing a stale socket file first as devd's create_socket() does. */
  async start(): Promise<void> {
    if (this.server) return;
    rmSync(this.path, { force: true });
    const server = createServer((sock) => {
      this.clients.add(sock);
      sock.on('data', () => undefined);
      sock.on('error', () => undefined);
      sock.on('close', () => this.clients.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** Sends one event (newline added when missing) to every client. */
  emit(line: string): void {
    const l = line.endsWith('\n') ? line : `${line}\n`;
    this.sent.push(l);
    for (const c of this.clients) c.write(l);
  }

  /** Resolves once `n` clients are connected, or rejects after `timeoutMs`. */
  async waitForClients(n: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; this.clients.size < n; i++) {
      if (Date.now() > deadline || i > 100_000) throw new Error(`fake devd: ${this.clients.size} of ${n} clients after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Closes the listener and drops every client, as devd exiting does. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }
}
