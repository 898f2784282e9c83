/**
 * The sections of carpd.conf and their keys, as a table: each key names its value parser and, when
 * the section builder copies it as is, the model field it sets. Adding a plain key is one row.
 * `readSection` applies a section's rows: unknown, repeated, missing and bad values are reported
 * here, so the builders in carpd-ini.ts only join fields and check rules across keys.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { Code, error, type Diagnostic, type SourceRef } from './errors.js';
import type { FailurePolicy } from './model.js';
import { parseBool, parseDuration, parseUint } from './values.js';

/** A value as parsed, or why not: `expected` reads "KEY must be EXPECTED, not "VALUE"", `message` stands alone. */
export type Parsed<T = unknown> = { ok: true; value: T } | { ok: false; expected: string } | { ok: false; message: string };

export interface ParserContext {
  /** Whether the cron library that will run it accepts the expression. */
  validCron(expression: string): boolean;
}

export type ValueParser<T = unknown> = (raw: string, key: string, cx: ParserContext) => Parsed<T>;

export interface KeyRow {
  key: string;
  parse: ValueParser;
  /** The model field the builder copies the value to; without it the builder reads the key itself. */
  field?: string;
  /** Reported at the section header when absent. */
  required?: true;
  /** Added to the "has no" message, e.g. what the value may be. */
  hint?: string;
  /** May be given more than once; the builder gets every entry. */
  repeated?: true;
}

export interface SectionSchema {
  /** Which section headers it reads: an exact name, or a prefix ending in "." followed by a name. */
  name: string;
  keys: readonly KeyRow[];
  /** Keys outside the table are handed to the builder (plugin options) instead of reported. */
  openKeys?: true;
}

// --- value parsers ---

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });

const raw: ValueParser<string> = (v) => ok(v);
const text: ValueParser<string> = (v, key) => (v === '' ? { ok: false, message: `${key} needs a value` } : ok(v));
const path: ValueParser<string> = (v) => (v === '' ? { ok: false, expected: 'a path' } : ok(v));
const bool: ValueParser<boolean> = (v) => {
  const b = parseBool(v);
  return b === undefined ? { ok: false, expected: 'yes or no' } : ok(b);
};
const number: ValueParser<number> = (v) => {
  const n = parseUint(v);
  return n === undefined ? { ok: false, expected: 'a number' } : ok(n);
};
function intIn(min: number, max: number): ValueParser<number> {
  return (v) => {
    const n = parseUint(v);
    return n === undefined || n < min || n > max ? { ok: false, expected: `${min}..${max}` } : ok(n);
  };
}
export function oneOf<T extends string>(...words: T[]): ValueParser<T> {
  return (v) => ((words as string[]).includes(v) ? ok(v as T) : { ok: false, expected: words.join(' or ') });
}
/** A duration in ms; a bare number is in `bare` units. */
function duration(bare: 'ms' | 's', opts: { above0?: true } = {}): ValueParser<number> {
  const units = `500ms, 10s, 5m, 2h; a bare number is in ${bare === 'ms' ? 'milliseconds' : 'seconds'}`;
  return (v) => {
    const ms = parseDuration(v, bare);
    if (ms === undefined || (opts.above0 && ms === 0)) return { ok: false, expected: `a duration${opts.above0 ? ' above 0' : ''} (${units})` };
    return ok(ms);
  };
}
const cron: ValueParser<string> = (v, _key, cx) =>
  cx.validCron(v) ? ok(v) : { ok: false, expected: 'a cron expression ("m h dom mon dow", optionally with seconds first)' };

export const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,14}$/;
const groupName: ValueParser<string> = (v) => (GROUP_NAME.test(v) ? ok(v) : { ok: false, expected: 'a group name' });

/** `9112`, `127.0.0.1:9112`, `[::1]:9112` or `host:9112`, port 1..65535. */
const listenAddress: ValueParser<string> = (v) => {
  const m = /^(?:(\[[^\]]+\]|[^:[\]]+):)?(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : 0;
  const host = m?.[1];
  const good =
    m !== null &&
    port >= 1 &&
    port <= 65535 &&
    (host === undefined || (host.startsWith('[') ? isIPv6(host.slice(1, -1)) : isIPv4(host) || /^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(host)));
  return good ? ok(v) : { ok: false, expected: 'PORT, ADDRESS:PORT or [IPV6]:PORT' };
};

/** `ignore`, `retry N` (1..10) or `demote N` (1..255). */
const failurePolicy: ValueParser<FailurePolicy> = (v) => {
  const w = v.trim().split(/\s+/);
  const n = w.length === 2 ? parseUint(w[1]!) : undefined;
  if (w.length === 1 && w[0] === 'ignore') return ok({ kind: 'ignore' });
  if (n !== undefined && w[0] === 'retry' && n >= 1 && n <= 10) return ok({ kind: 'retry', times: n });
  if (n !== undefined && w[0] === 'demote' && n >= 1 && n <= 255) return ok({ kind: 'demote', by: n });
  return { ok: false, expected: 'ignore, retry N (1..10) or demote N (1..255)' };
};

