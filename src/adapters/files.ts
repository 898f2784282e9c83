/** Plain file operations for the composition roots (cli, lab, daemon/run), so nothing else imports node:fs. */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';

export function fileExists(path: string): boolean {
  return existsSync(path);
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

export function readBytes(path: string): Promise<Buffer> {
  return readFile(path);
}

/** A file's permission bits (and type bits), following symlinks. */
export async function fileMode(path: string): Promise<number> {
  return (await stat(path)).mode;
}

export function realPath(path: string): string {
  return realpathSync(path);
}

/** Names in a directory, unsorted. */
export function listDir(path: string): Promise<string[]> {
  return readdir(path);
}

/** Writes `text` with exactly `mode` (the umask does not apply). */
export function writeText(path: string, text: string, mode: number): void {
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
}

/**
 * Replaces `path` by rename, creating its directory (0755) if needed, so readers never see half a
 * file. The temp file has a random name and is created with O_EXCL ('wx'), so a symlink planted
 * at a predictable name (it was PATH.PID.tmp) is never followed.
 */
export function replaceFile(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  try {
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** A fresh private directory under the system temp dir. */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeTree(path: string): void {
  rmSync(path, { recursive: true, force: true });
}
