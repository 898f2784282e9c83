/**
 * Link-layer sends: whole Ethernet frames (gratuitous ARP, unsolicited NA, later adverts from the
 * virtual MAC) on an AF_PACKET socket, through koffi (FFI to libc), because raw-socket only opens
 * AF_INET/AF_INET6 sockets.
 *
 * One socket per interface, `socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`:
 * protocol 0 means the kernel delivers nothing to it (packet(7): "If protocol is 0, no packets are
 * received"), so it costs no copy of the interface's traffic; each frame goes out with
 * `sendto()` and a `sockaddr_ll` naming the interface index. A send is one system call that
 * returns once the frame is queued to the driver: 255 gratuitous ARPs take milliseconds in one
 * process, where one `arping` per VIP cost a fork, an exec and arping's one-second linger each.
 *
 * The socket is reopened when the interface's index changes (deleted and created again under the
 * same name) or a send fails with ENXIO/ENODEV (the index went away under us).
 */
import { createRequire } from 'node:module';

/** Linux constants (include/linux/socket.h, if_ether.h, asm-generic/socket.h, errno-base.h). */
const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_SNDBUF = 7;
export const ERRNO = { EINTR: 4, ENXIO: 6, EAGAIN: 11, ENOBUFS: 105, ENODEV: 19, ENETDOWN: 100 } as const;
/** Enough for a burst of several thousand small frames to queue without EAGAIN. */
const SNDBUF_BYTES = 4 * 1024 * 1024;
const SOCKADDR_LL_LEN = 20;
/** How often a send that found the socket buffer full (EAGAIN/ENOBUFS) is tried again, 1 ms apart. */
const FULL_RETRIES = 200;

/** The few libc calls a packet socket needs; the tests pass a fake. Every call returns -errno on failure. */
export interface PacketFfi {
  /** `socket(AF_PACKET, SOCK_RAW|SOCK_NONBLOCK|SOCK_CLOEXEC, 0)` and a large SO_SNDBUF: fd, or -errno. */
  open(): number;
  /** `sendto(fd, frame, 0, sockaddr_ll{ifindex, protocol})`: bytes sent, or -errno. */
  send(fd: number, frame: Buffer, ifindex: number, ethertype: number): number;
  close(fd: number): void;
  /** `if_nametoindex(3)`: the index, or 0 when there is no such interface. */
  ifindex(ifname: string): number;
}

/** A failed link-layer send, with the errno when the kernel gave one. */
export class LinkLayerError extends Error {
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super(message);
    this.name = 'LinkLayerError';
  }
}

interface Koffi {
  load(path: string): { func(decl: string): (...args: unknown[]) => unknown };
  errno(): number;
}

/** libc's socket calls shared by the packet and netlink sockets, bound once per use through koffi. */
function bindLibc(purpose: string) {
  let koffi: Koffi;
  let lib: ReturnType<Koffi['load']>;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
    lib = koffi.load('libc.so.6');
  } catch (err) {
    throw new LinkLayerError(`cannot load libc through koffi for ${purpose}: ${(err as Error).message}`);
  }
  const socket = lib.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number;
  const setsockopt = lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)') as (
    fd: number,
    level: number,
    name: number,
    value: Buffer,
    len: number,
  ) => number;
  const sendto = lib.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)') as (
    fd: number,
    buf: Buffer,
    len: number,
    flags: number,
    addr: Buffer,
    addrlen: number,
  ) => number;
  const close = lib.func('int close(int fd)') as (fd: number) => number;
  return { koffi, lib, socket, setsockopt, sendto, close };
}

let libc: PacketFfi | undefined;

/**
 * libc through koffi, loaded once. Throws LinkLayerError off Linux or when koffi cannot load (an
 * architecture without a prebuilt binary): the caller turns that into a clear NetError.
 */
