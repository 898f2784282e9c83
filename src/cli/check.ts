/** `carpd check` and `carpd config`: the start-up config path, without starting anything. */
import { formatDiagnostic, hasErrors } from '../config/errors.js';
import { loadConfig, type LoadResult } from '../config/load.js';
import { redactModel } from '../config/redact.js';
import { last, parseArgs, UsageError } from './args.js';

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** Exit status for a command-line mistake, as in run's UsageError. */
const EXIT_USAGE = 2;

/** `carpd check -c FILE…`: `configuration OK` and 0, or `FILE:LINE: message` lines and 1. */
export async function checkCommand(args: string[], io: Io): Promise<number> {
  const loaded = load('check', args, [], io);
  if (typeof loaded === 'number') return loaded;
  const { result } = loaded;
  for (const d of result.diagnostics) io.err(formatDiagnostic(d));
  if (hasErrors(result.diagnostics)) return 1;
  io.out('configuration OK');
  return 0;
}

/** `carpd config -c FILE… [--show-secrets]`: the normalized model as JSON, secrets redacted. */
export async function configCommand(args: string[], io: Io): Promise<number> {
  const loaded = load('config', args, ['--show-secrets'], io);
  if (typeof loaded === 'number') return loaded;
  const { result, showSecrets } = loaded;
  for (const d of result.diagnostics) io.err(formatDiagnostic(d));
  if (hasErrors(result.diagnostics)) return 1;
  io.out(JSON.stringify(redactModel(result.model, showSecrets), null, 2));
  return 0;
}

function load(
  cmd: string,
  args: string[],
  flags: string[],
  io: Io,
): { result: LoadResult; showSecrets: boolean } | number {
  try {
    const p = parseArgs(args, ['-c', '--config', '--format'], flags);
    if (p.positional.length > 0) throw new UsageError(`unexpected argument "${p.positional[0]}"`);
    const files = [...(p.opts.get('-c') ?? []), ...(p.opts.get('--config') ?? [])];
    if (files.length === 0) throw new UsageError(`${cmd} needs at least one -c FILE`);
    const format = last(p, '--format');
    return {
      result: loadConfig(files, format !== undefined ? { format } : {}),
      showSecrets: p.flags.has('--show-secrets'),
    };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`carpd ${cmd}: ${e.message}`);
    io.err(`usage: carpd ${cmd} -c FILE [-c FILE]...${flags.map((f) => ` [${f}]`).join('')}`);
    return EXIT_USAGE;
  }
}
