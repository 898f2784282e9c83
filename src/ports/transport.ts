/** The CARP transport port: one socket per interface, sending and receiving raw adverts. */

/** A CARP socket bound to one interface. */
export interface CarpSocket {
  readonly ifname: string;
  /** Send one CARP payload (36 bytes) to the group (or `dst`); the IP header is the kernel's. */
  send(payload: Buffer, dst?: string): void;
  /** Called with each received IPv4 packet, IP header included. */
  onMessage(cb: (ipPacket: Buffer) => void): void;
  /** Called when a send fails (e.g. link down). */
  onSendError(cb: (err: Error) => void): void;
  /**
   * Called when receiving fails (the socket is replaced by the adapter, which keeps listening).
   * Optional: a transport whose receive cannot fail need not offer it.
   */
  onReceiveError?(cb: (err: Error) => void): void;
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
