/** The normalized configuration model every config front-end produces (DESIGN.md). */

export type MasterDownFormula = 'freebsd' | 'openbsd';

/** Who runs CARP: carpd's own engine, the kernel's CARP (carpd follows it), or keepalived. */
export type EngineName = 'carpd' | 'kernel' | 'keepalived';
export type KernelOsName = 'freebsd' | 'openbsd';

export interface GlobalConfig {
  /** net.inet.carp.allow: accept and send CARP at all. */
  allow: boolean;
  /** net.inet.carp.preempt */
  preempt: boolean;
  /** net.inet.carp.log, 0..7 */
  log: number;
  /** Path of the control socket. */
  control?: string;
  /** Which master-down formula BACKUP uses (PROTOCOL.md "Timers"). */
  masterDown?: MasterDownFormula;
  /** How strictly advert counters are checked against replays (src/core/replay.ts). Default once. */
  replayProtection?: 'strict' | 'once' | 'off';
  /** Demotion added while an interface has no carrier (FreeBSD ifdown_demotion_factor). */
  ifdownDemotion?: number;
  /** Demotion added after repeated send errors (FreeBSD senderr_demotion_factor). */
  senderrDemotion?: number;
  /** Directory for persistent state (maintenance intent). Default /var/db/carpd. */
  stateDir?: string;
  /** Directory of the instance lock (one carpd per network namespace). Default $RUNTIME_DIRECTORY, else /run/carpd. */
  runDir?: string;
  /** Prometheus listener `address:port` (loopback by default); off when unset. */
  metrics?: string;
  /** Seconds between gratuitous ARP refreshes while MASTER; 0 or unset = off. */
  garpRefresh?: number;
  /** How long the VIP step may wait for a pre-phase (pre-master / pre-backup), ms. Default 500. */
  prePhaseBudgetMs?: number;
  /** Operator plugin directory (plugins/<name>/ layout). */
  pluginDir?: string;
  /** Operator template override directory (templates/<plugin>/… layout). */
  templateDir?: string;
  /** Default timeout of a plugin hook, ms. Default 10000. */
  hookTimeoutMs?: number;
  /**
   * Demotion the node starts with (FreeBSD net.inet.carp.demotion, carpd.conf `demotion`), in
   * the `carp` group, on top of any boot demotion.
   */
  demotion?: number;
  /** Who runs CARP; unset: carpd on Linux, an error on the BSDs (load.ts engineDiagnostics). */
  engine?: EngineName;
  /** engine = kernel: devd's stream socket (FreeBSD). Default /var/run/devd.pipe. */
  devdSocket?: string;
  /** engine = kernel: which kernel to follow; default from the platform (tests set it). */
  kernelOs?: KernelOsName;
  /** engine = keepalived: the notify_fifo carpd creates and reads. */
  keepalivedFifo?: string;
  /** engine = keepalived: keepalived's pid file. */
  keepalivedPidfile?: string;
  /** engine = keepalived: the track_file carpd writes its demotion into. */
  keepalivedTrackFile?: string;
  /** engine = keepalived: keepalived's $TMPDIR, where its state dumps appear (default /tmp). */
  keepalivedDumpDir?: string;
  /**
   * `nft`: carpd's own nftables table (`inet carpd_guard`) drops forged CARP in the kernel, before
   * it can fill the socket buffer (src/adapters/flood-guard.ts). Default `off`.
   */
  floodGuard?: 'nft' | 'off';
}

export interface VhidConfig {
  /** `vhid@interface`, devd's subsystem string. */
  key: string;
  vhid: number;
  /** Physical (parent) interface the adverts travel on. */
  interface: string;
  /** CIDR strings; IPv4 and IPv6. */
  addresses: string[];
  advbase: number;
  advskew: number;
  /** The shared secret, at most 19 bytes; empty string means no password (kernel default). */
  password: string;
  /** Where this vhid came from, `file:line`. */
  source: string;
  /** Name of the CARP interface where a source names one (`carp0`). */
  name?: string;
  /** Interface groups (OpenBSD demotion groups); every vhid is in `carp`. */
  groups?: string[];
  /** IPv4 unicast peer instead of the multicast group (FreeBSD `peer`, OpenBSD `carppeer`). */
  peer?: string;
  /** IPv6 unicast peer instead of ff02::12 (FreeBSD `peer6`); a link-local one is scoped to `interface`. */
  peer6?: string;
  /**
   * Whose unicast rules apply when `peer`/`peer6` is set. `freebsd` (`peer`/`peer6`, FreeBSD 14
   * ip_carp.c): no TTL/hop-limit check on receive, the multicast group is still joined and its
   * adverts heard. `openbsd` (`carppeer`, OpenBSD ip_carp.c): IPv4 only, TTL 255 still required,
   * no group membership, multicast adverts for the vhid ignored. Default `freebsd`.
   */
  unicast?: 'freebsd' | 'openbsd';
  /** 2: CARP (the default); 3: VRRPv3, RFC 5798 (FreeBSD 14 `carpver 3`, keepalived). */
  version?: 2 | 3;
  /** VRRPv3 priority, 1..255 (FreeBSD `vrrpprio`, keepalived `priority`); default 100. */
  priority?: number;
  /** VRRPv3 advertisement interval in centiseconds, 1..4095 (FreeBSD `vrrpinterval`); default 100. */
  intervalCs?: number;
  /**
   * Virtual MAC (opt-in): the vhid's VIPs live on a private-mode macvlan with MAC
   * 00:00:5e:00:01:VHID, which also sources the adverts, as the kernels' carp does.
   */
  vmac?: boolean;
  /** ucarp-style scripts, called `<interface> <vip> [xparam]`. */
  upscript?: string;
  downscript?: string;
  xparam?: string;
  /** Source address for adverts (ucarp's -s). */
  srcip?: string;
  /** ucarp's -r dead ratio: BACKUP waits deadRatio × advbase (+ skew); the kernels use 3. */
  deadRatio?: number;
  /**
   * When `interface` is a VLAN interface whose configuration was found (OpenBSD hostname.vlanN
   * `vlandev`/`parent` and `vnetid`/`vlan`): the device it is tagged on and its tag.
   */
  vlan?: VlanInfo;
  /**
   * Where each field was set, for validation messages: keys are field names
   * (`vhid`, `advskew`, `password`, …), `addresses.N` per address, and `header`
   * (the section or line that introduced the vhid). Internal; `carpd config` omits it.
   */
  fieldSources?: Record<string, { file: string; line: number }>;
}

