// @ts-check
/**
 * `nat`: the VIP's NAT rules exist exactly while this node is MASTER.
 *
 *   [plugin.nat]
 *   follow = wan
 *   snat = 10.0.0.0/24              ; repeatable: sources leaving on the vhid's interface get the VIP
 *   dnat = tcp 443 10.0.0.10        ; repeatable: PROTO PORT ADDR[:PORT], traffic to the VIP forwarded
 *   interface = em1                 ; outbound interface of snat (default: the vhid's interface)
 *   table = carpd_nat               ; Linux: the nftables table (family ip) carpd owns
 *   anchor = carpd/nat              ; BSD: the pf anchor carpd owns
 *   file = /etc/carpd/nat.nft       ; where the rules are rendered (default per OS, below)
 *
 * Linux (nftables): the rules are rendered as a file that replaces table `ip carpd_nat` in one
 * transaction (`nft -f FILE`) on MASTER, and the table is deleted after the VIP has left
 * (`nft delete table ip carpd_nat`; a missing table is fine). Nothing else of the ruleset is touched.
 *
 * BSD (pf): the rules are loaded into an anchor (`pfctl -a carpd/nat -f FILE`) on MASTER and the
 * anchor is flushed after the VIP has left (`pfctl -a carpd/nat -F all`; with an anchor this flushes
 * only the anchor's rules and tables, never the states pfsync keeps). pf.conf must call the anchor:
 * OpenBSD `anchor "carpd/*"`; FreeBSD `nat-anchor "carpd/*"` and `rdr-anchor "carpd/*"`.
 *
 * Every value that reaches the rules is checked first (addresses, ports, interface names), so the
 * rendered file cannot be steered by a config value. IPv4 only: the rules use each vhid's first IPv4
 * address.
 */

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IP4 = `${OCTET}(?:\\.${OCTET}){3}`;
const CIDR4 = `${IP4}(?:/(?:3[0-2]|[12]?\\d))?`;
const PORT = '(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d\\d|6[0-4]\\d{3}|[1-5]\\d{4}|[1-9]\\d{0,3})';
const DNAT = `(?:tcp|udp) ${PORT} ${IP4}(?::${PORT})?`;
const IFNAME = /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/;
const list = (/** @type {string} */ item) => new RegExp(`${item}(?:\\s*,\\s*${item})*`);

/** @typedef {import('../../src/plugin-api.js').PluginContext<Option>} Ctx */
/** @typedef {import('../../src/plugin-api.js').OsName} OsName */

/** @type {Record<OsName, string>} */
const DEFAULT_FILE = { linux: '/etc/carpd/nat.nft', openbsd: '/etc/carpd/nat.pf', freebsd: '/usr/local/etc/carpd/nat.pf' };

/** @param {string | undefined} v */
function items(v) {
  return v === undefined || v.trim() === '' ? [] : v.split(',').map((s) => s.trim());
}

/**
 * The rules' view: one entry per vhid of the scope that has an IPv4 address.
 * @param {Ctx} ctx
 */
export function natView(ctx) {
  const o = ctx.options;
  const snat = items(o.snat);
  const dnat = items(o.dnat).map((d) => {
    const [proto, port, to] = /** @type {[string, string, string]} */ (d.split(/\s+/));
    const [addr, toPort] = to.split(':');
    return { proto, port, addr, toPort: toPort ?? port };
  });
  if (o.interface !== undefined && !IFNAME.test(o.interface)) throw new Error(`interface "${o.interface}" is not an interface name`);
  const vhids = [];
  for (const v of ctx.event.scope.vhids) {
    const vip = v.addresses.map((a) => a.split('/')[0] ?? '').find((a) => new RegExp(`^${IP4}$`).test(a));
    if (!vip) continue;
    const dev = v.interface;
    if (!IFNAME.test(dev)) throw new Error(`vhid ${v.key}: interface "${dev}" is not an interface name`);
    const out = o.interface ?? dev;
    vhids.push({ key: v.key, vip, dev, snat: snat.map((net) => ({ net, out, vip })), dnat: dnat.map((d) => ({ ...d, dev, vip })) });
  }
  return { table: o.table, anchor: o.anchor, scope: ctx.event.scope.key, vhids };
}

/** @param {Ctx} ctx */
function file(ctx) {
  return ctx.options.file ?? DEFAULT_FILE[ctx.os];
}

/** The `[plugin.NAME]` options; `ctx.options` has exactly these names. */
const OPTIONS = {
  snat: { pattern: list(CIDR4), description: 'source networks translated to the VIP (repeatable)' },
  dnat: { pattern: list(DNAT), description: 'PROTO PORT ADDR[:PORT] forwarded from the VIP (repeatable)' },
  interface: { pattern: IFNAME, description: 'outbound interface of the snat rules (default: the vhid interface)' },
  table: { default: 'carpd_nat', pattern: /[a-z][a-z0-9_]{0,31}/, description: 'Linux: nftables table (family ip)' },
  anchor: { default: 'carpd/nat', pattern: /[a-z][a-z0-9_-]*(?:\/[a-z][a-z0-9_-]*)*/, description: 'BSD: pf anchor' },
  file: { pattern: /\/.+/, description: 'where the rules are rendered' },
};
/** @typedef {keyof typeof OPTIONS} Option */

/** @type {import('../../src/plugin-api.js').PluginDeclaration<Option>} */
export default {
  name: 'nat',
  apiVersion: 1,
  description: 'NAT rules that follow the VIP: an nftables table on Linux, a pf anchor on the BSDs',
  after: ['pfsync'],
  templates: ['nat.rules'],
  options: OPTIONS,
  hooks: {
    async setup(ctx) {
      natView(ctx);
      if (ctx.options.snat === undefined && ctx.options.dnat === undefined) ctx.log.warn('neither snat nor dnat is set: the rules are empty');
      await ctx.exec(ctx.os === 'linux' ? ['nft', '--version'] : ['pfctl', '-s', 'info']);
    },
    async render(ctx) {
      // Values are checked (natView); `{{name}}` is a quoted string where the syntax wants one.
      await ctx.renderTo('nat.rules', file(ctx), natView(ctx), { escape: 'conf-quoted', mode: 0o600 });
    },
    async master(ctx) {
      if (ctx.os === 'linux') await ctx.exec(['nft', '-f', file(ctx)]);
      else await ctx.exec(['pfctl', '-a', ctx.options.anchor ?? 'carpd/nat', '-f', file(ctx)]);
    },
    // After the VIP is gone (INIT falls back to this hook too).
    async backup(ctx) {
      if (ctx.os !== 'linux') {
        await ctx.exec(['pfctl', '-a', ctx.options.anchor ?? 'carpd/nat', '-F', 'all']);
        return;
      }
      const r = await ctx.exec(['nft', 'delete', 'table', 'ip', ctx.options.table ?? 'carpd_nat'], { check: false });
      // Deleting a table that is not there is what we want anyway.
      if (r.exitCode !== 0 && !/No such file or directory/.test(r.stderr)) {
        throw new Error(`nft delete table failed: ${r.stderr.trim().split('\n')[0] ?? `exit ${r.exitCode}`}`);
      }
    },
  },
};
