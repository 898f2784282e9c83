/**
 * Follows the CARP of an OpenBSD kernel: events from `route -n monitor` (RTM_IFINFO of carpN, as
 * ifstated(8) follows them), each confirmed with `ifconfig carpN`; state from `ifconfig carp`
 * (the carp interface group); demotion through `ifconfig -g GROUP [-]carpdemote N`; forced state
 * through `ifconfig carpN state master|backup`. Not wired into `carpd run` yet.
 *
 * Keys: `VHID@CARPDEV` (carpN's name in `name`), the key the hostname.carpN front-end
 * (src/config/hostname-carp.ts) gives a vhid — its interface is the parent, carpdev. The kernel
 * refuses the same vhid twice on one carpdev (carp_check_dup_vhids() in sys/netinet/ip_carp.c),
 * so the key is unique. A carpN without a carpdev is keyed `VHID@carpN`.
 */
import { DEFAULT_GROUP } from '../core/demotion.js';
import { LOG } from '../ports/logger.js';
import type { CarpState, StateSource } from '../ports/state-source.js';
import { parseOpenbsdGroupDemotion, parseOpenbsdIfconfig, type OpenbsdCarpInterface } from '../sources/openbsd-ifconfig.js';
import { RouteMonitorReader, type IfinfoEvent } from '../sources/route-monitor.js';
import { KernelSourceBase, type KernelSourceOptions, type KernelVhid } from './kernel-common.js';
import { spawnStream, type SpawnStream, type StreamingChild } from './kernel-spawn.js';

/** setgroupattribs() reads N with strtonum(…, 0, 128) (sbin/ifconfig/ifconfig.c): larger changes take several calls. */
export const MAX_CARPDEMOTE_STEP = 128;

/** A monitor that ran this long before exiting was healthy: the next restart starts from the shortest delay. */
const MONITOR_HEALTHY_MS = 10_000;

export interface OpenbsdKernelOptions extends KernelSourceOptions {
  /** Starts `route -n monitor`; default adapters/kernel-spawn. */
  spawn?: SpawnStream;
}

function isLinkLocal6(cidr: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(cidr);
}

export class OpenbsdKernelCarpSource extends KernelSourceBase implements StateSource {
  readonly os = 'openbsd' as const;
  private readonly spawn: SpawnStream;
  private monitor: StreamingChild | undefined;
  private monitorStarted = 0;
  private restartTimer: unknown;
  /** What carpd has added to each group's demote count and not taken back. */
  private readonly applied = new Map<string, number>();
  /** RTM_IFINFO confirmations run one after the other, in the order the kernel sent them. */
  private confirmQueue: Promise<void> = Promise.resolve();
  private readonly confirmPending = new Set<string>();
  /** `route -n monitor` starts so far, for tests and logs. */
  monitorStarts = 0;

  constructor(opts: OpenbsdKernelOptions = {}) {
    super(opts);
    this.spawn = opts.spawn ?? spawnStream;
  }

  protected openEvents(): void {
    this.startMonitor();
  }

  protected closeEvents(): void {
    this.timers.clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.monitor?.stop();
    this.monitor = undefined;
  }

  protected demotedGroups(): string[] {
    return [...this.applied.keys()];
  }

  /** Also waits for the RTM_IFINFO confirmations under way. */
  override async idle(): Promise<void> {
    await this.confirmQueue;
    await super.idle();
  }

  private startMonitor(): void {
    if (!this.running) return;
    const reader = new RouteMonitorReader();
    this.monitorStarts++;
    this.monitorStarted = this.now();
    // The handle is filled in after spawn() returns; the child reports its exit only later.
    const me: { child?: StreamingChild } = {};
    me.child = this.spawn(['route', '-n', 'monitor'], this.opts.env, {
      onStdout: (chunk) => {
        for (const ev of reader.push(chunk)) this.onIfinfo(ev);
      },
      onExit: (detail) => {
        if (me.child !== undefined && this.monitor !== me.child) return;
        this.monitor = undefined;
        if (!this.running) return;
        if (this.now() - this.monitorStarted >= MONITOR_HEALTHY_MS) this.backoff.reset();
        const ms = this.backoff.next();
        this.logger.log(LOG.WARN, `carp: kernel: ${detail}; restarting route monitor in ${ms} ms`);
        this.restartTimer = this.timers.setTimeout(() => {
          this.restartTimer = undefined;
          this.startMonitor();
          // Changes while no monitor ran are only in the kernel's state: read it.
          void this.snapshotNow();
        }, ms);
      },
    });
    this.monitor = me.child;
  }

  /**
   * carp_set_state() (sys/netinet/ip_carp.c) announces a change only through
   * if_link_state_change() of carpN: link up is MASTER, down BACKUP, invalid INIT (as ifstated
   * reads it). With carpnodes the link word is one for several vhids, so every event is confirmed
   * with `ifconfig carpN` before it is believed.
   */
  private onIfinfo(ev: IfinfoEvent): void {
    if (!this.running || ev.ifname === undefined || ev.carpState === undefined) return;
    const ifname = ev.ifname;
    const keys = this.keysOn(ifname);
    if (keys.length === 0) {
      // A carp interface created since the last snapshot (or some other interface's link).
      if (/^carp\d+$/.test(ifname)) void this.snapshotNow();
      return;
    }
    for (const k of keys) this.noteEvent(k);
    // A confirmation queued and not started yet will read the newer state anyway: a burst of
    // events for one interface costs one ifconfig, so the queue stays bounded by the interfaces.
    if (this.confirmPending.has(ifname)) return;
    this.confirmPending.add(ifname);
    const linkState = ev.carpState;
    this.confirmQueue = this.confirmQueue.then(() => this.confirm(ifname, ev.linkState, linkState)).catch(() => undefined);
  }

