/**
 * `carpd install-service [--prefix DIR] [--os linux|freebsd|openbsd] [--init systemd|sysv]
 * [--bin DIR] [--force]`: puts the service files from rc.d/ where this OS looks for them and says
 * what to run next. The admin's settings (/etc/default/carpd) are never overwritten.
 */
import { fileExists, readText, replaceFile } from '../adapters/files.js';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { last, parseArgs, UsageError } from './args.js';
import type { Io } from '../ports/io.js';

/** rc.d/ of this package (dist/src/cli → ../../../rc.d). */
export const RCD_DIR = fileURLToPath(new URL('../../../rc.d/', import.meta.url));
/** Where the scripts expect the binaries unless told otherwise. */
export const DEFAULT_BIN = '/usr/local/bin';

export type ServiceOs = 'linux' | 'freebsd' | 'openbsd';
export type LinuxInit = 'systemd' | 'sysv';

export interface ServiceFile {
  /** File name under rc.d/. */
  source: string;
  /** Absolute path on the target system (before the prefix). */
  target: string;
  mode: number;
  /** Admin settings: installed only when absent. */
  config?: boolean;
}

export interface ServicePlan {
  os: ServiceOs;
  init?: LinuxInit;
  files: ServiceFile[];
  /** What the admin runs next. */
  next: string[];
}

/** Which files go where, and the commands that enable and start the service. */
export function servicePlan(os: ServiceOs, init: LinuxInit = 'sysv'): ServicePlan {
  switch (os) {
    case 'freebsd':
      return {
        os,
        files: [{ source: 'carpd', target: '/usr/local/etc/rc.d/carpd', mode: 0o755 }],
        next: ['sysrc carpd_enable=YES', 'service carpd start'],
      };
    case 'openbsd':
      return {
        os,
        files: [{ source: 'carpd.openbsd', target: '/etc/rc.d/carpd', mode: 0o555 }],
        next: ['rcctl enable carpd', 'rcctl start carpd'],
      };
    case 'linux':
      if (init === 'systemd') {
        return {
          os,
          init,
          files: [
            { source: 'carpd.service', target: '/etc/systemd/system/carpd.service', mode: 0o644 },
            { source: 'carpd.default', target: '/etc/default/carpd', mode: 0o644, config: true },
          ],
          next: ['systemctl daemon-reload', 'systemctl enable --now carpd'],
        };
      }
      return {
        os,
        init,
        files: [
          { source: 'carpd.init', target: '/etc/init.d/carpd', mode: 0o755 },
          { source: 'carpd.default', target: '/etc/default/carpd', mode: 0o644, config: true },
        ],
        next: ['update-rc.d carpd defaults', 'service carpd start'],
      };
  }
}

/** The file's text with the binaries' directory put in. */
export function renderServiceFile(text: string, binDir: string): string {
  if (binDir === DEFAULT_BIN) return text;
  return text.replaceAll(`${DEFAULT_BIN}/carpd`, `${binDir}/carpd`).replaceAll(`${DEFAULT_BIN}/carpctl`, `${binDir}/carpctl`);
}

function detectOs(): ServiceOs {
  const p = process.platform;
  if (p === 'linux' || p === 'freebsd' || p === 'openbsd') return p;
  throw new UsageError(`no service files for ${p}: use --os linux|freebsd|openbsd`);
}

/** Where `carpd` was run from, when it was run as an installed command. */
function detectBinDir(): string | undefined {
  const self = process.argv[1];
  return self && basename(self) === 'carpd' ? dirname(self) : undefined;
}

export async function installServiceCommand(args: string[], io: Io): Promise<number> {
  const p = parseArgs(args, ['--prefix', '--os', '--init', '--bin'], ['--force']);
  if (p.positional.length) throw new UsageError(`install-service: unexpected ${p.positional[0]}`);
  const osArg = last(p, '--os');
  if (osArg !== undefined && osArg !== 'linux' && osArg !== 'freebsd' && osArg !== 'openbsd') throw new UsageError('--os must be linux, freebsd or openbsd');
  const os = (osArg as ServiceOs | undefined) ?? detectOs();
  const initArg = last(p, '--init');
  if (initArg !== undefined && initArg !== 'systemd' && initArg !== 'sysv') throw new UsageError('--init must be systemd or sysv');
  const prefix = last(p, '--prefix') ?? '/';
  // systemd runs the machine when /run/systemd/system exists (sd_booted(3)).
  const init: LinuxInit = (initArg as LinuxInit | undefined) ?? (fileExists('/run/systemd/system') ? 'systemd' : 'sysv');
  const binArg = last(p, '--bin');
  const binDir = binArg ?? detectBinDir() ?? DEFAULT_BIN;
  if (!binArg && !detectBinDir())
    io.err(
      `install-service: the scripts expect ${DEFAULT_BIN}/carpd and ${DEFAULT_BIN}/carpctl (npm install -g carpd puts them there; --bin DIR for elsewhere)`,
    );

  const plan = servicePlan(os, init);
  for (const f of plan.files) {
    const dest = join(prefix, f.target);
    if (fileExists(dest) && (f.config || !p.flags.has('--force'))) {
      io.out(`kept ${dest} (exists${f.config ? ': your settings' : '; --force replaces it'})`);
      continue;
    }
    replaceFile(dest, renderServiceFile(readText(join(RCD_DIR, f.source)), binDir), f.mode);
    io.out(`installed ${dest}`);
  }
  io.out(`next (${os}${plan.init ? `, ${plan.init}` : ''}):`);
  for (const c of plan.next) io.out(`  ${c}`);
  return 0;
}
