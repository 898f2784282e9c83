/**
 * A counted demotion ledger, per interface group (OpenBSD carpdemote semantics): whoever demotes
 * by N can undo exactly N, and `clear()` undoes everything carpd did.
 * Like OpenBSD usr.sbin/bgpd/carp.c, which remembers its own `changed_by`.
 */

/** Every vhid is in this group, as every OpenBSD carp interface is. */
export const DEFAULT_GROUP = 'carp';
export const MAX_DEMOTE = 255;

export interface DemotionEntry {
  group: string;
  by: string;
  count: number;
}

export class DemotionLedger {
  private readonly groups = new Map<string, Map<string, number>>();

  /** Add `delta` (may be negative) to what `by` holds in `group`; never below 0. Returns the new group total. */
  adjust(group: string, by: string, delta: number): number {
    const g = this.groups.get(group) ?? new Map<string, number>();
    const next = Math.max(0, (g.get(by) ?? 0) + delta);
    if (next === 0) g.delete(by);
    else g.set(by, next);
    if (g.size === 0) this.groups.delete(group);
    else this.groups.set(group, g);
    return this.total(group);
  }

  /** Set what `by` holds in `group` to exactly `count`. */
  set(group: string, by: string, count: number): number {
    return this.adjust(group, by, count - this.held(group, by));
  }

  held(group: string, by: string): number {
    return this.groups.get(group)?.get(by) ?? 0;
  }

  /** A group's demotion counter, capped like the kernel's byte. */
  total(group: string): number {
    let sum = 0;
    for (const n of this.groups.get(group)?.values() ?? []) sum += n;
    return Math.min(MAX_DEMOTE, sum);
  }

  /** The demotion a vhid advertises: the sum over its groups (OpenBSD carp_group_demote_count()). */
  forGroups(groups: readonly string[]): number {
    let sum = 0;
    for (const g of new Set(groups)) sum += this.total(g);
    return Math.min(MAX_DEMOTE, sum);
  }

  /** Remove what `by` holds in every group (or only in `group`). */
  release(by: string, group?: string): void {
    for (const g of group ? [group] : [...this.groups.keys()]) this.adjust(g, by, -this.held(g, by));
  }

  /** Undo every demotion in the ledger. */
  clear(): void {
    this.groups.clear();
  }

  entries(): DemotionEntry[] {
    const out: DemotionEntry[] = [];
    for (const [group, g] of [...this.groups].sort(([a], [b]) => a.localeCompare(b))) {
      for (const [by, count] of [...g].sort(([a], [b]) => a.localeCompare(b))) out.push({ group, by, count });
    }
    return out;
  }
}
