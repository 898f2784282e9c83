/**
 * The simulated kernel for tests: one CARP state in a JSON file, the fake `ifconfig`, `sysctl` and
 * `route` in bin/ reading and changing it, and on FreeBSD a devd socket announcing every change.
 *
 * A change made by a fake tool (a separate process) reaches the devd clients through a poll of
 * the state file's change log, as a change made by the kernel would; setState() announces its
 * own change at once. `route -n monitor` polls the same log itself.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CarpState } from '../../../src/core/machine.js';
import { FakeDevd } from './devd-server.js';
import { devdCarpLine } from './format.js';
import { applyState, readState, updateState, writeState, type FakeKernelState, type FakeOs, type FakeVhid } from './state.js';

/** bin/ in the source tree; the wrappers there run the compiled cli.js. */
export const FAKE_KERNEL_BIN = fileURLToPath(new URL('../../../../test/helpers/fake-kernel/bin/', import.meta.url));

export interface FakeKernelOptions {
  os: FakeOs;
  vhids: FakeVhid[];
  demotion?: number;
  /** How often changes made by the tools are forwarded to devd (ms). */
  pollMs?: number;
  /** The poll stops by itself after this long (ms), whether or not stop() is called. */
  maxLifetimeMs?: number;
}

export class FakeKernel {
  readonly dir: string;
  readonly statePath: string;
  readonly argvLog: string;
  /** FreeBSD only. */
  readonly devd: FakeDevd | undefined;
  private announced: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();

  private constructor(
    readonly os: FakeOs,
    opts: FakeKernelOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'carpd-fake-kernel-'));
    this.statePath = join(this.dir, 'state.json');
    this.argvLog = join(this.dir, 'argv.log');
    writeState(this.statePath, { demotion: opts.demotion ?? 0, vhids: structuredClone(opts.vhids), seq: 0, changes: [] });
    this.announced = 0;
    this.devd = os === 'freebsd' ? new FakeDevd(join(this.dir, 'devd.pipe')) : undefined;
  }

  static async start(opts: FakeKernelOptions): Promise<FakeKernel> {
    const k = new FakeKernel(opts.os, opts);
    await k.devd?.start();
    const maxLifetime = opts.maxLifetimeMs ?? 120_000;
    k.timer = setInterval(() => {
      if (Date.now() - k.started > maxLifetime) k.stopPolling();
      else k.forward();
    }, opts.pollMs ?? 20);
    k.timer.unref();
    return k;
  }

  /** The environment the fake tools need, with bin/ first on PATH. */
  get env(): Record<string, string> {
    return {
      ...(process.env as Record<string, string>),
      PATH: `${FAKE_KERNEL_BIN}:${process.env.PATH ?? ''}`,
      FAKE_KERNEL_STATE: this.statePath,
      FAKE_KERNEL_OS: this.os,
      FAKE_KERNEL_ARGV_LOG: this.argvLog,
    };
  }

  state(): FakeKernelState {
    return readState(this.statePath);
  }

  /** Moves one vhid (`ifname` is the carpdev on FreeBSD, carpN on OpenBSD) and announces it. */
  setState(vhid: number, ifname: string, state: CarpState): boolean {
    const changed = updateState(this.statePath, (st) => applyState(st, ifname, vhid, state));
    this.forward();
    return changed;
  }

  /** Every vhid to `state`, as a failover of the whole box. */
  failover(state: CarpState): void {
    updateState(this.statePath, (st) => {
      for (const v of st.vhids) applyState(st, v.ifname, v.vhid, state);
    });
    this.forward();
  }

  /** The calls the fake tools received, as argv arrays (tool name first). */
  calls(): string[][] {
    let text: string;
    try {
      text = readFileSync(this.argvLog, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as string[]);
  }

  async stop(): Promise<void> {
    this.stopPolling();
    await this.devd?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private stopPolling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sends the devd lines of the changes not announced yet. */
  private forward(): void {
    let st: FakeKernelState;
    try {
      st = readState(this.statePath);
    } catch {
      return; // mid-rename; the next poll reads it
    }
    for (const c of st.changes) if (c.seq > this.announced) this.devd?.emit(devdCarpLine(c.vhid, c.ifname, c.state));
    this.announced = Math.max(this.announced, st.seq);
  }
}
