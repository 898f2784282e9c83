#!/usr/bin/env node
/** `carpctl`: see and steer a running carpd over its control socket (DESIGN.md "User-facing contract"). */
import { realPath } from '../adapters/files.js';
import { pathToFileURL } from 'node:url';
import { DEFAULT_CONTROL_PATH, ControlCode, ControlError, type ControlRequest } from '../daemon/control-protocol.js';
import { followEvents, request } from '../daemon/control-client.js';
import { formatEvent, formatStats, formatStatus, type StatsData, type StatusData } from '../daemon/reports.js';
import type { DaemonEvent } from '../daemon/event-log.js';
import type { MaintenanceIntent } from '../ports/intent-store.js';
import type { VhidStatus } from '../ports/state-source.js';

export const USAGE = `usage: carpctl [-s SOCKET] <command>

  status [--json]                 every vhid in ifconfig's words, with diagnosis, demotion,
                                  maintenance and the last transition
  stats [--json | --prometheus]   counters in netstat -s -p carp's words, per vhid, per peer
  demote [GROUP] +N | -N | reset  add to or take from the admin's demotion of GROUP (default carp)
                                  (-g GROUP, as ifconfig -g GROUP carpdemote, names it too)
  state VHID@IF MASTER | BACKUP   force a vhid's state
  maintenance [on | off]          step this node back (persistent), or show the setting
  events [--follow] [--json] [-n N]
                                  transitions, hook runs and admin actions, newest last

  -s SOCKET   the daemon's control socket (default ${DEFAULT_CONTROL_PATH})

exit status: 0 done, 1 refused or failed, 2 usage, 3 carpd not reachable`;

export interface CtlIo {
  out(line: string): void;
  err(line: string): void;
}

/** Thrown for a bad command line. */
export class CtlUsageError extends Error {
  readonly code = 'CARPD_ERR_USAGE';
}

interface Parsed {
  socket: string;
  cmd: string;
  args: string[];
  flags: Set<string>;
  count?: number;
}

const FLAGS: Record<string, string[]> = {
  status: ['--json'],
  stats: ['--json', '--prometheus'],
  events: ['--follow', '-f', '--json'],
  demote: [],
  state: [],
  maintenance: ['--json'],
};

/** Split the command line: `-s` anywhere before the command, then the command's own words. */
export function parseCtlArgs(argv: readonly string[]): Parsed {
  let socket = process.env.CARPCTL_SOCKET ?? DEFAULT_CONTROL_PATH;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-s' || a === '--socket') {
      const v = argv[++i];
      if (v === undefined) throw new CtlUsageError(`${a} needs a path`);
      socket = v;
    } else if (a.startsWith('--socket=')) socket = a.slice('--socket='.length);
    else if (a === '-h' || a === '--help') return { socket, cmd: 'help', args: [], flags: new Set() };
    else if (a.startsWith('-')) throw new CtlUsageError(`unknown option ${a}`);
    else break;
  }
  const cmd = argv[i];
  if (cmd === undefined) throw new CtlUsageError('a command is needed');
  if (!(cmd in FLAGS) && cmd !== 'help') throw new CtlUsageError(`unknown command "${cmd}"`);
  const args: string[] = [];
  const flags = new Set<string>();
  let count: number | undefined;
  let group: string | undefined;
  const rest = argv.slice(i + 1);
  for (let j = 0; j < rest.length; j++) {
    const a = rest[j]!;
    if (cmd === 'events' && (a === '-n' || a === '--count')) {
      const v = Number(rest[++j]);
      if (!Number.isInteger(v) || v < 0 || v > 1000) throw new CtlUsageError(`${a} needs a number in 0..1000`);
      count = v;
    } else if (a === '-s' || a === '--socket') {
      const v = rest[++j];
      if (v === undefined) throw new CtlUsageError(`${a} needs a path`);
      socket = v;
    } else if (cmd === 'demote' && (a === '-g' || a === '--group')) {
      // ifconfig's spelling, `ifconfig -g GROUP carpdemote N` (OpenBSD regress carp_1..4).
      const v = rest[++j];
      if (v === undefined || v.startsWith('-') || v.startsWith('+')) throw new CtlUsageError(`${a} needs a group name`);
      group = v;
    } else if ((FLAGS[cmd] ?? []).includes(a)) flags.add(a === '-f' ? '--follow' : a);
    // demote's -N is a value, not an option
    else if (a.startsWith('--') || (a.startsWith('-') && !(cmd === 'demote' && /^-\d+$/.test(a)))) throw new CtlUsageError(`unknown option ${a} for ${cmd}`);
    else args.push(a);
  }
  if (flags.has('--json') && flags.has('--prometheus')) throw new CtlUsageError('--json and --prometheus exclude each other');
  if (group !== undefined) args.unshift(group);
  return { socket, cmd, args, flags, ...(count !== undefined ? { count } : {}) };
}

