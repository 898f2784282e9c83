/** The CARP transport port: sockets per interface and address family, sending and receiving raw adverts. */

/**
 * What an IPv6 socket knows of a received advert besides its payload. Linux raw AF_INET6 sockets
 * strip the IPv6 header and recvfrom(2) reports only the source, so the adapter says what it can.
 */
export interface RecvInfo6 {
  family: 6;
  /** The sender's address (for ff02::12 adverts, its link-local), without a zone. */
  src: string;
  /**
   * 255, or undefined when the packet is known to carry another hop limit (the adapter's
   * socket filters tell the two apart, not the exact value).
   */
  hopLimit: number | undefined;
}

/** A CARP socket bound to one interface. */
export interface CarpSocket {
  readonly ifname: string;
  /** The address family of the adverts this socket carries (4 unless opened with `family: 6`). */
  readonly family?: 4 | 6;
  /**
   * Send one CARP payload (36 bytes) to the group (or `dst`); the IP header is the kernel's. An
   * IPv6 link-local `dst` is scoped to the socket's interface.
   */
  send(payload: Buffer, dst?: string): void;
  /**
   * Called with each received packet. IPv4: the whole packet, IP header included, and no info.
   * IPv6: the CARP payload and a RecvInfo6.
   */
  onMessage(cb: (packet: Buffer, info?: RecvInfo6) => void): void;
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
  /** 4 (default): a raw IPv4 socket. 6: raw IPv6 sockets, hop limit told apart on receive. */
  family?: 4 | 6;
  /** The interface's IPv4 address to send from, if it has one (IPv4 only). */
  srcip?: string;
  /** Multicast group (default 224.0.0.18, or ff02::12 for family 6). */
  group?: string;
  /**
   * Join the group (default true). OpenBSD `carppeer`: an interface whose every vhid has a
   * unicast peer joins nothing (ip_carp.c carp_join_multicast() returns early).
   */
  join?: boolean;
}

export interface Transport {
  open(opts: OpenSocketOptions): CarpSocket;
  /**
   * The interface's IPv6 addresses (link-local first), for own-advert detection and the
   * tie-break; optional, a transport without IPv6 leaves it out.
   */
  addresses6?(ifname: string): string[];
}