/** A VLAN interface's parent device and tag. */
export interface VlanInfo {
  device: string;
  tag?: number;
}

/** One `key = value` of a reserved section, kept for a later consumer (plugins, health checks). */
export interface ExtraEntry {
  key: string;
  value: string;
  /** `file:line`, with the file path as given to the loader. */
  source: string;
}

/** A reserved section (`[plugin.*]`, `[health.*]`, `[group.*]`, `[maintenance]`) kept verbatim. */
export interface ExtraSection {
  /** The section name without brackets, e.g. `plugin.httpd`. */
  name: string;
  /** `file:line` of the section header, with the file path as given to the loader. */
  source: string;
  /** In file order; repeated keys stay repeated. */
  entries: ExtraEntry[];
}

/** What a plugin or health check follows: one vhid (by section name or key), a group, or the node role. */
export type Follow = { kind: 'vhid'; ref: string } | { kind: 'group'; group: string } | { kind: 'node' };

/** What happens when a plugin hook fails. */
export type FailurePolicy = { kind: 'ignore' } | { kind: 'retry'; times: number } | { kind: 'demote'; by: number };

/** `[plugin.NAME]` in carpd.conf. */
export interface PluginConfig {
  /** The plugin's name: its folder under plugins/ (or the operator plugin dir). */
  name: string;
  follow: Follow;
  /** Default { kind: 'ignore' }. */
  onFailure?: FailurePolicy;
  /** Hook timeout override, ms. */
  timeoutMs?: number;
  /** Every other key of the section, for the plugin itself (repeated keys joined by ","). */
  options: Record<string, string>;
  /** `file:line` of the section header. */
  source: string;
}

/** `[health.NAME]`: a scheduled check that adds or removes demotion with hysteresis. */
export interface HealthConfig {
  name: string;
  /** argv, split from the config value like a shell would split words (quotes honoured), never run through a shell. */
  command: string[];
  /** Either an interval (ms) or a node-cron expression. */
  intervalMs?: number;
  schedule?: string;
  timeoutMs?: number;
  /** Consecutive successes to clear the demotion (keepalived rise). Default 1. */
  rise: number;
  /** Consecutive failures to demote (keepalived fall). Default 1. */
  fall: number;
  /** Demotion while failed. Default 240. */
  demote: number;
  /** Demotion group. Default `carp`. */
  group: string;
  source: string;
}

/** `[maintenance]`: scheduled maintenance windows (node-cron). */
export interface MaintenanceConfig {
  /** Cron expression at which maintenance starts. */
  enter?: string;
  /** Cron expression at which it ends, or a duration after entering. */
  leave?: string;
  durationMs?: number;
  /** Demotion while in maintenance. Default 240. */
  demote?: number;
  source: string;
}

/** `[group.NAME]`: a demotion group, its extra members and its initial demotion. */
export interface GroupConfig {
  name: string;
  /** Keys (`vhid@interface`) of the vhids the section adds to the group. */
  members: string[];
  /** Demotion of the group at start (OpenBSD `ifconfig -g NAME carpdemote N`). */
  demote?: number;
  /** `file:line` of the section header. */
  source: string;
}

export interface CarpModel {
  global: GlobalConfig;
  vhids: VhidConfig[];
  /** Reserved sections of carpd.conf as parsed text (the typed fields below are derived from them). */
  extra?: ExtraSection[];
  plugins?: PluginConfig[];
  health?: HealthConfig[];
  maintenance?: MaintenanceConfig;
  /** `[group.NAME]` sections; every group a vhid names exists whether or not it has a section. */
  groups?: GroupConfig[];
}

/** The redacted form `carpd config` prints unless --show-secrets is given. */
export const REDACTED = '<redacted>';
