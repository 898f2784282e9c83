/** The config loader's view of the real disk: files, directories and password files. */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Code } from '../config/errors.js';
import { validCron } from './cron.js';
import { loadConfig, type LoadOptions, type LoadResult } from '../config/load.js';
import { formatMode, worldReadable } from '../config/passfile.js';
import type { ParseContext, PassfileResult } from '../ports/config-files.js';

/** The first line of a password file is the whole password (ucarp reads 511 bytes at most). */
const MAX_READ = 4096;

/** The real file system, with absolute paths inside configs optionally under `root`. */
export function diskContext(root?: string): ParseContext {
  return {
    readText(path) {
      try {
        const st = statSync(path);
        if (st.isDirectory()) return { ok: false, message: 'is a directory' };
        return { ok: true, text: readFileSync(path, 'utf8'), mode: st.mode };
      } catch (e) {
        return { ok: false, message: readError(e) };
      }
    },
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
    fd = openSync(path, 'r');
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
