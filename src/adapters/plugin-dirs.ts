/**
 * Reading a plugin directory: the folders in it that hold a plugin.js, after checking that nobody
 * but root (or the user carpd runs as) can change what is in them. The daemon runs as root and
 * imports plugin.js, and renders templates into files root's services read: a plugin or template
 * directory someone else can write is a way to root. The rule is OpenSSH's safe_path() (misc.c,
 * what sshd applies to an AuthorizedKeysCommand): every directory from the path up to / is owned
 * by root or by us and writable by nobody else; and so is every file in a plugin folder. Unlike
 * OpenSSH, a root-owned directory with the sticky bit (/tmp) may be world-writable above it, since
 * nobody else can rename or remove what is ours in it.
 */
import { existsSync, lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';

export const UNSAFE_PATH = 'CARPD_ERR_UNSAFE_PATH';

/** A plugin or template directory, or a file in it, that others could change. */
export class UnsafePathError extends Error {
  readonly code = UNSAFE_PATH;
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** What is wrong with one inode, or undefined. `above`: an ancestor, where a sticky root-owned directory may be world-writable. */
function inodeProblem(path: string, st: Stats, uid: number, above: boolean): string | undefined {
  if (st.uid !== 0 && st.uid !== uid) return `${path} is owned by uid ${st.uid}, not root; carpd runs its code as root (chown root ${path})`;
  if ((st.mode & 0o022) === 0) return undefined;
  if (above && st.isDirectory() && (st.mode & 0o1000) !== 0 && st.uid === 0) return undefined;
  const who = (st.mode & 0o022) === 0o022 ? 'group and others' : st.mode & 0o020 ? 'group' : 'others';
  return `${path} is writable by ${who} (mode ${octal(st.mode)}); carpd runs its code as root (chmod go-w ${path})`;
}

/**
 * Why `path` (a plugin or template directory or file) must not be trusted, or undefined: it or a
 * directory above it (after symlinks) is owned by someone else or writable by group or others.
 * A missing path is no problem here (the caller reports it as missing).
 */
export function untrustedPath(path: string, uid: number = process.geteuid?.() ?? 0): string | undefined {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return undefined;
  }
  for (let p = real, above = false; ; above = true) {
    let st: Stats;
    try {
      st = statSync(p);
    } catch {
      return undefined;
    }
    const problem = inodeProblem(p, st, uid, above);
    if (problem) return problem;
    const up = dirname(p);
    if (up === p) return undefined;
    p = up;
  }
}

/** At most this many entries are looked at under one plugin folder (a node_modules is not expected there). */
const MAX_TREE_ENTRIES = 10_000;

/** The first problem of any file or directory under `dir` (itself included, its ancestors not), or undefined. */
export function untrustedTree(dir: string, uid: number = process.geteuid?.() ?? 0): string | undefined {
  const stack = [dir];
  let seen = 0;
  while (stack.length > 0) {
    const p = stack.pop()!;
    if (++seen > MAX_TREE_ENTRIES) return `${dir} holds more than ${MAX_TREE_ENTRIES} files; carpd does not check them all`;
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) {
      // A link is only as good as where it leads, and everything above that.
      const problem = untrustedPath(p, uid);
      if (problem) return problem;
      continue;
    }
    const problem = inodeProblem(p, st, uid, false);
    if (problem) return problem;
    if (st.isDirectory()) for (const name of readdirSync(p)) stack.push(join(p, name));
  }
  return undefined;
}

/**
 * Sorted folder names under `dir` with a plugin.js; throws (with the errno code) when `dir` cannot
 * be read, and UnsafePathError when `dir`, a directory above it, or anything in a plugin folder
 * is owned by another user or writable by group or others.
 */
export function pluginFolders(dir: string): string[] {
  const unsafe = untrustedPath(dir);
  if (unsafe) throw new UnsafePathError(dir, `refusing plugin directory ${dir}: ${unsafe}`);
  const names = readdirSync(dir)
    .sort()
    .filter((name) => existsSync(join(dir, name, 'plugin.js')) && statSync(join(dir, name)).isDirectory());
  for (const name of names) {
    const problem = untrustedTree(join(dir, name));
    if (problem) throw new UnsafePathError(dir, `refusing plugin directory ${dir}: ${problem}`);
  }
  return names;
}
