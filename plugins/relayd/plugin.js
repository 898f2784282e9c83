// @ts-check
/**
 * `relayd`: OpenBSD's relayd on the MASTER only (OpenBSD, and FreeBSD's net/relayd port). BSD only:
 * on Linux carpd refuses to load it at start-up.
 *
 *   [plugin.relayd]
 *   follow = lan
 *   backends = 10.0.0.11, 10.0.0.12 ; optional: a relay per VIP forwarding to these hosts
 *   port = 80                       ; the relay's port on each VIP
 *   backend_port = 8080             ; default: port
 *   check = tcp                     ; tcp, icmp or http (with check_path)
 *   conf = /etc/carpd/relayd.conf   ; the rendered fragment (default per OS)
 *
 * The fragment defines a macro per VIP (`carpd_vip1 = "192.0.2.1"`, …) that the operator's
 * relayd.conf can use after `include "/etc/carpd/relayd.conf"`, and, with `backends`, a relay on
 * each VIP. Going MASTER (after the VIP is up): start relayd unless it runs (`rcctl -f start relayd`,
 * `service relayd onestart`); if it runs and the fragment changed, check the configuration
 * (`relayd -n`) and `relayctl reload`. Going BACKUP or INIT (before the VIP goes): stop it if it runs.
 */

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IP4 = `${OCTET}(?:\\.${OCTET}){3}`;
const PORT = /[1-9]\d{0,4}/;
const PATH = /\/[A-Za-z0-9_.+@%=,:/-]*/;
const PROBE_MS = 5000;

/** @typedef {import('../../src/plugin-api.js').PluginContext<Option>} Ctx */
/** @typedef {import('../../src/plugin-api.js').OsName} OsName */

/** @type {Record<OsName, string>} */
const FRAGMENT = { openbsd: '/etc/carpd/relayd.conf', freebsd: '/usr/local/etc/carpd/relayd.conf', linux: '' };
/** @type {Record<OsName, string>} */
const MAIN_CONF = { openbsd: '/etc/relayd.conf', freebsd: '/usr/local/etc/relayd.conf', linux: '' };

/** @param {Ctx} ctx */
function fragment(ctx) {
  return ctx.options.conf ?? FRAGMENT[ctx.os];
}

/** The rc commands (rcctl on OpenBSD, service on FreeBSD). @param {Ctx} ctx */
export function commands(ctx) {
  const svc = ctx.options.service ?? 'relayd';
  const main = ctx.options.main_conf ?? MAIN_CONF[ctx.os];
  const test = ['relayd', '-n', '-f', main];
  const reload = ['relayctl', 'reload'];
  if (ctx.os === 'freebsd')
    return { status: ['service', svc, 'onestatus'], start: ['service', svc, 'onestart'], stop: ['service', svc, 'onestop'], test, reload };
  return { status: ['rcctl', 'check', svc], start: ['rcctl', '-f', 'start', svc], stop: ['rcctl', 'stop', svc], test, reload };
}

/**
 * Whether relayd runs. Under `carpd plan` nothing runs, so the plan assumes the state the previous
 * transition left: running only after MASTER.
 * @param {Ctx} ctx
 */
async function running(ctx) {
  const r = await ctx.exec(commands(ctx).status, { check: false, timeoutMs: PROBE_MS });
  if (ctx.dryRun) return ctx.event.from === 'MASTER';
  return r.exitCode === 0;
}

/** @param {Ctx} ctx */
function view(ctx) {
  const o = ctx.options;
  const ip = new RegExp(`^${IP4}$`);
  const vips = ctx.event.scope.vhids
    .flatMap((v) => v.addresses.map((a) => a.split('/')[0] ?? ''))
    .filter((a) => ip.test(a))
    .map((addr, i) => ({ n: i + 1, addr }));
  const backends = (o.backends ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const port = o.port ?? '80';
  const check = o.check === 'http' ? `http "${o.check_path ?? '/'}" code 200` : (o.check ?? 'tcp');
  return {
    scope: ctx.event.scope.key,
    conf: fragment(ctx),
    vips,
    relay: backends.length > 0 ? { name: o.name ?? 'carpd', backends, port, backend_port: o.backend_port ?? port, check } : false,
  };
}

/** The `[plugin.NAME]` options; `ctx.options` has exactly these names. */
const OPTIONS = {
  backends: { pattern: new RegExp(`${IP4}(?:\\s*,\\s*${IP4})*`), description: 'hosts a relay on each VIP forwards to' },
  port: { default: '80', pattern: PORT, description: 'the relay port on each VIP' },
  backend_port: { pattern: PORT, description: 'the backends’ port (default: port)' },
  check: { default: 'tcp', values: ['tcp', 'icmp', 'http'], description: 'backend health check' },
  check_path: { pattern: /\/[A-Za-z0-9_.~/-]*/, description: 'path of the http check' },
  name: { default: 'carpd', pattern: /[a-z][a-z0-9_-]*/, description: 'relay and table name' },
  service: { default: 'relayd', pattern: /[a-z][a-z0-9_.-]*/, description: 'rc service name' },
  conf: { pattern: PATH, description: 'where the fragment is rendered' },
  main_conf: { pattern: PATH, description: 'relayd.conf that includes the fragment (checked before a reload)' },
};
/** @typedef {keyof typeof OPTIONS} Option */

/** @type {import('../../src/plugin-api.js').PluginDeclaration<Option>} */
export default {
  name: 'relayd',
  apiVersion: 1,
  description: 'relayd on the MASTER only (OpenBSD/FreeBSD; relayd does not exist on Linux)',
  after: ['nat', 'pfsync'],
  os: ['openbsd', 'freebsd'],
  templates: ['relayd.conf'],
  options: OPTIONS,
  hooks: {
    async render(ctx) {
      // Every value is checked by its option pattern and written raw; `{{x}}` would quote it.
      await ctx.renderTo('relayd.conf', fragment(ctx), view(ctx), { escape: 'conf-quoted' });
    },
    async master(ctx) {
      const c = commands(ctx);
      if (!(await running(ctx))) {
        await ctx.exec(c.start);
        return;
      }
      if (!ctx.changed) return;
      await ctx.exec(c.test);
      await ctx.exec(c.reload);
    },
    // Before the VIP goes (INIT too). rc waits until relayd has exited.
    async 'pre-backup'(ctx) {
      if (await running(ctx)) await ctx.exec(commands(ctx).stop);
    },
  },
};
