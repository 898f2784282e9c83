/** Where a command's output goes: stdout and stderr lines, or a test's buffers. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}