export function libcPacketFfi(): PacketFfi {
  if (libc) return libc;
  if (process.platform !== 'linux') throw new LinkLayerError(`link-layer sends need Linux AF_PACKET sockets (this is ${process.platform})`);
  const { koffi, lib, socket, setsockopt, sendto, close } = bindLibc('AF_PACKET sends');
  const nametoindex = lib.func('unsigned int if_nametoindex(const char *name)') as (name: string) => number;
  // One sockaddr_ll reused for every send (sends are synchronous: koffi returns after the call).
  const sll = Buffer.alloc(SOCKADDR_LL_LEN);
  libc = {
    open() {
      const fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) return -koffi.errno();
      const size = Buffer.alloc(4);
      size.writeInt32LE(SNDBUF_BYTES);
      // SO_SNDBUFFORCE passes net.core.wmem_max (CAP_NET_ADMIN, which carpd has); SO_SNDBUF is capped by it.
      if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, size, 4) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, size, 4);
      return fd;
    },
    send(fd, frame, ifindex, ethertype) {
      // struct sockaddr_ll: family (host order), protocol (network order), ifindex, hatype,
      // pkttype, halen, addr[8]. For SOCK_RAW the frame carries its own Ethernet header, so only
      // family, protocol and ifindex matter (packet(7)).
      sll.fill(0);
      sll.writeUInt16LE(AF_PACKET, 0);
      sll.writeUInt16BE(ethertype, 2);
      sll.writeInt32LE(ifindex, 4);
      const n = Number(sendto(fd, frame, frame.length, 0, sll, SOCKADDR_LL_LEN));
      return n < 0 ? -koffi.errno() : n;
    },
    close(fd) {
      close(fd);
    },
    ifindex(ifname) {
      return nametoindex(ifname);
    },
  };
  return libc;
}

export interface LinkFrame {
  frame: Buffer;
  /** The frame's EtherType (0x0806 ARP, 0x86dd IPv6), for sockaddr_ll.sll_protocol. */
  ethertype: number;
}

/** Per-frame outcome of a batch: undefined when sent, else why not. */
export type SendResult = (LinkLayerError | undefined)[];

/** Packet sockets, one per interface, opened on first use and kept. */
export class LinkLayer {
  private readonly sockets = new Map<string, { fd: number; ifindex: number }>();
  private ffi: PacketFfi | undefined;

