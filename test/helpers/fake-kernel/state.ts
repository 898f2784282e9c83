/**
 * The one CARP state the simulated kernel keeps, in a JSON file shared by the fake tools
 * (separate processes) and the FakeKernel class in the test. Writes go through a lock directory
 * and an atomic rename, so concurrent tool runs neither lose an update nor read half a file.
 */
import { mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import type { CarpState } from '../../../src/core/machine.js';

export type FakeOs = 'freebsd' | 'openbsd';

export interface FakeVhid {
  /** FreeBSD: the physical interface the vhid lives on. OpenBSD: the carpN interface. */
  ifname: string;
  /** OpenBSD only: the physical interface under carpN. */
  carpdev?: string;
  vhid: number;
  state: CarpState;
  advbase: number;
  advskew: number;
  /** CIDR strings. */
  addresses: string[];
}

/** One state change, kept so that `route monitor` and the devd server can announce it. */
export interface FakeChange {
  seq: number;
  ifname: string;
  vhid: number;
  state: CarpState;
  /** OpenBSD's link word for the carp interface after the change (get_linkstate()). */
  link: string;
  /** Wall-clock ms, for route monitor's ctime. */
  at: number;
}

export interface FakeKernelState {
  /** FreeBSD net.inet.carp.demotion, OpenBSD the carp group's demote count. */
  demotion: number;
  vhids: FakeVhid[];
  seq: number;
  /** The last changes, oldest first, at most MAX_CHANGES. */
  changes: FakeChange[];
}

export const MAX_CHANGES = 256;

export function readState(path: string): FakeKernelState {
  return JSON.parse(readFileSync(path, 'utf8')) as FakeKernelState;
}

export function writeState(path: string, st: FakeKernelState): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(st, null, 1));
  renameSync(tmp, path);
}

/** Runs `fn` on the state under the lock and writes its result; bounded wait for the lock. */
export function updateState<T>(path: string, fn: (st: FakeKernelState) => T): T {
  const lock = `${path}.lock`;
  const deadline = Date.now() + 5000;
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || Date.now() > deadline || i > 10_000)
        throw new Error(`fake kernel: cannot lock ${path}`, { cause: e });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }
  try {
    const st = readState(path);
    const out = fn(st);
    writeState(path, st);
    return out;
  } finally {
    rmdirSync(lock);
  }
}

/** OpenBSD's carp link state follows the vhids of the interface: up if one is MASTER, down if one is BACKUP (carp_set_state()). */
export function openbsdLink(vhids: FakeVhid[], ifname: string): string {
  const mine = vhids.filter((v) => v.ifname === ifname);
  if (mine.some((v) => v.state === 'MASTER')) return 'master';
  if (mine.some((v) => v.state === 'BACKUP')) return 'backup';
  return 'invalid';
}

/** Sets a vhid's state and records the change; false when there is no such vhid or nothing changed. */
export function applyState(st: FakeKernelState, ifname: string, vhid: number, state: CarpState): boolean {
  const v = st.vhids.find((x) => x.ifname === ifname && x.vhid === vhid);
  if (!v || v.state === state) return false;
  v.state = state;
  st.seq++;
  st.changes.push({ seq: st.seq, ifname, vhid, state, link: openbsdLink(st.vhids, ifname), at: Date.now() });
  if (st.changes.length > MAX_CHANGES) st.changes.splice(0, st.changes.length - MAX_CHANGES);
  return true;
}
