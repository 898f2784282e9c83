/**
 * One entry point for the composition root that will wire the kernel's CARP into `carpd run`:
 * FreeBSD, pfSense and OPNsense follow devd; OpenBSD follows route monitor.
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