  /** `ffi`: the libc calls, or a function returning them (called on first use; libc through koffi by default). */
  constructor(
    private readonly getFfi: () => PacketFfi = libcPacketFfi,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /**
   * Send `frames` out of `ifname`, in order. The interface index is looked up once per call (one
   * ioctl), so a batch costs one lookup and one sendto per frame. A full socket buffer
   * (EAGAIN/ENOBUFS) is waited out a millisecond at a time, at most FULL_RETRIES times; ENXIO or
   * ENODEV reopens the socket once for the new index and sends again. Throws LinkLayerError only
   * when nothing could be tried (no FFI, no such interface, no socket); per-frame failures are in
   * the result.
   */
  async send(ifname: string, frames: LinkFrame[]): Promise<SendResult> {
    const ffi = (this.ffi ??= this.getFfi());
    const out: SendResult = frames.map(() => undefined);
    let s = this.socketFor(ffi, ifname);
    let reopened = false;
    let waits = 0;
    for (let i = 0; i < frames.length;) {
      const f = frames[i]!;
      const n = ffi.send(s.fd, f.frame, s.ifindex, f.ethertype);
      if (n >= 0) {
        i++;
        continue;
      }
      const errno = -n;
      if (errno === ERRNO.EINTR) continue;
      if ((errno === ERRNO.EAGAIN || errno === ERRNO.ENOBUFS) && waits < FULL_RETRIES) {
        waits++;
        await this.sleep(1);
        s = this.socketFor(ffi, ifname);
        continue;
      }
      if ((errno === ERRNO.ENXIO || errno === ERRNO.ENODEV) && !reopened) {
        reopened = true;
        this.drop(ifname);
        s = this.socketFor(ffi, ifname);
        continue;
      }
      out[i] = new LinkLayerError(`sendto on ${ifname}: errno ${errno}`, errno);
      i++;
    }
    return out;
  }

  /** The interface's index (if_nametoindex(3)), 0 when there is none. */
  ifindex(ifname: string): number {
    return (this.ffi ??= this.getFfi()).ifindex(ifname);
  }

  /** Close every socket (the daemon's stop). */
  close(): void {
    for (const name of [...this.sockets.keys()]) this.drop(name);
  }

  /** Open interfaces and their indexes, for tests and `carpctl` diagnostics. */
  openSockets(): { ifname: string; ifindex: number; fd: number }[] {
    return [...this.sockets].map(([ifname, s]) => ({ ifname, ...s }));
  }

  private socketFor(ffi: PacketFfi, ifname: string): { fd: number; ifindex: number } {
    const ifindex = ffi.ifindex(ifname);
    if (ifindex <= 0) {
      this.drop(ifname);
      throw new LinkLayerError(`no such interface ${ifname}`, ERRNO.ENODEV);
    }
    const have = this.sockets.get(ifname);
    if (have && have.ifindex === ifindex) return have;
    if (have) this.drop(ifname);
    const fd = ffi.open();
    if (fd < 0) throw new LinkLayerError(`cannot open an AF_PACKET socket: errno ${-fd}`, -fd);
    const s = { fd, ifindex };
    this.sockets.set(ifname, s);
    return s;
  }

  private drop(ifname: string): void {
    const s = this.sockets.get(ifname);
    if (!s) return;
    this.sockets.delete(ifname);
    this.ffi?.close(s.fd);
  }
}

// --- Addresses over rtnetlink --------------------------------------------------------------

const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
const SO_RCVBUFFORCE = 33;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
/** IFA_F_NODAD (include/uapi/linux/if_addr.h): no duplicate address detection, as `ip … nodad`. */
export const IFA_F_NODAD = 0x02;
/** Requests per sendto: their acks (36 bytes each, a few hundred of truesize) fit the receive buffer many times over. */
const NL_CHUNK = 64;

/** One address change, as `ip addr add|del ADDRESS/PREFIX dev IF [nodad]` says it. */
export interface AddrRequest {
  op: 'add' | 'del';
  ifindex: number;
  family: 4 | 6;
  /** 4 or 16 bytes. */
  address: Buffer;
  prefix: number;
  flags?: number;
}

/** The rtnetlink request for `r` (sequence `seq`), as iproute2's ipaddr_modify() builds it: IFA_LOCAL and IFA_ADDRESS both the address. */
export function addrMessage(r: AddrRequest, seq: number): Buffer {
  const alen = r.address.length;
  const attr = 4 + alen; // alen is 4 or 16: already 4-aligned
  const len = 16 + 8 + 2 * attr;
  const m = Buffer.alloc(len);
  m.writeUInt32LE(len, 0);
  m.writeUInt16LE(r.op === 'add' ? RTM_NEWADDR : RTM_DELADDR, 4);
  m.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | (r.op === 'add' ? NLM_F_CREATE | NLM_F_EXCL : 0), 6);
  m.writeUInt32LE(seq, 8);
  // nlmsg_pid 0: the kernel.
  m[16] = r.family === 4 ? 2 : 10; // AF_INET, AF_INET6
  m[17] = r.prefix;
  m[18] = r.flags ?? 0;
  m[19] = 0; // RT_SCOPE_UNIVERSE
  m.writeUInt32LE(r.ifindex, 20);
  let off = 24;
  for (const type of [IFA_LOCAL, IFA_ADDRESS]) {
    m.writeUInt16LE(attr, off);
    m.writeUInt16LE(type, off + 2);
    r.address.copy(m, off + 4);
    off += attr;
  }
  return m;
}

/** The acks in a buffer of netlink messages: sequence → 0 or a negative errno. */
export function parseAcks(buf: Buffer, out = new Map<number, number>()): Map<number, number> {
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    if (buf.readUInt16LE(off + 4) === NLMSG_ERROR && len >= 20) out.set(buf.readUInt32LE(off + 8), buf.readInt32LE(off + 16));
    off += (len + 3) & ~3;
  }
  return out;
}

/** libc calls for a NETLINK_ROUTE socket; -errno on failure. */
export interface NetlinkFfi {
  open(): number;
  send(fd: number, buf: Buffer): number;
  /** recv(MSG_DONTWAIT) into `buf`: bytes, or -errno (-EAGAIN when nothing is queued). */
  recv(fd: number, buf: Buffer): number;
  close(fd: number): void;
  strerror(errno: number): string;
}

let libcNl: NetlinkFfi | undefined;

