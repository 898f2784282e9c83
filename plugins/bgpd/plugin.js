// @ts-check
/**
 * `bgpd`: OpenBGPD announces the VIPs from the MASTER only (OpenBSD; FreeBSD's net/openbgpd;
 * Debian's openbgpd).
 *
 *   [plugin.bgpd]
 *   follow = lan
 *   as = 65001                      ; our AS
 *   router_id = 192.0.2.1           ; optional
 *   neighbor = 192.0.2.254 65000    ; repeatable: ADDRESS REMOTE-AS
 *   network = 198.51.100.0/24       ; repeatable; default: every VIP of the scope as a host route
 *   mode = neighbors                ; neighbors: bgpd runs on both nodes, carpd brings the sessions
 *                                   ;   up on MASTER and down on BACKUP; daemon: start/stop bgpd
 *   socket = /var/run/bgpd.sock     ; control socket (bgpd.conf `socket`, bgpctl -s)
 *   depend_on = auto                ; OpenBSD `depend on carpN` per neighbor: auto (the vhid's carp
 *                                   ;   interface, when it has one), none, or an interface name
 *   control = rc                    ; rc (rcctl / service) or direct (bgpd -f CONF)
 *   conf = /etc/bgpd.conf           ; the rendered bgpd.conf
 *
 * In `neighbors` mode the rendered sessions are marked `down`, so a bgpd that starts on its own
 * (boot, BACKUP) never announces; going MASTER (after the VIP is up) carpd starts bgpd if it is not
 * running and runs `bgpctl neighbor ADDR up`; going BACKUP or INIT (before the VIP goes) it runs
 * `bgpctl neighbor ADDR down`, withdrawing the routes. In `daemon` mode bgpd is started on MASTER
 * and stopped on BACKUP. Whenever bgpd runs and the rendered file changed, the configuration is
 * checked (`bgpd -n`) and reloaded (`bgpctl reload`).
 */

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IP4 = `${OCTET}(?:\\.${OCTET}){3}`;
const ASN = '(?:[1-9]\\d{0,9}|[1-9]\\d{0,4}\\.\\d{1,5})';
const NEIGHBOR = `${IP4}\\s+${ASN}`;
const PREFIX = `${IP4}/(?:3[0-2]|[12]?\\d)`;
const PATH = /\/[A-Za-z0-9_.+@%=,:/-]*/;
const list = (/** @type {string} */ item) => new RegExp(`${item}(?:\\s*,\\s*${item})*`);
const WAIT_STEP_MS = 100;
const WAIT_STEPS = 50;
const PROBE_MS = 5000;

/** @typedef {import('../../src/plugin-api.js').PluginContext<Option>} Ctx */
/** @typedef {import('../../src/plugin-api.js').OsName} OsName */

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @type {Record<OsName, string>} */
const CONF = { openbsd: '/etc/bgpd.conf', freebsd: '/usr/local/etc/bgpd.conf', linux: '/etc/bgpd.conf' };
/** @type {Record<OsName, string>} */
const SERVICE = { openbsd: 'bgpd', freebsd: 'openbgpd', linux: 'openbgpd' };

/** @param {string | undefined} v */
const items = (v) =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/** @param {Ctx} ctx */
function conf(ctx) {
  return ctx.options.conf ?? CONF[ctx.os];
}

/** @param {Ctx} ctx */
export function neighbors(ctx) {
  return items(ctx.options.neighbor).map((n) => {
    const [addr, as] = /** @type {[string, string]} */ (n.split(/\s+/));
    return { addr, as };
  });
}

/** `bgpctl [-s SOCKET] ARGS…` @param {Ctx} ctx @param {string[]} args */
function bgpctl(ctx, ...args) {
  return ['bgpctl', ...(ctx.options.socket !== undefined ? ['-s', ctx.options.socket] : []), ...args];
}

/** Exact-match pattern for `pkill -f -x` of the bgpd we started directly. @param {string} s */
const exact = (s) => s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

/** @param {Ctx} ctx */
export function commands(ctx) {
  const o = ctx.options;
  const svc = o.service ?? SERVICE[ctx.os];
  const test = ['bgpd', '-n', '-f', conf(ctx)];
  const reload = bgpctl(ctx, 'reload');
  const status = bgpctl(ctx, 'show', 'summary');
  if (o.control === 'direct') {
    return { status, test, reload, start: ['bgpd', '-f', conf(ctx)], stop: ['pkill', '-TERM', '-x', '-f', exact(`bgpd -f ${conf(ctx)}`)] };
  }
  if (ctx.os === 'openbsd') return { status, test, reload, start: ['rcctl', '-f', 'start', svc], stop: ['rcctl', 'stop', svc] };
  if (ctx.os === 'freebsd') return { status, test, reload, start: ['service', svc, 'onestart'], stop: ['service', svc, 'onestop'] };
  return { status, test, reload, start: ['service', svc, 'start'], stop: ['service', svc, 'stop'] };
}

/**
 * Whether bgpd answers on its control socket. Under `carpd plan` nothing runs, so the plan assumes
 * the state the previous transition left: in daemon mode running only after MASTER, in neighbors
 * mode running unless the scope comes from INIT.
 * @param {Ctx} ctx
 */
