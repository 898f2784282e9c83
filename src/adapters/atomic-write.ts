/**
 * Atomic file writes for rendered files: temp file in the same directory, fsync, rename, fsync of
 * the directory. A file whose content (and mode) is already right is left alone and reported
 * unchanged, so a plugin reloads its service only when something changed. A root directory maps
 * every absolute target under it (tests and `carpd plan --root`).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import type { WriteOptions, WriteResult } from '../ports/target-files.js';
import { RenderError, RENDER_CODES } from '../render/errors.js';

/** Where an absolute target path really lives: itself, or the same path under `root`. */
export function underRoot(root: string | undefined, path: string): string {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) {
    throw new RenderError(RENDER_CODES.NAME, `target path must be absolute: ${JSON.stringify(path)}`);
  }
  const clean = normalize(path);
  return root ? join(resolve(root), clean) : clean;
}

/** The current text of an absolute path (under `root`), or undefined when there is no such file. */
export async function readTarget(path: string, root?: string): Promise<string | undefined> {
  try {
    return await readFile(underRoot(root, path), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Writes `content` to `path` (under `root`) atomically, unless it is already there. */
export async function writeAtomic(path: string, content: string, opts: WriteOptions & { root?: string } = {}): Promise<WriteResult> {
  const real = underRoot(opts.root, path);
  const mode = opts.mode ?? 0o644;
  try {
    const [old, st] = await Promise.all([readTarget(real), stat(real).catch(() => undefined)]);
    if (old === content && st && (st.mode & 0o7777) === mode) return { path, changed: false };
    const dir = dirname(real);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${basename(real)}.carpd-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(content, 'utf8');
      await fh.chmod(mode); // the umask may have taken bits away
      await fh.sync();
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await fh.close();
    try {
      await rename(tmp, real);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await syncDir(dir);
    return { path, changed: true };
  } catch (e) {
    if (e instanceof RenderError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new RenderError(RENDER_CODES.WRITE, `cannot write ${path}: ${code}`, { cause: e });
  }
}

/** Makes the rename durable; some filesystems refuse fsync on a directory, which is fine. */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // best effort
  } finally {
    await fh?.close();
  }
}
