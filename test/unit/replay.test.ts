/**
 * Replay protection (src/core/replay.ts): the attacks a node on the segment can make without the
 * password, and the corner cases of a counter that every CARP implementation copies. The real
 * engine, codec and node on the fake wire and clock; no real-time waits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FAR, ReplayGuard, serialDiff, WINDOW } from '../../src/core/replay.js';
import type { TransitionEvent } from '../../src/daemon/engine.js';
import { buildAdvert, checkAdvert } from '../../src/proto/advert.js';
import type { CarpSocket } from '../../src/ports/transport.js';
import { makeAuthContext } from '../../src/proto/hmac.js';
import { Sim, vhidCfg, type SimNode } from '../helpers/fake-wire.js';
import { captured, inject, ipPacket, restamp } from '../helpers/inject.js';

const KEY = '1@eth0';
const U64 = 1n << 64n;

/** carps_replay of a node (read by name: the counter is what this fix adds). */
function replays(n: SimNode): number {
  return (n.engine.stats as unknown as Record<string, number | undefined>).carps_replay ?? 0;
}

/**
 * A CARP peer driven by the test, speaking the same vhid 1 (password and address of vhidCfg(1)).
 * `copies`: like ucarp's packethandler() and the kernels' carp_input_c(), it sets its counter to
 * every valid advert's it hears (replays included: they have no protection); it adds one per send
 * (carp_prepare_ad()). It always advertises (a MASTER that never yields: it is the better one).
 */
class ScriptedPeer {
  counter: bigint;
  sent = 0;
  heard = false;
  private socket: CarpSocket;
  private readonly ctx = makeAuthContext('secret', 1, vhidCfg(1, 0).addresses);
  private running = false;
  private timer: ReturnType<Sim['time']['schedule']> | undefined;

  constructor(
    private readonly sim: Sim,
    readonly name: string,
    readonly addr: string,
    counter: bigint,
    private readonly opts: { advskew: number; copies: boolean; random?: boolean; constant?: boolean },
  ) {
    this.counter = counter;
    this.socket = sim.wire.transport(name, () => addr).open({ ifname: 'eth0', srcip: addr, group: '224.0.0.18' });
    this.socket.onMessage((pkt) => {
      const res = checkAdvert(pkt, () => this.ctx);
      if (res.ok && this.opts.copies) {
        this.counter = res.header.counter;
        this.heard = true;
      }
    });
  }

  start(): void {
    this.running = true;
    this.tick();
  }

  stop(): void {
    this.running = false;
    this.sim.time.cancel(this.timer);
  }

  private tick = (): void => {
    if (!this.running) return;
    // A kernel or ucarp that has heard nobody draws a new random counter for every advert
    // (sc_init_counter in carp_prepare_ad()); one that has heard an advert counts up.
    this.counter = this.opts.constant
      ? this.counter
      : this.opts.random && !this.heard
        ? BigInt.asUintN(64, this.counter * 6364136223846793005n + 1442695040888963407n)
        : (this.counter + 1n) % U64;
    this.socket.send(buildAdvert(this.ctx, { advbase: 1, advskew: this.opts.advskew, demote: 0, counter: this.counter }));
    this.sent++;
    this.timer = this.sim.time.schedule(this.sim.time.now + 1000 + (this.opts.advskew * 1000) / 256, this.tick);
  };
}

function masterEpisodes(events: TransitionEvent[], until: number): { from: number; to: number; reason: string }[] {
  const out: { from: number; to: number; reason: string }[] = [];
  const t = (e: TransitionEvent) => Date.parse(e.time) - Date.UTC(2026, 0, 1);
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.to !== 'MASTER') continue;
    const end = events.slice(i + 1).find((x) => x.from === 'MASTER');
    out.push({ from: t(e), to: end ? t(end) : until, reason: e.reason });
  }
  return out;
}

