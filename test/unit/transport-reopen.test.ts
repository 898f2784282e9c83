/**
 * Defect 9: a receive error must not deafen an interface. RawTransport on a fake raw-socket
 * (same surface as raw-socket's Socket: setOption, on('message'|'error'), wrap.send, close) and
 * fake timers: the failed socket is closed, a new one is bound and joined after the backoff, and
 * it receives again. Receive errors are reported apart from send errors.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { Engine } from '../../src/daemon/engine.js';
import { renderMetrics } from '../../src/daemon/metrics.js';
import { formatStats, statsReport } from '../../src/daemon/reports.js';
import { buildAdvert } from '../../src/proto/advert.js';
import { makeAuthContext } from '../../src/proto/hmac.js';
import { encodeIpv4Header } from '../../src/proto/ipv4.js';
import { FakeNet, FakeTime, vhidCfg } from '../helpers/fake-wire.js';
import { RawTransport, REOPEN_MAX_MS, REOPEN_MIN_MS, SOCKOPTS, type RawSocket } from '../../src/adapters/raw-transport.js';

const L = SOCKOPTS.linux;

class FakeRawSocket extends EventEmitter {
  readonly options: { level: number; option: number; value: number | string }[] = [];
  closed = false;
  readonly sent: Buffer[] = [];
  readonly wrap = {
    send: (buf: Buffer, off: number, len: number, _addr: string, cb: (bytes: number) => void): void => {
      if (this.closed) throw new Error('send on a closed fake socket');
      this.sent.push(Buffer.from(buf.subarray(off, off + len)));
      cb(len);
    },
  };
  setOption(level: number, option: number, value: number | Buffer): void {
    if (this.closed) throw new Error('setOption on a closed fake socket');
    this.options.push({ level, option, value: typeof value === 'number' ? value : value.toString('hex') });
  }
  send(): void {
    throw new Error('not used');
  }
  close(): void {
    this.closed = true;
  }
  joined(): boolean {
    return this.options.some((o) => o.level === L.IPPROTO_IP && o.option === L.IP_ADD_MEMBERSHIP);
  }
  boundTo(): string | undefined {
    const o = this.options.find((x) => x.level === L.SOL_SOCKET && x.option === L.SO_BINDTODEVICE);
    return o ? Buffer.from(String(o.value), 'hex').toString() : undefined;
  }
}

/** Timers a test advances by hand. */
class FakeTimers {
  now = 0;
  private list: { at: number; fn: () => void; id: number }[] = [];
  private id = 0;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const t = { at: this.now + ms, fn, id: ++this.id };
    this.list.push(t);
    return t.id;
  };
  clearTimeout = (h: unknown): void => {
    this.list = this.list.filter((t) => t.id !== h);
  };
  get pending(): number[] {
    return this.list.map((t) => t.at - this.now);
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (let guard = 0; guard < 1000; guard++) {
      const due = this.list.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.list = this.list.filter((t) => t !== due);
      this.now = due.at;
      due.fn();
    }
    this.now = end;
  }
}

