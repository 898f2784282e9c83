/** `carpd run -c FILE…`: load, validate, then start the daemon. Same config path as `carpd check`. */
import { formatDiagnostic, hasErrors } from '../config/errors.js';
import { loadConfigFiles } from '../adapters/config-files.js';
import { createLogger } from '../adapters/logger.js';
import { commandLineReloader, runDaemon } from '../daemon/run.js';
import type { EngineName } from '../config/model.js';
import { passwordWarnings } from '../config/validate.js';
import type { Io } from '../ports/io.js';

const ENGINES: readonly EngineName[] = ['carpd', 'kernel', 'keepalived'];
import { intOpt, last, parseArgs, UsageError } from './args.js';

export async function runCommand(args: string[], io: Io): Promise<number> {
  const p = parseArgs(args, ['-c', '--config', '--control', '--log-level', '--log-file', '--format', '--engine', '--run-dir'], ['--log-timestamps']);
  const files = [...(p.opts.get('-c') ?? []), ...(p.opts.get('--config') ?? [])];
  if (files.length === 0) throw new UsageError('run needs at least one -c FILE');
  const format = last(p, '--format');
  const engine = last(p, '--engine');
  if (engine !== undefined && !ENGINES.includes(engine as EngineName)) throw new UsageError(`--engine must be one of ${ENGINES.join(', ')}`);
  const { model, diagnostics } = loadConfigFiles(files, { ...(format ? { format } : {}), ...(engine ? { engine: engine as EngineName } : {}) });
  for (const d of [...diagnostics, ...passwordWarnings(model)]) io.err(formatDiagnostic(d));
  if (hasErrors(diagnostics)) return 1;
  if (p.opts.has('--log-level')) model.global.log = intOpt(p, '--log-level', 0, 7, model.global.log);
  const control = last(p, '--control');
  if (control) model.global.control = control;
  if (!model.global.allow) {
    io.err('carpd: net.inet.carp.allow is off in the configuration; nothing to do');
    return 1;
  }
  const logFile = last(p, '--log-file');
  const logger = createLogger({ timestamps: p.flags.has('--log-timestamps') || !!logFile, ...(logFile ? { file: logFile } : {}) });
  const reload = commandLineReloader(['run', ...args]);
  // The instance lock's directory (one carpd per network namespace): tests and the lab give their own.
  const runDir = last(p, '--run-dir') ?? model.global.runDir;
  return runDaemon({ model, logger, ...(reload ? { reload } : {}), ...(runDir ? { lock: { runDir } } : {}) });
}