describe('replay protection: the attacks', () => {
  it('a captured advert re-stamped to 255/255 (bow-out) does not make the backup take over, from any source', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    const b = sim.add('b', 2, [vhidCfg(1, 100)]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['a']);
    const cap = captured(sim.wire, 'a');
    sim.time.advance(300);
    const bowout = restamp(cap, { advbase: 255, advskew: 255 });
    // As the master's own source, then re-stamped with a source nobody has used: the source is
    // not authenticated either, so a per-source check would let the second one through.
    assert.ok(inject(sim.wire, 'b', ipPacket('198.18.0.1', bowout)));
    assert.ok(inject(sim.wire, 'b', ipPacket('198.18.0.77', bowout)));
    assert.equal(sim.state('b', KEY), 'BACKUP');
    assert.equal(replays(b), 2);
    // The master's own advert played back to it as 0/0 from elsewhere: still the master.
    assert.ok(inject(sim.wire, 'a', ipPacket('198.18.0.77', restamp(cap, { advbase: 0, advskew: 0 }))));
    assert.equal(sim.state('a', KEY), 'MASTER');
    assert.equal(replays(a), 1);
    sim.time.advance(10_000);
    assert.deepEqual(sim.masters(KEY), ['a']);
    assert.equal(b.events.filter((e) => e.to === 'MASTER').length, 0);
  });

  it('the captured advert re-stamped to 0/0 every 500 ms for 60 s: the master stays master, the backup stays backup', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    const b = sim.add('b', 2, [vhidCfg(1, 100)]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    const transitions = a.events.length + b.events.length;
    const zero = restamp(captured(sim.wire, 'a'), { advbase: 0, advskew: 0 });
    let sentPackets = 0;
    for (let i = 0; i < 120; i++) {
      sim.time.advance(500);
      for (const [to, src] of [
        ['a', '198.18.0.2'],
        ['b', '198.18.0.1'],
      ] as const) {
        assert.ok(inject(sim.wire, to, ipPacket(src, zero)));
        sentPackets++;
      }
      assert.deepEqual(sim.masters(KEY), ['a'], `at ${sim.time.now} ms`);
      assert.equal(sim.state('b', KEY), 'BACKUP');
    }
    assert.equal(a.events.length + b.events.length, transitions, 'no transition during the attack');
    assert.equal(replays(a) + replays(b), sentPackets, 'every replay counted as carps_replay');
    assert.equal(replays(b), 120);
    // netstat's wording, as carpctl stats prints it.
    assert.ok(b.logs.some((l) => /dropped: replay/.test(l)));
  });

  it('10,000 replays from 10,000 spoofed sources: every one counted, one line and one summary in the log', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 0)]);
    const b = sim.add('b', 2, [vhidCfg(1, 100)]);
    a.engine.start();
    b.engine.start();
    sim.time.advance(10_000);
    const logsBefore = b.logs.length;
    const cap = restamp(captured(sim.wire, 'a'), { advbase: 255, advskew: 255 });
    for (let i = 0; i < 10_000; i++) {
      assert.ok(inject(sim.wire, 'b', ipPacket(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, cap)));
      if (i % 1000 === 999) sim.time.advance(100);
    }
    sim.time.advance(61_000);
    assert.equal(replays(b), 10_000);
    assert.equal(sim.state('b', KEY), 'BACKUP');
    const lines = b.logs.slice(logsBefore).filter((l) => /replay/.test(l));
    assert.ok(lines.length <= 2, `replay log lines: ${lines.length}\n${lines.slice(0, 5).join('\n')}`);
    assert.ok(
      lines.some((l) => /\d+ packets dropped for replay from (at least )?\d+ sources in 60 s/.test(l)),
      lines.join('\n'),
    );
  });
});