function setup(opts: { failOpens?: () => boolean } = {}) {
  const sockets: FakeRawSocket[] = [];
  const timers = new FakeTimers();
  const transport = new RawTransport({
    createSocket: () => {
      if (opts.failOpens?.()) throw new Error('Operation not permitted');
      const s = new FakeRawSocket();
      sockets.push(s);
      return s as unknown as RawSocket;
    },
    ifindex: () => 7,
    timers,
  });
  const sock = transport.open({ ifname: 'eth0', srcip: '198.18.0.2' });
  const received: string[] = [];
  const recvErrors: string[] = [];
  const sendErrors: string[] = [];
  sock.onMessage((p) => received.push(p.toString()));
  sock.onReceiveError?.((e) => recvErrors.push(e.message));
  sock.onSendError((e) => sendErrors.push(e.message));
  return { sockets, timers, sock, received, recvErrors, sendErrors };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('RawTransport after a receive error (defect 9)', () => {
  it('reopens the socket after the backoff and receives again', async () => {
    const { sockets, timers, sock, received, recvErrors, sendErrors } = setup();
    assert.equal(sockets.length, 1);
    sockets[0]!.emit('message', Buffer.from('one'), '198.18.0.1');
    // EAGAIN from recvfrom (a wake-up with nothing to read) is not a failure.
    sockets[0]!.emit('error', new Error('Resource temporarily unavailable'));
    assert.deepEqual(recvErrors, []);
    assert.equal(sockets[0]!.closed, false);
    sockets[0]!.emit('error', new Error('Network is down'));
    assert.deepEqual(recvErrors, ['Network is down']);
    assert.equal(sockets[0]!.closed, true, 'the failed socket is closed');
    assert.deepEqual(timers.pending, [REOPEN_MIN_MS]);
    timers.advance(REOPEN_MIN_MS);
    assert.equal(sockets.length, 2, 'a new socket was opened');
    const fresh = sockets[1]!;
    assert.equal(fresh.boundTo(), 'eth0');
    assert.ok(fresh.joined(), 'the new socket joined 224.0.0.18');
    fresh.emit('message', Buffer.from('two'), '198.18.0.1');
    // A late event from the old socket is ignored.
    sockets[0]!.emit('message', Buffer.from('stale'), '198.18.0.1');
    assert.deepEqual(received, ['one', 'two']);
    sock.send(Buffer.alloc(36));
    assert.equal(fresh.sent.length, 1, 'sends go out on the new socket');
    await flush();
    assert.deepEqual(sendErrors, [], 'a receive error is not a send error');
    sock.close();
    assert.equal(fresh.closed, true);
  });

  it('backs off 100 ms doubling to 5 s while reopening fails, then starts afresh once it works', async () => {
    let failing = false;
    const { sockets, timers, sock, recvErrors, sendErrors, received } = setup({ failOpens: () => failing });
    failing = true;
    sockets[0]!.emit('error', new Error('-9'));
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      delays.push(timers.pending[0]!);
      timers.advance(timers.pending[0]!);
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    assert.equal(recvErrors.length, 10);
    // While there is no socket, a send is reported (the node's send-error policy applies) and never thrown.
    sock.send(Buffer.alloc(36));
    await flush();
    assert.equal(sendErrors.length, 1);
    assert.match(sendErrors[0]!, /being reopened/);
    failing = false;
    timers.advance(REOPEN_MAX_MS);
    assert.equal(sockets.length, 2);
    sockets[1]!.emit('message', Buffer.from('back'), '198.18.0.1');
    assert.deepEqual(received, ['back']);
    sockets[1]!.emit('error', new Error('again'));
    assert.deepEqual(timers.pending, [REOPEN_MIN_MS], 'a socket that received resets the backoff');
    sock.close();
    assert.deepEqual(timers.pending, [], 'close cancels the reopen');
    timers.advance(10_000);
    assert.equal(sockets.length, 2, 'nothing reopens after close');
  });
});

describe('the engine over RawTransport with a receive error (defect 9)', () => {
  it('a BACKUP whose socket fails once keeps hearing its master, stays BACKUP, and counts a receive error, not a send error', () => {
    const time = new FakeTime();
    const sockets: FakeRawSocket[] = [];
    const transport = new RawTransport({
      createSocket: () => {
        const s = new FakeRawSocket();
        sockets.push(s);
        return s as unknown as RawSocket;
      },
      ifindex: () => 7,
      timers: { setTimeout: (fn, ms) => time.schedule(time.now + ms, fn), clearTimeout: (h) => time.cancel(h as ReturnType<FakeTime['schedule']>) },
    });
    const logs: string[] = [];
    const cfg = vhidCfg(1, 50);
    const engine = new Engine(
      { global: { allow: true, preempt: false, log: 2 }, vhids: [cfg] },
      { transport, net: new FakeNet({ eth0: '198.18.0.2' }), clock: time.clock(), logger: { log: (_l, m) => logs.push(m) } },
    );
    engine.start();
    // The master, 198.18.0.1, advertises every second on whatever socket is live.
    const ctx = makeAuthContext('secret', 1, cfg.addresses);
    let counter = 1n;
    const master = (): void => {
      const payload = buildAdvert(ctx, { advbase: 1, advskew: 0, demote: 0, counter: counter++ });
      const pkt = Buffer.concat([encodeIpv4Header({ src: '198.18.0.1', dst: '224.0.0.18', ttl: 255, tos: 0x10, protocol: 112, payloadLength: 36 }), payload]);
      sockets.at(-1)!.emit('message', pkt, '198.18.0.1');
    };
    for (let i = 0; i < 5; i++) {
      master();
      time.advance(1000);
    }
    assert.equal(engine.status()[0]!.state, 'BACKUP');
    sockets.at(-1)!.emit('error', new Error('recvfrom: No buffer space available'));
    for (let i = 0; i < 20; i++) {
      time.advance(1000);
      if (!sockets.at(-1)!.closed) master();
    }
    assert.equal(sockets.length, 2);
    assert.equal(engine.status()[0]!.state, 'BACKUP', logs.join('\n'));
    assert.equal(engine.stats.carps_ierrors, 1);
    assert.ok(
      logs.some((l) => l === 'carp: receive error on eth0: recvfrom: No buffer space available; reopening the socket'),
      logs.join('\n'),
    );
    assert.ok(!logs.some((l) => l.includes('send error')), logs.join('\n'));
    assert.match(renderMetrics({ engine }), /^carpd_receive_errors_total 1$/m);
    assert.ok(formatStats(statsReport(engine)).includes('\t1 receive error (socket reopened)'));
  });
});
