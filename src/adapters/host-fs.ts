/** Real files for the plugin host's HostFs port; with `root`, every absolute path lives under it (tests, `carpd plan --root`). */
import { readTarget, writeAtomic } from './atomic-write.js';
import type { HostFs } from '../ports/fs.js';

export function realFs(root?: string): HostFs {
  return {
    read: (path) => readTarget(path, root),
    write: (path, content, opts) => writeAtomic(path, content, { ...opts, ...(root !== undefined ? { root } : {}) }),
  };
}
