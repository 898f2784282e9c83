/**
 * Follows the CARP of a FreeBSD kernel (also pfSense and OPNsense): events from devd's stream
 * socket, state from `ifconfig`, demotion through `sysctl net.inet.carp.demotion`, forced state
 * through `ifconfig IF vhid N state …`. Not wired into `carpd run` yet.
 *
 * devd serves every client the same bytes (sbin/devd/devd.cc notify_clients()), so connecting
 * here takes nothing from pfSense's or OPNsense's own devd hooks.
 */
import { createConnection, type Socket } from 'node:net';
import { DEFAULT_GROUP } from '../core/demotion.js';
import { LOG } from '../ports/logger.js';
import type { StateSource } from '../ports/state-source.js';
import { parseDevdLine } from '../sources/devd.js';
import { parseFreebsdIfconfig } from '../sources/freebsd-ifconfig.js';
import { CARP_DEMOTION_OID, parseSysctlInt } from '../sources/freebsd-sysctl.js';
import { LineSplitter } from '../sources/text.js';
import { KernelSourceBase, type KernelSourceOptions, type KernelVhid } from './kernel-common.js';

export const DEVD_PIPE = '/var/run/devd.pipe';

export interface FreebsdKernelOptions extends KernelSourceOptions {
  /** devd's stream socket. */
  devdPath?: string;
}

export class FreebsdKernelCarpSource extends KernelSourceBase implements StateSource {
  readonly os = 'freebsd' as const;
  private readonly devdPath: string;
  private sock: Socket | undefined;
  private reconnectTimer: unknown;
  /** What carpd has added to net.inet.carp.demotion and not taken back. */
  private applied = 0;
  /** devd (re)connections so far, for tests and logs. */
  connects = 0;

  constructor(opts: FreebsdKernelOptions = {}) {
    super(opts);
    this.devdPath = opts.devdPath ?? DEVD_PIPE;
  }

  /** Connects to devd; the kernel is read at start as well, since devd may be down. */
  protected openEvents(): void {
    this.connect();
  }

  protected closeEvents(): void {
    this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.sock?.destroy();
    this.sock = undefined;
  }

  /** FreeBSD has one global demotion counter. */
  protected demotedGroups(): string[] {
    return [DEFAULT_GROUP];
  }

  private connect(): void {
    if (!this.running) return;
    const splitter = new LineSplitter();
    const sock = createConnection(this.devdPath);
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      this.connects++;
      this.backoff.reset();
      this.logger.log(LOG.INFO, `carp: kernel: connected to devd at ${this.devdPath}`);
      // Events may have been missed while devd was away: read the kernel again.
      void this.snapshotNow();
    });
    sock.on('data', (chunk: string) => {
      for (const line of splitter.push(chunk)) this.onLine(line);
    });
    sock.on('error', (err) => {
      this.logger.log(LOG.DEBUG, `carp: kernel: devd socket: ${err.message}`);
    });
    sock.on('close', () => {
      if (this.sock !== sock) return;
      this.sock = undefined;
      if (!this.running) return;
      const ms = this.backoff.next();
      this.logger.log(LOG.WARN, `carp: kernel: devd connection lost; retrying in ${ms} ms`);
      this.reconnectTimer = this.timers.setTimeout(() => {
        this.reconnectTimer = undefined;
        this.connect();
      }, ms);
    });
  }

  /** devd lines: only `system=CARP` ones matter; the rest is for devd's other clients. */
  private onLine(line: string): void {
    const ev = parseDevdLine(line);
    if (ev.kind !== 'carp') return;
    const key = this.key(ev.vhid, ev.ifname);
    // carp_set_state() announces only real changes, so the event is the new state of VHID@carpdev.
    if (!this.applyEvent(key, ev.state, 'kernel: devd CARP event')) {
      // A vhid created since the last snapshot: read it, with its addresses and timers.
      this.noteEvent(key);
      void this.snapshotNow();
    }
  }

  protected async readSnapshot(): Promise<KernelVhid[] | undefined> {
    // ifconfig without arguments lists every interface (sbin/ifconfig/carp.c carp_status() per vhid).
    const r = await this.runCmd(['ifconfig']);
    if (!r.ok) return undefined;
    const parsed = parseFreebsdIfconfig(r.stdout);
    if (parsed.kind !== 'ifconfig') {
      this.logger.log(LOG.WARN, `carp: kernel: cannot read ifconfig: ${parsed.reason}`);
      return undefined;
    }
    const d = await this.runCmd(['sysctl', '-n', CARP_DEMOTION_OID]);
    const dv = d.ok ? parseSysctlInt(d.stdout) : undefined;
    if (dv?.kind === 'value') this.kernelDemotion = dv.value;
    const out: KernelVhid[] = [];
    for (const i of parsed.interfaces) {
      for (const v of i.vhids) {
        // FreeBSD 15's VRRP vhids are another protocol; this source follows CARP only.
        if (v.protocol !== 'carp') continue;
        out.push({
          key: this.key(v.vhid, i.ifname),
          vhid: v.vhid,
          interface: i.ifname,
          state: v.state,
          advbase: v.advbase,
          advskew: v.advskew,
          addresses: v.addresses,
          // FreeBSD has one global demotion counter; every vhid is in carpd's `carp` group.
          groups: [DEFAULT_GROUP],
        });
      }
    }
    return out;
  }

  /**
   * FreeBSD keeps one counter, so carpd's share is the sum over all its groups. Writing N adds N
   * (carp_demote_adj_sysctl() → carp_demote_adj() in sys/netinet/ip_carp.c): write the difference.
   */
  protected async writeDemotion(_group: string): Promise<void> {
    let share = 0;
    for (const g of new Set(this.ledgerImpl.entries().map((e) => e.group))) share += this.ledgerImpl.total(g);
    const delta = share - this.applied;
    if (delta === 0) return;
    const r = await this.runCmd(['sysctl', `${CARP_DEMOTION_OID}=${delta}`]);
    if (!r.ok) return;
    this.applied += delta;
    const v = parseSysctlInt(r.stdout);
    if (v.kind === 'value') this.kernelDemotion = v.value;
  }

  /** carpd's share as written to the kernel. */
  get appliedDemotion(): number {
    return this.applied;
  }

  /**
   * `ifconfig IF vhid N state master|backup`: setcarp_state() in sbin/ifconfig/carp.c; the kernel's
   * carp_ioctl_set() honours BACKUP and MASTER unless the vhid is INIT. `holdMs` has no kernel
   * counterpart: the kernel's own protocol decides afterwards.
   */
  force(key: string, state: 'MASTER' | 'BACKUP', reason = 'user requested', _holdMs?: number): boolean {
    const e = this.entry(key);
    if (!e || !this.running) return false;
    this.logger.log(LOG.INFO, `carp: ${key}: forcing ${state} (${reason})`);
    this.track(this.runCmd(['ifconfig', e.interface, 'vhid', String(e.vhid), 'state', state.toLowerCase()]).then(() => this.snapshotNow()));
    return true;
  }
}
