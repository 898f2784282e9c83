/** Reading a plugin directory: the folders in it that hold a plugin.js. */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Sorted folder names under `dir` with a plugin.js; throws (with the errno code) when `dir` cannot be read. */
export function pluginFolders(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .filter((name) => existsSync(join(dir, name, 'plugin.js')) && statSync(join(dir, name)).isDirectory());
}
