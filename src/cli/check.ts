/** `carpd check` and `carpd config`: the start-up config path, without starting anything. */
import { error, formatDiagnostic, hasErrors, parseSource, type Diagnostic } from '../config/errors.js';
import type { CarpModel } from '../config/model.js';
import { pluginProblems } from '../daemon/plugins.js';
import { FORMAT_NAMES, type LoadResult } from '../config/load.js';
import { loadConfigFiles } from '../adapters/config-files.js';
import { comparePeers } from '../config/peer-check.js';
import { passwordWarnings } from '../config/validate.js';
import { redactModel } from '../config/redact.js';
import { last, parseArgs, UsageError, type ParsedArgs } from './args.js';

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** Exit status for a command-line mistake, as in run's UsageError. */
const EXIT_USAGE = 2;

/**
 * `carpd check -c FILE… [--format F] [--peer FILE…] [--peer-format F]`: `configuration OK` and 0,
 * or `FILE:LINE: message` lines and 1. With --peer, this node's vhids are compared with the
 * peer's (files after --peer are all the peer's).
 */
export async function checkCommand(args: string[], io: Io): Promise<number> {
  const loaded = load('check', args, ['--peer', '--peer-format'], [], io);
  if (typeof loaded === 'number') return loaded;
  const { result, parsed } = loaded;
  // A vhid without a password is a warning once the files are otherwise sound (errors first).
  const diagnostics = [...result.diagnostics, ...(hasErrors(result.diagnostics) ? [] : passwordWarnings(result.model))];
  const peerFiles = [...(parsed.opts.get('--peer') ?? []), ...parsed.positional];
  if (peerFiles.length > 0) {
    const peerFormat = formatOption(parsed, '--peer-format');
    if (typeof peerFormat === 'object') return usage('check', peerFormat.error, io);
    const peer = loadConfigFiles(peerFiles, peerFormat !== undefined ? { format: peerFormat } : {});
    diagnostics.push(...peer.diagnostics);
    if (!hasErrors(result.diagnostics) && !hasErrors(peer.diagnostics)) diagnostics.push(...comparePeers(result.model, peer.model));
  }
  if (!hasErrors(result.diagnostics)) diagnostics.push(...(await pluginDiagnostics(result.model)));
  for (const d of diagnostics) io.err(formatDiagnostic(d));
  if (hasErrors(diagnostics)) return 1;
  io.out('configuration OK');
  return 0;
}

/** Start-up's plugin validation, as diagnostics at the `[plugin.NAME]` (or `[health.NAME]`) line. */
async function pluginDiagnostics(model: CarpModel): Promise<Diagnostic[]> {
  const problems = await pluginProblems(model);
  const fallback = model.plugins?.[0]?.source ?? model.health?.[0]?.source ?? model.vhids[0]?.source ?? 'config:1';
  return problems.map((p) => {
    const where = model.plugins?.find((c) => c.name === p.plugin)?.source ?? model.health?.find((h) => p.plugin === `health.${h.name}`)?.source ?? fallback;
    return error(parseSource(where), p.code, p.message);
  });
}

/** `carpd config -c FILE… [--show-secrets]`: the normalized model as JSON, secrets redacted. */
export async function configCommand(args: string[], io: Io): Promise<number> {
  const loaded = load('config', args, [], ['--show-secrets'], io);
  if (typeof loaded === 'number') return loaded;
  const { result, parsed } = loaded;
  for (const d of result.diagnostics) io.err(formatDiagnostic(d));
  if (hasErrors(result.diagnostics)) return 1;
  io.out(JSON.stringify(redactModel(result.model, parsed.flags.has('--show-secrets')), null, 2));
  return 0;
}

/** `--format NAME`: undefined when absent, `{error}` when unknown. */
export function formatOption(p: ParsedArgs, name = '--format'): string | undefined | { error: string } {
  const f = last(p, name);
  if (f === undefined || FORMAT_NAMES[f] !== undefined) return f;
  return { error: `${name} must be one of ${Object.keys(FORMAT_NAMES).join(', ')}` };
}

function usage(cmd: string, message: string, io: Io): number {
  io.err(`carpd ${cmd}: ${message}`);
  const extra = cmd === 'check' ? ' [--peer FILE...] [--peer-format F]' : cmd === 'config' ? ' [--show-secrets]' : '';
  io.err(`usage: carpd ${cmd} -c FILE [-c FILE]... [--format F] [--engine E]${extra}`);
  return EXIT_USAGE;
}

function load(cmd: string, args: string[], withValue: string[], flags: string[], io: Io): { result: LoadResult; parsed: ParsedArgs } | number {
  let p: ParsedArgs;
  try {
    p = parseArgs(args, ['-c', '--config', '--format', '--engine', ...withValue], flags);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usage(cmd, e.message, io);
  }
  // Words after --peer FILE are more peer files; anywhere else they are a mistake.
  if (p.positional.length > 0 && !p.opts.has('--peer')) return usage(cmd, `unexpected argument "${p.positional[0]}"`, io);
  const files = [...(p.opts.get('-c') ?? []), ...(p.opts.get('--config') ?? [])];
  if (files.length === 0) return usage(cmd, `${cmd} needs at least one -c FILE`, io);
  const format = formatOption(p);
  if (typeof format === 'object') return usage(cmd, format.error, io);
  const engine = last(p, '--engine');
  if (engine !== undefined && engine !== 'carpd' && engine !== 'kernel' && engine !== 'keepalived') {
    return usage(cmd, '--engine must be one of carpd, kernel, keepalived', io);
  }
  return { result: loadConfigFiles(files, { ...(format !== undefined ? { format } : {}), ...(engine !== undefined ? { engine } : {}) }), parsed: p };
}
