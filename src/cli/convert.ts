/** `carpd convert --to carpd.conf|rc.conf|hostname.carp -c FILE…`: a config rewritten in another format. */
import { basename } from 'node:path';
import { CONVERT_TARGETS, convertModel, type ConvertTarget } from '../config/convert.js';
import { formatDiagnostic, hasErrors } from '../config/errors.js';
import { loadConfigFiles } from '../adapters/config-files.js';
import { last, parseArgs, UsageError } from './args.js';
import { formatOption, type Io } from './check.js';

const USAGE = 'usage: carpd convert --to carpd.conf|rc.conf|hostname.carp -c FILE [-c FILE]... [--format F]';

/** Prints the converted config on stdout; diagnostics and what could not be carried on stderr. */
export async function convertCommand(args: string[], io: Io): Promise<number> {
  let to: ConvertTarget;
  let files: string[];
  let format: string | undefined;
  try {
    const p = parseArgs(args, ['-c', '--config', '--format', '--to'], []);
    if (p.positional.length > 0) throw new UsageError(`unexpected argument "${p.positional[0]}"`);
    files = [...(p.opts.get('-c') ?? []), ...(p.opts.get('--config') ?? [])];
    if (files.length === 0) throw new UsageError('convert needs at least one -c FILE');
    const t = last(p, '--to');
    if (t === undefined || !(CONVERT_TARGETS as readonly string[]).includes(t)) {
      throw new UsageError(`--to must be one of ${CONVERT_TARGETS.join(', ')}`);
    }
    to = t as ConvertTarget;
    const f = formatOption(p);
    if (typeof f === 'object') throw new UsageError(f.error);
    format = f;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`carpd convert: ${e.message}`);
    io.err(USAGE);
    return 2;
  }
  const { model, diagnostics } = loadConfigFiles(files, format !== undefined ? { format } : {});
  for (const d of diagnostics) io.err(formatDiagnostic(d));
  if (hasErrors(diagnostics)) return 1;
  const r = convertModel(model, to, { from: files.map((f) => basename(f)) });
  for (const w of r.warnings) io.err(`carpd convert: warning: ${w}`);
  for (const e of r.errors) io.err(`carpd convert: ${e}`);
  if (r.errors.length > 0) return 1;
  io.out(r.text.replace(/\n$/, ''));
  return 0;
}
