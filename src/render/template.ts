/**
 * Rendering mustache templates. Every render names its escaper; a variable or section the view
 * does not define is an error, found by walking the template's tokens against the view before
 * rendering. Finding template files is adapters/templates.ts.
 */
import Mustache from 'mustache';
import type { Escaper, EscaperName } from './escape.js';
import type { OsName } from './os.js';
import { RenderError, RENDER_CODES } from './errors.js';

export interface RenderOptions {
  /** How values are written: the escaper for the target format (never HTML). */
  escape: EscaperName | Escaper;
}

/** A view: what the template's names resolve against. */
export type TemplateView = Record<string, unknown>;

/** Plugin templates as the plugin host sees them; src/adapters/templates.ts finds and reads them on disk. */
export interface TemplateSource {
  readonly os: OsName;
  /** Where `plugin`'s template `name` may live, most specific first. */
  candidates(plugin: string, name: string, extraDir?: string): string[];
  /** The file that would be used, or undefined. */
  resolve(plugin: string, name: string, extraDir?: string): string | undefined;
  /** Renders `plugin`'s template `name` with `view`, escaping every value for the target format. */
  render(plugin: string, name: string, view: TemplateView, opts: RenderOptions, extraDir?: string): string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MAX_PARTIAL_DEPTH = 16;

/** A template name is a file name, not a path. */
export function checkTemplateName(name: string): void {
  if (!NAME_RE.test(name) || name.includes('..')) throw new RenderError(RENDER_CODES.NAME, `bad template name "${name}"`);
}

type Token = [string, string, number, number, Token[]?, ...unknown[]];

interface Ctx {
  view: unknown;
  parent?: Ctx;
}

function has(obj: unknown, key: string): boolean {
  return obj !== null && (typeof obj === 'object' || typeof obj === 'function') && key in (obj as object);
}

/** Mustache's lookup: the first context holding the name's head, then the dotted path within it. */
function lookup(ctx: Ctx, name: string): unknown {
  if (name === '.') return ctx.view;
  const [head, ...rest] = name.split('.');
  for (let c: Ctx | undefined = ctx; c; c = c.parent) {
    if (!has(c.view, head!)) continue;
    let v = (c.view as Record<string, unknown>)[head!];
    for (const part of rest) {
      if (!has(v, part)) return undefined;
      v = (v as Record<string, unknown>)[part];
    }
    return v;
  }
  return undefined;
}

function parse(text: string, what: string): Token[] {
  try {
    return Mustache.parse(text) as unknown as Token[];
  } catch (e) {
    throw new RenderError(RENDER_CODES.SYNTAX, `template ${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Collects names the view leaves undefined, following sections and partials as rendering would. */
function findMissing(tokens: Token[], ctx: Ctx, partial: (name: string) => Token[], missing: Set<string>, depth: number): void {
  for (const t of tokens) {
    const [type, name] = t;
    if (type === 'name' || type === '&') {
      if (lookup(ctx, name) === undefined) missing.add(name);
    } else if (type === '#' || type === '^') {
      const v = lookup(ctx, name);
      if (v === undefined) {
        missing.add(name);
        continue;
      }
      const inner = t[4] ?? [];
      if (typeof v === 'function') continue; // a lambda renders its own text
      if (type === '^') {
        if (!v || (Array.isArray(v) && v.length === 0)) findMissing(inner, ctx, partial, missing, depth);
      } else if (Array.isArray(v)) {
        for (const item of v) findMissing(inner, { view: item, parent: ctx }, partial, missing, depth);
      } else if (v) {
        findMissing(inner, typeof v === 'object' ? { view: v, parent: ctx } : ctx, partial, missing, depth);
      }
    } else if (type === '>') {
      if (depth >= MAX_PARTIAL_DEPTH) throw new RenderError(RENDER_CODES.SYNTAX, `partials nest deeper than ${MAX_PARTIAL_DEPTH} (a loop?)`);
      findMissing(partial(name), ctx, partial, missing, depth + 1);
    }
  }
}

/**
 * Renders `text` with `view`. `loadPartial` reads `{{> name}}`. Throws CARPD_ERR_TEMPLATE_VARIABLE
 * naming every undefined name (never a value).
 */
export function renderString(text: string, view: TemplateView, escape: Escaper, loadPartial: (name: string) => string = noPartials, what = 'template'): string {
  const partialText = new Map<string, string>();
  const getPartial = (name: string): string => {
    let p = partialText.get(name);
    if (p === undefined) partialText.set(name, (p = loadPartial(name)));
    return p;
  };
  const missing = new Set<string>();
  findMissing(parse(text, what), { view }, (name) => parse(getPartial(name), `${what} > ${name}`), missing, 0);
  if (missing.size > 0) {
    throw new RenderError(RENDER_CODES.VARIABLE, `template ${what}: no value for ${[...missing].map((m) => `"${m}"`).join(', ')}`);
  }
  // Per call: the global Mustache.escape is never touched.
  return Mustache.render(text, view, (name) => getPartial(name), { escape });
}

function noPartials(name: string): string {
  throw new RenderError(RENDER_CODES.MISSING, `no partial "${name}"`);
}
