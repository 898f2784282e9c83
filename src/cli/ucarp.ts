/**
 * `carpd ucarp …`: a drop-in for ucarp's command line (PROTOCOL.md "ucarp, for the drop-in mode").
 * Like ucarp it never adds the VIP itself: the up/down scripts do, called `<if> <vip> [xparam]`.
 * Unlike ucarp, the protocol never waits for a script: scripts run in order in a queue of their own.
 */
import { readPassfile } from '../adapters/config-files.js';
import { firstUpInterface, LinuxNet } from '../adapters/linux-net.js';
import { createLogger } from '../adapters/logger.js';
import { startProcess } from '../adapters/process.js';
import { parseUcarpArgs } from '../config/ucarp-args.js';
import type { CarpState } from '../core/machine.js';
import type { Engine, TransitionEvent } from '../daemon/engine.js';
import { runDaemon } from '../daemon/run.js';
import type { Io } from '../ports/io.js';
import { LOG } from '../ports/logger.js';
import type { NetBackend } from '../ports/net.js';

/** ucarp holds off this long after SIGUSR2 before listening for a master again. */
export const USR2_HOLD_MS = 3000;

/** How often, and how far apart, a gratuitous ARP waits for the up script's address. */
const GARP_TRIES = 20;
const GARP_RETRY_MS = 50;

/** ucarp leaves the VIP to its scripts: only the gratuitous ARP is ours. */
class ScriptsOwnVips implements NetBackend {
  constructor(private readonly inner: NetBackend) {}
  async addVip(): Promise<void> {}
  async delVip(): Promise<void> {}
  /**
   * The up script adds the VIP in its own time, and the announcement refuses an address the
   * interface does not hold yet: look again for up to a second (ucarp itself sends its ARP without
   * the address, from a packet socket) before giving up with the last error.
   */
  async garp(ifname: string, cidr: string): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.inner.garp(ifname, cidr);
      } catch (err) {
        if (tries >= GARP_TRIES || !/is not on /.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, GARP_RETRY_MS));
      }
    }
  }
  primaryAddress(ifname: string): string | undefined {
    return this.inner.primaryAddress(ifname);
  }
  linkUp(ifname: string): boolean {
    return this.inner.linkUp(ifname);
  }
  watchLinks(ifnames: string[], cb: (ifname: string, up: boolean) => void): () => void {
    return this.inner.watchLinks(ifnames, cb);
  }
}

/** Set in the environment of the detached child: it must not daemonize again. */
const FOREGROUND_ENV = 'CARPD_UCARP_FOREGROUND';
/** A -p password handed to the detached child out of band, so ps never shows it. */
const PASS_ENV = 'CARPD_UCARP_PASS';

/** Options that take a value, by both names, for moving -p out of argv. */
function withoutPass(args: string[]): { args: string[]; pass?: string } {
  const out: string[] = [];
  let pass: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-p' || a === '--pass') pass = args[++i];
    else if (a.startsWith('--pass=')) pass = a.slice('--pass='.length);
    else if (/^-p./.test(a)) pass = a.slice(2);
    else out.push(a);
  }
  return pass === undefined ? { args: out } : { args: out, pass };
}

/**
 * `--run-dir DIR` (carpd's own, not ucarp's): where the instance lock goes. Taken out before
 * ucarp's parser sees the arguments.
 */
export function withoutRunDir(args: string[]): { args: string[]; runDir?: string } {
  const out: string[] = [];
  let runDir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--run-dir') runDir = args[++i];
    else if (a.startsWith('--run-dir=')) runDir = a.slice('--run-dir='.length);
    else out.push(a);
  }
  return runDir === undefined ? { args: out } : { args: out, runDir };
}

/** Re-run ourselves detached, logging to syslog through logger(1), like ucarp -B. */
function daemonize(args: string[], facility: string): void {
  const { args: rest, pass } = withoutPass(args);
  const syslog = startProcess(['logger', '-t', 'ucarp', '-p', `${facility}.info`], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  const child = startProcess([process.execPath, process.argv[1]!, 'ucarp', ...rest], {
    detached: true,
    stdio: ['ignore', syslog.stdin!, syslog.stdin!],
    env: { ...process.env, [FOREGROUND_ENV]: '1', ...(pass !== undefined ? { [PASS_ENV]: pass } : {}) },
  });
  child.unref();
  syslog.unref();
}

export async function ucarpCommand(allArgs: string[], io: Io): Promise<number> {
  // Whatever was on our command line (a -p secret) should not stay visible in ps.
  process.title = 'carpd ucarp';
  const inherited = process.env[PASS_ENV];
  delete process.env[PASS_ENV];
  const { args: ucarpArgs, runDir } = withoutRunDir(allArgs);
  const parsed = parseUcarpArgs(inherited !== undefined ? [...ucarpArgs, '-p', inherited] : ucarpArgs, { defaultInterface: firstUpInterface, readPassfile });
  if (parsed.kind === 'help') {
    io.out(parsed.usage);
    return 0;
  }
  const { model, options } = parsed;
  if (options.daemonize && process.env[FOREGROUND_ENV] !== '1') {
    daemonize(allArgs, options.facility);
    return 0;
  }
  const logger = createLogger({ tag: 'ucarp', timestamps: false });
  for (const w of options.warnings) logger.log(LOG.WARN, `[WARNING] ${w}`);
  const vh = model.vhids[0]!;
  let state: CarpState = 'INIT';
  const onTransition = (ev: TransitionEvent) => {
    state = ev.to;
    if (ev.to !== 'INIT') logger.log(LOG.WARN, `[WARNING] Switching to state: ${ev.to}`);
  };
  return runDaemon({
    model,
    logger,
    net: new ScriptsOwnVips(new LinuxNet({ logger })),
    onTransition,
    hupExits: true,
    onUsr1: () => logger.log(0, `[INFO] ${state === 'MASTER' ? 'MASTER' : 'BACKUP'} on ${vh.interface} id ${vh.vhid}`),
    onUsr2: (engine: Engine) => {
      if (state !== 'MASTER') return;
      logger.log(LOG.DEBUG, '[DEBUG] Caught signal (USR2) considering going down');
      engine.force(vh.key, 'BACKUP', 'SIGUSR2', USR2_HOLD_MS);
    },
    scripts: { neutral: options.neutral, shutdown: options.shutdown },
    // One process per vhid, like ucarp: several on one host are fine, two for one vhid on one
    // interface are not (the second one's down script would remove the first one's VIP).
    lock: { scope: { kind: 'vhid', vhid: vh.vhid, interface: vh.interface }, ...(runDir !== undefined ? { runDir } : {}) },
  });
}
