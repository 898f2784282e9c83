/**
 * How much configuration carpd reads: every file a config names is a regular file of at most
 * MAX_FILE_BYTES (checked on the open descriptor before a byte is read, see
 * adapters/config-files.ts), and sourced files nest and add up to bounded amounts. Real configs are
 * a few kilobytes; the caps only stop a FIFO, /dev/zero or a `source DIR/*` fan-out from hanging or
 * exhausting the daemon at start-up or at SIGHUP.
 */

/** 4 MiB per file: the largest real rc.conf or interfaces seen is some 100 KB. */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;
/** Sourced files nest at most this deep (ifupdown has no limit; a loop is reported before this). */
export const MAX_INCLUDE_DEPTH = 8;
/** At most this many files are sourced in one load, each read once. */
export const MAX_INCLUDES = 64;

/** The message for a file over the cap: `FILE: larger than N bytes` once the file name is put in front. */
export function tooLarge(size: number): string {
  return `larger than ${MAX_FILE_BYTES} bytes (${size} bytes; carpd reads config files of at most 4 MiB)`;
}

export const NOT_REGULAR = 'not a regular file';
