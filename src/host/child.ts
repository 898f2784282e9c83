/**
 * The plugin-host child process (forked by src/adapters/host-process.ts): plugins run here, so a
 * hook that blocks the event loop or throws from a timer cannot hold up adverts or take the daemon
 * down. It lives as long as its IPC channel: when the daemon goes, so does it.
 */
import { groupExec, setSpawnGap } from '../adapters/exec.js';
import { realFs } from '../adapters/host-fs.js';
import { realScheduler, realTimers } from '../adapters/host-timers.js';
import { HostService } from './host-service.js';
import type { FromChild } from './messages.js';

/** How long a last message may take to leave before the process exits anyway. */
const EXIT_FLUSH_MS = 500;
/** Exit status for a crash (EX_SOFTWARE). */
const EXIT_CRASH = 70;

function send(m: FromChild, cb?: () => void): void {
  if (!process.connected || !process.send) {
    cb?.();
    return;
  }
  try {
    process.send(m, undefined, {}, () => cb?.());
  } catch {
    cb?.();
  }
}

function exitAfterFlush(code: number, last?: FromChild): void {
  const t = setTimeout(() => process.exit(code), EXIT_FLUSH_MS);
  t.unref();
  if (last) send(last, () => process.exit(code));
  else process.exit(code);
}

if (!process.send) {
  console.error('carpd: the plugin host runs as a child of carpd run, not on its own');
  process.exit(64);
}

const crash = (what: string) => (err: unknown) => {
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  exitAfterFlush(EXIT_CRASH, { type: 'log', level: 1, message: `carpd: plugin host: ${what}: ${text}` });
};
process.on('uncaughtException', crash('uncaught exception'));
process.on('unhandledRejection', crash('unhandled rejection'));
// The daemon is gone (or closed the channel): nothing is left to serve.
process.on('disconnect', () => process.exit(0));
// The daemon's own signals (a terminal's ^C reaches the whole group) are the daemon's to act on:
// it stops the child with a `stop` message, after its last transitions.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
process.on('SIGHUP', () => undefined);

// Spawn pacing protects the protocol's event loop, which is not this one.
setSpawnGap(0);

const service = new HostService((m) => send(m), { exec: groupExec, fs: realFs(), timers: realTimers, scheduler: realScheduler });
process.on('message', (raw) => service.receive(raw));
void service.done.then(() => exitAfterFlush(0));
