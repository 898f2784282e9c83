/**
 * Shared pieces of the built-in plugin tests against real services: `carpd run` nodes in lab
 * namespaces with plugin sections, and their control sockets.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { StatusData } from '../../src/daemon/reports.js';
import { CARPD_JS, labVip } from '../../src/lab/lab.js';
import { waitFor, type Lab, type LabNode } from '../../src/lab/netns.js';

export const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
export const VIP = labVip(1);

export interface Daemon {
  node: LabNode;
  child: ChildProcess;
  sock: string;
  /** The node's own scratch directory under the lab's. */
  dir: string;
  lines: string[];
}

/** A node's directory under the lab dir (created). */
export function nodeDir(lab: Lab, node: LabNode): string {
  const dir = join(lab.dir, node.name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** carpd.conf for one node: vhid 1 (the lab VIP) on eth0, plus the given sections. */
export function nodeConf(opts: { advskew: number; passfile: string; sections: string[] }): string {
  return [
    '[carpd]',
    'log = 5',
    'hook_timeout = 15s',
    '',
    '[vhid.lan]',
    'vhid = 1',
    'interface = eth0',
    `address = ${VIP}/16`,
    'advbase = 1',
    `advskew = ${opts.advskew}`,
    `passfile = ${opts.passfile}`,
    '',
    ...opts.sections,
    '',
  ].join('\n');
}

/**
 * Starts `carpd run` in the node's namespace. With `privateRun`, carpd (and every service it
 * starts) runs in a mount namespace of its own with a fresh tmpfs on /run holding `runDirs`: a
 * service's runtime directory (OpenBGPD's chroot /run/openbgpd) without touching the host's /run.
 */
export function startCarpd(lab: Lab, node: LabNode, conf: string, opts: { privateRun?: string[] } = {}): Daemon {
  const dir = nodeDir(lab, node);
  const file = join(dir, 'carpd.conf');
  writeFileSync(file, conf, { mode: 0o600 });
  const sock = join(dir, 'carpd.sock');
  const argv = [process.execPath, CARPD_JS, 'run', '-c', file, '--control', sock];
  const env = { STATE_DIRECTORY: join(dir, 'state') };
  let child: ChildProcess;
  if (opts.privateRun) {
    const script = ['set -e', 'mount -t tmpfs -o mode=0755,size=8m carpd-test-run /run', ...opts.privateRun.map((d) => `mkdir -p '${d}'`), 'exec "$@"'].join(
      '\n',
    );
    child = lab.spawn(node.ns, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'carpd', ...argv], { env });
  } else {
    child = lab.spawn(node.ns, argv, { env });
  }
  const d: Daemon = { node, child, sock, dir, lines: [] };
  for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on('line', (l) => d.lines.length < 5000 && d.lines.push(l));
  return d;
}

/** carpctl in the daemon's namespace, bounded. */
export async function ctl(lab: Lab, d: Daemon, ...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await lab.exec(d.node.ns, [process.execPath, CARPCTL_JS, '-s', d.sock, ...args], { timeoutMs: 10_000 });
  return { code: r.exitCode, out: r.stdout, err: r.stderr };
}

export async function stateOf(lab: Lab, d: Daemon, key = '1@eth0'): Promise<string | undefined> {
  const r = await ctl(lab, d, 'status', '--json');
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.out) as StatusData).vhids.find((v) => v.key === key)?.state;
}

export async function waitState(lab: Lab, d: Daemon, state: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => (await stateOf(lab, d)) === state, {
    timeoutMs,
    intervalMs: 200,
    what: `${d.node.name} ${state}; its log:\n${d.lines.join('\n')}`,
  });
}

export interface HookEvent {
  type: 'hook';
  plugin: string;
  hook: string;
  result: string;
  seq: number;
  error?: string;
}

/** The hook runs the daemon reports (`carpctl events`). */
export async function hookRuns(lab: Lab, d: Daemon): Promise<HookEvent[]> {
  const r = await ctl(lab, d, 'events', '--json', '-n', '1000');
  return r.out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string })
    .filter((e): e is HookEvent => e.type === 'hook');
}

/**
 * Stops carpd with SIGTERM (it runs its shutdown hooks) and waits (bounded) for it to exit;
 * SIGKILL after `timeoutMs`. Its own timer is cleared, so nothing keeps the test process alive.
 */
export async function stopCarpd(lab: Lab, d: Daemon, timeoutMs = 20_000): Promise<number | null> {
  const c = d.child;
  if (c.exitCode !== null || c.signalCode !== null) return c.exitCode;
  const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
  lab.kill(c, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))]);
  clearTimeout(timer);
  if (first !== 'timeout') return first;
  lab.kill(c, 'SIGKILL');
  return null;
}