async function running(ctx) {
  const r = await ctx.exec(commands(ctx).status, { check: false, timeoutMs: PROBE_MS });
  if (ctx.dryRun) return ctx.options.mode === 'daemon' ? ctx.event.from === 'MASTER' : ctx.event.from !== undefined && ctx.event.from !== 'INIT';
  return r.exitCode === 0;
}

/** Polls (bounded) until bgpd answers (`up`) or stops answering. @param {Ctx} ctx @param {boolean} up */
async function waitFor(ctx, up) {
  if (ctx.dryRun) return;
  for (let i = 0; i < WAIT_STEPS; i++) {
    if (((await ctx.exec(commands(ctx).status, { check: false, timeoutMs: PROBE_MS })).exitCode === 0) === up) return;
    await sleep(WAIT_STEP_MS);
  }
  throw new Error(up ? 'bgpd was started but does not answer on its control socket' : 'bgpd did not stop');
}

/** Reloads a running bgpd whose file changed in this run. @param {Ctx} ctx */
async function reloadIfChanged(ctx) {
  if (!ctx.changed) return;
  const c = commands(ctx);
  await ctx.exec(c.test);
  await ctx.exec(c.reload);
}

/** @param {Ctx} ctx */
function view(ctx) {
  const o = ctx.options;
  const vhids = ctx.event.scope.vhids;
  let depend = '';
  if (ctx.os === 'openbsd' && o.depend_on !== 'none') {
    depend = o.depend_on !== undefined && o.depend_on !== 'auto' ? o.depend_on : (vhids.find((v) => v.name !== undefined)?.name ?? '');
  }
  const ip = new RegExp(`^${IP4}$`);
  const networks =
    o.network !== undefined
      ? items(o.network)
      : vhids.flatMap((v) =>
          v.addresses
            .map((a) => a.split('/')[0] ?? '')
            .filter((a) => ip.test(a))
            .map((a) => `${a}/32`),
        );
  return {
    scope: ctx.event.scope.key,
    as: o.as,
    router_id: o.router_id ?? false,
    socket: o.socket ?? false,
    networks,
    neighbors: neighbors(ctx).map((n) => ({ ...n, depend: depend || false, down: o.mode !== 'daemon' })),
  };
}

/** The `[plugin.NAME]` options; `ctx.options` has exactly these names. */
const OPTIONS = {
  as: { required: true, pattern: new RegExp(ASN), description: 'our AS number' },
  router_id: { pattern: new RegExp(IP4), description: 'BGP router id' },
  neighbor: { required: true, pattern: list(NEIGHBOR), description: 'ADDRESS REMOTE-AS (repeatable)' },
  network: { pattern: list(PREFIX), description: 'prefixes to announce (default: the VIPs as /32)' },
  mode: { default: 'neighbors', values: ['neighbors', 'daemon'], description: 'sessions up/down, or bgpd start/stop' },
  socket: { pattern: PATH, description: 'control socket' },
  depend_on: { default: 'auto', pattern: /auto|none|[a-z][a-z0-9]*\d+/, description: 'OpenBSD: depend on an interface (auto: the vhid’s carpN)' },
  control: { default: 'rc', values: ['rc', 'direct'], description: 'rc (rcctl/service) or direct (bgpd -f CONF)' },
  service: { pattern: /[a-z][a-z0-9_.-]*/, description: 'rc service name (default bgpd, openbgpd)' },
  conf: { pattern: PATH, description: 'the rendered bgpd.conf' },
};
/** @typedef {keyof typeof OPTIONS} Option */

/** @type {import('../../src/plugin-api.js').PluginDeclaration<Option>} */
export default {
  name: 'bgpd',
  apiVersion: 1,
  description: 'OpenBGPD announces from the MASTER only: sessions up/down, or bgpd started/stopped',
  after: ['httpd', 'nat', 'pfsync', 'relayd'],
  templates: ['bgpd.conf'],
  options: OPTIONS,
  hooks: {
    setup(ctx) {
      neighbors(ctx);
    },
    async render(ctx) {
      // Addresses and AS numbers are checked by their patterns; strings are quoted.
      await ctx.renderTo('bgpd.conf', conf(ctx), view(ctx), { escape: 'conf-quoted', mode: 0o600 });
    },
    // After the VIP is up: announce.
    async master(ctx) {
      const c = commands(ctx);
      if (!(await running(ctx))) {
        await ctx.exec(c.start);
        await waitFor(ctx, true);
      } else {
        await reloadIfChanged(ctx);
      }
      if (ctx.options.mode === 'daemon') return;
      for (const n of neighbors(ctx)) await ctx.exec(bgpctl(ctx, 'neighbor', n.addr, 'up'));
    },
    // Before the VIP goes (INIT too): withdraw.
    async 'pre-backup'(ctx) {
      if (!(await running(ctx))) return;
      if (ctx.options.mode === 'daemon') {
        await ctx.exec(commands(ctx).stop);
        await waitFor(ctx, false);
        return;
      }
      for (const n of neighbors(ctx)) await ctx.exec(bgpctl(ctx, 'neighbor', n.addr, 'down'));
    },
    // A bgpd that keeps running on the backup still gets a changed configuration.
    async backup(ctx) {
      if (ctx.options.mode === 'daemon' || !ctx.changed) return;
      if (await running(ctx)) await reloadIfChanged(ctx);
    },
  },
};
