/** The file port plugins write through: atomic writes with a `changed` flag. */
import type { WriteOptions, WriteResult } from './target-files.js';
import type { HookTag } from './exec.js';

export interface HostFs {
  /** Current content of an absolute path, or undefined. */
  read(path: string): Promise<string | undefined>;
  /** `tag` says which hook run writes (for recorders: `carpd plan`, tests). */
  write(path: string, content: string, opts?: WriteOptions, tag?: HookTag): Promise<WriteResult>;
}
