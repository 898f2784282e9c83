/**
 * The simulated kernel's command-line tools: `node cli.js ifconfig|sysctl|route ARGS…`, run through
 * the sh wrappers in bin/. Environment:
 *   FAKE_KERNEL_STATE     the JSON state file (state.ts), required
 *   FAKE_KERNEL_OS        freebsd | openbsd (default freebsd)
 *   FAKE_KERNEL_ARGV_LOG  file to which every call appends `["tool", …args]` as one JSON line
 *   FAKE_KERNEL_POLL_MS   route monitor's poll interval (default 20)
 *   FAKE_KERNEL_MONITOR_MS  how long route monitor runs at most (default 120000)
 * Messages and exit codes follow the real tools where the recorded sources say them; the fake
 * changes only the state file and prints — it never touches the host's network.
 */
import { appendFileSync } from 'node:fs';
import { CARP_DEMOTION_OID } from '../../../src/sources/freebsd-sysctl.js';
import { carpStateOf } from '../../../src/sources/text.js';
import { freebsdIfconfig, openbsdIfconfig, openbsdIfIndex, routeIfinfo } from './format.js';
import { applyState, readState, updateState, type FakeOs } from './state.js';

interface Io {
  out(s: string): void;
  err(s: string): void;
}

/** FreeBSD's other carp sysctls, fixed: only the demotion counter moves. */
const FREEBSD_CARP_SYSCTLS: Record<string, number> = {
  'net.inet.carp.allow': 1,
  'net.inet.carp.preempt': 0,
  'net.inet.carp.dscp': 56,
  'net.inet.carp.log': 1,
  'net.inet.carp.ifdown_demotion_factor': 240,
  'net.inet.carp.senderr_demotion_factor': 240,
};

function ifconfigFreebsd(statePath: string, args: string[], io: Io): number {
  if (args.length === 0 || (args.length === 1 && args[0] === '-a')) {
    io.out(freebsdIfconfig(readState(statePath)));
    return 0;
  }
  const [ifname, ...rest] = args as [string, ...string[]];
  const st = readState(statePath);
  if (!st.vhids.some((v) => v.ifname === ifname) && ifname !== 'lo0') {
    io.err(`ifconfig: interface ${ifname} does not exist\n`);
    return 1;
  }
  if (rest.length === 0) {
    io.out(freebsdIfconfig(st, ifname));
    return 0;
  }
  // `IF vhid N [state S] [advskew K] [advbase B]`: carp.c setcarp_vhid() then setcarp_callback().
  if (rest[0] !== 'vhid' || rest.length % 2 !== 0) {
    io.err(`ifconfig: fake: unsupported arguments: ${rest.join(' ')}\n`);
    return 1;
  }
  const vhid = Number(rest[1]);
  if (!Number.isInteger(vhid) || vhid <= 0 || vhid > 255) {
    io.err('ifconfig: vhid must be greater than 0 and less than 255\n');
    return 1;
  }
  const opts = new Map<string, string>();
  for (let i = 2; i < rest.length; i += 2) opts.set(rest[i]!, rest[i + 1]!);
  const want = opts.get('state');
  const state = want === undefined ? undefined : carpStateOf(want.toUpperCase());
  if (want !== undefined && !state) {
    io.err('ifconfig: unknown state\n');
    return 1;
  }
  return updateState(statePath, (s) => {
    const v = s.vhids.find((x) => x.ifname === ifname && x.vhid === vhid);
    if (!v) {
      io.err('ifconfig: SIOCSVH: No such file or directory\n');
      return 1;
    }
    if (opts.has('advskew')) v.advskew = Number(opts.get('advskew'));
    if (opts.has('advbase')) v.advbase = Number(opts.get('advbase'));
    // carp_ioctl_set() honours BACKUP and MASTER, ignores a requested INIT, and leaves an INIT vhid alone.
    if ((state === 'MASTER' || state === 'BACKUP') && v.state !== 'INIT') applyState(s, ifname, vhid, state);
    return 0;
  });
}

