/**
 * Plugin host errors. Each has a stable `code`; hook errors are tagged `{plugin, hook, vhid, key,
 * seq}` (rollup's PluginDriver does the same for its hooks), so a log line or a control-socket
 * event says which plugin failed, in which hook, for which transition.
 */
import type { HookTag } from '../ports/exec.js';

export const HOST_CODES = {
  /** plugin.js could not be imported, or does not default-export an object. */
  LOAD: 'CARPD_ERR_PLUGIN_LOAD',
  /** The declaration is malformed (a field of the wrong type, an unknown field). */
  DECLARATION: 'CARPD_ERR_PLUGIN_DECLARATION',
  /** The name is not `^[a-z][a-z0-9-]*$` or differs from the folder. */
  NAME: 'CARPD_ERR_PLUGIN_NAME',
  API: 'CARPD_ERR_PLUGIN_API',
  /** A hook name outside the closed set, or a hook that is not a function. */
  HOOK: 'CARPD_ERR_PLUGIN_HOOK',
  /** `after` names a plugin that does not exist. */
  DEPENDENCY: 'CARPD_ERR_PLUGIN_DEPENDENCY',
  CYCLE: 'CARPD_ERR_PLUGIN_CYCLE',
  /** The plugin does not support this OS. */
  OS: 'CARPD_ERR_PLUGIN_OS',
  /** The config names a plugin that is in no plugin directory. */
  UNKNOWN: 'CARPD_ERR_PLUGIN_UNKNOWN',
  /** Two plugin directories hold the same name, or the config names a plugin twice. */
  DUPLICATE: 'CARPD_ERR_PLUGIN_DUPLICATE',
  /** `follow` names no vhid or group, or a scope kind the plugin does not take. */
  FOLLOW: 'CARPD_ERR_PLUGIN_FOLLOW',
  /** An option is unknown, missing or invalid. */
  OPTION: 'CARPD_ERR_PLUGIN_OPTION',
  /** A declared template does not exist for this OS. */
  TEMPLATE: 'CARPD_ERR_PLUGIN_TEMPLATE',
  /** A health schedule is invalid. */
  HEALTH: 'CARPD_ERR_PLUGIN_HEALTH',
  /** A hook threw or rejected. */
  HOOK_FAILED: 'CARPD_ERR_HOOK_FAILED',
  /** A hook did not complete within its timeout (its commands were killed). */
  HOOK_TIMEOUT: 'CARPD_ERR_HOOK_TIMEOUT',
  /** `checkHealth` returned false. */
  HEALTH_FAILED: 'CARPD_ERR_HEALTH_FAILED',
  /** A context method was called after its hook had completed. */
  HOOK_REVOKED: 'CARPD_ERR_HOOK_REVOKED',
  /** The host is stopping; the hook was aborted. */
  HOOK_ABORTED: 'CARPD_ERR_HOOK_ABORTED',
  /** A command exited non-zero, or was killed by a signal. */
  EXEC_STATUS: 'CARPD_ERR_EXEC_STATUS',
  EXEC_TIMEOUT: 'CARPD_ERR_EXEC_TIMEOUT',
  /** A command could not be started (ENOENT, EACCES). */
  EXEC_SPAWN: 'CARPD_ERR_EXEC_SPAWN',
} as const;

/** A problem with a plugin found at load; start-up reports all of them. */
export class PluginLoadError extends Error {
  readonly code: string;
  readonly plugin: string;
  constructor(code: string, plugin: string, message: string, options?: { cause?: unknown }) {
    super(`plugin ${plugin}: ${message}`, options);
    this.name = 'PluginLoadError';
    this.code = code;
    this.plugin = plugin;
  }
}

/** Every load problem at once, so the operator fixes them in one go. */
export class PluginsInvalidError extends Error {
  readonly code = 'CARPD_ERR_PLUGINS';
  constructor(readonly errors: PluginLoadError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'PluginsInvalidError';
  }
}

/** Which hook run an error belongs to. */
export type { HookTag };

/** An error from a hook run, tagged with where it happened. */
export class HookError extends Error {
  readonly code: string;
  readonly plugin: string;
  readonly hook: string;
  readonly seq: number;
  readonly vhid?: number;
  readonly key?: string;
  /** The code of the underlying error, when it had one (e.g. CARPD_ERR_EXEC_STATUS). */
  readonly causeCode?: string;

  constructor(code: string, tag: HookTag, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HookError';
    this.code = code;
    this.plugin = tag.plugin;
    this.hook = tag.hook;
    this.seq = tag.seq;
    if (tag.vhid !== undefined) this.vhid = tag.vhid;
    if (tag.key !== undefined) this.key = tag.key;
    const cc = (options?.cause as { code?: unknown } | undefined)?.code;
    if (typeof cc === 'string') this.causeCode = cc;
  }

  /** `plugin httpd: hook master (seq 42, 1@em0): message` */
  describe(): string {
    const where = [`seq ${this.seq}`, ...(this.key ? [this.key] : [])].join(', ');
    return `plugin ${this.plugin}: hook ${this.hook} (${where}): ${this.message}`;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      plugin: this.plugin,
      hook: this.hook,
      seq: this.seq,
      vhid: this.vhid,
      key: this.key,
      causeCode: this.causeCode,
      message: this.message,
    };
  }
}

/** A failing command, as `ctx.exec` reports it (argv[0] only: arguments may be sensitive). */
export class ExecError extends Error {
  readonly code: string;
  constructor(
    code: string,
    message: string,
    readonly exitCode: number | null = null,
  ) {
    super(message);
    this.name = 'ExecError';
    this.code = code;
  }
}

/** Wraps whatever a hook threw into a tagged HookError. */
export function tagError(err: unknown, tag: HookTag): HookError {
  if (err instanceof HookError) return err;
  const msg = err instanceof Error ? err.message : `threw ${typeof err === 'string' ? JSON.stringify(err) : String(err)}`;
  return new HookError(HOST_CODES.HOOK_FAILED, tag, msg, { cause: err });
}

/** The error message of anything thrown. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
