/**
 * CARP over raw sockets (protocol 112), per interface (Linux). IPv4: one raw socket; the kernel
 * builds the IP header and received packets include it, so the TTL can be checked. IPv6: the
 * kernel strips the header and recvfrom(2) cannot report the hop limit, so two raw sockets each
 * carry a classic BPF filter, one passing hop limit 255 only and one passing every other hop
 * limit (the engine decides per vhid: FreeBSD unicast mode does not check it).
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import koffi from 'koffi';
import type { CarpSocket, OpenSocketOptions, RecvInfo6, Transport } from '../ports/transport.js';
import type { HostTimers } from '../ports/timers.js';

export const CARP_PROTO = 112;
export const CARP_GROUP_V4 = '224.0.0.18';
export const CARP_GROUP_V6 = 'ff02::12';
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

/** Linux IPv6 and socket-filter option numbers (linux/in6.h, asm-generic/socket.h). */
export const LINUX6 = {
  IPPROTO_IPV6: 41,
  IPV6_UNICAST_HOPS: 16,
  IPV6_MULTICAST_IF: 17,
  IPV6_MULTICAST_HOPS: 18,
  IPV6_MULTICAST_LOOP: 19,
  IPV6_JOIN_GROUP: 20,
  IPV6_LEAVE_GROUP: 21,
  SO_ATTACH_FILTER: 26,
} as const;

/** SKF_NET_OFF (linux/filter.h): a BPF load relative to the network header, here the IPv6 header. */
const SKF_NET_OFF = -0x100000;

/**
 * The classic BPF program `ld b [SKF_NET_OFF+7]; jeq #255, pass, drop` (byte 7 of the IPv6
 * header is the hop limit), or its inverse, as struct sock_filter[] in host order. The research
 * note (§4.2) tested it on this kernel: the raw socket then sees only the 255 adverts; Linux's
 * IPV6_MINHOPCOUNT does not filter raw sockets (only tcp_v6_rcv() reads it).
 */
export function hopLimitFilter(want255: boolean): Buffer {
  const le = endianness() === 'LE';
  const insns: Array<[number, number, number, number]> = [
    [0x30, 0, 0, (SKF_NET_OFF + 7) >>> 0], // BPF_LD | BPF_B | BPF_ABS
    [0x15, want255 ? 0 : 1, want255 ? 1 : 0, 255], // BPF_JMP | BPF_JEQ | BPF_K
    [0x06, 0, 0, 0xffff], // BPF_RET | BPF_K: pass up to 64 KiB
    [0x06, 0, 0, 0], // BPF_RET | BPF_K: drop
  ];
  const buf = Buffer.alloc(8 * insns.length);
  insns.forEach(([code, jt, jf, k], i) => {
    if (le) buf.writeUInt16LE(code, 8 * i);
    else buf.writeUInt16BE(code, 8 * i);
    buf[8 * i + 2] = jt;
    buf[8 * i + 3] = jf;
    if (le) buf.writeUInt32LE(k, 8 * i + 4);
    else buf.writeUInt32BE(k, 8 * i + 4);
  });
  return buf;
}

/**
 * struct sock_fprog { unsigned short len; struct sock_filter *filter; } on a 64-bit host: the
 * pointer at offset 8. It is the one setsockopt argument that holds a pointer, which raw-socket
 * cannot build: koffi.address() gives the address of the filter's bytes, and the kernel copies
 * the program during setsockopt(SO_ATTACH_FILTER), so the buffers need only outlive the call.
 */
export function sockFprog(filter: Buffer): Buffer {
  const buf = Buffer.alloc(16);
  const le = endianness() === 'LE';
  if (le) buf.writeUInt16LE(filter.length / 8, 0);
  else buf.writeUInt16BE(filter.length / 8, 0);
  const addr = BigInt(koffi.address(filter) as bigint);
  if (le) buf.writeBigUInt64LE(addr, 8);
  else buf.writeBigUInt64BE(addr, 8);
  return buf;
}

