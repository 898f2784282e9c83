// @ts-check
/**
 * `pfsync`: firewall state sync that is committed before the VIP moves.
 *
 *   [plugin.pfsync]
 *   follow = node
 *   syncdev = em2                   ; the (dedicated) interface state updates travel on
 *   syncpeer = 10.9.9.2             ; unicast to the peer (default: multicast)
 *   defer = no                      ; BSD: pfsync defer
 *   address = 10.9.9.1              ; Linux: this node's IPv4 address on syncdev (required there)
 *   control = rc                    ; Linux: rc (service conntrackd …) or direct (conntrackd -d)
 *
 * BSD: pfsync carries pf's states; carpd keeps pfsync0 up while the node takes part in CARP
 * (`ifconfig pfsync0 syncdev em2 syncpeer 10.9.9.2 -defer up` before becoming MASTER and on BACKUP,
 * which also asks the peer for a bulk update) and takes it down on INIT (link down, shutdown).
 *
 * Linux: conntrackd in FTFW mode, driven the way conntrack-tools' primary-backup.sh does it:
 * - pre-master (the VIP step waits for it): commit the external cache to the kernel (`-c`), flush
 *   the caches (`-f`), resync the internal cache with the kernel (`-R`), send a bulk update (`-B`);
 * - backup: shorten the kernel's timers for entries the old master left (`-t`), ask the master for
 *   a resync (`-n`);
 * - init: shorten the timers (`-t`).
 * Before commanding it, conntrackd is checked (`-s`) and started if it is not running (a stale lock
 * file removed first, as primary-backup.sh does). The rendered conntrackd.conf names its own UNIX
 * socket and lock file, so every command passes `-C CONF`.
 */

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IP4 = new RegExp(`${OCTET}(?:\\.${OCTET}){3}`);
const IFNAME = /[A-Za-z][A-Za-z0-9_.-]{0,14}/;
const ABSOLUTE = /\/[A-Za-z0-9_.+@%=,:/-]*/;
const YES_NO = ['yes', 'no'];
const WAIT_STEP_MS = 100;
const WAIT_STEPS = 30;
const PROBE_MS = 5000;

/** @typedef {import('../../src/plugin-api.js').PluginContext<Option>} Ctx */

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @param {Ctx} ctx */
function conntrackd(ctx) {
  const o = ctx.options;
  return {
    conf: o.conf ?? '/etc/conntrackd/conntrackd.conf',
    /** @param {string} flag */
    argv: (flag) => ['conntrackd', '-C', o.conf ?? '/etc/conntrackd/conntrackd.conf', flag],
  };
}

/**
 * Whether conntrackd answers on its socket. Under `carpd plan` nothing runs, so the plan assumes
 * the state the previous transition left: running unless the scope is coming up from INIT.
 * @param {Ctx} ctx
 */
async function running(ctx) {
  const r = await ctx.exec(conntrackd(ctx).argv('-s'), { check: false, timeoutMs: PROBE_MS });
  if (ctx.dryRun) return ctx.event.from !== undefined && ctx.event.from !== 'INIT';
  return r.exitCode === 0;
}

/** Starts conntrackd unless it is running, and waits (bounded) until it answers. @param {Ctx} ctx */
async function ensureRunning(ctx) {
  if (await running(ctx)) return;
  const o = ctx.options;
  await ctx.exec(['rm', '-f', o.lockfile ?? '/var/lock/conntrack.lock']);
  if (o.control === 'direct') await ctx.exec(conntrackd(ctx).argv('-d'));
  else await ctx.exec(['service', o.service ?? 'conntrackd', 'start']);
  if (ctx.dryRun) return;
  for (let i = 0; i < WAIT_STEPS; i++) {
    if ((await ctx.exec(conntrackd(ctx).argv('-s'), { check: false, timeoutMs: PROBE_MS })).exitCode === 0) return;
    await sleep(WAIT_STEP_MS);
  }
  throw new Error('conntrackd was started but does not answer on its socket');
}

/**
 * `ifconfig pfsync0 syncdev IF [syncpeer X] [-]defer up|down`
 * @param {Ctx} ctx
 * @param {'up' | 'down'} how
 */
export function ifconfigArgv(ctx, how) {
  const o = ctx.options;
  return [
    'ifconfig',
    o.interface ?? 'pfsync0',
    'syncdev',
    o.syncdev ?? '',
    ...(o.syncpeer !== undefined ? ['syncpeer', o.syncpeer] : []),
    o.defer === 'yes' ? 'defer' : '-defer',
    how,
  ];
}

