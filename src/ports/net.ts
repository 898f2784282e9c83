/** The network port: addresses, gratuitous ARP and link state. */
export interface NetBackend {
  addVip(ifname: string, cidr: string): Promise<void>;
  delVip(ifname: string, cidr: string): Promise<void>;
  /** Gratuitous ARP (IPv4) or unsolicited NA (IPv6) for one VIP. */
  garp(ifname: string, cidr: string): Promise<void>;
  /** The first IPv4 address of the interface, without prefix, if any. */
  primaryAddress(ifname: string): string | undefined;
  /** Current link state (carrier). */
  linkUp(ifname: string): boolean;
  /** Start watching links; cb is called on every change. Returns a stop function. */
  watchLinks(ifnames: string[], cb: (ifname: string, up: boolean) => void): () => void;

  // The kernel's view of the addresses, for the VIP reconcile. Optional: a backend that does not
  // own the VIPs (ucarp mode, where the up/down scripts add them) leaves these out, and the engine
  // then reconciles nothing.

  /**
   * Every address on each of `ifnames` as the kernel holds it now (`address/prefix`, IPv6 in its
   * canonical form). An interface the kernel does not have is left out of the result.
   */
  addresses?(ifnames: string[]): Promise<Record<string, string[]>>;
  /**
   * Call `cb` soon after any address on one of `ifnames` is added or deleted (by anyone, carpd
   * included). A hint to look again, not the list itself. Returns a stop function.
   */
  watchAddresses?(ifnames: string[], cb: (ifname: string) => void): () => void;
  /**
   * net.ipv4.conf.IFNAME.promote_secondaries: the value before, set to 1 when `set`; undefined
   * when it cannot be read (no such interface, no /proc).
   */
  promoteSecondaries?(ifname: string, set: boolean): number | undefined;
}
