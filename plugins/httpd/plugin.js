// @ts-check
/**
 * `httpd`: the web server runs on the MASTER only. OpenBSD httpd on the BSDs (FreeBSD: the
 * www/obhttpd port), nginx on Linux.
 *
 *   [plugin.httpd]
 *   follow = lan
 *   root = /htdocs                  ; document root (BSD default /htdocs in httpd's chroot; Linux /var/www/html)
 *   port = 80
 *   server_name = www.example.org   ; default: "default" (BSD), "_" (nginx)
 *   control = rc                    ; rc: rcctl / service; Linux also: direct (nginx -c CONF -p PREFIX)
 *   conf = /etc/carpd/httpd.conf    ; the rendered server block (default per OS, below)
 *   prefix = /var/lib/carpd/nginx   ; direct: nginx's prefix (pid file, logs, temp files)
 *   user = www-data                 ; direct: the user nginx's workers run as
 *
 * The rendered file is a server listening on every VIP of the scope. On the BSDs and with
 * `control = rc` on Linux it is a fragment: include it from httpd.conf (`include "/etc/carpd/httpd.conf"`)
 * or place it in nginx's conf.d (the Linux default, /etc/nginx/conf.d/carpd.conf). With
 * `control = direct` it is a whole nginx.conf, and nginx runs with its own prefix and pid file.
 *
 * Going MASTER (after the VIP is up): start the server unless it is running; if it is running and
 * the file changed, test the configuration and reload. Going BACKUP or INIT (before the VIP goes):
 * stop it if it is running. Starting a running server and stopping a stopped one do nothing.
 */

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IP4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const PATH = /\/[A-Za-z0-9_.+@%=,:/-]*/;
const WAIT_STEP_MS = 100;
const WAIT_STEPS = 50;
const PROBE_MS = 5000;

/** @typedef {import('../../src/plugin-api.js').PluginContext<Option>} Ctx */
/** @typedef {import('../../src/plugin-api.js').OsName} OsName */

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @type {Record<OsName, string>} */
const SERVICE = { openbsd: 'httpd', freebsd: 'obhttpd', linux: 'nginx' };
/** @type {Record<OsName, string>} */
const MAIN_CONF = { openbsd: '/etc/httpd.conf', freebsd: '/usr/local/etc/obhttpd.conf', linux: '/etc/nginx/nginx.conf' };
/** @type {Record<OsName, string>} */
const FRAGMENT = { openbsd: '/etc/carpd/httpd.conf', freebsd: '/usr/local/etc/carpd/httpd.conf', linux: '/etc/nginx/conf.d/carpd.conf' };

/** @param {Ctx} ctx */
function settings(ctx) {
  const o = ctx.options;
  const direct = o.control === 'direct';
  const prefix = o.prefix ?? '/var/lib/carpd/nginx';
  const service = o.service ?? SERVICE[ctx.os];
  return {
    direct,
    service,
    prefix,
    conf: o.conf ?? (direct ? '/etc/carpd/nginx.conf' : FRAGMENT[ctx.os]),
    pidfile: `${prefix}/nginx.pid`,
    errorLog: `${prefix}/error.log`,
  };
}

/**
 * @typedef {object} Commands
 * @property {string[]} status   exits 0 while the server runs
 * @property {string[][]} start  run in order when it does not
 * @property {string[]} test     checks the configuration before a reload
 * @property {string[]} reload
 * @property {string[]} stop
 * @property {boolean} waits     stop only signals: poll `status` until the server is gone
 */

/**
 * The commands for this OS and control mode.
 * @param {Ctx} ctx
 * @returns {Commands}
 */
export function commands(ctx) {
  const s = settings(ctx);
  const svc = s.service;
  if (s.direct) {
    const base = ['nginx', '-e', s.errorLog, '-c', s.conf, '-p', s.prefix];
    return {
      status: ['pgrep', '-F', s.pidfile, '-x', 'nginx'],
      start: [['mkdir', '-p', s.prefix], base],
      test: ['nginx', '-t', '-q', '-e', s.errorLog, '-c', s.conf, '-p', s.prefix],
      reload: [...base, '-s', 'reload'],
      stop: [...base, '-s', 'stop'],
      waits: true,
    };
  }
  const main = ctx.options.main_conf ?? MAIN_CONF[ctx.os];
  if (ctx.os === 'openbsd') {
    return {
      status: ['rcctl', 'check', svc],
      start: [['rcctl', '-f', 'start', svc]],
      test: ['httpd', '-n', '-f', main],
      reload: ['rcctl', 'reload', svc],
      stop: ['rcctl', 'stop', svc],
      waits: false,
    };
  }
  if (ctx.os === 'freebsd') {
    return {
      status: ['service', svc, 'onestatus'],
      start: [['service', svc, 'onestart']],
      test: ['obhttpd', '-n', '-f', main],
      reload: ['service', svc, 'onereload'],
      stop: ['service', svc, 'onestop'],
      waits: false,
    };
  }
  return {
    status: ['service', svc, 'status'],
    start: [['service', svc, 'start']],
    test: ['nginx', '-t', '-q', '-c', main],
    reload: ['service', svc, 'reload'],
    stop: ['service', svc, 'stop'],
    waits: false,
  };
}