  private async confirm(ifname: string, link: string, linkState: CarpState): Promise<void> {
    this.confirmPending.delete(ifname);
    const r = await this.runCmd(['ifconfig', ifname]);
    const parsed = r.ok ? parseOpenbsdIfconfig(r.stdout) : undefined;
    const iface = parsed?.kind === 'ifconfig' ? parsed.interfaces.find((i) => i.ifname === ifname) : undefined;
    if (!this.running) return;
    if (!iface) {
      const keys = this.keysOn(ifname);
      // One vhid: the link word is its state. Several: the word cannot say which; read everything.
      if (keys.length === 1) this.applyEvent(keys[0]!, linkState, `kernel: route monitor ${ifname} link ${link} (unconfirmed)`);
      else void this.snapshotNow();
      return;
    }
    for (const v of this.vhidsOf(iface)) {
      if (!this.applyEvent(v.key, v.state, `kernel: route monitor ${ifname} link ${link}`)) void this.snapshotNow();
    }
  }

  private vhidsOf(i: OpenbsdCarpInterface): KernelVhid[] {
    const dev = i.carpdev ?? i.ifname;
    const groups = i.groups.includes(DEFAULT_GROUP) ? [DEFAULT_GROUP, ...i.groups.filter((g) => g !== DEFAULT_GROUP)] : [DEFAULT_GROUP, ...i.groups];
    return i.vhids.map((v) => ({
      key: this.key(v.vhid, dev),
      vhid: v.vhid,
      interface: dev,
      carpIf: i.ifname,
      state: v.state,
      advbase: i.advbase,
      advskew: v.advskew,
      // The VIPs: ifconfig also lists the link-local address every IPv6 interface gets.
      addresses: i.addresses.filter((a) => !isLinkLocal6(a)),
      groups,
    }));
  }

  protected async readSnapshot(): Promise<KernelVhid[] | undefined> {
    // `ifconfig carp` lists the members of the carp group, which every carpN joins (carp_clone_create()).
    const r = await this.runCmd(['ifconfig', 'carp']);
    // With no carpN left the group is gone: printgroup() fails with ENOENT, printif() then finds no
    // `carp<digit>` name and says `carp: no such interface` (exit 1) — every vhid is gone.
    if (!r.ok) return /^(?:ifconfig: )?carp: no such interface\s*$/.test(r.stderr) ? [] : undefined;
    if (r.stdout.trim() === '') return [];
    const parsed = parseOpenbsdIfconfig(r.stdout);
    if (parsed.kind !== 'ifconfig') {
      this.logger.log(LOG.WARN, `carp: kernel: cannot read ifconfig carp: ${parsed.reason}`);
      return undefined;
    }
    const g = await this.runCmd(['ifconfig', '-g', DEFAULT_GROUP]);
    const gd = g.ok ? parseOpenbsdGroupDemotion(g.stdout) : undefined;
    if (gd?.kind === 'demotion') this.kernelDemotion = gd.demote;
    return parsed.interfaces.flatMap((i) => this.vhidsOf(i));
  }

  /**
   * `ifconfig -g GROUP carpdemote N` adds N, `-carpdemote N` subtracts it (setgroupattribs() in
   * sbin/ifconfig/ifconfig.c, SIOCSIFGATTR); N is at most 128 per call, so a larger difference is
   * written in steps. The kernel refuses a count outside 0..255; what it refused is retried by the
   * next change.
   */
  protected async writeDemotion(group: string): Promise<void> {
    const target = this.ledgerImpl.total(group);
    // Bounded: |difference| ≤ 255, so at most two steps of 128 and one of the rest.
    for (let i = 0; i < 4; i++) {
      const delta = target - (this.applied.get(group) ?? 0);
      if (delta === 0) break;
      const step = Math.sign(delta) * Math.min(MAX_CARPDEMOTE_STEP, Math.abs(delta));
      const r = await this.runCmd(['ifconfig', '-g', group, step > 0 ? 'carpdemote' : '-carpdemote', String(Math.abs(step))]);
      if (!r.ok) return;
      const now = (this.applied.get(group) ?? 0) + step;
      if (now === 0) this.applied.delete(group);
      else this.applied.set(group, now);
      if (group === DEFAULT_GROUP) this.kernelDemotion += step;
    }
  }

  /** carpd's share as written to the kernel, per group. */
  appliedDemotion(group: string): number {
    return this.applied.get(group) ?? 0;
  }

  /**
   * OpenBSD has a forced state, contrary to common belief: `ifconfig carpN state master|backup`
   * (setcarp_state() in the cmds[] table of sbin/ifconfig/ifconfig.c); carp_ioctl() SIOCSVH
   * (sys/netinet/ip_carp.c) moves every vhid of carpN when the first is not INIT — so forcing one
   * vhid of a carpnodes interface moves its siblings too. `holdMs` has no kernel counterpart.
   */
  force(key: string, state: 'MASTER' | 'BACKUP', reason = 'user requested', _holdMs?: number): boolean {
    const e = this.entry(key);
    if (!e || !this.running || e.carpIf === undefined) return false;
    this.logger.log(LOG.INFO, `carp: ${key}: forcing ${state} on ${e.carpIf} (${reason})`);
    this.track(this.runCmd(['ifconfig', e.carpIf, 'state', state.toLowerCase()]).then(() => this.snapshotNow()));
    return true;
  }
}
