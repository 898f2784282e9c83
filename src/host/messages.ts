/**
 * What the daemon and its plugin-host child say to each other over Node IPC. Each side checks
 * every message it receives against these shapes and drops what does not fit: a child that
 * misbehaves (or a plugin that writes to the IPC channel) must not be able to confuse the daemon.
 */
import type { CarpModel } from '../config/model.js';
import type { OsName } from '../render/os.js';
import type { CarpState, TransitionEvent } from '../ports/state-source.js';
import type { HookRecord } from './log.js';
import { HOOK_NAMES, type HookName } from './types.js';

/** A vhid's state, as `HostEngine.status()` reports it in the child. */
export interface VhidState {
  key: string;
  state: CarpState;
}

/** The host's tunables the daemon passes on (HostOptions). */
export interface ChildHostOptions {
  bootDemotion?: number;
  setupRetryMs?: number;
  retryDelayMs?: number;
  vipWaitMs?: number;
  logSize?: number;
}

/** Parent → child. */
export type ToChild =
  | {
      type: 'init';
      /** Secrets (vhid passwords) removed: plugins never see them. */
      model: CarpModel;
      states: VhidState[];
      os?: OsName;
      builtinPluginDir?: string;
      builtinTemplateDir?: string;
      options: ChildHostOptions;
    }
  | { type: 'transition'; ev: TransitionEvent; states: VhidState[] }
  | { type: 'vip-settled'; seq: number; key: string }
  /** Liveness: the child answers `pong` with the same n as soon as its event loop is free. */
  | { type: 'ping'; n: number }
  | { type: 'stop' };

/** A plugin load problem, as PluginLoadError carries it. */
export interface LoadProblem {
  code: string;
  plugin: string;
  message: string;
}

/** Child → parent. */
export type FromChild =
  /** `gated`: the vhid keys whose transitions may run pre-phase hooks (the others need no gate). */
  | { type: 'ready'; plugins: string[]; gated: string[] }
  | { type: 'load-failed'; errors: LoadProblem[] }
  | { type: 'setup-done' }
  | { type: 'pre-phase-done'; seq: number }
  | { type: 'demote'; group: string; by: string; count: number }
  | { type: 'hook'; record: HookRecord }
  | { type: 'log'; level: number; message: string }
  | { type: 'pong'; n: number }
  | { type: 'stopped' };

const STATES: readonly string[] = ['INIT', 'BACKUP', 'MASTER'];
const RESULTS: readonly string[] = ['ok', 'error', 'timeout'];
/** Longest string field accepted from the child (log lines, error messages). */
export const MAX_TEXT = 8192;
const MAX_LIST = 10_000;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown, max = MAX_TEXT): v is string => typeof v === 'string' && v.length <= max;
const int = (v: unknown, min: number, max: number): v is number => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const isState = (v: unknown): v is CarpState => typeof v === 'string' && STATES.includes(v);
const SEQ_MAX = Number.MAX_SAFE_INTEGER;

function vhidStates(v: unknown): VhidState[] | undefined {
  if (!Array.isArray(v) || v.length > MAX_LIST) return undefined;
  const out: VhidState[] = [];
  for (const s of v) {
    if (!isObj(s) || !str(s.key, 256) || !isState(s.state)) return undefined;
    out.push({ key: s.key, state: s.state });
  }
  return out;
}

function transition(v: unknown): TransitionEvent | undefined {
  if (!isObj(v)) return undefined;
  const { seq, time, vhid, key, from, to, reason } = v;
  if (
    !int(seq, 0, SEQ_MAX) ||
    !str(time, 64) ||
    !int(vhid, 0, 255) ||
    !str(v.interface, 256) ||
    !str(key, 256) ||
    !isState(from) ||
    !isState(to) ||
    !str(reason)
  )
    return undefined;
  return { seq, time, vhid, interface: v.interface, key, from, to, reason };
}

function options(v: unknown): ChildHostOptions | undefined {
  if (!isObj(v)) return undefined;
  const out: ChildHostOptions = {};
  for (const k of ['bootDemotion', 'setupRetryMs', 'retryDelayMs', 'vipWaitMs', 'logSize'] as const) {
    if (v[k] === undefined) continue;
    if (!int(v[k], 0, 2 ** 31)) return undefined;
    out[k] = v[k];
  }
  return out;
}

const strList = (v: unknown, max = MAX_LIST): v is string[] => Array.isArray(v) && v.length <= max && v.every((x) => str(x, 4096));

/** The fields of the model the plugin host reads, checked (the rest is passed through). */
function modelOk(m: unknown): m is CarpModel {
  if (!isObj(m) || !isObj(m.global) || !int(m.global.log, 0, 7) || !Array.isArray(m.vhids) || m.vhids.length > MAX_LIST) return false;
  for (const k of ['pluginDir', 'templateDir'] as const) if (m.global[k] !== undefined && !str(m.global[k], 4096)) return false;
  for (const v of m.vhids) {
    if (
      !isObj(v) ||
      !str(v.key, 256) ||
      !int(v.vhid, 1, 255) ||
      !str(v.interface, 256) ||
      !strList(v.addresses) ||
      !int(v.advbase, 0, 255) ||
      !int(v.advskew, 0, 255)
    )
      return false;
    if ((v.name !== undefined && !str(v.name, 256)) || (v.groups !== undefined && !strList(v.groups))) return false;
  }
  if (m.plugins !== undefined) {
    if (!Array.isArray(m.plugins) || m.plugins.length > MAX_LIST) return false;
    for (const p of m.plugins) if (!isObj(p) || !str(p.name, 256) || !isObj(p.follow) || !isObj(p.options) || !str(p.source, 4096)) return false;
  }
  return m.groups === undefined || Array.isArray(m.groups);
}

