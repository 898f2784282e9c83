/**
 * CARP over a raw IPv4 socket (protocol 112), one socket per interface (Linux).
 * The kernel builds the IP header; received packets include it, so TTL can be checked.
 */
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import type { CarpSocket, OpenSocketOptions, Transport } from '../ports/transport.js';
import type { HostTimers } from '../ports/timers.js';

export const CARP_PROTO = 112;
export const CARP_GROUP_V4 = '224.0.0.18';
/** IPTOS_LOWDELAY, what ucarp and OpenBSD send (FreeBSD 14 sends DSCP 56 = 0xe0). */
export const CARP_TOS = 0x10;
export const CARP_TTL = 255;

/** Socket option numbers for one OS. Multicast options take an int on Linux, a u_char on the BSDs. */
export interface SockoptTable {
  SOL_SOCKET: number;
  IPPROTO_IP: number;
  /** Linux only; the BSDs tell interfaces apart with IP_RECVIF instead. */
  SO_BINDTODEVICE?: number;
  SO_SNDBUF: number;
  SO_RCVBUF: number;
  /** Linux: root may go past net.core.{w,r}mem_max. */
  SO_SNDBUFFORCE?: number;
  SO_RCVBUFFORCE?: number;
  IP_TOS: number;
  IP_TTL: number;
  IP_MULTICAST_IF: number;
  IP_MULTICAST_TTL: number;
  IP_MULTICAST_LOOP: number;
  IP_ADD_MEMBERSHIP: number;
  IP_DROP_MEMBERSHIP: number;
  /** Whether IP_MULTICAST_TTL/LOOP want a 1-byte value rather than an int. */
  mcastByteValues: boolean;
}

/** FreeBSD and OpenBSD share these numbers (netinet/in.h, sys/socket.h). */
const BSD = {
  SOL_SOCKET: 0xffff,
  IPPROTO_IP: 0,
  SO_SNDBUF: 0x1001,
  SO_RCVBUF: 0x1002,
  IP_TOS: 3,
  IP_TTL: 4,
  IP_MULTICAST_IF: 9,
  IP_MULTICAST_TTL: 10,
  IP_MULTICAST_LOOP: 11,
  IP_ADD_MEMBERSHIP: 12,
  IP_DROP_MEMBERSHIP: 13,
  mcastByteValues: true,
} as const satisfies SockoptTable;

/**
 * One table per OS. Only `linux` is used at run time; the BSD rows are there so nobody copies the
 * Linux numbers to a BSD backend. The BSDs accept a 12-byte ip_mreqn too (FreeBSD since 7,
 * OpenBSD since 6.7), and there raw sockets may hand back ip_len in host order.
 */
export const SOCKOPTS = {
  linux: {
    SOL_SOCKET: 1,
    IPPROTO_IP: 0,
    SO_BINDTODEVICE: 25,
    SO_SNDBUF: 7,
    SO_RCVBUF: 8,
    SO_SNDBUFFORCE: 32,
    SO_RCVBUFFORCE: 33,
    IP_TOS: 1,
    IP_TTL: 2,
    IP_MULTICAST_IF: 32,
    IP_MULTICAST_TTL: 33,
    IP_MULTICAST_LOOP: 34,
    IP_ADD_MEMBERSHIP: 35,
    IP_DROP_MEMBERSHIP: 36,
    mcastByteValues: false,
  },
  freebsd: BSD,
  openbsd: BSD,
} as const satisfies Record<string, SockoptTable>;

const LINUX: SockoptTable = SOCKOPTS.linux;