/** The request a parsed command line sends (events are handled separately). */
export function toRequest(p: Parsed): ControlRequest {
  switch (p.cmd) {
    case 'status':
      if (p.args.length) throw new CtlUsageError('status takes no arguments');
      return { cmd: 'status' };
    case 'stats':
      if (p.args.length) throw new CtlUsageError('stats takes no arguments');
      return p.flags.has('--prometheus') ? { cmd: 'metrics' } : { cmd: 'stats' };
    case 'demote': {
      if (p.args.length < 1 || p.args.length > 2) throw new CtlUsageError('usage: carpctl demote [GROUP] +N|-N|reset');
      const amount = p.args.at(-1)!;
      const group = p.args.length === 2 ? p.args[0] : undefined;
      if (amount === 'reset') return { cmd: 'demote', ...(group ? { group } : {}), reset: true };
      const m = /^([+-])(\d{1,3})$/.exec(amount);
      if (!m || Number(m[2]) === 0 || Number(m[2]) > 255) throw new CtlUsageError(`demote: "${amount}" is not +N, -N (1..255) or reset`);
      return { cmd: 'demote', ...(group ? { group } : {}), delta: (m[1] === '-' ? -1 : 1) * Number(m[2]) };
    }
    case 'state': {
      const [key, state] = p.args;
      if (p.args.length !== 2 || !key || !/^(\d{1,3}|INSTANCE)@\S+$/.test(key)) throw new CtlUsageError('usage: carpctl state VHID@IF MASTER|BACKUP');
      const s = state!.toUpperCase();
      if (s !== 'MASTER' && s !== 'BACKUP') throw new CtlUsageError('state: MASTER or BACKUP');
      return { cmd: 'state', key, state: s };
    }
    case 'maintenance': {
      if (p.args.length === 0) return { cmd: 'maintenance' };
      if (p.args.length === 1 && (p.args[0] === 'on' || p.args[0] === 'off')) return { cmd: 'maintenance', on: p.args[0] === 'on' };
      throw new CtlUsageError('usage: carpctl maintenance [on|off]');
    }
    default:
      throw new CtlUsageError(`unknown command "${p.cmd}"`);
  }
}

function maintenanceLine(m: MaintenanceIntent & { demote?: number }): string {
  return m.on
    ? `maintenance: on since ${m.since} (${m.by})${m.until ? ` until ${m.until}` : ''}${m.demote !== undefined ? `, demote ${m.demote}` : ''}`
    : 'maintenance: off';
}

/** Run carpctl; resolves with the exit status. */
export async function carpctl(argv: readonly string[], io: CtlIo, opts: { signal?: AbortSignal } = {}): Promise<number> {
  let p: Parsed;
  try {
    p = parseCtlArgs(argv);
    if (p.cmd === 'help') {
      io.out(USAGE);
      return 0;
    }
    if (p.cmd === 'events') {
      if (p.args.length) throw new CtlUsageError('events takes no arguments');
    } else {
      toRequest(p);
    }
  } catch (err) {
    if (err instanceof CtlUsageError) {
      io.err(`carpctl: ${err.message}`);
      io.err(USAGE);
      return 2;
    }
    throw err;
  }
  try {
    if (p.cmd === 'events') return await events(p, io, opts.signal);
    const res = await request(p.socket, toRequest(p));
    if (!res.ok) {
      io.err(`carpctl: ${res.error} (${res.code})`);
      return 1;
    }
    print(p, res.data, io);
    return 0;
  } catch (err) {
    if (err instanceof ControlError && err.code === ControlCode.CONNECT) {
      io.err(`carpctl: ${err.message} (is carpd running? -s names its socket)`);
      return 3;
    }
    io.err(`carpctl: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

function print(p: Parsed, data: unknown, io: CtlIo): void {
  const json = p.flags.has('--json');
  switch (p.cmd) {
    case 'status':
      if (json) io.out(JSON.stringify(data, null, 2));
      else for (const l of formatStatus(data as StatusData)) io.out(l);
      return;
    case 'stats':
      if (p.flags.has('--prometheus')) io.out((data as { text: string }).text.replace(/\n$/, ''));
      else if (json) io.out(JSON.stringify(data, null, 2));
      else for (const l of formatStats(data as StatsData)) io.out(l);
      return;
    case 'demote': {
      const d = data as { group: string; total: number; admin: number };
      io.out(`demotion: group ${d.group} ${d.total} (admin ${d.admin})`);
      return;
    }
    case 'state': {
      const s = data as VhidStatus;
      io.out(`${s.interface}: carp: ${s.state} vhid ${s.vhid} advbase ${s.advbase} advskew ${s.advskew}`);
      return;
    }
    case 'maintenance':
      io.out(json ? JSON.stringify(data) : maintenanceLine(data as MaintenanceIntent & { demote?: number }));
      return;
  }
}

async function events(p: Parsed, io: CtlIo, signal?: AbortSignal): Promise<number> {
  const show = (e: DaemonEvent) => io.out(p.flags.has('--json') ? JSON.stringify(e) : formatEvent(e));
  if (!p.flags.has('--follow')) {
    const res = await request(p.socket, { cmd: 'events', ...(p.count !== undefined ? { limit: p.count } : {}) });
    if (!res.ok) {
      io.err(`carpctl: ${res.error} (${res.code})`);
      return 1;
    }
    for (const e of (res.data as { events: DaemonEvent[] }).events) show(e);
    return 0;
  }
  const f = followEvents(p.socket, show, p.count ?? 20);
  const stop = () => f.stop();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    await f.done;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  return 0;
}

/** Entry point when run as the `carpctl` binary. */
async function main(): Promise<void> {
  const io: CtlIo = {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
  };
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  // A closed pipe (`carpctl events --follow | head`) is the reader leaving, not an error.
  process.stdout.on('error', () => ac.abort());
  try {
    process.exitCode = await carpctl(process.argv.slice(2), io, { signal: ac.signal });
  } catch (err) {
    io.err(`carpctl: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}

/** True when this file is the program being run (directly or through the bin symlink), not an import. */
function isMain(): boolean {
  try {
    return !!process.argv[1] && pathToFileURL(realPath(process.argv[1])).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isMain()) void main();
