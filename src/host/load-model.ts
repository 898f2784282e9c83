/** The plugins and templates a model configures, found, imported and validated (the plugin host's start-up). */
import { join } from 'node:path';
import { packageRoot } from '../adapters/package-root.js';
import type { CarpModel } from '../config/model.js';
import { detectOs, type OsName } from '../render/os.js';
import { Templates } from '../adapters/templates.js';
import { HOST_CODES, PluginLoadError, PluginsInvalidError } from './errors.js';
import { loadPlugins, type LoadedPlugin } from './loader.js';
import { pluginFolders } from '../adapters/plugin-dirs.js';
import { validCron } from '../adapters/host-timers.js';

export interface LoadModelOptions {
  /** Default: this machine's OS. */
  os?: OsName;
  /** Default: `plugins/` and `templates/` of the carpd package. */
  builtinPluginDir?: string;
  builtinTemplateDir?: string;
}

/** Throws PluginsInvalidError listing every problem. */
export async function loadModelPlugins(model: CarpModel, opts: LoadModelOptions = {}): Promise<{ os: OsName; templates: Templates; plugins: LoadedPlugin[] }> {
  const os = opts.os ?? detectOs();
  if (!os) throw new PluginsInvalidError([new PluginLoadError(HOST_CODES.OS, '*', `carpd plugins do not run on ${process.platform}`)]);
  const root = opts.builtinPluginDir && opts.builtinTemplateDir ? '' : packageRoot();
  const templates = new Templates(
    { builtin: opts.builtinTemplateDir ?? join(root, 'templates'), ...(model.global.templateDir ? { override: model.global.templateDir } : {}) },
    os,
  );
  const plugins = await loadPlugins(model, {
    listFolders: pluginFolders,
    validCron,
    dirs: { builtin: opts.builtinPluginDir ?? join(root, 'plugins'), ...(model.global.pluginDir ? { operator: model.global.pluginDir } : {}) },
    os,
    templates,
  });
  return { os, templates, plugins };
}