/** The part of raw-socket (CommonJS, untyped) this file uses; tests hand in a fake of it. */
export interface RawSocket {
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  send(buffer: Buffer, offset: number, length: number, address: string, cb: (err: Error | null, bytes: number) => void): void;
  on(event: 'message', cb: (buffer: Buffer, source: string) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  close(): void;
  /** The native socket: its send() calls sendto(2) at once and throws on failure. */
  wrap: { send(buffer: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void };
}
interface RawSocketModule {
  createSocket(options: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
}
const raw = createRequire(import.meta.url)('raw-socket') as RawSocketModule;

/** What RawTransport needs from the world; the defaults are raw-socket, sysfs and Node's timers. */
export interface RawTransportDeps {
  /** Opens an unconfigured raw IPv4 socket for protocol 112. */
  createSocket: () => RawSocket;
  ifindex: (ifname: string) => number;
  /** The reopen backoff's timer. */
  timers: Pick<HostTimers, 'setTimeout' | 'clearTimeout'>;
}

/** The first reopen after a receive error waits this long; each failed reopen doubles it, up to REOPEN_MAX_MS. */
export const REOPEN_MIN_MS = 100;
export const REOPEN_MAX_MS = 5000;

const defaultDeps: RawTransportDeps = {
  createSocket: () => raw.createSocket({ protocol: CARP_PROTO, addressFamily: raw.AddressFamily.IPv4 }),
  ifindex: (ifname) => ifindexOf(ifname),
  timers: {
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  },
};

/** Error with a stable code, thrown by `open` when the socket cannot be set up. */
export class TransportError extends Error {
  readonly code = 'CARPD_ERR_SOCKET';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
  }
}

const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** Interface index from sysfs (the process's network namespace). */
export function ifindexOf(ifname: string): number {
  if (!IFNAME_RE.test(ifname) || ifname === '.' || ifname === '..') {
    throw new TransportError(`bad interface name ${JSON.stringify(ifname)}`);
  }
  let text: string;
  try {
    text = readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8');
  } catch (err) {
    throw new TransportError(`no such interface ${ifname}`, { cause: err });
  }
  const index = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(index) || index <= 0) throw new TransportError(`bad ifindex for ${ifname}`);
  return index;
}

function inAddr(address: string): Buffer {
  if (!isIPv4(address)) throw new TransportError(`not an IPv4 address: ${address}`);
  return Buffer.from(address.split('.').map((octet) => Number(octet)));
}

/** struct ip_mreqn { in_addr multiaddr; in_addr address; int ifindex; } */
export function ipMreqn(group: string, address: string, ifindex: number): Buffer {
  const buf = Buffer.alloc(12);
  inAddr(group).copy(buf, 0);
  inAddr(address).copy(buf, 4);
  if (endianness() === 'LE') buf.writeInt32LE(ifindex, 8);
  else buf.writeInt32BE(ifindex, 8);
  return buf;
}

const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** Set a socket buffer size, forcing past the sysctl cap when we may (root), else as far as allowed. */
function bigBuffer(socket: RawSocket, force: number, plain: number): void {
  try {
    socket.setOption(LINUX.SOL_SOCKET, force, SOCKET_BUFFER_BYTES);
  } catch {
    try {
      socket.setOption(LINUX.SOL_SOCKET, plain, SOCKET_BUFFER_BYTES);
    } catch {
      // The default size still works for a few dozen vhids.
    }
  }
}

/** Opens raw CARP sockets on Linux. */
export class RawTransport implements Transport {
  private readonly deps: RawTransportDeps;

  constructor(deps: Partial<RawTransportDeps> = {}) {
    this.deps = { ...defaultDeps, ...deps };
  }

  open(opts: OpenSocketOptions): CarpSocket {
    return new RawCarpSocket(opts, this.deps);
  }
}

/**
 * One interface's CARP socket. A receive error does not leave it deaf: raw-socket emits 'error'
 * when recvfrom(2) fails in its onRecvReady (the socket stays open) or when libuv's poll reports
 * an error (its onError then closes the socket). Either way a socket that failed once is not
 * trusted again: it is closed and a fresh one, bound and joined like the first, is opened after
 * REOPEN_MIN_MS, doubling up to REOPEN_MAX_MS while opening fails. Before this, one error marked
 * the socket closed until a link-up event, so a BACKUP heard nothing more and promoted itself.
 */
class RawCarpSocket implements CarpSocket {
  readonly ifname: string;
  private readonly messageCbs: Array<(ipPacket: Buffer) => void> = [];
  private readonly errorCbs: Array<(err: Error) => void> = [];
  private readonly recvErrorCbs: Array<(err: Error) => void> = [];
  private readonly group: string;
  private readonly srcip: string;
  /** The live socket; undefined between a receive error and the reopen. */
  private socket: RawSocket | undefined;
  private mreqn: Buffer;
  private closed = false;
  private reopenTimer: unknown;
  private reopenDelay = REOPEN_MIN_MS;

  constructor(
    opts: OpenSocketOptions,
    private readonly deps: RawTransportDeps,
  ) {
    this.ifname = opts.ifname;
    this.group = opts.group ?? CARP_GROUP_V4;
    this.srcip = opts.srcip ?? '0.0.0.0';
    const { socket, mreqn } = this.openRaw();
    this.mreqn = mreqn;
    this.attach(socket);
  }

  /** A raw socket bound to the interface and joined to the group. Throws TransportError. */
  private openRaw(): { socket: RawSocket; mreqn: Buffer } {
    const { ifname, srcip } = this;
    const ifindex = this.deps.ifindex(ifname);
    const mreqn = ipMreqn(this.group, srcip, ifindex);
    const ifOnly = ipMreqn('0.0.0.0', srcip, ifindex);

    let socket: RawSocket;
    try {
      socket = this.deps.createSocket();
    } catch (err) {
      throw new TransportError(`cannot open raw socket on ${ifname}: ${(err as Error).message}`, { cause: err });
    }
    const set = (what: string, level: number, option: number, value: number | Buffer): void => {
      try {
        if (typeof value === 'number') socket.setOption(level, option, value);
        else socket.setOption(level, option, value, value.length);
      } catch (err) {
        throw new TransportError(`${what} on ${ifname}: ${(err as Error).message}`, { cause: err });
      }
    };
    const ip = LINUX.IPPROTO_IP;
    try {
      set('SO_BINDTODEVICE', LINUX.SOL_SOCKET, LINUX.SO_BINDTODEVICE!, Buffer.from(ifname));
      set('IP_TOS', ip, LINUX.IP_TOS, CARP_TOS);
      set('IP_TTL', ip, LINUX.IP_TTL, CARP_TTL);
      set('IP_MULTICAST_TTL', ip, LINUX.IP_MULTICAST_TTL, CARP_TTL);
      set('IP_MULTICAST_LOOP', ip, LINUX.IP_MULTICAST_LOOP, 0);
      set('IP_MULTICAST_IF', ip, LINUX.IP_MULTICAST_IF, ifOnly);
      set('IP_ADD_MEMBERSHIP', ip, LINUX.IP_ADD_MEMBERSHIP, mreqn);
      // 255 vhids advertise in one burst, and a raw socket charges each 56-byte packet about
      // 1 KB of buffer: the default 208 KB would drop part of the burst (ENOBUFS on send,
      // silent drops on receive). Ask for room for several bursts.
      bigBuffer(socket, LINUX.SO_SNDBUFFORCE!, LINUX.SO_SNDBUF);
      bigBuffer(socket, LINUX.SO_RCVBUFFORCE!, LINUX.SO_RCVBUF);
    } catch (err) {
      socket.close();
      throw err;
    }
    return { socket, mreqn };
  }

  private attach(socket: RawSocket): void {
    this.socket = socket;
    socket.on('message', (buffer: Buffer) => {
      if (socket !== this.socket) return;
      this.reopenDelay = REOPEN_MIN_MS; // this socket works: the next error starts the backoff afresh
      this.deliver(buffer);
    });
    socket.on('error', (err: Error) => {
      if (socket === this.socket) this.receiveFailed(err);
    });
  }

  send(payload: Buffer, dst: string = this.group): void {
    const socket = this.socket;
    if (this.closed || !socket) {
      this.reportLater(new TransportError(this.closed ? `send on closed socket ${this.ifname}` : `send on ${this.ifname}: the socket is being reopened`));
      return;
    }
    if (!isIPv4(dst)) {
      this.reportLater(new TransportError(`bad destination ${JSON.stringify(dst)}`));
      return;
    }
    // Send now, with sendto(2) on the native socket. raw-socket's own send() waits for a
    // writable event on the next loop turn, and anything that blocks the loop in between (a
    // child process being spawned for the VIP, say) would delay the advert by milliseconds.
    try {
      socket.wrap.send(payload, 0, payload.length, dst, () => undefined);
      return;
    } catch (err) {
      if (!/temporarily unavailable|EAGAIN|EWOULDBLOCK|No buffer space/i.test((err as Error).message)) {
        this.reportLater(err as Error);
        return;
      }
    }
    // Socket buffer full (EAGAIN, ENOBUFS): fall back to raw-socket's queue, which sends once
    // the socket is writable again.
    const copy = Buffer.from(payload);
    try {
      socket.send(copy, 0, copy.length, dst, (err: Error | null) => {
        if (err) this.report(err);
      });
    } catch (err) {
      this.reportLater(err as Error);
    }
  }

  onMessage(cb: (ipPacket: Buffer) => void): void {
    this.messageCbs.push(cb);
  }

  onSendError(cb: (err: Error) => void): void {
    this.errorCbs.push(cb);
  }

  onReceiveError(cb: (err: Error) => void): void {
    this.recvErrorCbs.push(cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reopenTimer !== undefined) this.deps.timers.clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    this.dropSocket();
  }

  /** Leave the group and close the live socket, if any. */
  private dropSocket(): void {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return;
    try {
      socket.setOption(LINUX.IPPROTO_IP, LINUX.IP_DROP_MEMBERSHIP, this.mreqn, this.mreqn.length);
    } catch {
      // The interface may be gone already; closing drops the membership anyway.
    }
    try {
      socket.close();
    } catch {
      // Closed already (raw-socket closes on a poll error before we hear of it).
    }
  }

  private deliver(buffer: Buffer): void {
    if (this.closed) return;
    // raw-socket hands out a slice of one shared receive buffer; copy so listeners may keep it.
    const packet = Buffer.from(buffer);
    for (const cb of this.messageCbs) cb(packet);
  }

  /** A receive-side error: reported apart from send errors, then the socket is replaced. */
  private receiveFailed(err: Error): void {
    if (this.closed) return;
    // A wake-up with nothing to read (or a signal) is no failure: the socket is fine.
    if (/temporarily unavailable|EAGAIN|EWOULDBLOCK|Interrupted system call/i.test(err.message)) return;
    this.dropSocket();
    const e = err instanceof Error ? err : new Error(String(err));
    for (const cb of this.recvErrorCbs) cb(e);
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.closed || this.reopenTimer !== undefined) return;
    const delay = this.reopenDelay;
    this.reopenDelay = Math.min(delay * 2, REOPEN_MAX_MS);
    this.reopenTimer = this.deps.timers.setTimeout(() => {
      this.reopenTimer = undefined;
      if (this.closed) return;
      try {
        const { socket, mreqn } = this.openRaw();
        this.mreqn = mreqn;
        this.attach(socket);
      } catch (err) {
        for (const cb of this.recvErrorCbs) cb(err instanceof Error ? err : new Error(String(err)));
        this.scheduleReopen();
      }
    }, delay);
  }

  private report(err: Error): void {
    if (this.errorCbs.length === 0) return;
    const e = err instanceof Error ? err : new Error(String(err));
    for (const cb of this.errorCbs) cb(e);
  }

  private reportLater(err: Error): void {
    queueMicrotask(() => this.report(err));
  }
}
