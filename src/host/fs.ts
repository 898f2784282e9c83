/** The file port plugins write through: atomic writes with a `changed` flag, optionally under a root. */
import type { HookTag } from './errors.js';
import { readTarget, writeAtomic } from '../adapters/atomic-write.js';
import type { WriteOptions, WriteResult } from '../ports/target-files.js';

export interface HostFs {
  /** Current content of an absolute path, or undefined. */
  read(path: string): Promise<string | undefined>;
  /** `tag` says which hook run writes (for recorders: `carpd plan`, tests). */
  write(path: string, content: string, opts?: WriteOptions, tag?: HookTag): Promise<WriteResult>;
}

/** Real files; with `root`, every absolute path lives under it (tests, `carpd plan --root`). */
export function realFs(root?: string): HostFs {
  return {
    read: (path) => readTarget(path, root),
    write: (path, content, opts) => writeAtomic(path, content, { ...opts, ...(root !== undefined ? { root } : {}) }),
  };
}
