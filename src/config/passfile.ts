/** File modes as the password rules see them: a password file anybody could read is refused. */

/** True when "other" may read a file of this mode. */
export function worldReadable(mode: number): boolean {
  return (mode & 0o004) !== 0;
}

/** Formats a mode the way ls/stat users expect, e.g. `0644`. */
export function formatMode(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}
