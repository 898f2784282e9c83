/** A small argv reader shared by the subcommands: repeatable options, `--x=y` and `--x y`. */
export class UsageError extends Error {
  readonly code = 'CARPD_ERR_USAGE';
}

export interface ParsedArgs {
  opts: Map<string, string[]>;
  flags: Set<string>;
  positional: string[];
}

/**
 * Parses `args`; `withValue` lists the options that take a value (e.g. `-c`, `--control`),
 * `flags` the ones that don't. Anything else starting with `-` is an error.
 */
export function parseArgs(args: readonly string[], withValue: readonly string[], flags: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { opts: new Map(), flags: new Set(), positional: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.positional.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      out.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (withValue.includes(name)) {
      const value = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : args[++i];
      if (value === undefined) throw new UsageError(`option ${name} needs a value`);
      out.opts.set(name, [...(out.opts.get(name) ?? []), value]);
    } else if (flags.includes(a)) {
      out.flags.add(a);
    } else {
      throw new UsageError(`unknown option ${a}`);
    }
  }
  return out;
}

/** The last value of an option, or undefined. */
export function last(p: ParsedArgs, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = p.opts.get(n);
    if (v?.length) return v[v.length - 1];
  }
  return undefined;
}

/** An integer option within [min, max]. */
export function intOpt(p: ParsedArgs, name: string, min: number, max: number, dflt: number): number {
  const v = last(p, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} must be an integer in ${min}..${max}`);
  return n;
}