describe('replay protection: peers', () => {
  it('a restarted peer with an older random counter is taken after 3 master-down intervals of silence, and its old adverts stay dropped', () => {
    const sim = new Sim();
    // strict: in the default mode (once) an unknown counter is taken at once (next test).
    const a = sim.add('a', 1, [vhidCfg(1, 50)], { replayProtection: 'strict' });
    const p0 = 0x1234_5678_9abc_def0n;
    const peer = new ScriptedPeer(sim, 'p', '198.18.0.2', p0, { advskew: 0, copies: false });
    peer.start();
    a.engine.start();
    sim.time.advance(9_500);
    assert.equal(sim.state('a', KEY), 'BACKUP');
    const oldCapture = captured(sim.wire, 'p');
    const lastHeard = sim.time.now - 500; // the peer's advert at 9 s
    peer.stop(); // kill -9
    sim.time.advance(3_500);
    assert.equal(sim.state('a', KEY), 'MASTER', 'took over after master-down');
    // Restarted with a new random counter below the old one (the kernels' and ucarp's random start).
    peer.counter = p0 - (1n << 50n);
    peer.start();
    const masterDown = 3000 + (50 * 1000) / 256;
    const resyncAt = lastHeard + 3 * masterDown;
    sim.time.advance(resyncAt - sim.time.now - 1);
    assert.equal(sim.state('a', KEY), 'MASTER', 'the restarted peer is not believed before the silence');
    const dropped = replays(a);
    assert.ok(dropped >= 5, `dropped ${dropped}`);
    sim.time.advance(1_100);
    assert.equal(sim.state('a', KEY), 'BACKUP', 'resynchronised with the restarted peer, which is the better one');
    const yielded = a.events.at(-1)!;
    assert.equal(yielded.reason, 'more frequent advertisement received');
    assert.ok(a.logs.some((l) => /accepted after a silence/.test(l)));
    // The old stream's adverts are still replays: a bow-out from it would make us master.
    assert.ok(inject(sim.wire, 'a', ipPacket('198.18.0.2', restamp(oldCapture, { advbase: 255, advskew: 255 }))));
    assert.equal(sim.state('a', KEY), 'BACKUP');
    assert.equal(replays(a), dropped + 1);
    sim.time.advance(10_000);
    assert.equal(sim.state('a', KEY), 'BACKUP');
    assert.equal(replays(a), dropped + 1, 'the restarted peer is followed from then on');
  });

  it('a kernel or ucarp master that has heard nobody (a random counter per advert) is followed in the default mode, and its replays dropped', () => {
    for (const mode of ['once', 'strict'] as const) {
      const sim = new Sim();
      const a = sim.add('a', 1, [vhidCfg(1, 50)], { replayProtection: mode });
      const u = new ScriptedPeer(sim, 'u', '198.18.0.2', 0x0123_4567_89ab_cdefn, { advskew: 0, copies: true, random: true });
      u.start();
      a.engine.start();
      sim.time.advance(30_000);
      if (mode === 'strict') {
        // Why `once` is the default: strict takes the random counters for replays and takes over.
        assert.ok(
          a.events.some((e) => e.to === 'MASTER'),
          'strict: carpd took over from the lone ucarp',
        );
        continue;
      }
      assert.equal(u.heard, false, 'u heard nobody: its counters stayed random');
      assert.equal(sim.state('a', KEY), 'BACKUP', JSON.stringify(a.events));
      assert.equal(replays(a), 0);
      const cap = captured(sim.wire, 'u');
      sim.time.advance(500);
      assert.ok(inject(sim.wire, 'a', ipPacket('198.18.0.2', restamp(cap, { advbase: 255, advskew: 255 }))));
      assert.equal(sim.state('a', KEY), 'BACKUP', 'a replayed bow-out of a random counter is still a replay');
      assert.equal(replays(a), 1);
    }
  });

  it('an OpenBSD master (one random counter for ever) is followed in the default mode; a re-stamped copy of its advert is dropped', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 50)]);
    const o = new ScriptedPeer(sim, 'o', '198.18.0.2', 0x0bad_cafe_0000_0001n, { advskew: 0, copies: false, constant: true });
    o.start();
    a.engine.start();
    sim.time.advance(30_000);
    assert.equal(sim.state('a', KEY), 'BACKUP', JSON.stringify(a.events));
    assert.equal(replays(a), 0);
    const cap = captured(sim.wire, 'o');
    sim.time.advance(300);
    for (const [src, f] of [
      ['198.18.0.2', { advbase: 255, advskew: 255 }],
      ['198.18.0.2', { advskew: 0, advbase: 0 }],
      ['198.18.0.9', {}],
    ] as const) {
      assert.ok(inject(sim.wire, 'a', ipPacket(src, restamp(cap, f))));
    }
    assert.equal(sim.state('a', KEY), 'BACKUP');
    assert.equal(replays(a), 3);
    // In strict mode the repeated counter is a replay: carpd takes over (why `once` is the default).
    const sim2 = new Sim();
    const b = sim2.add('b', 1, [vhidCfg(1, 50)], { replayProtection: 'strict' });
    new ScriptedPeer(sim2, 'o', '198.18.0.2', 0x0bad_cafe_0000_0001n, { advskew: 0, copies: false, constant: true }).start();
    b.engine.start();
    sim2.time.advance(10_000);
    assert.ok(b.events.some((e) => e.to === 'MASTER'));
  });

  it('a copying peer whose counter went backwards (it copied a replay) is ignored at most master-down + one interval, then wins', () => {
    const sim = new Sim();
    const a = sim.add('a', 1, [vhidCfg(1, 100)]);
    const u = new ScriptedPeer(sim, 'u', '198.18.0.2', 0xfedc_ba98_0000_0000n, { advskew: 0, copies: true });
    u.start();
    a.engine.start();
    sim.time.advance(2_500);
    const early = captured(sim.wire, 'u');
    sim.time.advance(10_000);
    assert.equal(sim.state('a', KEY), 'BACKUP');
    // The attacker replays an early advert of u's as a bow-out to both. We drop it; u, without
    // protection, copies its counter, so u's own sequence goes back into values we have seen.
    const attackAt = sim.time.now;
    const bowout = ipPacket('198.18.0.99', restamp(early, { advbase: 255, advskew: 255 }));
    inject(sim.wire, 'a', bowout);
    inject(sim.wire, 'u', bowout);
    assert.equal(sim.state('a', KEY), 'BACKUP', 'the bow-out replay did not make us master');
    sim.time.advance(20_000);
    const episodes = masterEpisodes(a.events, sim.time.now);
    assert.equal(sim.state('a', KEY), 'BACKUP', 'u, the better peer, won in the end');
    assert.equal(episodes.length, 1, JSON.stringify(episodes));
    const ep = episodes[0]!;
    assert.equal(ep.reason, 'master timed out');
    // Bound: we become MASTER one master-down after u's last good advert; u hears our first
    // advert at once and its next one (1 s later at most) carries our counter + 1.
    const masterDown = 3000 + (100 * 1000) / 256;
    assert.ok(ep.from - attackAt <= masterDown + 1000, `master after ${ep.from - attackAt} ms`);
    assert.ok(ep.to - ep.from <= 1000 + 1, `split brain lasted ${ep.to - ep.from} ms`);
    assert.ok(replays(a) >= 3, `replays ${replays(a)}`);
  });

  it('two carpd nodes started in lockstep with equal priority settle on one master for any counters', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const sim = new Sim();
      // Same start instant, same timers: their adverts cross on the wire every interval.
      sim.add('a', seed * 2 + 1, [vhidCfg(1, 0)]);
      sim.add('b', seed * 2 + 2, [vhidCfg(1, 0)]);
      for (const n of sim.nodes.values()) n.engine.start();
      sim.time.advance(6_000);
      assert.deepEqual(sim.masters(KEY), ['a'], `seed ${seed}`);
      sim.time.advance(30_000);
      assert.deepEqual(sim.masters(KEY), ['a'], `seed ${seed}`);
    }
  });
});