/** The conntrackd.conf view (Linux). @param {Ctx} ctx */
function confView(ctx) {
  const o = ctx.options;
  // Our VIPs and own address never go into the sync: they are not forwarded traffic.
  const ignore = [
    ...new Set(['127.0.0.1', ...(o.address ? [o.address] : []), ...ctx.event.scope.vhids.flatMap((v) => v.addresses.map((a) => a.split('/')[0] ?? ''))]),
  ].filter((a) => new RegExp(`^${IP4.source}$`).test(a));
  return {
    scope: ctx.event.scope.key,
    syncdev: o.syncdev,
    address: o.address,
    udp: o.syncpeer !== undefined,
    syncpeer: o.syncpeer ?? false,
    group: o.group,
    port: o.port,
    socket: o.socket,
    lockfile: o.lockfile,
    logfile: o.logfile ?? false,
    ignore,
  };
}

/** The `[plugin.NAME]` options; `ctx.options` has exactly these names. */
const OPTIONS = {
  syncdev: { required: true, pattern: IFNAME, description: 'interface the state updates travel on' },
  syncpeer: { pattern: IP4, description: 'the peer, for unicast (default: multicast)' },
  defer: { default: 'no', values: YES_NO, description: 'BSD: pfsync defer' },
  interface: { default: 'pfsync0', pattern: /pfsync\d+/, description: 'BSD: the pfsync interface' },
  address: { pattern: IP4, description: 'Linux: this node’s address on syncdev (required on Linux)' },
  control: { default: 'rc', values: ['rc', 'direct'], description: 'Linux: service conntrackd, or conntrackd -d' },
  service: { default: 'conntrackd', pattern: /[a-z][a-z0-9_.-]*/, description: 'Linux: service name' },
  conf: { default: '/etc/conntrackd/conntrackd.conf', pattern: ABSOLUTE, description: 'Linux: rendered conntrackd.conf' },
  socket: { default: '/var/run/conntrackd.ctl', pattern: ABSOLUTE, description: 'Linux: conntrackd UNIX socket' },
  lockfile: { default: '/var/lock/conntrack.lock', pattern: ABSOLUTE, description: 'Linux: conntrackd lock file' },
  logfile: { pattern: ABSOLUTE, description: 'Linux: conntrackd log file (default: syslog)' },
  group: { default: '225.0.0.50', pattern: IP4, description: 'Linux: multicast group without syncpeer' },
  port: { default: '3780', pattern: /[1-9]\d{0,4}/, description: 'Linux: UDP port (multicast: group id)' },
};
/** @typedef {keyof typeof OPTIONS} Option */

/** @type {import('../../src/plugin-api.js').PluginDeclaration<Option>} */
export default {
  name: 'pfsync',
  apiVersion: 1,
  description: 'state sync committed before the VIP moves: pfsync on the BSDs, conntrackd on Linux',
  templates: ['conntrackd.conf'],
  options: OPTIONS,
  hooks: {
    async setup(ctx) {
      if (ctx.os !== 'linux') {
        await ctx.exec(['ifconfig', ctx.options.interface ?? 'pfsync0']);
        return;
      }
      if (ctx.options.address === undefined) throw new Error('on Linux, option address (this node’s IPv4 address on syncdev) is required');
      await ctx.exec(['conntrackd', '-v']);
    },
    async render(ctx) {
      if (ctx.os !== 'linux') return;
      // Every value is checked by its option pattern; paths are quoted-free tokens conntrackd reads as is.
      await ctx.renderTo('conntrackd.conf', conntrackd(ctx).conf, confView(ctx), { escape: 'none', mode: 0o644 });
    },
    // Before the VIP step: the states the old master synced are in the kernel when traffic arrives.
    async 'pre-master'(ctx) {
      if (ctx.os !== 'linux') {
        await ctx.exec(ifconfigArgv(ctx, 'up'));
        return;
      }
      await ensureRunning(ctx);
      for (const flag of ['-c', '-f', '-R', '-B']) await ctx.exec(conntrackd(ctx).argv(flag));
    },
    async backup(ctx) {
      if (ctx.os !== 'linux') {
        await ctx.exec(ifconfigArgv(ctx, 'up'));
        return;
      }
      await ensureRunning(ctx);
      for (const flag of ['-t', '-n']) await ctx.exec(conntrackd(ctx).argv(flag));
    },
    async init(ctx) {
      if (ctx.os !== 'linux') {
        await ctx.exec(ifconfigArgv(ctx, 'down'));
        return;
      }
      if (await running(ctx)) await ctx.exec(conntrackd(ctx).argv('-t'));
    },
  },
};
