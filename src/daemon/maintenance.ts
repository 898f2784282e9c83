/**
 * Maintenance mode: the node demotes every vhid so its peers take over, and stays that way across
 * restarts and reboots. The intent is written to disk (write, fsync, rename, fsync the directory)
 * before the demotion changes, so a crash in between never leaves the node promoted against the
 * admin's wish.
 */
import { LOG, type Logger } from '../ports/logger.js';
import { DEFAULT_GROUP } from '../core/demotion.js';
import type { IntentStore, MaintenanceIntent } from '../ports/intent-store.js';

/** The ledger name maintenance demotes under. */
export const MAINTENANCE_DEMOTER = 'maintenance';
/** Demotion while in maintenance, unless `[maintenance] demote` says otherwise (FreeBSD's ifdown factor). */
export const DEFAULT_MAINTENANCE_DEMOTION = 240;

/** What maintenance needs of the engine. */
export interface Demoter {
  setDemotion(group: string, by: string, count: number): number;
}

export interface MaintenanceOptions {
  /** Demotion while on; default DEFAULT_MAINTENANCE_DEMOTION. */
  demote?: number;
  logger: Logger;
  /** Called after every change that took effect. */
  onChange?: (intent: MaintenanceIntent) => void;
  now?: () => Date;
}

/** Maintenance mode over a demoter and a store. */
export class Maintenance {
  private intent: MaintenanceIntent;
  private demote: number;

  constructor(
    private readonly engine: Demoter,
    private readonly store: IntentStore,
    private readonly opts: MaintenanceOptions,
  ) {
    this.demote = opts.demote ?? DEFAULT_MAINTENANCE_DEMOTION;
    this.intent = { on: false, by: 'default', since: this.now() };
  }

  private now(): string {
    return (this.opts.now?.() ?? new Date()).toISOString();
  }

  /** The current intent and the demotion it applies. */
  get state(): MaintenanceIntent & { demote: number } {
    return { ...this.intent, demote: this.demote };
  }

  /**
   * Apply what the store says (at start-up). An unreadable intent counts as "on": when in doubt the
   * node stays in the background, which is what an admin who put it there wanted.
   */
  restore(): MaintenanceIntent {
    let stored: MaintenanceIntent | undefined;
    try {
      stored = this.store.read();
    } catch (err) {
      this.opts.logger.log(LOG.ERR, `carpd: maintenance: ${(err as Error).message}; staying in maintenance until it is set again`);
      stored = { on: true, by: 'restore', since: this.now() };
    }
    if (stored) {
      this.intent = stored;
      this.engine.setDemotion(DEFAULT_GROUP, MAINTENANCE_DEMOTER, stored.on ? this.demote : 0);
      if (stored.on) this.opts.logger.log(LOG.STATE, `carpd: maintenance is on (since ${stored.since}, by ${stored.by}): demoted by ${this.demote}`);
    }
    return this.intent;
  }

  /**
   * Enter or leave maintenance. The intent reaches the disk first; if that fails the demotion is
   * left alone and the error propagates.
   */
  set(on: boolean, by: string, until?: Date): MaintenanceIntent {
    const next: MaintenanceIntent = { on, by, since: this.now(), ...(on && until ? { until: until.toISOString() } : {}) };
    this.store.write(next);
    this.intent = next;
    this.engine.setDemotion(DEFAULT_GROUP, MAINTENANCE_DEMOTER, on ? this.demote : 0);
    this.opts.logger.log(LOG.STATE, `carpd: maintenance ${on ? `on: demoted by ${this.demote}` : 'off'} (${by})`);
    this.opts.onChange?.(next);
    return next;
  }

  /** Change the demotion maintenance applies (configuration reload). */
  setDemote(demote: number | undefined): void {
    this.demote = demote ?? DEFAULT_MAINTENANCE_DEMOTION;
    if (this.intent.on) this.engine.setDemotion(DEFAULT_GROUP, MAINTENANCE_DEMOTER, this.demote);
  }
}
