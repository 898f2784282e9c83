/**
 * The narrow interfaces (ports) between the pure core and the outside world.
 * Only src/adapters implements them against the OS; tests implement them with fakes.
 */

/** Something the daemon can log through; levels are syslog priorities (0 emerg .. 7 debug). */
export interface Logger {
  log(level: number, message: string): void;
}

/** A CARP socket bound to one interface. */
export interface CarpSocket {
  readonly ifname: string;
  /** Send one CARP payload (36 bytes) to the group (or `dst`); the IP header is the kernel's. */
  send(payload: Buffer, dst?: string): void;
  /** Called with each received IPv4 packet, IP header included. */
  onMessage(cb: (ipPacket: Buffer) => void): void;
  /** Called when a send fails (e.g. link down). */
  onSendError(cb: (err: Error) => void): void;
  close(): void;
}

export interface OpenSocketOptions {
  ifname: string;
  /** The interface's IPv4 address to send from, if it has one. */
  srcip?: string;
  /** Multicast group (default 224.0.0.18). */
  group?: string;
}

export interface Transport {
  open(opts: OpenSocketOptions): CarpSocket;
}

/** Addresses, gratuitous ARP and link state. */
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

/** Monotonic time in ms and one timer. */
export interface Clock {
  now(): number;
  /** Arm the single timer to fire at `at` (monotonic ms); re-arming replaces it. */
  setTimer(at: number, cb: () => void): void;
  clearTimer(): void;
}
