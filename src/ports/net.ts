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
}