describe('replay protection: the counter (pure)', () => {
  it('serial arithmetic on 64 bits: the wrap is newer, 2^63 away is older', () => {
    assert.equal(serialDiff(0n, U64 - 1n), 1n);
    assert.equal(serialDiff(U64 - 1n, 0n), -1n);
    assert.ok(serialDiff(1n << 63n, 0n) < 0n);
    assert.ok(serialDiff(5n, 3n) > 0n);
  });

  it('our counter steps 2..257 above the newest seen, across the wrap', () => {
    const g = new ReplayGuard(U64 - 300n);
    let prev = g.next();
    for (let i = 0; i < 10; i++) {
      const c = g.next();
      const d = serialDiff(c, prev);
      assert.ok(d >= 2n && d <= 257n, `step ${d}`);
      prev = c;
    }
    assert.ok(prev < 2000n, 'wrapped through 2^64 - 1');
    // A peer's counter across the wrap is newer; ours then steps above it.
    assert.equal(g.check(prev + 10n, 0, 3000), 'newer');
    assert.ok(serialDiff(g.next(), prev + 10n) >= 2n);
  });

  it('a copier that crossed our advert (our x, its x + 1) is accepted once; the same counter again is a replay', () => {
    const g = new ReplayGuard(1000n);
    const x = g.next();
    g.next(); // our next advert, already on the wire
    assert.equal(g.check(x + 1n, 10, 3000), 'late');
    assert.equal(g.check(x + 1n, 20, 3000), 'replay');
    assert.equal(g.check(x, 30, 3000), 'replay', 'our own advert');
  });

  it("after the silence only a counter outside every epoch is taken; our own and our peers' old ones never", () => {
    const g = new ReplayGuard(1n << 60n);
    const ours = [g.next(), g.next(), g.next()];
    assert.equal(g.check(ours[2]! + 5n, 0, 1000), 'newer');
    const restarted = ours[0]! - (1n << 50n);
    // Not silent yet (3 master-down intervals of 1000 ms): a restarted peer's counter waits.
    assert.equal(g.check(restarted, 2000, 1000), 'replay');
    const late = 10_000_000;
    for (const c of ours) assert.equal(g.check(c, late, 1000), 'replay');
    assert.equal(g.check(ours[0]! - WINDOW * 4n, late, 1000), 'replay', 'just before our first: a capture from before');
    assert.equal(g.check(ours[0]! - FAR + 1n, late, 1000), 'replay');
    assert.equal(g.check(restarted, late, 1000), 'resync');
    assert.equal(g.epochCount, 2);
    // The epoch we left stays known: its counters, newer than the new top, are replays.
    assert.equal(g.check(ours[2]! + 5n, late + 1, 1000), 'replay');
    assert.equal(g.check(ours[1]!, late + 2, 1000), 'replay');
    assert.equal(g.check(restarted + 1n, late + 3, 1000), 'newer');
  });
});
