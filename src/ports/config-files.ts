/**
 * The file system as the config parsers see it: the loader is given the real one (adapters), tests
 * a fixture root. The parsers themselves never touch the disk.
 */

/**
 * `id` names the file itself (device and inode on the disk), so that a file sourced again under
 * another name or through a symlink is recognised and read once; absent, the path stands for it.
 */
export type ReadResult = { ok: true; text: string; mode: number; id?: string } | { ok: false; message: string };

/** A password file's first line, or why it was refused (codes are config/errors `Code`s). */
export type PassfileResult = { ok: true; password: string } | { ok: false; code: string; message: string };

export interface ParseContext {
  /** Reads a file a config refers to (a sourced file, hostname.vlan42, ifcfg-eth0:0). */
  readText(path: string): ReadResult;
  /** Sorted names in a directory; undefined when it cannot be read. */
  listDir(path: string): string[] | undefined;
  readPassfile(path: string): PassfileResult;
  /** Whether the cron library that will run it accepts the expression. */
  validCron(expression: string): boolean;
  /** Where an absolute path written inside a config is on this machine. */
  hostPath(path: string): string;
}
