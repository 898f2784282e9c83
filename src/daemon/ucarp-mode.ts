/**
 * `carpd ucarp …`: a drop-in for ucarp's command line (PROTOCOL.md "ucarp, for the drop-in mode").
 * Like ucarp it never adds the VIP itself: the up/down scripts do, called `<if> <vip> [xparam]`.
 * Unlike ucarp, the protocol never waits for a script: scripts run in order in a queue of their own.
 */
import { spawn } from 'node:child_process';
import { LinuxNet } from '../adapters/linux-net.js';
import { run } from '../adapters/exec.js';
import type { Logger, NetBackend } from '../adapters/ports.js';
import type { Io } from '../cli/run.js';
import { parseUcarpArgs } from '../config/ucarp-args.js';
import type { VhidConfig } from '../config/model.js';
import type { CarpState } from '../core/machine.js';
import { LOG, type Engine, type TransitionEvent } from './engine.js';
import { createLogger } from './logger.js';
import { runDaemon } from './run.js';

/** ucarp holds off this long after SIGUSR2 before listening for a master again. */
export const USR2_HOLD_MS = 3000;
const SCRIPT_TIMEOUT_MS = 120_000;

/** The VIP as ucarp passes it to scripts: the address without prefix length. */
function bareVip(v: VhidConfig): string {
  return (v.addresses[0] ?? '').split('/')[0]!;
}

/** Which script a transition runs in ucarp mode, if any. */
export function scriptFor(ev: Pick<TransitionEvent, 'from' | 'to' | 'reason'>, opts: { neutral: boolean; shutdown: boolean }): 'up' | 'down' | undefined {
  if (ev.to === 'MASTER') return 'up';
  if (ev.to === 'BACKUP') return ev.from === 'INIT' && opts.neutral ? undefined : 'down';
  if (ev.from === 'MASTER') return ev.reason === 'shutdown' && !opts.shutdown ? undefined : 'down';
  return undefined;
}

/** ucarp leaves the VIP to its scripts: only the gratuitous ARP is ours. */
class ScriptsOwnVips implements NetBackend {
  constructor(private readonly inner: NetBackend) {}
  async addVip(): Promise<void> {}
  async delVip(): Promise<void> {}
  garp(ifname: string, cidr: string): Promise<void> {
    return this.inner.garp(ifname, cidr);
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

/** Runs up/down scripts one at a time, in transition order. */
class ScriptQueue {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly logger: Logger) {}

  push(argv: string[]): void {
    this.tail = this.tail.then(async () => {
      const r = await run(argv, { timeoutMs: SCRIPT_TIMEOUT_MS });
      if (r.exitCode !== 0) this.logger.log(LOG.WARN, `[WARNING] ${argv[0]} exited with ${r.timedOut ? 'a timeout' : `status ${r.exitCode}`}`);
    }).catch((err: unknown) => this.logger.log(LOG.ERR, `[ERROR] ${argv[0]}: ${err instanceof Error ? err.message : String(err)}`));
  }

  drain(): Promise<void> {
    return this.tail;
  }
}

/** Re-run ourselves detached, logging to syslog through logger(1), like ucarp -B. */
function daemonize(args: string[], facility: string): void {
  const syslog = spawn('logger', ['-t', 'ucarp', '-p', `${facility}.info`], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  const child = spawn(process.execPath, [process.argv[1]!, 'ucarp', ...args.filter((a) => a !== '-B' && a !== '--daemonize')], {
    detached: true,
    stdio: ['ignore', syslog.stdin!, syslog.stdin!],
  });
  child.unref();
  syslog.unref();
}

export async function ucarpCommand(args: string[], io: Io): Promise<number> {
  // Whatever was on our command line (a -p secret) should not stay visible in ps.
  process.title = 'carpd ucarp';
  const parsed = parseUcarpArgs(args);
  if (parsed.kind === 'help') {
    io.out(parsed.usage);
    return 0;
  }
  const { model, options } = parsed;
  if (options.daemonize) {
    daemonize(args, options.facility);
    return 0;
  }
  const logger = createLogger({ tag: 'ucarp', timestamps: false });
  for (const w of options.warnings) logger.log(LOG.WARN, `[WARNING] ${w}`);
  if (options.passOnArgv) logger.log(LOG.WARN, '[WARNING] the password was given on the command line, where ps shows it: use --passfile');
  const vh = model.vhids[0]!;
  const scripts = new ScriptQueue(logger);
  let state: CarpState = 'INIT';

  const onTransition = (ev: TransitionEvent) => {
    state = ev.to;
    if (ev.to !== 'INIT') logger.log(LOG.WARN, `[WARNING] Switching to state: ${ev.to}`);
    const which = scriptFor(ev, options);
    const script = which === 'up' ? vh.upscript : which === 'down' ? vh.downscript : undefined;
    if (script) scripts.push([script, vh.interface, bareVip(vh), ...(vh.xparam !== undefined ? [vh.xparam] : [])]);
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
    beforeExit: () => scripts.drain(),
  });
}
