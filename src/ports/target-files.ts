/** Writing the files plugins render (configs of other daemons), as plugins see the result. */

export interface WriteOptions {
  /** File mode; default 0644. */
  mode?: number;
}

export interface WriteResult {
  /** The path as the plugin named it (not under the root). */
  path: string;
  /** The content or mode differed (or the file did not exist), and the file was written. */
  changed: boolean;
}
