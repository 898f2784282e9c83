/**
 * The plugin API as plugins import it: `carpd/plugin-api` from outside the tree, this file from
 * plugins/. The types are host/types.ts, with the declaration and the hook context generic over
 * the option names, so that `ctx.options.NAME` must name a declared option:
 *
 *   const OPTIONS = { port: { default: '80' } };
 *   /** @type {import('carpd/plugin-api').PluginDeclaration<keyof typeof OPTIONS>} *\/
 *   export default { name: 'x', apiVersion: 1, options: OPTIONS, hooks: { master: (ctx) => ctx.options.port } };
 *
 * The only values are ucarp's script rules, which the `script` plugin shares with ucarp mode.
 */
import type * as Host from './host/types.js';

export type {
  CarpState,
  Escaper,
  EscaperName,
  ExecOptions,
  ExecResult,
  HealthSpec,
  HookEvent,
  HookName,
  OptionSpec,
  OsName,
  PluginLogger,
  RenderOptions,
  ScopeKind,
  ScopeView,
  TemplateView,
  VhidView,
  WriteOptions,
  WriteResult,
} from './host/types.js';
export { ucarpArgv, ucarpScriptFor, type ScriptPolicy, type ScriptTransition } from './proto/ucarp-scripts.js';

/** What a hook gets; `options` has exactly the declared names (defaults applied). */
export interface PluginContext<Option extends string = string> extends Omit<Host.PluginContext, 'options'> {
  readonly options: Readonly<Record<Option, string>>;
}

/** A hook: may be async; a throw or rejection is a failure. `checkHealth` may also return false. */
export type Hook<Option extends string = string> = (ctx: PluginContext<Option>) => unknown;

/** What `plugins/<name>/plugin.js` default-exports, its options named by `Option`. */
export interface PluginDeclaration<Option extends string = string> extends Omit<Host.PluginDeclaration, 'options' | 'hooks'> {
  /** The options it takes in `[plugin.NAME]`. When given, an unknown option is an error. */
  options?: Readonly<Record<Option, Host.OptionSpec>>;
  hooks: Readonly<Partial<Record<Host.HookName, Hook<Option>>>>;
}
