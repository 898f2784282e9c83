/**
 * What KeepalivedSource needs from the OS, and nothing else: the notify FIFO, keepalived's pid
 * and dump files, a signal, and an atomic write of the track file. Tests pass a fake.
 */
import { constants, fstat, open, close } from 'node:fs';
import { lstat, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Socket } from 'node:net';
import { writeAtomic } from './atomic-write.js';
import { run } from './exec.js';

/** A file's identity: a rewrite (in place or by rename) changes at least one field. */
export interface FileIdentity {
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface FifoReader {
  /** Stops reading and closes the descriptor; idempotent. */
  close(): void;
  /** True while the path still names the FIFO we hold open (keepalived unlinks a FIFO it made, at exit). */
  stillAtPath(): Promise<boolean>;
}

export interface KeepalivedIo {
  /** Creates the FIFO (0600) unless a FIFO is already there; refuses any other kind of file. */
  ensureFifo(path: string): Promise<void>;
  /** Opens the FIFO without blocking and hands every chunk read to `onData`. */
  openFifo(path: string, onData: (chunk: Buffer) => void, onError: (err: Error) => void): Promise<FifoReader>;
  readText(path: string): Promise<string | undefined>;
  identity(path: string): Promise<FileIdentity | undefined>;
  /** Sends `signal` (a number: SIGJSON is a real-time signal without a name) to `pid`; false when no such process. */
  signal(pid: number, signal: number): boolean;
  /** The process's command name (/proc/PID/comm), or undefined when there is no such process. */
  processName(pid: number): Promise<string | undefined>;
  /** How long the process has been running (ms), or undefined when unknown. */
  processAgeMs(pid: number): Promise<number | undefined>;
  /** Replaces the file by rename, so keepalived's read (after inotify) never sees half of it. */
  writeAtomic(path: string, text: string): Promise<void>;
  /** `keepalived --signum=NAME`: the signal number this keepalived build uses, if it has one. */
  signum(name: 'DATA' | 'JSON'): Promise<number | undefined>;
}

const CMD_TIMEOUT_MS = 5_000;

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

export const realKeepalivedIo: KeepalivedIo = {
  async ensureFifo(path) {
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    if (st?.isFIFO()) return;
    if (st) throw new Error(`${path} exists and is not a FIFO`);
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    // Node has no mkfifo(3); coreutils' mkfifo is on every Debian. carpd runs as root, which
    // keepalived's fifo_open() requires of a FIFO it did not make (owner: its uid or the fifo user).
    const r = await run(['mkfifo', '-m', '0600', path], { timeoutMs: CMD_TIMEOUT_MS });
    if (r.exitCode !== 0 && !(await lstat(path).catch(() => undefined))?.isFIFO()) {
      throw new Error(`mkfifo ${path}: ${r.stderr.trim() || r.spawnError || `exit ${r.exitCode}`}`);
    }
  },

  openFifo(path, onData, onError) {
    // O_RDWR, as keepalived's own fifo_open() does: the open never waits for a writer, and since
    // we hold a write end ourselves, keepalived closing its end (a restart) never reads as EOF.
    return new Promise((resolve, reject) => {
      open(path, constants.O_RDWR | constants.O_NONBLOCK, (err, fd) => {
        if (err) return reject(err);
        fstat(fd, (e2, st) => {
          if (e2 || !st.isFIFO()) {
            close(fd, () => undefined);
            return reject(e2 ?? new Error(`${path} is not a FIFO`));
          }
          // A net.Socket reads a FIFO through libuv's event loop (uv_pipe_open); fs.createReadStream
          // would park a threadpool thread in read(2) and hold the process at exit.
          const sock = new Socket({ fd, readable: true, writable: false });
          sock.unref();
          sock.on('data', onData);
          sock.on('error', onError);
          let closed = false;
          resolve({
            close() {
              if (closed) return;
              closed = true;
              sock.removeAllListeners('data');
              sock.destroy();
            },
            async stillAtPath() {
              const now = await stat(path).catch(() => undefined);
              return now !== undefined && now.isFIFO() && now.ino === st.ino && now.dev === st.dev;
            },
          });
        });
      });
    });
  },

  async readText(path) {
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  },

  async identity(path) {
    const st = await stat(path).catch(() => undefined);
    return st && { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  },

  signal(pid, signal) {
    try {
      process.kill(pid, signal);
      return true;
    } catch (e) {
      if (errnoCode(e) === 'ESRCH') return false;
      throw e;
    }
  },

  async processName(pid) {
    const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => undefined);
    return comm?.trimEnd();
  },

  async processAgeMs(pid) {
    // Field 22 of /proc/PID/stat is the start time in clock ticks since boot (USER_HZ, 100 on Linux).
    const [statText, uptime] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined),
      readFile('/proc/uptime', 'utf8').catch(() => undefined),
    ]);
    if (statText === undefined || uptime === undefined) return undefined;
    const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[19]);
    const up = Number(uptime.split(' ')[0]);
    return Number.isFinite(start) && Number.isFinite(up) ? Math.max(0, up * 1000 - start * 10) : undefined;
  },

  async writeAtomic(path, text) {
    await writeAtomic(path, text, { mode: 0o644 });
  },

  async signum(name) {
    const r = await run(['keepalived', `--signum=${name}`], { timeoutMs: CMD_TIMEOUT_MS });
    const n = Number(r.stdout.trim());
    return r.exitCode === 0 && Number.isInteger(n) && n > 0 && n < 65 ? n : undefined;
  },
};
