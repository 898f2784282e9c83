/** Reading a CARP password from a file, refusing files that anybody could read. */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Code } from './errors.js';

export type PassfileResult =
  | { ok: true; password: string }
  | { ok: false; code: string; message: string };

/** The first line of a password file is the whole password (ucarp reads 511 bytes at most). */
const MAX_READ = 4096;

/** True when "other" may read a file of this mode. */
export function worldReadable(mode: number): boolean {
  return (mode & 0o004) !== 0;
}

/** Formats a mode the way ls/stat users expect, e.g. `0644`. */
export function formatMode(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
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
