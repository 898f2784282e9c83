/**
 * Forks the plugin-host child (src/host/child.ts) with a Node IPC channel: the one place the
 * daemon starts it. Its stdout and stderr are the daemon's, so what a plugin prints still lands
 * in the daemon's log; stdin is closed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HostChannel } from '../ports/host-channel.js';

/** The compiled child entry, next to this file's compiled form. */
export const HOST_CHILD_JS = fileURLToPath(new URL('../host/child.js', import.meta.url));

export function forkHostProcess(entry: string = HOST_CHILD_JS): HostChannel {
  let exitFn: ((code: number | null, signal: string | null) => void) | undefined;
  let exited: { code: number | null; signal: string | null } | undefined;
  const done = (code: number | null, signal: string | null) => {
    if (exited) return;
    exited = { code, signal };
    exitFn?.(code, signal);
  };
  let child: ChildProcess;
  try {
    // execArgv: none of the daemon's own flags (a debugger port, --test) carry over.
    child = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], serialization: 'json' });
  } catch {
    queueMicrotask(() => done(null, null));
    return { pid: undefined, send: () => false, onMessage: () => undefined, onExit: (fn) => void (exitFn = fn), kill: () => undefined };
  }
  // A spawn failure or a failed send is reported here; unhandled, it would throw in the daemon.
  child.on('error', () => {
    if (child.pid === undefined) done(null, null);
  });
  child.once('exit', (code, signal) => done(code, signal));
  return {
    get pid() {
      return child.pid;
    },
    send(message) {
      if (exited || !child.connected) return false;
      try {
        return child.send(message as object, (err) => void err);
      } catch {
        return false;
      }
    },
    onMessage(fn) {
      child.on('message', (m) => fn(m));
    },
    onExit(fn) {
      exitFn = fn;
      if (exited) fn(exited.code, exited.signal);
    },
    kill(signal) {
      if (exited) return;
      try {
        child.kill(signal);
      } catch {
        // gone already
      }
    },
  };
}
