/** The normalized configuration model every config front-end produces (DESIGN.md). */

export type MasterDownFormula = 'freebsd' | 'openbsd';

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
  /** Demotion added while an interface has no carrier (FreeBSD ifdown_demotion_factor). */
  ifdownDemotion?: number;
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
  /** Unicast peer instead of the multicast group (carppeer / `peer`). */
  peer?: string;
  /** ucarp-style scripts, called `<interface> <vip> [xparam]`. */
  upscript?: string;
  downscript?: string;
  xparam?: string;
  /** Source address for adverts (ucarp's -s). */
  srcip?: string;
  /** ucarp's -r dead ratio: BACKUP waits deadRatio × advbase (+ skew); the kernels use 3. */
  deadRatio?: number;
  /**
   * Where each field was set, for validation messages: keys are field names
   * (`vhid`, `advskew`, `password`, …), `addresses.N` per address, and `header`
   * (the section or line that introduced the vhid). Internal; `carpd config` omits it.
   */
  fieldSources?: Record<string, { file: string; line: number }>;
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

export interface CarpModel {
  global: GlobalConfig;
  vhids: VhidConfig[];
  /** Reserved sections of carpd.conf, for the plugin host and later features. */
  extra?: ExtraSection[];
}

/** The redacted form `carpd config` prints unless --show-secrets is given. */
export const REDACTED = '<redacted>';