function map<A, B>(p: ValueParser<A>, f: (a: A) => Parsed<B>): ValueParser<B> {
  return (v, key, cx) => {
    const r = p(v, key, cx);
    return r.ok ? f(r.value) : r;
  };
}

/**
 * A VRRPv3 advertisement interval: a duration (`1s`, `500ms`; a bare number is seconds, as
 * keepalived's advert_int), stored in centiseconds, the unit of the 12-bit Max Adver Int field
 * (FreeBSD's vrrpinterval): 10ms..40.95s in whole centiseconds.
 */
const vrrpInterval: ValueParser<number> = (v) => {
  const ms = parseDuration(v, 's');
  const expected = 'a duration of 10ms..40.95s in steps of 10ms (a bare number is in seconds)';
  if (ms === undefined || ms % 10 !== 0 || ms < 10 || ms > 40_950) return { ok: false, expected };
  return ok(ms / 10);
};

// --- the sections ---

export const CARPD_SECTION: SectionSchema = {
  name: 'carpd',
  keys: [
    { key: 'allow', field: 'allow', parse: bool },
    { key: 'preempt', field: 'preempt', parse: bool },
    { key: 'log', field: 'log', parse: intIn(0, 7) },
    { key: 'control', field: 'control', parse: path },
    { key: 'master_down', field: 'masterDown', parse: oneOf('freebsd', 'openbsd') },
    { key: 'replay_protection', field: 'replayProtection', parse: oneOf('strict', 'once', 'off') },
    { key: 'ifdown_demotion', field: 'ifdownDemotion', parse: intIn(0, 255) },
    { key: 'senderr_demotion', field: 'senderrDemotion', parse: intIn(0, 255) },
    { key: 'demotion', field: 'demotion', parse: intIn(0, 255) },
    { key: 'state_dir', field: 'stateDir', parse: path },
    { key: 'run_dir', field: 'runDir', parse: path },
    { key: 'metrics', field: 'metrics', parse: listenAddress },
    { key: 'garp_refresh', field: 'garpRefresh', parse: map(duration('s'), (ms) => ok(ms / 1000)) },
    { key: 'pre_phase_budget', field: 'prePhaseBudgetMs', parse: duration('ms') },
    { key: 'plugin_dir', field: 'pluginDir', parse: path },
    { key: 'template_dir', field: 'templateDir', parse: path },
    { key: 'engine', field: 'engine', parse: oneOf('carpd', 'kernel', 'keepalived') },
    { key: 'devd_socket', field: 'devdSocket', parse: path },
    { key: 'kernel_os', field: 'kernelOs', parse: oneOf('freebsd', 'openbsd') },
    { key: 'keepalived_fifo', field: 'keepalivedFifo', parse: path },
    { key: 'keepalived_pidfile', field: 'keepalivedPidfile', parse: path },
    { key: 'keepalived_track_file', field: 'keepalivedTrackFile', parse: path },
    { key: 'keepalived_dump_dir', field: 'keepalivedDumpDir', parse: path },
    { key: 'flood_guard', field: 'floodGuard', parse: oneOf('nft', 'off') },
    { key: 'hook_timeout', field: 'hookTimeoutMs', parse: map(duration('s'), (ms) => (ms === 0 ? { ok: false, expected: 'more than 0' } : ok(ms))) },
  ],
};

/** In the order their values are checked (and reported). */
export const VHID_SECTION: SectionSchema = {
  name: 'vhid.',
  keys: [
    { key: 'vhid', field: 'vhid', parse: number, required: true },
    { key: 'interface', field: 'interface', parse: text, required: true },
    { key: 'advbase', field: 'advbase', parse: number },
    { key: 'advskew', field: 'advskew', parse: number },
    { key: 'deadratio', field: 'deadRatio', parse: map(number, (n) => (n === 0 ? { ok: false, message: "deadratio can't be zero" } : ok(n))) },
    { key: 'address', parse: raw, repeated: true },
    { key: 'group', parse: raw, repeated: true },
    { key: 'pass', parse: raw },
    { key: 'passfile', parse: raw },
    { key: 'peer', field: 'peer', parse: text },
    { key: 'peer6', field: 'peer6', parse: text },
    { key: 'unicast', field: 'unicast', parse: oneOf('freebsd', 'openbsd') },
    { key: 'srcip', field: 'srcip', parse: text },
    { key: 'upscript', field: 'upscript', parse: text },
    { key: 'downscript', field: 'downscript', parse: text },
    { key: 'xparam', field: 'xparam', parse: text },
    // A private-mode macvlan with MAC 00:00:5e:00:01:VHID for the VIPs and adverts (src/adapters/vmac.ts).
    { key: 'vmac', field: 'vmac', parse: bool },
    // VRRPv3 (RFC 5798): the protocol, and with version = 3 its priority and interval.
    { key: 'version', field: 'version', parse: intIn(2, 3) },
    { key: 'priority', field: 'priority', parse: intIn(1, 255) },
    { key: 'interval', field: 'intervalCs', parse: vrrpInterval },
  ],
};

