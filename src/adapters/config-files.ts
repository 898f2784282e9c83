/** The config loader's view of the real disk: files, directories and password files. */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Code } from '../config/errors.js';
import { validCron } from './cron.js';
import { loadConfig, type LoadOptions, type LoadResult } from '../config/load.js';
import { MAX_FILE_BYTES, NOT_REGULAR, tooLarge } from '../config/limits.js';
import { formatMode, worldReadable } from '../config/passfile.js';
import type { ParseContext, PassfileResult, ReadResult } from '../ports/config-files.js';

/** The first line of a password file is the whole password (ucarp reads 511 bytes at most). */
const MAX_READ = 4096;

/**
 * Opened without blocking: open(2) of a FIFO for reading waits for a writer, and O_NONBLOCK makes
 * it return at once (then fstat says what it is). On a regular file the flag changes nothing.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** The real file system, with absolute paths inside configs optionally under `root`. */
export function diskContext(root?: string): ParseContext {
  return {
    readText,
    listDir(path) {
      try {
        return readdirSync(path).sort();
      } catch {
        return undefined;
      }
    },
    readPassfile,
    validCron,
    hostPath: (p) => (root !== undefined && isAbsolute(p) ? join(root, p) : p),
  };
}

/** Loads and validates config files from the disk (see loadConfig). */
export function loadConfigFiles(files: string[], opts: LoadOptions = {}): LoadResult {
  // CARPD_KERNEL_OS stands in for the platform where tests simulate a BSD on Linux.
  const platform = opts.platform ?? process.env.CARPD_KERNEL_OS ?? process.platform;
  return loadConfig(files, { ...opts, platform }, diskContext(opts.root));
}

/**
 * Reads a config file: a regular file of at most MAX_FILE_BYTES, checked with fstat on the opened
 * descriptor before a byte is read, so a FIFO, a device or a huge file is refused rather than
 * blocking start-up (or SIGHUP) for ever or filling the memory.
 */
export function readText(path: string): ReadResult {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    return { ok: false, message: readError(e) };
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return { ok: false, message: 'is a directory' };
    if (!st.isFile()) return { ok: false, message: NOT_REGULAR };
    if (st.size > MAX_FILE_BYTES) return { ok: false, message: tooLarge(st.size) };
    // Read to the cap plus one byte, not to st.size: a file that grows meanwhile is still bounded.
    const buf = Buffer.alloc(Math.min(st.size, MAX_FILE_BYTES) + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
      if (n === buf.length) break;
    }
    if (n > MAX_FILE_BYTES) return { ok: false, message: tooLarge(n) };
    return { ok: true, text: buf.subarray(0, n).toString('utf8'), mode: st.mode, id: `${st.dev}:${st.ino}` };
  } catch (e) {
    return { ok: false, message: readError(e) };
  } finally {
    closeSync(fd);
  }
}

function readError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? String(e);
}

/**
 * Reads the password: the first line, without its newline or CR. Refuses a world-readable file.
 * Messages name the path and mode, never the content.
 */
export function readPassfile(path: string): PassfileResult {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    return { ok: false, code: Code.PASSFILE, message: `cannot open passfile ${path}: ${errnoText(e)}` };
  }
  try {
    // fstat on the open descriptor, so the mode checked is the mode of the file read.
    const st = fstatSync(fd);
    if (!st.isFile()) {
      return { ok: false, code: Code.PASSFILE, message: `passfile ${path} is not a regular file` };
    }
    if (worldReadable(st.mode)) {
      return {
        ok: false,
        code: Code.PASSFILE_MODE,
        message: `passfile ${path} is world-readable (mode ${formatMode(st.mode)}); chmod o-r it`,
      };
    }
    const buf = Buffer.alloc(MAX_READ);
    const n = readSync(fd, buf, 0, MAX_READ, 0);
    const text = buf.subarray(0, n).toString('utf8');
    const nl = text.indexOf('\n');
    let password = nl === -1 ? text : text.slice(0, nl);
    if (password.endsWith('\r')) password = password.slice(0, -1);
    return { ok: true, password };
  } catch (e) {
    return { ok: false, code: Code.PASSFILE, message: `cannot read passfile ${path}: ${errnoText(e)}` };
  } finally {
    closeSync(fd);
  }
}

function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  return code ?? 'unknown error';
}
