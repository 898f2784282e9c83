/**
 * `carpd plan -c FILE… --vhid VHID@IF --to MASTER|BACKUP [--json] [--root DIR] [--os OS]`: every
 * step the plugin host would take for that transition, in order, with rendered commands and file
 * diffs. Nothing is executed; files are written only under --root.
 */
import { formatDiagnostic, hasErrors } from '../config/errors.js';
import { loadConfigFiles } from '../adapters/config-files.js';
import { PluginsInvalidError } from '../host/errors.js';
import { formatPlan, planTransition } from '../host/plan.js';
import { findVhid } from '../host/scope.js';
import { detectOs, isOsName, OS_NAMES } from '../render/os.js';
import { last, parseArgs, UsageError } from './args.js';
import type { Io } from './check.js';

const USAGE = 'usage: carpd plan -c FILE [-c FILE]... --vhid VHID@IF --to MASTER|BACKUP [--json] [--root DIR] [--os linux|freebsd|openbsd]';

export async function planCommand(args: string[], io: Io): Promise<number> {
  let files: string[];
  let vhidRef: string;
  let to: 'MASTER' | 'BACKUP';
  let json: boolean;
  let root: string | undefined;
  let os;
  try {
    const p = parseArgs(args, ['-c', '--config', '--vhid', '--to', '--root', '--os'], ['--json']);
    if (p.positional.length > 0) throw new UsageError(`unexpected argument "${p.positional[0]}"`);
    files = [...(p.opts.get('-c') ?? []), ...(p.opts.get('--config') ?? [])];
    if (files.length === 0) throw new UsageError('plan needs at least one -c FILE');
    const v = last(p, '--vhid');
    if (!v) throw new UsageError('plan needs --vhid VHID@IF');
    vhidRef = v;
    const t = last(p, '--to')?.toUpperCase();
    if (t !== 'MASTER' && t !== 'BACKUP') throw new UsageError('plan needs --to MASTER or --to BACKUP');
    to = t;
    json = p.flags.has('--json');
    root = last(p, '--root');
    const o = last(p, '--os') ?? detectOs();
    if (!isOsName(o)) throw new UsageError(`--os must be one of ${OS_NAMES.join(', ')}`);
    os = o;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`carpd plan: ${e.message}`);
    io.err(USAGE);
    return 2;
  }

  const { model, diagnostics } = loadConfigFiles(files);
  for (const d of diagnostics) io.err(formatDiagnostic(d));
  if (hasErrors(diagnostics)) return 1;
  const v = findVhid(vhidRef, model.vhids);
  if (!v) {
    io.err(`carpd plan: no vhid ${vhidRef} (known: ${model.vhids.map((x) => x.key).join(', ') || 'none'})`);
    return 1;
  }
  try {
    const plan = await planTransition(model, { key: v.key, to, os, ...(root !== undefined ? { root } : {}) });
    if (json) io.out(JSON.stringify(plan, null, 2));
    else for (const line of formatPlan(plan)) io.out(line);
    return plan.steps.some((s) => s.kind === 'error') ? 1 : 0;
  } catch (e) {
    if (e instanceof PluginsInvalidError) {
      for (const err of e.errors) io.err(`carpd plan: ${err.message} [${err.code}]`);
      return 1;
    }
    throw e;
  }
}
