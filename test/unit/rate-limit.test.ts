/**
 * Defect 3: a flood of bad packets from spoofed sources must cost a bounded number of log lines
 * and a summary with the right counts. Driven through the real engine on the fake wire and clock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAdvert } from '../../src/proto/advert.js';
import { makeAuthContext } from '../../src/proto/hmac.js';
import { encodeIpv4Header } from '../../src/proto/ipv4.js';
import { DropLog, RateLimiter } from '../../src/daemon/rate-limit.js';
import { Sim, vhidCfg } from '../helpers/fake-wire.js';

/** A deterministic xorshift32, so the "random" sources are the same on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

function ipOf(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** A well-formed, well-signed advert for vhid 1 from `src` with the given TTL. */
function advert(src: string, ttl: number, password = 'secret'): Buffer {
  const ctx = makeAuthContext(password, 1, ['198.18.0.101/24']);
  const payload = buildAdvert(ctx, { advbase: 1, advskew: 0, demote: 0, counter: 1n });
  return Buffer.concat([encodeIpv4Header({ src, dst: '224.0.0.18', ttl, tos: 0x10, protocol: 112, payloadLength: payload.length }), payload]);
}

/** A backup node `b` on eth0 and a way to hand it a packet as its socket would. */
function backup(): { sim: Sim; inject: (pkt: Buffer) => void; dropLines: () => string[] } {
  const sim = new Sim();
  const b = sim.add('b', 2, [vhidCfg(1, 50)], { log: 2 });
  b.engine.start();
  sim.time.advance(100);
  const port = sim.wire.ports.find((p) => p.node === 'b' && p.ifname === 'eth0');
  assert.ok(port?.cb, 'the engine listens on eth0');
  return {
    sim,
    inject: (pkt) => port.cb!(pkt),
    dropLines: () => b.logs.filter((l) => /dropped|bad authentication/.test(l)),
  };
}

describe('drop logging under a spoofed-source flood (defect 3)', () => {
  it('at shutdown the open window is summarized and no timer stays armed (a summary a minute away kept carpd from exiting)', async () => {
    const { sim, inject, dropLines } = backup();
    for (let i = 0; i < 5; i++) inject(advert(`198.18.0.${10 + i}`, 64));
    sim.time.advance(1_000);
    const queue = (sim.time as unknown as { queue: unknown[] }).queue;
    assert.ok(queue.length > 0, 'the window summary is armed on the clock');
    await sim.nodes.get('b')!.engine.stop();
    assert.equal(queue.length, 0, 'nothing left armed after stop');
    assert.match(dropLines().at(-1)!, /5 packets dropped for badttl from 5 sources in 1 s$/);
  });

  it('50,000 bad-TTL packets from 50,000 random sources: at most 3 lines, and a summary with the counts', () => {
    const { sim, inject, dropLines } = backup();
    const rnd = prng(0xc0ffee);
    const sources = new Set<string>();
    for (let i = 0; i < 50_000; i++) {
      const src = ipOf(rnd());
      sources.add(src);
      inject(advert(src, 64));
    }
    const b = sim.node('b');
    assert.equal(b.engine.stats.carps_badttl, 50_000);
    // Before the window ends: only the first packet's own line.
    assert.equal(dropLines().length, 1, dropLines().slice(0, 5).join('\n'));
    assert.match(dropLines()[0]!, /^carp: eth0: packet from [\d.]+ dropped: badttl$/);
    sim.time.advance(61_000);
    const lines = dropLines();
    assert.ok(lines.length <= 3, `${lines.length} lines`);
    assert.ok(sources.size > 1024);
    assert.deepEqual(
      lines.filter((l) => l.includes(' packets dropped for ')),
      ['carp: eth0: 50000 packets dropped for badttl from at least 1024 sources in 60 s'],
    );
  });

  it('counts sources exactly below the cap, and a flood that goes on costs one summary per minute', () => {
    const { sim, inject, dropLines } = backup();
    // 3 minutes of 100 bad-TTL packets a second from 7 sources.
    for (let s = 0; s < 180; s++) {
      for (let i = 0; i < 100; i++) inject(advert(`203.0.113.${(i % 7) + 1}`, 64));
      sim.time.advance(1000);
    }
    sim.time.advance(61_000);
    const lines = dropLines();
    const summaries = lines.filter((l) => l.includes(' packets dropped for '));
    assert.equal(lines.length - summaries.length, 1, lines.join('\n'));
    assert.equal(summaries.length, 3, lines.join('\n'));
    for (const l of summaries) assert.match(l, /^carp: eth0: 6000 packets dropped for badttl from 7 sources in 60 s$/);
  });

  it('bad authentication from spoofed sources is limited the same way, and still counted per peer up to the cap', () => {
    const { sim, inject, dropLines } = backup();
    const rnd = prng(42);
    for (let i = 0; i < 5000; i++) inject(advert(ipOf(rnd()), 255, 'wrong'));
    sim.time.advance(61_000);
    const lines = dropLines();
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0]!, /bad authentication from [\d.]+ vhid 1: check the password and the vhid's address list/);
    assert.equal(lines[1], 'carp: eth0: 5000 packets dropped for badauth from at least 1024 sources in 60 s');
    const b = sim.node('b').engine;
    assert.equal(b.stats.carps_badauth, 5000);
    assert.equal(
      [...b.badAuthByPeer.values()].reduce((a, n) => a + n, 0),
      5000,
    );
  });

  it('a quiet interface after a flood logs the next bad packet at once again', () => {
    const { sim, inject, dropLines } = backup();
    for (let i = 0; i < 10; i++) inject(advert('203.0.113.1', 64));
    sim.time.advance(61_000); // summary
    sim.time.advance(120_000); // quiet
    inject(advert('203.0.113.9', 64));
    assert.equal(dropLines().at(-1), 'carp: eth0: packet from 203.0.113.9 dropped: badttl');
  });
});

describe('RateLimiter and DropLog bounds', () => {
  it('a full RateLimiter refuses new keys instead of clearing and allowing everything', () => {
    let now = 0;
    const rl = new RateLimiter(60_000, () => now, 4);
    for (let i = 0; i < 4; i++) assert.equal(rl.allow(`k${i}`), true);
    let allowed = 0;
    for (let i = 4; i < 10_000; i++) if (rl.allow(`k${i}`)) allowed++;
    assert.equal(allowed, 0);
    assert.equal(rl.allow('k0'), false, 'old keys stay limited');
    now = 60_000; // the old keys expire and make room
    assert.equal(rl.allow('fresh'), true);
  });

  it('more reason × interface pairs than windows are summarized together, never logged one by one', () => {
    const dl = new DropLog({ maxWindows: 2 });
    assert.equal(dl.note(0, 'badttl', 'eth0', 'a'), 'log');
    assert.equal(dl.note(0, 'badttl', 'eth1', 'a'), 'log');
    let logged = 0;
    for (let i = 2; i < 1000; i++) if (dl.note(0, 'badsum', `eth${i}`, 'b') === 'log') logged++;
    assert.equal(logged, 0);
    assert.deepEqual(dl.flush(60_000), ['carp: *: 998 packets dropped for any reason from 1 source in 60 s']);
  });
});