/** The parent's message, checked; undefined when it does not fit. */
export function parseToChild(raw: unknown): ToChild | undefined {
  if (!isObj(raw)) return undefined;
  switch (raw.type) {
    case 'init': {
      const m = raw.model;
      const states = vhidStates(raw.states);
      const opts = options(raw.options);
      if (!modelOk(m) || !states || !opts) return undefined;
      for (const k of ['os', 'builtinPluginDir', 'builtinTemplateDir'] as const) if (raw[k] !== undefined && !str(raw[k], 4096)) return undefined;
      return {
        type: 'init',
        model: m,
        states,
        options: opts,
        ...(raw.os !== undefined ? { os: raw.os as OsName } : {}),
        ...(raw.builtinPluginDir !== undefined ? { builtinPluginDir: raw.builtinPluginDir as string } : {}),
        ...(raw.builtinTemplateDir !== undefined ? { builtinTemplateDir: raw.builtinTemplateDir as string } : {}),
      };
    }
    case 'transition': {
      const ev = transition(raw.ev);
      const states = vhidStates(raw.states);
      return ev && states ? { type: 'transition', ev, states } : undefined;
    }
    case 'vip-settled':
      return int(raw.seq, 0, SEQ_MAX) && str(raw.key, 256) ? { type: 'vip-settled', seq: raw.seq, key: raw.key } : undefined;
    case 'ping':
      return int(raw.n, 0, SEQ_MAX) ? { type: 'ping', n: raw.n } : undefined;
    case 'stop':
      return { type: 'stop' };
    default:
      return undefined;
  }
}

function hookRecord(v: unknown): HookRecord | undefined {
  if (!isObj(v)) return undefined;
  const { seq, plugin, hook, key, scope, attempt, startedAt, durationMs, result, error } = v;
  if (!int(seq, 0, SEQ_MAX) || !str(plugin, 256) || !(typeof hook === 'string' && (HOOK_NAMES as readonly string[]).includes(hook))) return undefined;
  if (!str(key, 256) || !str(scope, 512) || !int(attempt, 1, 1_000_000) || !str(startedAt, 64)) return undefined;
  if (typeof durationMs !== 'number' || !Number.isFinite(durationMs) || durationMs < 0 || typeof result !== 'string' || !RESULTS.includes(result))
    return undefined;
  const rec: HookRecord = { seq, plugin, hook: hook as HookName, key, scope, attempt, startedAt, durationMs, result: result as HookRecord['result'] };
  if (error !== undefined) {
    if (!isObj(error) || !str(error.code, 128) || !str(error.message) || (error.causeCode !== undefined && !str(error.causeCode, 128))) return undefined;
    rec.error = { code: error.code, message: error.message, ...(error.causeCode !== undefined ? { causeCode: error.causeCode as string } : {}) };
  }
  return rec;
}

/** The child's message, checked; undefined when it does not fit. */
export function parseFromChild(raw: unknown): FromChild | undefined {
  if (!isObj(raw)) return undefined;
  switch (raw.type) {
    case 'ready': {
      const list = (v: unknown): v is string[] => Array.isArray(v) && v.length <= MAX_LIST && v.every((p) => str(p, 256));
      return list(raw.plugins) && list(raw.gated) ? { type: 'ready', plugins: raw.plugins, gated: raw.gated } : undefined;
    }
    case 'load-failed': {
      if (!Array.isArray(raw.errors) || raw.errors.length > MAX_LIST) return undefined;
      const errors: LoadProblem[] = [];
      for (const e of raw.errors) {
        if (!isObj(e) || !str(e.code, 128) || !str(e.plugin, 256) || !str(e.message)) return undefined;
        errors.push({ code: e.code, plugin: e.plugin, message: e.message });
      }
      return { type: 'load-failed', errors };
    }
    case 'setup-done':
      return { type: 'setup-done' };
    case 'stopped':
      return { type: 'stopped' };
    case 'pong':
      return int(raw.n, 0, SEQ_MAX) ? { type: 'pong', n: raw.n } : undefined;
    case 'pre-phase-done':
      return int(raw.seq, 0, SEQ_MAX) ? { type: 'pre-phase-done', seq: raw.seq } : undefined;
    case 'demote':
      return str(raw.group, 64) && raw.group !== '' && str(raw.by, 300) && int(raw.count, 0, 255)
        ? { type: 'demote', group: raw.group, by: raw.by, count: raw.count }
        : undefined;
    case 'hook': {
      const record = hookRecord(raw.record);
      return record ? { type: 'hook', record } : undefined;
    }
    case 'log':
      return int(raw.level, 0, 7) && typeof raw.message === 'string' ? { type: 'log', level: raw.level, message: raw.message.slice(0, MAX_TEXT) } : undefined;
    default:
      return undefined;
  }
}
