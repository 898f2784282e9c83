/** Where maintenance mode's intent is kept across restarts (a file in the state directory, or a test's memory). */

/** What the admin (or a schedule) asked for. */
export interface MaintenanceIntent {
  on: boolean;
  /** Who set it: `carpctl`, `schedule`, `restore`. */
  by: string;
  /** ISO time it was set. */
  since: string;
  /** ISO time a scheduled window ends by itself (duration windows), kept across restarts. */
  until?: string;
}

/** Errors with a stable code. */
export class MaintenanceError extends Error {
  constructor(
    readonly code: 'CARPD_ERR_STATE_WRITE' | 'CARPD_ERR_STATE_READ',
    message: string,
  ) {
    super(message);
    this.name = 'MaintenanceError';
  }
}

/** Where the intent lives. */
export interface IntentStore {
  /** The stored intent; undefined when none was ever written. Throws MaintenanceError when unreadable. */
  read(): MaintenanceIntent | undefined;
  /** Durable once it returns. Throws MaintenanceError. */
  write(intent: MaintenanceIntent): void;
}
