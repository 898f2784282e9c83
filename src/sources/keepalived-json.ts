/**
 * keepalived's JSON state dump, the machine-readable alternative to keepalived.data when keepalived
 * is built with --enable-json: on SIGJSON (SIGRTMIN+2; `keepalived --signum=JSON` prints it) the VRRP
 * process writes `<tmp_dir>/keepalived.json` (or `json_dump_file`) through vrrp_print_json() in
 * keepalived/vrrp/vrrp_json.c — into a temporary file renamed into place, so a reader never sees
 * half of it (keepalived.data, by contrast, is written in place).
 *
 * vrrp_json_dump(): with `json_version 1` (the default) an array, with 2 `{"vrrp": [...]}`; each
 * element is `{"data": {...}, "stats": {...}}`. vrrp_json_data_dump() writes, among others,
 * `iname`, `ifp_ifname`, `vrid`, `base_priority`, `effective_priority`, `master_priority`,
 * `state` and `wantstate` as numbers (VRRP_STATE_INIT 0, BACK 1, MAST 2, FAULT 3 in
 * keepalived/include/vrrp.h), `version`, and `vips` / `evips` as arrays of format_ipaddress() strings.
 */
import { ipaddressToCidr, type KeepalivedDumpState, type KeepalivedInstance } from './keepalived-data.js';
import { MAX_TEXT, quote, reject, type Reject } from './text.js';

/** What the JSON dump says of an instance: the data dump's fields but for sync group, master and track files. */
export type KeepalivedJsonInstance = Omit<KeepalivedInstance, 'syncGroup' | 'masterRouter' | 'trackFiles'>;

export type KeepalivedJson = { kind: 'json'; instances: KeepalivedJsonInstance[] } | Reject;

const STATES: KeepalivedDumpState[] = ['INIT', 'BACKUP', 'MASTER', 'FAULT'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function uint8(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255 ? v : undefined;
}

function cidrs(v: unknown, what: string): string[] | Reject {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 10_000) return reject(`${what} is not a list`);
  const out: string[] = [];
  for (const a of v) {
    const c = typeof a === 'string' ? ipaddressToCidr(a) : undefined;
    if (c === undefined) return reject(`${what}: not an address: ${quote(String(a))}`);
    out.push(c);
  }
  return out;
}

/** Parses the whole file. Never throws: bad JSON and unexpected shapes are refused. */
export function parseKeepalivedJson(text: string): KeepalivedJson {
  if (typeof text !== 'string') return reject('not a string');
  if (text.length > MAX_TEXT) return reject(`longer than ${MAX_TEXT} characters`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return reject(`not JSON: ${(e as Error).message}`);
  }
  const list = Array.isArray(doc) ? doc : isObject(doc) && Array.isArray(doc.vrrp) ? (doc.vrrp as unknown[]) : undefined;
  if (!list) return reject('neither a list (json_version 1) nor {"vrrp": [...]} (json_version 2)');
  const instances: KeepalivedJsonInstance[] = [];
  for (const [i, el] of list.entries()) {
    const d = isObject(el) ? el.data : undefined;
    if (!isObject(d) || typeof d.iname !== 'string' || d.iname === '') return reject(`instance ${i}: no data.iname`);
    const n = typeof d.state === 'number' ? d.state : -1;
    const state: KeepalivedDumpState = STATES[n] ?? 'unknown';
    const vips = cidrs(d.vips, `${d.iname}: vips`);
    const excludedVips = cidrs(d.evips, `${d.iname}: evips`);
    if (!Array.isArray(vips)) return vips;
    if (!Array.isArray(excludedVips)) return excludedVips;
    const inst: KeepalivedJsonInstance = {
      name: d.iname,
      state,
      carpState: state === 'MASTER' ? 'MASTER' : state === 'BACKUP' ? 'BACKUP' : 'INIT',
      vips,
      excludedVips,
    };
    if (typeof d.ifp_ifname === 'string') inst.interface = d.ifp_ifname;
    const fields: [keyof KeepalivedJsonInstance, unknown][] = [
      ['vrid', d.vrid],
      ['priority', d.base_priority],
      ['effectivePriority', d.effective_priority],
      ['masterPriority', d.master_priority],
    ];
    for (const [key, raw] of fields) {
      if (raw === undefined) continue;
      const v = uint8(raw);
      if (v === undefined) return reject(`${d.iname}: ${key} is not 0..255`);
      (inst as unknown as Record<string, number>)[key] = v;
    }
    instances.push(inst);
  }
  return { kind: 'json', instances };
}