function ifconfigOpenbsd(statePath: string, args: string[], io: Io): number {
  if (args.length === 0 || (args.length === 1 && args[0] === '-a')) {
    io.out(openbsdIfconfig(readState(statePath)));
    return 0;
  }
  if (args[0] === '-g') {
    // printgroupattribs() / setgroupattribs(): `-g carp`, `-g carp [-]carpdemote [N]`.
    const [, group, word, n] = args;
    if (group !== 'carp') {
      io.err(`ifconfig: ${group ?? ''}: SIOCGIFGATTR: Device not configured\n`);
      return 1;
    }
    if (word === undefined) {
      io.out(`carp: carp demote count ${readState(statePath).demotion}\n`);
      return 0;
    }
    if (word !== 'carpdemote' && word !== '-carpdemote') {
      io.err('usage: ifconfig -g group [[-]carpdemote [number]]\n');
      return 1;
    }
    const by = n === undefined ? 1 : Number(n);
    if (!/^\d{1,3}$/.test(n ?? '1') || by > 128) {
      io.err(`ifconfig: carp: invalid carp demotion: ${by > 128 ? 'too large' : 'invalid'}\n`);
      return 1;
    }
    const delta = word === '-carpdemote' ? -by : by;
    return updateState(statePath, (s) => {
      // The kernel adds the delta and refuses a result outside 0..255 (SIOCSIFGATTR).
      if (s.demotion + delta < 0 || s.demotion + delta > 255) {
        io.err('ifconfig: carp: SIOCSIFGATTR: Invalid argument\n');
        return 1;
      }
      s.demotion += delta;
      return 0;
    });
  }
  const [ifname, ...rest] = args as [string, ...string[]];
  const st = readState(statePath);
  const known = st.vhids.some((v) => v.ifname === ifname || v.carpdev === ifname) || ifname === 'carp';
  if (!known) {
    io.err(`ifconfig: ${ifname}: no such interface\n`);
    return 1;
  }
  if (rest.length === 0) {
    io.out(openbsdIfconfig(st, ifname));
    return 0;
  }
  // `carpN state master|backup`: setcarp_state(); carp_ioctl() SIOCSVH moves every vhid of carpN.
  if (rest[0] === 'state' && rest.length === 2) {
    const state = carpStateOf(rest[1]!.toUpperCase());
    return updateState(statePath, (s) => {
      if (state === 'MASTER' || state === 'BACKUP') {
        for (const v of s.vhids.filter((x) => x.ifname === ifname && x.state !== 'INIT')) applyState(s, ifname, v.vhid, state);
      }
      return 0;
    });
  }
  io.err(`ifconfig: fake: unsupported arguments: ${rest.join(' ')}\n`);
  return 1;
}

function sysctl(statePath: string, args: string[], io: Io): number {
  const n = args[0] === '-n';
  const names = n ? args.slice(1) : args;
  if (names.length === 0) {
    io.err('usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...\n');
    return 1;
  }
  for (const arg of names) {
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const st = readState(statePath);
    const current = name === CARP_DEMOTION_OID ? st.demotion : FREEBSD_CARP_SYSCTLS[name];
    if (current === undefined) {
      io.err(`sysctl: unknown oid '${name}'\n`);
      return 1;
    }
    if (eq < 0) {
      io.out(n ? `${current}\n` : `${name}: ${current}\n`);
      continue;
    }
    const value = arg.slice(eq + 1);
    if (!/^-?\d+$/.test(value)) {
      io.err(`sysctl: invalid integer '${value}'\n`);
      return 1;
    }
    if (name !== CARP_DEMOTION_OID) {
      io.err(`sysctl: oid '${name}' is read only (in the fake)\n`);
      return 1;
    }
    // carp_demote_adj_sysctl() → carp_demote_adj(): the written value is added, then read back.
    const [before, after] = updateState(statePath, (s) => {
      const b = s.demotion;
      s.demotion += Number(value);
      return [b, s.demotion] as const;
    });
    io.out(n ? `${after}\n` : `${name}: ${before} -> ${after}\n`);
  }
  return 0;
}

/** `route -n monitor`: prints an RTM_IFINFO for every recorded change after it started, polling the state file. */
async function routeMonitor(statePath: string, args: string[], io: Io): Promise<number> {
  if (!args.includes('monitor')) {
    io.err(`route: fake: unsupported arguments: ${args.join(' ')}\n`);
    return 1;
  }
  const pollMs = Number(process.env.FAKE_KERNEL_POLL_MS ?? 20);
  const until = Date.now() + Number(process.env.FAKE_KERNEL_MONITOR_MS ?? 120_000);
  let seen = readState(statePath).seq;
  let closed = false;
  process.stdout.on('error', () => (closed = true));
  for (let i = 0; !closed && Date.now() < until && i < 1_000_000; i++) {
    await new Promise((r) => setTimeout(r, pollMs));
    let st;
    try {
      st = readState(statePath);
    } catch {
      continue; // a writer is mid-rename; the next poll sees the file
    }
    for (const c of st.changes) {
      if (c.seq <= seen) continue;
      io.out(routeIfinfo(openbsdIfIndex(st, c.ifname), c.ifname, c.link, c.at));
    }
    seen = Math.max(seen, st.seq);
  }
  return 0;
}

async function main(argv: string[], io: Io): Promise<number> {
  const [tool, ...args] = argv as [string, ...string[]];
  const statePath = process.env.FAKE_KERNEL_STATE;
  const os = (process.env.FAKE_KERNEL_OS ?? 'freebsd') as FakeOs;
  if (process.env.FAKE_KERNEL_ARGV_LOG) appendFileSync(process.env.FAKE_KERNEL_ARGV_LOG, `${JSON.stringify([tool, ...args])}\n`);
  if (!statePath) {
    io.err(`${tool}: fake: FAKE_KERNEL_STATE is not set\n`);
    return 2;
  }
  switch (tool) {
    case 'ifconfig':
      return os === 'openbsd' ? ifconfigOpenbsd(statePath, args, io) : ifconfigFreebsd(statePath, args, io);
    case 'sysctl':
      return sysctl(statePath, args, io);
    case 'route':
      return routeMonitor(statePath, args, io);
    default:
      io.err(`fake kernel: unknown tool ${tool}\n`);
      return 2;
  }
}

main(process.argv.slice(2), { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`fake kernel: ${String(e)}\n`);
    process.exitCode = 2;
  },
);