/** The part of raw-socket (CommonJS, untyped) this file uses; tests hand in a fake of it. */
export interface RawSocket {
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  send(buffer: Buffer, offset: number, length: number, address: string, cb: (err: Error | null, bytes: number) => void): void;
  on(event: 'message', cb: (buffer: Buffer, source: string) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  close(): void;
  /**
   * The native socket: its send() calls sendto(2) at once and throws on failure; its recv() calls
   * recvfrom(2) once, hands the datagram to `cb` synchronously, and throws on failure (EAGAIN
   * included, as "Resource temporarily unavailable"). Optional only so test fakes may leave it out.
   */
  wrap: {
    send(buffer: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void;
    recv?(buffer: Buffer, cb: (buffer: Buffer, bytes: number, source: string) => void): void;
  };
}
export interface RawSocketModule {
  createSocket(options: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
}
const raw = createRequire(import.meta.url)('raw-socket') as RawSocketModule;

/** What RawTransport needs from the world; the defaults are raw-socket, sysfs and Node's timers. */
export interface RawTransportDeps {
  /** Opens an unconfigured raw IPv4 socket for protocol 112. */
  createSocket: () => RawSocket;
  /** Opens an unconfigured raw IPv6 socket for protocol 112. */
  createSocket6: () => RawSocket;
  /** The interface's IPv6 addresses, link-local first (/proc/net/if_inet6). */
  addresses6: (ifname: string) => string[];
  ifindex: (ifname: string) => number;
  /** The reopen backoff's timer. */
  timers: Pick<HostTimers, 'setTimeout' | 'clearTimeout'>;
}

/**
 * Datagrams read per readiness event at most. raw-socket's onRecvReady reads one datagram per
 * libuv poll wake-up, so a burst of 255 adverts was handled over 255 event-loop turns, each with
 * its own `now`, timers and I/O in between: a BACKUP's master-down timers spread by that much.
 * We read on until EAGAIN, but no more than this, so a flood cannot starve the loop (the kernel
 * keeps the rest, and the level-triggered poll wakes us again on the next turn).
 */
export const RECV_DRAIN_MAX = 512;
/** Large enough for any CARP/VRRP datagram (raw-socket's own receive buffer is 4096 bytes too). */
const RECV_BUFFER_BYTES = 4096;

/** The first reopen after a receive error waits this long; each failed reopen doubles it, up to REOPEN_MAX_MS. */
export const REOPEN_MIN_MS = 100;
export const REOPEN_MAX_MS = 5000;

const defaultDeps: RawTransportDeps = {
  createSocket: () => raw.createSocket({ protocol: CARP_PROTO, addressFamily: raw.AddressFamily.IPv4 }),
  createSocket6: () => raw.createSocket({ protocol: CARP_PROTO, addressFamily: raw.AddressFamily.IPv6 }),
  addresses6: (ifname) => ifAddresses6(ifname),
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

/**
 * The IPv6 addresses of one interface from /proc/net/if_inet6 (`hex ifindex plen scope flags
 * name`), link-local (scope 0x20) first; empty when there are none or no /proc.
 */
export function ifAddresses6(ifname: string, text?: string): string[] {
  let body = text;
  if (body === undefined) {
    try {
      body = readFileSync('/proc/net/if_inet6', 'utf8');
    } catch {
      return [];
    }
  }
  const out: Array<{ addr: string; ll: boolean }> = [];
  for (const line of body.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[5] !== ifname || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const groups = f[0]!.match(/.{4}/g)!.map((g) => parseInt(g, 16).toString(16));
    out.push({ addr: compress6(groups), ll: f[3] === '20' });
  }
  return [...out.filter((a) => a.ll), ...out.filter((a) => !a.ll)].map((a) => a.addr);
}

/** 8 hex groups to RFC 5952 text (longest zero run as ::). */
function compress6(groups: string[]): string {
  let best = -1;
  let len = 0;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > len) [best, len] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (len < 2) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + len).join(':')}`;
}

/** struct ipv6_mreq { in6_addr multiaddr; unsigned int ifindex; } (20 bytes, ifindex in host order). */
export function ipv6Mreq(group: string, ifindex: number): Buffer {
  const buf = Buffer.alloc(20);
  in6Addr(group).copy(buf, 0);
  if (endianness() === 'LE') buf.writeUInt32LE(ifindex, 16);
  else buf.writeUInt32BE(ifindex, 16);
  return buf;
}

function in6Addr(address: string): Buffer {
  if (!isIPv6(address)) throw new TransportError(`not an IPv6 address: ${address}`);
  const halves = address.split('::');
  const part = (t: string | undefined) => (t ? t.split(':') : []);
  const l = part(halves[0]);
  const r = part(halves[1]);
  const groups = [...l, ...new Array<string>(8 - l.length - r.length).fill('0'), ...r];
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16), 2 * i));
  return buf;
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
/** setsockopt on `socket` with a numeric or buffer value; a failure is a TransportError naming the option and interface. */
function socketOption(socket: RawSocket, ifname: string): (what: string, level: number, option: number, value: number | Buffer) => void {
  return (what, level, option, value) => {
    try {
      if (typeof value === 'number') socket.setOption(level, option, value);
      else socket.setOption(level, option, value, value.length);
    } catch (err) {
      throw new TransportError(`${what} on ${ifname}: ${(err as Error).message}`, { cause: err });
    }
  };
}

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

  addresses6(ifname: string): string[] {
    return this.deps.addresses6(ifname);
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
  readonly family: 4 | 6;
  private readonly join: boolean;
  private readonly messageCbs: Array<(packet: Buffer, info?: RecvInfo6) => void> = [];
  private readonly errorCbs: Array<(err: Error) => void> = [];
  private readonly recvErrorCbs: Array<(err: Error) => void> = [];
  private readonly group: string;
  private readonly srcip: string;
  /** The live socket (IPv6: the one passing hop limit 255, which also sends); undefined between a receive error and the reopen. */
  private socket: RawSocket | undefined;
  /** IPv6 only: the receive-only socket passing every hop limit but 255. */
  private other: RawSocket | undefined;
  private mreqn: Buffer;
  private closed = false;
  private reopenTimer: unknown;
  private reopenDelay = REOPEN_MIN_MS;
  /** The drain's receive buffer (deliver() copies out of it). */
  private recvBuffer: Buffer | undefined;

  constructor(
    opts: OpenSocketOptions,
    private readonly deps: RawTransportDeps,
  ) {
    this.ifname = opts.ifname;
    this.family = opts.family ?? 4;
    this.join = opts.join ?? true;
    this.group = opts.group ?? (this.family === 6 ? CARP_GROUP_V6 : CARP_GROUP_V4);
    this.srcip = opts.srcip ?? '0.0.0.0';
    const { socket, other, mreqn } = this.family === 6 ? this.openRaw6() : this.openRaw();
    this.mreqn = mreqn;
    this.attach(socket, other);
  }

  /**
   * The two filtered raw IPv6 sockets, bound to the interface; the first joins ff02::12 (the
   * membership is per interface, so both hear the group) and sends. Throws TransportError.
   */
  private openRaw6(): { socket: RawSocket; other: RawSocket; mreqn: Buffer } {
    const { ifname } = this;
    const ifindex = this.deps.ifindex(ifname);
    const mreq = ipv6Mreq(this.group, ifindex);
    const opened: RawSocket[] = [];
    const make = (want255: boolean): RawSocket => {
      let socket: RawSocket;
      try {
        socket = this.deps.createSocket6();
      } catch (err) {
        throw new TransportError(`cannot open raw IPv6 socket on ${ifname}: ${(err as Error).message}`, { cause: err });
      }
      opened.push(socket);
      const set = socketOption(socket, ifname);
      // The filter goes on first, before the socket is bound or joined: what arrives earlier is
      // any protocol-112 packet of the namespace for the few microseconds in between, a window
      // SO_BINDTODEVICE cannot close either.
      const filter = hopLimitFilter(want255);
      const prog = sockFprog(filter);
      set('SO_ATTACH_FILTER', LINUX.SOL_SOCKET, LINUX6.SO_ATTACH_FILTER, prog);
      filter.fill(0); // keeps `filter` alive past the call; the kernel has its own copy
      set('SO_BINDTODEVICE', LINUX.SOL_SOCKET, LINUX.SO_BINDTODEVICE!, Buffer.from(ifname));
      const v6 = LINUX6.IPPROTO_IPV6;
      if (want255) {
        set('IPV6_UNICAST_HOPS', v6, LINUX6.IPV6_UNICAST_HOPS, CARP_TTL);
        set('IPV6_MULTICAST_HOPS', v6, LINUX6.IPV6_MULTICAST_HOPS, CARP_TTL);
        set('IPV6_MULTICAST_LOOP', v6, LINUX6.IPV6_MULTICAST_LOOP, 0);
        set('IPV6_MULTICAST_IF', v6, LINUX6.IPV6_MULTICAST_IF, ifindex);
        if (this.join) set('IPV6_JOIN_GROUP', v6, LINUX6.IPV6_JOIN_GROUP, mreq);
        bigBuffer(socket, LINUX.SO_SNDBUFFORCE!, LINUX.SO_SNDBUF);
      }
      bigBuffer(socket, LINUX.SO_RCVBUFFORCE!, LINUX.SO_RCVBUF);
      return socket;
    };
    try {
      const socket = make(true);
      const other = make(false);
      return { socket, other, mreqn: mreq };
    } catch (err) {
      for (const s of opened) s.close();
      throw err;
    }
  }

  /** A raw socket bound to the interface and joined to the group. Throws TransportError. */
  private openRaw(): { socket: RawSocket; other?: undefined; mreqn: Buffer } {
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
    const set = socketOption(socket, ifname);
    const ip = LINUX.IPPROTO_IP;
    try {
      set('SO_BINDTODEVICE', LINUX.SOL_SOCKET, LINUX.SO_BINDTODEVICE!, Buffer.from(ifname));
      set('IP_TOS', ip, LINUX.IP_TOS, CARP_TOS);
      set('IP_TTL', ip, LINUX.IP_TTL, CARP_TTL);
      set('IP_MULTICAST_TTL', ip, LINUX.IP_MULTICAST_TTL, CARP_TTL);
      set('IP_MULTICAST_LOOP', ip, LINUX.IP_MULTICAST_LOOP, 0);
      set('IP_MULTICAST_IF', ip, LINUX.IP_MULTICAST_IF, ifOnly);
      if (this.join) set('IP_ADD_MEMBERSHIP', ip, LINUX.IP_ADD_MEMBERSHIP, mreqn);
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

  private attach(socket: RawSocket, other?: RawSocket): void {
    this.socket = socket;
    this.other = other;
    socket.on('message', (buffer: Buffer, source: string) => {
      if (socket !== this.socket) return;
      this.reopenDelay = REOPEN_MIN_MS; // this socket works: the next error starts the backoff afresh
      this.deliver(buffer, source, 255);
      this.drain(socket, () => socket === this.socket, 255);
    });
    socket.on('error', (err: Error) => {
      if (socket === this.socket) this.receiveFailed(err);
    });
    if (!other) return;
    other.on('message', (buffer: Buffer, source: string) => {
      if (other !== this.other) return;
      this.deliver(buffer, source, undefined);
      this.drain(other, () => other === this.other, undefined);
    });
    other.on('error', (err: Error) => {
      if (other === this.other) this.receiveFailed(err);
    });
  }

  send(payload: Buffer, dst: string = this.group): void {
    const socket = this.socket;
    if (this.closed || !socket) {
      this.reportLater(new TransportError(this.closed ? `send on closed socket ${this.ifname}` : `send on ${this.ifname}: the socket is being reopened`));
      return;
    }
    if (this.family === 4 ? !isIPv4(dst) : !isIPv6(dst)) {
      this.reportLater(new TransportError(`bad destination ${JSON.stringify(dst)}`));
      return;
    }
    // ff02::12 and a link-local peer6 are scoped to the interface (FreeBSD in6_setscope() on
    // the peer6); libuv's uv_ip6_addr() turns the %zone into sin6_scope_id.
    if (this.family === 6 && /^(fe[89ab]|ff02)/i.test(dst)) dst = `${dst}%${this.ifname}`;
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

  onMessage(cb: (packet: Buffer, info?: RecvInfo6) => void): void {
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
    const other = this.other;
    this.socket = undefined;
    this.other = undefined;
    try {
      other?.close();
    } catch {
      // Closed already.
    }
    if (!socket) return;
    if (this.join) {
      try {
        if (this.family === 6) socket.setOption(LINUX6.IPPROTO_IPV6, LINUX6.IPV6_LEAVE_GROUP, this.mreqn, this.mreqn.length);
        else socket.setOption(LINUX.IPPROTO_IP, LINUX.IP_DROP_MEMBERSHIP, this.mreqn, this.mreqn.length);
      } catch {
        // The interface may be gone already; closing drops the membership anyway.
      }
    }
    try {
      socket.close();
    } catch {
      // Closed already (raw-socket closes on a poll error before we hear of it).
    }
  }

  /**
   * After raw-socket's one read of a wake-up, read on until EAGAIN (at most RECV_DRAIN_MAX in all),
   * so a burst is handled in this one turn of the event loop. Each datagram is delivered after
   * recv() returns, not inside its callback: a listener's exception must not pass for a receive
   * error. Any other recvfrom error is one, as in raw-socket's own onRecvReady.
   */
  private drain(socket: RawSocket, live: () => boolean, hopLimit: number | undefined): void {
    const wrap = socket.wrap;
    if (!wrap.recv) return;
    this.recvBuffer ??= Buffer.alloc(RECV_BUFFER_BYTES);
    const buf = this.recvBuffer;
    for (let n = 1; n < RECV_DRAIN_MAX && !this.closed && live(); n++) {
      let got: { bytes: number; source: string } | undefined;
      try {
        wrap.recv(buf, (_b, bytes, source) => {
          got = { bytes, source };
        });
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        // EAGAIN: drained. receiveFailed() ignores it too, and replaces the socket on anything else.
        if (!/temporarily unavailable|EAGAIN|EWOULDBLOCK/i.test(e.message)) this.receiveFailed(e);
        return;
      }
      if (!got) return;
      this.deliver(buf.subarray(0, got.bytes), got.source, hopLimit);
    }
  }

  private deliver(buffer: Buffer, source: string, hopLimit: number | undefined): void {
    if (this.closed) return;
    // raw-socket hands out a slice of one shared receive buffer; copy so listeners may keep it.
    const packet = Buffer.from(buffer);
    const info: RecvInfo6 | undefined = this.family === 6 ? { family: 6, src: source, hopLimit } : undefined;
    for (const cb of this.messageCbs) cb(packet, info);
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
        const { socket, other, mreqn } = this.family === 6 ? this.openRaw6() : this.openRaw();
        this.mreqn = mreqn;
        this.attach(socket, other);
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
