/**
 * Scopes: what a plugin follows. A vhid; a group of vhids; or the node (every vhid, the group
 * `carp`). A group or the node is MASTER only when every vhid in it is MASTER, INIT when every vhid
 * is INIT, and BACKUP otherwise (keepalived's sync groups behave the same way).
 */
import { groupsOf } from '../config/groups.js';
import type { CarpModel, Follow, VhidConfig } from '../config/model.js';
import { DEFAULT_GROUP } from '../core/demotion.js';
import type { CarpState, ScopeKind } from './types.js';

export interface ScopeDef {
  kind: ScopeKind;
  /** `vhid:KEY`, `group:NAME` or `node`: one run queue per key. */
  key: string;
  /** The vhid key, the group name, or `carp`. */
  name: string;
  /** Keys of the vhids in the scope, in model order. */
  vhids: string[];
  /** The demotion group a plugin of this scope demotes: the group itself, else `carp`. */
  group: string;
}

export { groupsOf };

/** Finds a vhid by key (`1@em0`), CARP interface name (`carp0`), or bare vhid number when unique. */
export function findVhid(ref: string, vhids: readonly VhidConfig[]): VhidConfig | undefined {
  const byKey = vhids.find((v) => v.key === ref) ?? vhids.find((v) => v.name !== undefined && v.name === ref);
  if (byKey) return byKey;
  const byNumber = vhids.filter((v) => String(v.vhid) === ref);
  return byNumber.length === 1 ? byNumber[0] : undefined;
}

/** The scope a `follow` names, or an error message. */
export function resolveScope(follow: Follow, model: CarpModel): ScopeDef | string {
  switch (follow.kind) {
    case 'vhid': {
      const v = findVhid(follow.ref, model.vhids);
      if (!v) return `follows vhid "${follow.ref}", which is not configured (known: ${model.vhids.map((x) => x.key).join(', ') || 'none'})`;
      return { kind: 'vhid', key: `vhid:${v.key}`, name: v.key, vhids: [v.key], group: DEFAULT_GROUP };
    }
    case 'group': {
      const members = model.vhids.filter((v) => groupsOf(v, model).includes(follow.group)).map((v) => v.key);
      if (members.length === 0) return `follows group "${follow.group}", which has no vhid`;
      return { kind: 'group', key: `group:${follow.group}`, name: follow.group, vhids: members, group: follow.group };
    }
    case 'node':
      return { kind: 'node', key: 'node', name: DEFAULT_GROUP, vhids: model.vhids.map((v) => v.key), group: DEFAULT_GROUP };
  }
}

/** The state of a set of vhids as one unit. */
export function combinedState(states: readonly CarpState[]): CarpState {
  if (states.length > 0 && states.every((s) => s === 'MASTER')) return 'MASTER';
  if (states.every((s) => s === 'INIT')) return 'INIT';
  return 'BACKUP';
}