/** Keys of its own; any other key is an option for the plugin. */
export const PLUGIN_SECTION: SectionSchema = {
  name: 'plugin.',
  openKeys: true,
  keys: [
    { key: 'follow', parse: raw, required: true, hint: 'a vhid, group:NAME or node' },
    { key: 'on_failure', field: 'onFailure', parse: failurePolicy },
    { key: 'timeout', field: 'timeoutMs', parse: duration('s', { above0: true }) },
  ],
};

export const HEALTH_SECTION: SectionSchema = {
  name: 'health.',
  keys: [
    { key: 'command', parse: raw, required: true },
    { key: 'interval', parse: duration('s', { above0: true }) },
    { key: 'schedule', field: 'schedule', parse: cron },
    { key: 'timeout', field: 'timeoutMs', parse: duration('s', { above0: true }) },
    { key: 'rise', field: 'rise', parse: intIn(1, 100) },
    { key: 'fall', field: 'fall', parse: intIn(1, 100) },
    { key: 'demote', field: 'demote', parse: intIn(1, 255) },
    { key: 'group', field: 'group', parse: groupName },
  ],
};

export const MAINTENANCE_SECTION: SectionSchema = {
  name: 'maintenance',
  keys: [
    { key: 'enter', field: 'enter', parse: cron },
    { key: 'leave', field: 'leave', parse: cron },
    { key: 'duration', field: 'durationMs', parse: duration('s', { above0: true }) },
    { key: 'demote', field: 'demote', parse: intIn(1, 255) },
  ],
};

export const GROUP_SECTION: SectionSchema = {
  name: 'group.',
  keys: [
    { key: 'vhid', parse: raw, repeated: true },
    { key: 'demote', field: 'demote', parse: intIn(0, 255) },
  ],
};

/** Every section carpd.conf knows besides `[carpd]` and `[vhid.NAME]`; their text is also kept in `extra`. */
export const RESERVED_SECTIONS = [PLUGIN_SECTION, HEALTH_SECTION, MAINTENANCE_SECTION, GROUP_SECTION];

/** Whether `name` is a header `schema` reads; a prefix needs a name after it. */
export function matches(schema: SectionSchema, name: string): boolean {
  return schema.name.endsWith('.') ? name.startsWith(schema.name) && name.length > schema.name.length : name === schema.name;
}

// --- reading a section ---

export interface Located {
  key: string;
  value: string;
  where: SourceRef;
}

export interface SectionValues {
  /** Parsed values of single keys (absent when not given or bad). */
  values: Map<string, unknown>;
  /** Each single key given, also when its value was bad. */
  given: Map<string, Located>;
  /** Every entry of a repeated key, in file order. */
  repeated: Map<string, Located[]>;
  /** Keys outside the table, in file order (open sections only). */
  rest: Located[];
}

/**
 * Applies `schema` to a section's entries: first unknown and repeated keys in file order, then
 * each row's value (or its absence) in table order. `label` is the header as written, `[vhid.lan]`.
 */
export function readSection(
  schema: SectionSchema,
  label: string,
  header: SourceRef,
  entries: readonly Located[],
  diagnostics: Diagnostic[],
  cx: ParserContext,
): SectionValues {
  const out: SectionValues = { values: new Map(), given: new Map(), repeated: new Map(), rest: [] };
  for (const e of entries) {
    const row = schema.keys.find((r) => r.key === e.key);
    if (row === undefined) {
      if (schema.openKeys) out.rest.push(e);
      else diagnostics.push(error(e.where, Code.CONFIG_KEY, `unknown key "${e.key}" in ${label}`));
    } else if (row.repeated) {
      out.repeated.set(e.key, [...(out.repeated.get(e.key) ?? []), e]);
    } else {
      const first = out.given.get(e.key);
      if (first !== undefined) diagnostics.push(error(e.where, Code.CONFIG_DUPLICATE, `"${e.key}" already set at line ${first.where.line}`));
      else out.given.set(e.key, e);
    }
  }
  for (const row of schema.keys) {
    if (row.repeated) continue;
    const e = out.given.get(row.key);
    if (e === undefined) {
      if (row.required) diagnostics.push(error(header, Code.CONFIG_MISSING, `${label} has no "${row.key}"${row.hint ? ` (${row.hint})` : ''}`));
      continue;
    }
    const r = row.parse(e.value, e.key, cx);
    if (r.ok) out.values.set(row.key, r.value);
    else diagnostics.push(error(e.where, Code.CONFIG_VALUE, 'expected' in r ? `${e.key} must be ${r.expected}, not "${e.value}"` : r.message));
  }
  return out;
}

/** Copies every parsed value whose row names a field onto `target`, with its source in `sources`. */
export function copyFields(schema: SectionSchema, read: SectionValues, target: Record<string, unknown>, sources?: Record<string, SourceRef>): void {
  for (const row of schema.keys) {
    if (row.field === undefined || !read.values.has(row.key)) continue;
    target[row.field] = read.values.get(row.key);
    if (sources) sources[row.field] = read.given.get(row.key)!.where;
  }
}
