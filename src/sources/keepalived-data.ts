/**
 * keepalived's state dump: on SIGUSR1 the VRRP process writes /tmp/keepalived.data (TMPDIR, or
 * `state_dump_file`, changes it; open_dump_file() in keepalived/core/global_data.c), through
 * vrrp_print_data() → dump_data_vrrp() (keepalived/vrrp/vrrp_data.c). Every line is one
 * conf_write() call (lib/logger.c): the format, then `\n`.
 *
 * Read here, by section (`------< … >------`):
 *   - VRRP Topology, per dump_vrrp():
 *       ` VRRP Instance = %s`, `   State = %s` (get_state_str(): INIT BACKUP MASTER FAULT unknown),
 *       `   Interface = %s`, `   Virtual Router ID = %d`, `   Priority = %d`,
 *       `   Effective priority = %d`, `   Master router = %s`, `   Master priority = %d`,
 *       `   Sync group = %s`, `   Wantstate = %s`,
 *       `   Virtual IP (%u):` (2.2.5+; `   Virtual IP :` before, `   Virtual IP = %u` in 2.0),
 *       `   Virtual IP Excluded :`, each address as `     %s` (dump_ipaddress(): `A[/P] … dev IF …`,
 *       the prefix omitted for /32 and /128 by ipaddresstos()),
 *       `   Tracked files :` then `     %s, weight %d[ reverse]` (dump_track_file_monitor()).
 *   - VRRP Sync groups: ` VRRP Sync Group = %s, %s` (dump_sync_group()).
 *   - VRRP Track files: ` Track file = %s`, `   File = %s`, `   Status = %d`, `   Weight = %d[ reverse]`
 *     (dump_track_file() in keepalived/trackers/track_file.c).
 * Everything else (global definitions, socket pool, interfaces) is skipped.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { parseIntIn, quote, reject, splitLines, type CarpState, type Reject } from './text.js';

export type KeepalivedDumpState = 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT' | 'unknown';

export interface KeepalivedTrackRef {
  /** The track_file's name (the `track_file NAME { … }` block), not its path. */
  name: string;
  weight: number;
  reverse: boolean;
}

export interface KeepalivedInstance {
  name: string;
  state: KeepalivedDumpState;
  /** FAULT and unknown hold no VIP: INIT for a carp follower. */
  carpState: CarpState;
  interface?: string;
  vrid?: number;
  /** Configured (base) priority. */
  priority?: number;
  effectivePriority?: number;
  syncGroup?: string;
  masterRouter?: string;
  masterPriority?: number;
  /** Addresses as dump_ipaddress() prints them, normalised to CIDR (`/32`, `/128` added). */
  vips: string[];
  excludedVips: string[];
  trackFiles: KeepalivedTrackRef[];
}

export interface KeepalivedTrackFile {
  name: string;
  path?: string;
  status?: number;
  weight?: number;
  reverse?: boolean;
}

export type KeepalivedData =
  { kind: 'data'; instances: KeepalivedInstance[]; groups: { name: string; state: KeepalivedDumpState }[]; trackFiles: KeepalivedTrackFile[] } | Reject;

const SECTION = /^------< (.+) >------$/;
const FIELD = /^ {3}([A-Za-z][A-Za-z ]*?) = (.*)$/;

function dumpState(s: string): KeepalivedDumpState | undefined {
  return s === 'INIT' || s === 'BACKUP' || s === 'MASTER' || s === 'FAULT' || s === 'unknown' ? s : undefined;
}

/**
 * format_ipaddress()'s text (`198.51.100.1/24 dev eth0 scope global set`) → `198.51.100.1/24`;
 * a bare address gets its full-length prefix, which ipaddresstos() leaves out.
 */
export function ipaddressToCidr(formatted: string): string | undefined {
  const first = formatted.split(' ', 1)[0]!;
  const [addr, plen] = first.split('/', 2) as [string, string | undefined];
  const v4 = isIPv4(addr);
  if (!v4 && !isIPv6(addr)) return undefined;
  const prefix = plen === undefined ? (v4 ? 32 : 128) : parseIntIn(plen, 0, v4 ? 32 : 128, 3);
  return prefix === undefined ? undefined : `${addr}/${prefix}`;
}

