/** Maintenance intent as a small JSON file in the state directory, written durably. */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MaintenanceError, type IntentStore, type MaintenanceIntent } from '../ports/intent-store.js';

export const INTENT_FILE = 'maintenance.json';

/** The intent as a small JSON file in the state directory, replaced atomically. */
export class FileIntentStore implements IntentStore {
  readonly file: string;

  constructor(readonly dir: string) {
    this.file = join(dir, INTENT_FILE);
  }

  read(): MaintenanceIntent | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new MaintenanceError('CARPD_ERR_STATE_READ', `${this.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new MaintenanceError('CARPD_ERR_STATE_READ', `${this.file}: not JSON`);
    }
    const o = parsed as Partial<MaintenanceIntent> | null;
    if (!o || typeof o !== 'object' || typeof o.on !== 'boolean') throw new MaintenanceError('CARPD_ERR_STATE_READ', `${this.file}: no "on" field`);
    return {
      on: o.on,
      by: typeof o.by === 'string' ? o.by : 'unknown',
      since: typeof o.since === 'string' ? o.since : new Date(0).toISOString(),
      ...(typeof o.until === 'string' ? { until: o.until } : {}),
    };
  }

  write(intent: MaintenanceIntent): void {
    // A fresh random name, created with O_EXCL ('wx'): a name known in advance (it was
    // FILE.PID.tmp) lets whoever can write the directory plant a symlink there, and open('w')
    // would follow it and truncate the file it points to. The way adapters/atomic-write.ts
    // writes rendered files.
    const tmp = join(this.dir, `.${INTENT_FILE}.${randomBytes(8).toString('hex')}.tmp`);
    let created = false;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const fd = openSync(tmp, 'wx', 0o600);
      created = true;
      try {
        writeSync(fd, `${JSON.stringify(intent)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
      // The rename itself is durable only once the directory is.
      const dfd = openSync(this.dir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch (err) {
      try {
        if (created) unlinkSync(tmp);
      } catch {
        // already renamed or gone
      }
      throw new MaintenanceError('CARPD_ERR_STATE_WRITE', `cannot write ${this.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
}
