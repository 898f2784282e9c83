/**
 * One carpd per network namespace (one `carpd ucarp` per vhid and interface): a lock file in the
 * run directory, named after what it guards, holding the PID and the start time of its holder.
 *
 * Why a lock at all: a second daemon on the same host shares the first one's interfaces, and its
 * INIT → BACKUP step and its exit both delete the VIPs the running master holds (an outage with no
 * error). The newcomer must refuse before it touches anything.
 *
 * Why this kind of lock. flock(2)/fcntl(2) die with the process, which is what a lock should do,
 * but Node cannot reach them without native code. A listening unix socket at a path in the run
 * directory has the same stale-file problem as a pid file (the path outlives a kill -9) and adds
 * nothing. An abstract unix socket (Linux, scoped to the network namespace) dies with its process
 * and binds atomically, but abstract names carry no permissions: any local user could bind the
 * name first and keep carpd from starting after a reboot. So: the classic pid file, in a directory
 * only root writes (`/run/carpd`), created complete and atomically with link(2) (so a reader never
 * sees half a file), and judged stale when its PID is gone or the process with that PID started at
 * another time than the one recorded (`/proc/PID/stat` field 22, against PID reuse after a crash).
 * A stale file is moved aside with rename(2) and its content compared before it is deleted, so two
 * newcomers breaking the same stale lock cannot delete each other's fresh one.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const INSTANCE_LOCKED = 'CARPD_ERR_INSTANCE_LOCKED';

/** What a lock guards: a whole network namespace (`carpd run`), or one vhid on one interface (`carpd ucarp`). */
export type LockScope = { kind: 'netns' } | { kind: 'vhid'; vhid: number; interface: string };

/** The lock is held by a live process. */
export class InstanceLockError extends Error {
  readonly code = INSTANCE_LOCKED;
  constructor(
    readonly path: string,
    readonly pid: number,
    message: string,
  ) {
    super(message);
    this.name = 'InstanceLockError';
  }
}

export interface InstanceLock {
  readonly path: string;
  /** Removes the lock file if it is still ours. Synchronous, so an 'exit' handler can call it. */
  release(): void;
}

/**
 * The run directory: systemd's $RUNTIME_DIRECTORY (RuntimeDirectory=carpd), else /run/carpd on
 * Linux and /var/run/carpd elsewhere (hier(7) on the BSDs).
 */
export function defaultRunDir(env: NodeJS.ProcessEnv = process.env, platform: string = process.platform): string {
  const fromSystemd = env.RUNTIME_DIRECTORY?.split(':')[0];
  if (fromSystemd) return fromSystemd;
  return platform === 'linux' ? '/run/carpd' : '/var/run/carpd';
}

/**
 * The network namespace this process is in, as the inode of /proc/self/ns/net (what `ip netns
 * identify` and `lsns` compare); undefined where there is no such file (the BSDs).
 */
export function netnsInode(nsPath = '/proc/self/ns/net'): number | undefined {
  try {
    return statSync(nsPath).ino;
  } catch {
    return undefined;
  }
}

/** The lock file's name for `scope` in the namespace `ino`: `carpd-net-INO.lock`, `ucarp-net-INO-vhid-N-IF.lock`. */
export function lockFileName(scope: LockScope, ino: number | undefined): string {
  const ns = ino === undefined ? 'host' : `net-${ino}`;
  if (scope.kind === 'netns') return `carpd-${ns}.lock`;
  // Interface names are validated (1..15 characters, no "/" or spaces); keep the name a file name anyway.
  const ifname = scope.interface.replace(/[^A-Za-z0-9_.:@-]/g, '_');
  return `ucarp-${ns}-vhid-${scope.vhid}-${ifname}.lock`;
}

/** A process's start time in clock ticks since boot (proc(5), /proc/PID/stat field 22), or undefined. */
export function processStartTime(pid: number, procRoot = '/proc'): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(procRoot, String(pid), 'stat'), 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (comm) is in parentheses and may hold spaces or ')': count from the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = rest[22 - 3];
  return start !== undefined && /^\d+$/.test(start) ? start : undefined;
}

interface Holder {
  pid: number;
  start?: string;
}

function parseHolder(text: string): Holder | undefined {
  const [pidLine, startLine] = text.split('\n');
  if (!pidLine || !/^\d+$/.test(pidLine.trim())) return undefined;
  const pid = Number(pidLine.trim());
  const start = startLine?.trim();
  return start && /^\d+$/.test(start) ? { pid, start } : { pid };
}

/** Whether the recorded holder still runs: its PID exists and, where /proc tells, started when recorded. */
function holderAlive(h: Holder, self: number, procRoot: string): boolean {
  // Our own PID in the file is a previous life of ours (a container where carpd is always PID 1).
  if (h.pid === self || h.pid <= 0) return false;
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    // EPERM: it exists, but is not ours to signal.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (h.start === undefined) return true;
  const now = processStartTime(h.pid, procRoot);
  // No /proc (the BSDs): the PID's existence is all there is to go on.
  return now === undefined ? true : now === h.start;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const tmpName = (path: string, what: string) => `${path}.${what}.${process.pid}.${randomBytes(6).toString('hex')}`;

/** Moves a stale lock aside and deletes it, unless what was moved is not the stale content judged (someone's fresh lock: put back). */
function breakStale(path: string, staleText: string): void {
  const aside = tmpName(path, 'stale');
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else broke it
    throw err;
  }
  const moved = readText(aside);
  if (moved !== staleText) {
    try {
      linkSync(aside, path);
    } catch {
      // another process holds a lock there now; the one we moved lost the race to it
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // already gone
  }
}

export interface AcquireOptions {
  /** Default: this process. */
  pid?: number;
  /** Where /proc is (tests). */
  procRoot?: string;
  /** Describes the holder in the refusal, e.g. "another carpd runs in this network namespace". */
  what?: string;
}

const ATTEMPTS = 5;

/**
 * Takes the lock file `path` (its directory is created 0755), or throws InstanceLockError naming
 * the file and the live holder's PID. Any other failure (a read-only run directory) throws the
 * filesystem's error.
 */
export function acquireInstanceLock(path: string, opts: AcquireOptions = {}): InstanceLock {
  const pid = opts.pid ?? process.pid;
  const procRoot = opts.procRoot ?? '/proc';
  const dir = path.slice(0, Math.max(1, path.lastIndexOf('/')));
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const start = processStartTime(pid, procRoot);
  const content = `${pid}\n${start ?? ''}\n`;
  for (let i = 0; i < ATTEMPTS; i++) {
    const tmp = tmpName(path, 'new');
    writeFileSync(tmp, content, { flag: 'wx', mode: 0o644 });
    try {
      linkSync(tmp, path);
      return {
        path,
        release() {
          try {
            if (readText(path) === content) unlinkSync(path);
          } catch {
            // gone, or the run directory went away: nothing to release
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // never mind
      }
    }
    const text = readText(path);
    if (text === undefined) continue; // released in between: try again
    const holder = parseHolder(text);
    if (holder && holderAlive(holder, pid, procRoot)) {
      throw new InstanceLockError(path, holder.pid, `${opts.what ?? 'another carpd holds the lock'} (pid ${holder.pid}, lock ${path})`);
    }
    breakStale(path, text);
  }
  throw new Error(`could not take the lock ${path} after ${ATTEMPTS} attempts (other processes keep taking it)`);
}
