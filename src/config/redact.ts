/** The JSON shape of `carpd config`: the normalized model with secrets redacted. */
import {
  REDACTED,
  type CarpModel,
  type GlobalConfig,
  type GroupConfig,
  type HealthConfig,
  type MaintenanceConfig,
  type PluginConfig,
  type VhidConfig,
} from './model.js';

/** A vhid as `carpd config` prints it: the model's fields, the password redacted, no field sources. */
export type RedactedVhid = Omit<VhidConfig, 'password' | 'fieldSources'> & {
  /** `"<redacted>"` (or the secret with showSecrets) when set, null when there is none. */
  password: string | null;
};

export interface RedactedExtraSection {
  name: string;
  source: string;
  entries: { key: string; value: string }[];
}

export interface RedactedModel {
  global: GlobalConfig;
  vhids: RedactedVhid[];
  extra?: RedactedExtraSection[];
  plugins?: PluginConfig[];
  health?: HealthConfig[];
  maintenance?: MaintenanceConfig;
  groups?: GroupConfig[];
}

/** Keys of reserved sections whose values are treated as secrets (a plugin's bgp password, say). */
const SECRET_KEY = /pass|secret|token|psk/i;

/** A plain, JSON-ready copy of the model; passwords redacted unless `showSecrets`. */
export function redactModel(model: CarpModel, showSecrets: boolean): RedactedModel {
  const g = model.global;
  const global: GlobalConfig = { allow: g.allow, preempt: g.preempt, log: g.log };
  for (const [k, value] of Object.entries(g)) {
    if (value !== undefined && !(k in global)) (global as unknown as Record<string, unknown>)[k] = value;
  }

  const vhids = model.vhids.map((v) => {
    const out: RedactedVhid = {
      key: v.key,
      vhid: v.vhid,
      interface: v.interface,
      addresses: [...v.addresses],
      advbase: v.advbase,
      advskew: v.advskew,
      password: v.password === '' ? null : showSecrets ? v.password : REDACTED,
      source: v.source,
    };
    if (v.name !== undefined) out.name = v.name;
    if (v.groups !== undefined) out.groups = [...v.groups];
    for (const k of ['peer', 'srcip', 'upscript', 'downscript', 'xparam'] as const) {
      const value = v[k];
      if (value !== undefined) out[k] = value;
    }
    if (v.deadRatio !== undefined) out.deadRatio = v.deadRatio;
    if (v.vlan !== undefined) out.vlan = { ...v.vlan };
    return out;
  });

  const result: RedactedModel = { global, vhids };
  if (model.extra !== undefined && model.extra.length > 0) {
    result.extra = model.extra.map((s) => ({
      name: s.name,
      source: s.source,
      entries: s.entries.map((e) => ({
        key: e.key,
        value: secret(e.key, e.value, showSecrets),
      })),
    }));
  }
  if (model.plugins !== undefined && model.plugins.length > 0) {
    result.plugins = model.plugins.map((p) => ({
      ...p,
      options: Object.fromEntries(Object.entries(p.options).map(([k, v]) => [k, secret(k, v, showSecrets)])),
    }));
  }
  if (model.health !== undefined && model.health.length > 0) result.health = model.health.map((h) => ({ ...h, command: [...h.command] }));
  if (model.maintenance !== undefined) result.maintenance = { ...model.maintenance };
  if (model.groups !== undefined && model.groups.length > 0) result.groups = model.groups.map((x) => ({ ...x, members: [...x.members] }));
  return result;
}

function secret(key: string, value: string, showSecrets: boolean): string {
  return !showSecrets && SECRET_KEY.test(key) && value !== '' ? REDACTED : value;
}
