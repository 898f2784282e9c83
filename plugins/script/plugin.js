// @ts-check
/**
 * `script`: runs an operator's executable on state changes, the way ucarp or keepalived would call it.
 *
 *   [plugin.script]
 *   follow = lan
 *   style = ucarp                  ; ucarp (default) or keepalived
 *   up = /usr/local/libexec/vip-up.sh       ; ucarp: run as  up <interface> <vip> [xparam]
 *   down = /usr/local/libexec/vip-down.sh   ;        and   down <interface> <vip> [xparam]
 *   xparam = lan                   ; ucarp's extra argument
 *   neutral = no                   ; ucarp -n: no down script for the first BACKUP at start
 *   shutdown = yes                 ; ucarp -z: the down script when a MASTER shuts down
 *   notify = /usr/local/bin/notify ; keepalived: notify INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <prio>
 *                                  ; (GROUP <name> <STATE> for a group or node scope)
 *   when = post                    ; post (after the VIP step, default) or pre (before it)
 *
 * A group or node scope runs the ucarp-style script once per vhid in it. Environment: CARPD_STATE,
 * CARPD_FROM, CARPD_REASON, CARPD_SEQ, CARPD_SCOPE, and CARPD_KEY/CARPD_VHID/CARPD_INTERFACE of
 * the vhid concerned. A non-zero exit is a hook failure (the plugin's on_failure policy applies).
 */

import { ucarpArgv, ucarpScriptFor } from 'carpd/plugin-api';

const ABSOLUTE = /\/.*/;
const YES_NO = ['yes', 'no'];

/**
 * @param {import('../../src/plugin-api.js').PluginContext<Option>} ctx
 * @param {import('../../src/plugin-api.js').VhidView | undefined} v
 */
function env(ctx, v) {
  const ev = ctx.event;
  /** @type {Record<string, string>} */
  const out = {
    CARPD_STATE: ev.target ?? '',
    CARPD_FROM: ev.from ?? '',
    CARPD_REASON: ev.reason,
    CARPD_SEQ: String(ev.seq),
    CARPD_SCOPE: ev.scope.key,
  };
  if (v) Object.assign(out, { CARPD_KEY: v.key, CARPD_VHID: String(v.vhid), CARPD_INTERFACE: v.interface });
  return out;
}

/**
 * The argv lists a state change runs, in order (exported for tests and plan).
 * @param {import('../../src/plugin-api.js').PluginContext<Option>} ctx
 * @returns {{ argv: string[], vhid?: import('../../src/plugin-api.js').VhidView }[]}
 */
export function commands(ctx) {
  const o = ctx.options;
  const ev = ctx.event;
  const target = ev.target;
  if (!target) return [];
  const vhids = ev.scope.vhids;
  if (o.style === 'keepalived') {
    if (!o.notify) return [];
    const state = target === 'MASTER' ? 'MASTER' : target === 'BACKUP' ? 'BACKUP' : ev.reason === 'shutdown' ? 'STOP' : 'FAULT';
    if (ev.scope.kind === 'vhid' && vhids[0]) {
      const v = vhids[0];
      return [{ argv: [o.notify, 'INSTANCE', v.name ?? v.key, state, String(255 - v.advskew)], vhid: v }];
    }
    return [{ argv: [o.notify, 'GROUP', ev.scope.name, state] }];
  }
  // ucarp's rules, as ucarp mode runs them.
  const which = ucarpScriptFor({ from: ev.from, to: target, reason: ev.reason }, { neutral: o.neutral === 'yes', shutdown: o.shutdown !== 'no' });
  const script = which === 'up' ? o.up : which === 'down' ? o.down : undefined;
  if (!script) return [];
  return vhids.map((v) => ({ argv: ucarpArgv(script, v.interface, v.addresses, o.xparam), vhid: v }));
}

/**
 * @param {import('../../src/plugin-api.js').PluginContext<Option>} ctx
 * @param {'pre' | 'post'} phase
 */
async function fire(ctx, phase) {
  if ((ctx.options.when ?? 'post') !== phase) return;
  for (const c of commands(ctx)) await ctx.exec(c.argv, { env: env(ctx, c.vhid) });
}

/** The `[plugin.NAME]` options; `ctx.options` has exactly these names. */
const OPTIONS = {
  style: { default: 'ucarp', values: ['ucarp', 'keepalived'], description: 'argument convention' },
  up: { pattern: ABSOLUTE, description: 'ucarp: run going MASTER' },
  down: { pattern: ABSOLUTE, description: 'ucarp: run going BACKUP' },
  xparam: { description: 'ucarp: extra argument' },
  neutral: { default: 'no', values: YES_NO, description: 'ucarp -n' },
  shutdown: { default: 'yes', values: YES_NO, description: 'ucarp -z' },
  notify: { pattern: ABSOLUTE, description: 'keepalived: notify script' },
  when: { default: 'post', values: ['pre', 'post'], description: 'before or after the VIP step' },
};
/** @typedef {keyof typeof OPTIONS} Option */

/** @type {import('../../src/plugin-api.js').PluginDeclaration<Option>} */
export default {
  name: 'script',
  apiVersion: 1,
  description: 'run an executable with ucarp-style or keepalived-style arguments',
  options: OPTIONS,
  hooks: {
    async setup(ctx) {
      const o = ctx.options;
      const paths = o.style === 'keepalived' ? [o.notify] : [o.up, o.down];
      const given = /** @type {string[]} */ (paths.filter((p) => p !== undefined));
      if (given.length === 0) throw new Error(o.style === 'keepalived' ? 'style keepalived needs notify' : 'style ucarp needs up and/or down');
      for (const p of given) {
        const r = await ctx.exec(['test', '-x', p], { check: false });
        if (r.exitCode !== 0) throw new Error(`${p} is not an executable file`);
      }
    },
    'pre-master': (ctx) => fire(ctx, 'pre'),
    'pre-backup': (ctx) => fire(ctx, 'pre'),
    master: (ctx) => fire(ctx, 'post'),
    // INIT falls back to this hook too.
    backup: (ctx) => fire(ctx, 'post'),
  },
};