/** NETLINK_ROUTE through koffi; throws LinkLayerError where it cannot load (the caller falls back to `ip`). */
export function libcNetlinkFfi(): NetlinkFfi {
  if (libcNl) return libcNl;
  if (process.platform !== 'linux') throw new LinkLayerError(`rtnetlink needs Linux (this is ${process.platform})`);
  const { koffi, lib, socket, setsockopt, sendto, close } = bindLibc('rtnetlink');
  const recv = lib.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)') as (fd: number, buf: Buffer, len: number, flags: number) => number;
  const strerror = lib.func('const char *strerror(int errnum)') as (e: number) => string;
  // struct sockaddr_nl: family, pad, pid 0 (the kernel), groups 0.
  const kernel = Buffer.alloc(12);
  kernel.writeUInt16LE(AF_NETLINK, 0);
  const MSG_DONTWAIT = 0x40;
  libcNl = {
    open() {
      const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
      if (fd < 0) return -koffi.errno();
      const size = Buffer.alloc(4);
      size.writeInt32LE(SNDBUF_BYTES);
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4);
      return fd;
    },
    send(fd, buf) {
      const n = Number(sendto(fd, buf, buf.length, 0, kernel, kernel.length));
      return n < 0 ? -koffi.errno() : n;
    },
    recv(fd, buf) {
      const n = Number(recv(fd, buf, buf.length, MSG_DONTWAIT));
      return n < 0 ? -koffi.errno() : n;
    },
    close(fd) {
      close(fd);
    },
    strerror: (e) => strerror(e),
  };
  return libcNl;
}

/**
 * Address changes over one NETLINK_ROUTE socket, the way `ip addr add|del` makes them, without a
 * process: rtnetlink handles a request in the sender's sendto() (netlink_unicast_kernel() →
 * rtnetlink_rcv(), under the RTNL lock), so the acks are queued by the time sendto returns and are
 * read without waiting. 255 VIPs cost a few system calls and about a millisecond; `ip -batch`
 * cost a fork and exec of iproute2, tens of milliseconds, over a hundred on a loaded machine.
 */
export class RtNetlink {
  private fd: number | undefined;
  private ffi: NetlinkFfi | undefined;
  private seq = Math.floor(Date.now() / 1000) >>> 0;
  private readonly rx = Buffer.alloc(256 * 1024);

  constructor(private readonly getFfi: () => NetlinkFfi = libcNetlinkFfi) {}

  /** Apply `reqs` in order; per request 0 or a positive errno. Throws LinkLayerError when the socket cannot be used at all. */
  apply(reqs: AddrRequest[]): number[] {
    const ffi = (this.ffi ??= this.getFfi());
    if (this.fd === undefined) {
      const fd = ffi.open();
      if (fd < 0) throw new LinkLayerError(`cannot open a NETLINK_ROUTE socket: ${ffi.strerror(-fd)}`, -fd);
      this.fd = fd;
    }
    const fd = this.fd;
    // Anything left from an earlier call (it should be empty) must not be taken for our acks.
    while (ffi.recv(fd, this.rx) > 0);
    const out: number[] = [];
    for (let i = 0; i < reqs.length; i += NL_CHUNK) {
      const chunk = reqs.slice(i, i + NL_CHUNK);
      const seqs = chunk.map(() => (this.seq = (this.seq + 1) >>> 0));
      const n = ffi.send(fd, Buffer.concat(chunk.map((r, j) => addrMessage(r, seqs[j]!))));
      if (n < 0) {
        this.close();
        throw new LinkLayerError(`rtnetlink send: ${ffi.strerror(-n)}`, -n);
      }
      const acks = new Map<number, number>();
      // Bounded: one datagram per ack at most, and EAGAIN once they are all read.
      for (let reads = 0; acks.size < chunk.length && reads <= chunk.length; reads++) {
        const got = ffi.recv(fd, this.rx);
        if (got <= 0) break;
        parseAcks(this.rx.subarray(0, got), acks);
      }
      for (const s of seqs) {
        const e = acks.get(s);
        // No ack at all (an overflowing receive buffer): report it rather than guess.
        out.push(e === undefined ? ERRNO.ENOBUFS : -e);
      }
    }
    return out;
  }

  strerror(errno: number): string {
    return (this.ffi ?? this.getFfi()).strerror(errno);
  }

  close(): void {
    if (this.fd !== undefined) this.ffi?.close(this.fd);
    this.fd = undefined;
  }
}