/** Parses the whole dump. Never throws; text without a VRRP section is refused. */
export function parseKeepalivedData(text: string): KeepalivedData {
  const lines = splitLines(text);
  if (!Array.isArray(lines)) return lines;
  const instances: KeepalivedInstance[] = [];
  const groups: { name: string; state: KeepalivedDumpState }[] = [];
  const trackFiles: KeepalivedTrackFile[] = [];
  let section: string | undefined;
  let inst: KeepalivedInstance | undefined;
  let file: KeepalivedTrackFile | undefined;
  /** Which list the 5-space lines under the last 3-space heading belong to. */
  let list: 'vips' | 'excludedVips' | 'trackFiles' | undefined;
  let sawVrrp = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const where = `line ${i + 1}`;
    const sec = SECTION.exec(line);
    if (sec) {
      section = sec[1]!;
      inst = undefined;
      file = undefined;
      list = undefined;
      if (section.startsWith('VRRP ')) sawVrrp = true;
      continue;
    }
    if (section === 'VRRP Topology') {
      const start = /^ VRRP Instance = (\S+)$/.exec(line);
      if (start) {
        inst = { name: start[1]!, state: 'unknown', carpState: 'INIT', vips: [], excludedVips: [], trackFiles: [] };
        instances.push(inst);
        list = undefined;
        continue;
      }
      if (!inst) {
        if (line.trim() !== '') return reject(`${where}: VRRP Topology line outside an instance: ${quote(line)}`);
        continue;
      }
      if (line.startsWith('     ') && list) {
        if (list === 'trackFiles') {
          const t = /^ {5}(\S+), weight (-?\d{1,3})( reverse)?$/.exec(line);
          const weight = parseIntIn(t?.[2], -254, 254);
          if (!t || weight === undefined) return reject(`${where}: malformed tracked file ${quote(line)}`);
          inst.trackFiles.push({ name: t[1]!, weight, reverse: t[3] !== undefined });
        } else {
          const c = ipaddressToCidr(line.slice(5));
          if (c === undefined) return reject(`${where}: malformed virtual IP ${quote(line)}`);
          inst[list].push(c);
        }
        continue;
      }
      if (line.startsWith('   ') && !line.startsWith('    ')) list = undefined;
      if (/^ {3}Virtual IP(?: \(\d+\):| :| = \d+)$/.test(line)) list = 'vips';
      else if (/^ {3}Virtual IP Excluded(?: :| = \d+)$/.test(line)) list = 'excludedVips';
      else if (line === '   Tracked files :') list = 'trackFiles';
      const f = FIELD.exec(line);
      if (!f) continue;
      const [key, value] = [f[1]!, f[2]!];
      switch (key) {
        case 'State': {
          const s = dumpState(value);
          if (!s) return reject(`${where}: unknown state ${quote(value)}`);
          inst.state = s;
          inst.carpState = s === 'MASTER' ? 'MASTER' : s === 'BACKUP' ? 'BACKUP' : 'INIT';
          break;
        }
        case 'Interface':
          inst.interface = value;
          break;
        case 'Sync group':
          inst.syncGroup = value;
          break;
        case 'Master router':
          inst.masterRouter = value;
          break;
        case 'Virtual Router ID':
        case 'Priority':
        case 'Effective priority':
        case 'Master priority': {
          const n = parseIntIn(value, 0, 255);
          if (n === undefined) return reject(`${where}: ${key} is not 0..255: ${quote(value)}`);
          if (key === 'Virtual Router ID') inst.vrid = n;
          else if (key === 'Priority') inst.priority = n;
          else if (key === 'Effective priority') inst.effectivePriority = n;
          else inst.masterPriority = n;
          break;
        }
      }
      continue;
    }
    if (section === 'VRRP Sync groups') {
      const g = /^ VRRP Sync Group = (\S+), (\S+)$/.exec(line);
      if (g) {
        const s = dumpState(g[2]!);
        if (!s) return reject(`${where}: unknown state ${quote(g[2]!)}`);
        groups.push({ name: g[1]!, state: s });
      }
      continue;
    }
    if (section === 'VRRP Track files') {
      const t = /^ Track file = (\S+)$/.exec(line);
      if (t) {
        file = { name: t[1]! };
        trackFiles.push(file);
        continue;
      }
      const f = file ? FIELD.exec(line) : null;
      if (!file || !f) continue;
      if (f[1] === 'File') file.path = f[2]!;
      else if (f[1] === 'Status') {
        const n = parseIntIn(f[2], -(2 ** 31), 2 ** 31);
        if (n === undefined) return reject(`${where}: malformed status ${quote(f[2]!)}`);
        file.status = n;
      } else if (f[1] === 'Weight') {
        const w = /^(-?\d{1,3})( reverse)?$/.exec(f[2]!);
        const n = parseIntIn(w?.[1], -254, 254);
        if (!w || n === undefined) return reject(`${where}: malformed weight ${quote(f[2]!)}`);
        file.weight = n;
        file.reverse = w[2] !== undefined;
      }
    }
  }
  if (!sawVrrp) return reject('no VRRP section: not a keepalived.data dump');
  return { kind: 'data', instances, groups, trackFiles };
}
