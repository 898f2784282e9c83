/**
 * Issue 11 §1: RawTransport reads a socket until EAGAIN on each readiness event, at most
 * RECV_DRAIN_MAX datagrams, so a burst of 255 adverts is handled in one turn of the event loop.
 * A fake raw-socket with a kernel queue: `wake()` does what raw-socket's onRecvReady does (one
 * recvfrom, one 'message'), and wrap.recv() throws EAGAIN when the queue is empty.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { RawTransport, RECV_DRAIN_MAX, REOPEN_MIN_MS, type RawSocket } from '../../src/adapters/raw-transport.js';

class QueueSocket extends EventEmitter {
  closed = false;
  /** The kernel's receive queue: a datagram, or an error recvfrom(2) returns in its place. */
  readonly queue: (Buffer | Error)[] = [];
  recvCalls = 0;
  readonly wrap = {
    send: (_b: Buffer, _o: number, len: number, _a: string, cb: (bytes: number) => void): void => cb(len),
    recv: (buf: Buffer, cb: (buffer: Buffer, bytes: number, source: string) => void): void => {
      this.recvCalls++;
      const next = this.queue.shift();
      if (next === undefined) throw new Error('Resource temporarily unavailable');
      if (next instanceof Error) throw next;
      next.copy(buf);
      cb(buf, next.length, '198.18.0.9');
    },
  };
  setOption(): void {}
  send(): void {
    throw new Error('not used');
  }
  close(): void {
    this.closed = true;
  }
  /** raw-socket's onRecvReady: one recv, its datagram emitted, an error emitted as 'error'. */
  wake(): void {
    try {
      this.wrap.recv(Buffer.alloc(4096), (b, bytes, src) => this.emit('message', b.subarray(0, bytes), src));
    } catch (err) {
      this.emit('error', err);
    }
  }
}

function setup() {
  const sockets: QueueSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const transport = new RawTransport({
    createSocket: () => {
      const s = new QueueSocket();
      sockets.push(s);
      return s as unknown as RawSocket;
    },
    ifindex: () => 7,
    timers: { setTimeout: (fn, ms) => timers.push({ fn, ms }), clearTimeout: () => undefined },
  });
  const sock = transport.open({ ifname: 'eth0', srcip: '198.18.0.2' });
  const received: string[] = [];
  const recvErrors: string[] = [];
  sock.onMessage((p) => received.push(p.toString()));
  sock.onReceiveError?.((e) => recvErrors.push(e.message));
  return { sockets, timers, received, recvErrors };
}

const packets = (n: number, from = 0) => Array.from({ length: n }, (_, i) => Buffer.from(`advert ${from + i}`));

describe('RawTransport drains the socket per readiness event', () => {
  it('a burst of 255 adverts is delivered in one wake-up, in order, each its own copy', () => {
    const { sockets, received, recvErrors } = setup();
    sockets[0]!.queue.push(...packets(255));
    sockets[0]!.wake();
    // Before: one datagram per wake-up (raw-socket's onRecvReady reads once).
    assert.equal(received.length, 255);
    assert.deepEqual(received, packets(255).map(String));
    assert.deepEqual(recvErrors, [], 'EAGAIN at the end of the queue is no error');
    assert.equal(sockets.length, 1, 'and the socket is kept');
  });

  it(`a flood is read ${RECV_DRAIN_MAX} datagrams at a time, the rest on the next wake-up`, () => {
    const { sockets, received } = setup();
    const s = sockets[0]!;
    s.queue.push(...packets(RECV_DRAIN_MAX * 2 + 10));
    s.wake();
    assert.equal(received.length, RECV_DRAIN_MAX);
    assert.equal(s.recvCalls, RECV_DRAIN_MAX, 'no read past the bound');
    s.wake();
    assert.equal(received.length, RECV_DRAIN_MAX * 2);
    s.wake();
    assert.equal(received.length, RECV_DRAIN_MAX * 2 + 10);
  });

  it('a receive error in the middle of a drain replaces the socket (defect 9), after what was read before it', () => {
    const { sockets, timers, received, recvErrors } = setup();
    const s = sockets[0]!;
    s.queue.push(...packets(3), new Error('Network is down'), ...packets(3, 3));
    s.wake();
    assert.deepEqual(received, packets(3).map(String));
    assert.deepEqual(recvErrors, ['Network is down']);
    assert.equal(s.closed, true);
    assert.equal(timers.length, 1);
    assert.equal(timers[0]!.ms, REOPEN_MIN_MS);
    timers[0]!.fn();
    assert.equal(sockets.length, 2);
    sockets[1]!.queue.push(...packets(2, 10));
    sockets[1]!.wake();
    assert.deepEqual(received.slice(3), packets(2, 10).map(String));
  });
});
