/** Which demotion groups a vhid is in: `carp` always, its own `group =` list, and `[group.NAME]` members. */
import type { CarpModel, VhidConfig } from './model.js';

export const DEFAULT_GROUP = 'carp';

/** The vhid's groups, each once (OpenBSD interface groups: carp_group_demote_count() sums them). */
export function groupsOf(v: VhidConfig, model: Pick<CarpModel, 'groups'>): string[] {
  const out = [DEFAULT_GROUP, ...(v.groups ?? [])];
  for (const g of model.groups ?? []) if (g.members.includes(v.key)) out.push(g.name);
  return [...new Set(out)];
}
