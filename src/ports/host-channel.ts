/** The daemon's end of the channel to its plugin-host child (a forked process in production, a fake in tests). */

export interface HostChannel {
  /** The child's pid, when it is a process. */
  readonly pid: number | undefined;
  /** Sends one message; false when the channel is closed (the message is dropped). */
  send(message: unknown): boolean;
  onMessage(fn: (message: unknown) => void): void;
  /** Called once, when the child has exited (or could not start: code null, signal null). */
  onExit(fn: (code: number | null, signal: string | null) => void): void;
  /** Signals the child; a no-op once it has exited. */
  kill(signal: 'SIGKILL' | 'SIGTERM'): void;
}

/** Starts a fresh child. */
export type HostSpawner = () => HostChannel;