/**
 * Whether the server runs. Under `carpd plan` nothing runs, so the plan assumes the state the
 * previous transition left: running only after MASTER.
 * @param {Ctx} ctx
 */
async function running(ctx) {
  const r = await ctx.exec(commands(ctx).status, { check: false, timeoutMs: PROBE_MS });
  if (ctx.dryRun) return ctx.event.from === 'MASTER';
  return r.exitCode === 0;
}

/** The server's view: one listen line per VIP address (IPv4) of the scope. @param {Ctx} ctx */
function view(ctx) {
  const o = ctx.options;
  const s = settings(ctx);
  const listen = ctx.event.scope.vhids.flatMap((v) =>
    v.addresses
      .map((a) => a.split('/')[0] ?? '')
      .filter((a) => IP4.test(a))
      .map((addr) => ({ addr, port: o.port ?? '80' })),
  );
  return {
    scope: ctx.event.scope.key,
    conf: s.conf,
    direct: s.direct,
    listen,
    server_name: o.server_name ?? (ctx.os === 'linux' ? '_' : 'default'),
    root: o.root ?? (ctx.os === 'linux' ? '/var/www/html' : '/htdocs'),
    prefix: s.prefix,
    pidfile: s.pidfile,
    error_log: s.errorLog,
    user: o.user ?? false,
  };
}

/** The `[plugin.NAME]` options; `ctx.options` has exactly these names. */
const OPTIONS = {
  root: { pattern: PATH, description: 'document root' },
  port: { default: '80', pattern: /[1-9]\d{0,4}/, description: 'port on every VIP' },
  server_name: { pattern: /[A-Za-z0-9_*.-]+/, description: 'server name' },
  control: { default: 'rc', values: ['rc', 'direct'], description: 'rc (rcctl/service) or direct (Linux: nginx with its own prefix)' },
  service: { pattern: /[a-z][a-z0-9_.-]*/, description: 'service name (default httpd, obhttpd, nginx)' },
  conf: { pattern: PATH, description: 'where the server block (direct: nginx.conf) is rendered' },
  main_conf: { pattern: PATH, description: 'the main configuration checked before a reload' },
  prefix: { pattern: PATH, description: 'direct: nginx prefix (pid file, logs, temp files)' },
  user: { pattern: /[a-z_][a-z0-9_-]*/, description: 'direct: the user nginx workers run as (default: nginx’s own)' },
};
/** @typedef {keyof typeof OPTIONS} Option */

/** @type {import('../../src/plugin-api.js').PluginDeclaration<Option>} */
export default {
  name: 'httpd',
  apiVersion: 1,
  description: 'a web server on the MASTER only: OpenBSD httpd on the BSDs, nginx on Linux',
  after: ['nat', 'pfsync'],
  templates: ['httpd.conf'],
  options: OPTIONS,
  hooks: {
    setup(ctx) {
      if (ctx.options.control === 'direct' && ctx.os !== 'linux') throw new Error('control = direct runs nginx and is for Linux only; use control = rc');
      if (Number(ctx.options.port) > 65535) throw new Error(`port ${ctx.options.port} is out of range`);
    },
    async render(ctx) {
      // Addresses and ports are checked; names and paths are quoted strings in both syntaxes.
      await ctx.renderTo('httpd.conf', settings(ctx).conf, view(ctx), { escape: 'conf-quoted' });
    },
    async master(ctx) {
      const c = commands(ctx);
      if (!(await running(ctx))) {
        for (const argv of c.start) await ctx.exec(argv);
        return;
      }
      if (!ctx.changed) return;
      await ctx.exec(c.test);
      await ctx.exec(c.reload);
    },
    // Before the VIP goes (INIT too).
    async 'pre-backup'(ctx) {
      const c = commands(ctx);
      if (!(await running(ctx))) return;
      await ctx.exec(c.stop);
      if (!c.waits || ctx.dryRun) return;
      // `nginx -s stop` only signals: wait until the master process is gone, so a quick MASTER
      // again starts a new one instead of finding the old one about to exit.
      for (let i = 0; i < WAIT_STEPS; i++) {
        if ((await ctx.exec(c.status, { check: false, timeoutMs: PROBE_MS })).exitCode !== 0) return;
        await sleep(WAIT_STEP_MS);
      }
      throw new Error('nginx did not exit after -s stop');
    },
  },
};
