/** Loading configuration files into one validated model: the one path for run, check and config. */
import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { defaultGlobal, parseCarpdIni } from './carpd-ini.js';
import { Code, error, type Diagnostic } from './errors.js';
import type { CarpModel, ExtraSection, VhidConfig } from './model.js';
import { validateModel } from './validate.js';

export type ConfigFormat = 'carpd';

export interface LoadOptions {
  /** Force a format instead of detecting it per file. */
  format?: string;
}

export interface LoadResult {
  model: CarpModel;
  diagnostics: Diagnostic[];
}

const FORMATS: readonly string[] = ['carpd'];

/**
 * Guesses a file's format. carpd.conf is recognized by its `[carpd]`/`[vhid.…]` sections, or by a
 * `.conf`/`.ini` name when the content has a section header or nothing at all; a `.conf` made of
 * bare `key=value` lines (rc.conf, sysctl.conf) is not carpd's.
 */
export function detectFormat(file: string, text: string): ConfigFormat | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !/^[;#]/.test(l));
  if (lines.some((l) => /^\[(carpd|vhid\.[^\]]*)\]/.test(l))) return 'carpd';
  const ext = extname(file).toLowerCase();
  if (ext !== '.conf' && ext !== '.ini') return undefined;
  if (lines.length === 0 || lines[0]!.startsWith('[')) return 'carpd';
  return undefined;
}

/** Reads, parses, merges and validates `files`. Later files override [carpd] keys; vhids add up. */
export function loadConfig(files: string[], opts: LoadOptions = {}): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const global = defaultGlobal();
  const vhids: VhidConfig[] = [];
  const extra: ExtraSection[] = [];

  for (const file of files) {
    let text: string;
    let mode: number;
    try {
      text = readFileSync(file, 'utf8');
      mode = statSync(file).mode;
    } catch (e) {
      diagnostics.push(error({ file, line: 1 }, Code.CONFIG_READ, `cannot read: ${readError(e)}`));
      continue;
    }
    const format = opts.format ?? detectFormat(file, text);
    if (format === undefined || !FORMATS.includes(format)) {
      const named = opts.format !== undefined ? ` "${opts.format}"` : '';
      diagnostics.push(error({ file, line: 1 }, Code.CONFIG_FORMAT, `unknown configuration format${named}`));
      continue;
    }
    const r = parseCarpdIni(text, file, { fileMode: mode });
    diagnostics.push(...r.diagnostics);
    Object.assign(global, r.globalSet);
    vhids.push(...r.model.vhids);
    extra.push(...(r.model.extra ?? []));
  }

  const model: CarpModel = { global, vhids };
  if (extra.length > 0) model.extra = extra;
  diagnostics.push(...validateModel(model));
  // Report in file order, then line order, as a compiler would.
  const rank = (d: Diagnostic) => files.indexOf(d.file);
  diagnostics.sort((a, b) => rank(a) - rank(b) || a.line - b.line);
  return { model, diagnostics };
}

function readError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? String(e);
}
