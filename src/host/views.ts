/** What plugins see of the vhids and of their scope: frozen views built from the model and the current states. */
import type { CarpModel } from '../config/model.js';
import { groupsOf, type ScopeDef } from './scope.js';
import type { CarpState, ScopeView, VhidView } from './types.js';

export function vhidViews(model: CarpModel, states: ReadonlyMap<string, CarpState>): VhidView[] {
  return model.vhids.map((v) =>
    Object.freeze({
      key: v.key,
      vhid: v.vhid,
      interface: v.interface,
      ...(v.name ? { name: v.name } : {}),
      state: states.get(v.key) ?? 'INIT',
      addresses: Object.freeze([...v.addresses]),
      advbase: v.advbase,
      advskew: v.advskew,
      groups: Object.freeze(groupsOf(v, model)),
    }),
  );
}

export function scopeView(def: ScopeDef, state: CarpState, model: CarpModel, states: ReadonlyMap<string, CarpState>): ScopeView {
  const all = vhidViews(model, states);
  return Object.freeze({ kind: def.kind, key: def.key, name: def.name, state, vhids: Object.freeze(all.filter((v) => def.vhids.includes(v.key))) });
}
