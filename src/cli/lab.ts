/** `carpd lab`: the command line of the namespace lab (src/lab runs it). */
import { runLab } from '../lab/lab.js';
import type { Io } from '../ports/io.js';
import { intOpt, parseArgs, UsageError } from './args.js';

export async function labCommand(args: string[], io: Io): Promise<number> {
  const p = parseArgs(args, ['--nodes', '--vhids', '--advskew-step'], ['--with-ucarp', '--no-rejoin']);
  const nCarpd = intOpt(p, '--nodes', 1, 8, 2);
  const vhids = intOpt(p, '--vhids', 1, 255, 1);
  const step = intOpt(p, '--advskew-step', 1, 120, 50);
  const withUcarp = p.flags.has('--with-ucarp');
  if (process.getuid?.() !== 0) throw new UsageError('lab needs root (network namespaces, raw sockets)');
  if (nCarpd + (withUcarp ? 1 : 0) < 2) throw new UsageError('a lab needs at least two nodes (--nodes 2, or --nodes 1 --with-ucarp)');
  return runLab({ nCarpd, vhids, step, withUcarp, rejoin: !p.flags.has('--no-rejoin') }, io);
}
