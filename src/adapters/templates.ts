/**
 * Mustache templates on disk: `templates/<plugin>/<name>.mustache`, with per-OS variants
 * `<name>.<os>.mustache` and an operator override directory searched first.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RenderError, RENDER_CODES } from '../render/errors.js';
import { UNSAFE_PATH, untrustedPath } from './plugin-dirs.js';
import { escaperFor } from '../render/escape.js';
import type { TemplateSource } from '../render/template.js';
import type { OsName } from '../render/os.js';
import { checkTemplateName, renderString, type RenderOptions, type TemplateView } from '../render/template.js';

export interface TemplateDirs {
  /** The operator's override directory (`templateDir`), same `<plugin>/<name>` layout; searched first. */
  override?: string;
  /** carpd's own `templates/` directory. */
  builtin?: string;
}

export class Templates implements TemplateSource {
  constructor(
    private readonly dirs: TemplateDirs,
    readonly os: OsName,
  ) {}

  /** Where `plugin`'s template `name` may live, most specific first. `extraDir` is the plugin folder's own `templates/`. */
  candidates(plugin: string, name: string, extraDir?: string): string[] {
    checkTemplateName(name);
    const out: string[] = [];
    const roots = [this.dirs.override && join(this.dirs.override, plugin), this.dirs.builtin && join(this.dirs.builtin, plugin), extraDir];
    for (const root of roots) {
      if (!root) continue;
      out.push(join(root, `${name}.${this.os}.mustache`), join(root, `${name}.mustache`));
    }
    return out;
  }

  /**
   * The file that would be used, or undefined. Throws RenderError (CARPD_ERR_UNSAFE_PATH) when a
   * template directory that exists, or the file found, is owned by another user or writable by
   * group or others (plugin-dirs.ts untrustedPath): rendered files configure root's services, and
   * an override someone could drop in later must be refused now, not when a failover renders it.
   */
  resolve(plugin: string, name: string, extraDir?: string): string | undefined {
    for (const dir of [this.dirs.override, this.dirs.builtin]) {
      if (!dir || !existsSync(dir)) continue;
      const problem = untrustedPath(dir);
      if (problem) throw new RenderError(UNSAFE_PATH, `refusing template directory ${dir}: ${problem}`);
    }
    const found = this.candidates(plugin, name, extraDir).find((p) => existsSync(p));
    const problem = found === undefined ? undefined : untrustedPath(found);
    if (problem) throw new RenderError(UNSAFE_PATH, `refusing template ${found}: ${problem}`);
    return found;
  }

  private load(plugin: string, name: string, extraDir?: string): string {
    const path = this.resolve(plugin, name, extraDir);
    if (!path) throw new RenderError(RENDER_CODES.MISSING, `no template ${plugin}/${name} for ${this.os}`);
    return readFileSync(path, 'utf8');
  }

  /** Renders `plugin`'s template `name` with `view`, escaping every `{{value}}` for the target format. */
  render(plugin: string, name: string, view: TemplateView, opts: RenderOptions, extraDir?: string): string {
    const escape = escaperFor(opts.escape);
    return renderString(this.load(plugin, name, extraDir), view, escape, (p) => this.load(plugin, p, extraDir), `${plugin}/${name}`);
  }
}
