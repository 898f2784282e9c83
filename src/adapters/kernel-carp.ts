/**
 * One entry point for the composition root that will wire the kernel's CARP into `carpd run`:
 * FreeBSD, pfSense and OPNsense follow devd; OpenBSD follows route monitor.
 *
 * Wiring, as the tests use it: `const src = createKernelCarpSource(os, { logger, names })`,
 * listeners on 'transition' (plugin host, event log, metrics) and the phase gate set before
 * `await src.start()` — start emits `INIT -> STATE` (reason `kernel snapshot: found STATE`) for
 * every vhid the kernel already runs, so followers converge as with the engine's start; demotions
 * set before start are written at start. On shutdown `await src.stop()` takes back exactly the
 * demotion carpd added. `names` (e.g. parsePfsenseVips(config.xml).names) labels vhids in status.
 * Both sources can force a state: the port's remark that OpenBSD cannot predates the reading of
 * setcarp_state() recorded in test/fixtures/kernel/README.md.
 */
import { FreebsdKernelCarpSource, type FreebsdKernelOptions } from './kernel-freebsd.js';
import { OpenbsdKernelCarpSource, type OpenbsdKernelOptions } from './kernel-openbsd.js';

export type KernelOs = 'freebsd' | 'openbsd';
export type KernelCarpSource = FreebsdKernelCarpSource | OpenbsdKernelCarpSource;
export type KernelCarpOptions = FreebsdKernelOptions & OpenbsdKernelOptions;

export { FreebsdKernelCarpSource, OpenbsdKernelCarpSource };

/** The source for `os`; `start()` it, `stop()` it on shutdown (which undoes carpd's demotion share). */
export function createKernelCarpSource(os: KernelOs, opts: KernelCarpOptions = {}): KernelCarpSource {
  return os === 'openbsd' ? new OpenbsdKernelCarpSource(opts) : new FreebsdKernelCarpSource(opts);
}

/** The kernel whose CARP runs here, from `process.platform`; undefined where there is none to follow. */
export function kernelOsOf(platform: string): KernelOs | undefined {
  if (platform === 'freebsd') return 'freebsd';
  if (platform === 'openbsd') return 'openbsd';
  return undefined;
}
