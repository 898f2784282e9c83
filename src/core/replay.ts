/**
 * Replay protection for one vhid's adverts. Pure: `now` is an argument, the only state is the
 * counters seen.
 *
 * Why it is needed. The CARP HMAC covers version, type, vhid, the address list and the 64-bit
 * counter, and nothing else (OpenBSD and FreeBSD sys/netinet/ip_carp.c carp_hmac_prepare() /
 * carp_hmac_generate(); src/proto/hmac.ts). advbase, advskew, demote and the IP source are
 * outside it. Anyone on the segment can capture one advert and send it again re-stamped: 255/255
 * makes a backup take over ("master bowed out") while the master lives, 0/0 every 500 ms keeps the
 * real master down. The kernels leave the hole open ("XXX Replay protection goes here" in
 * FreeBSD carp_input_c(), old OpenBSD carp_proto_input_c()) and simply copy the counter:
 * `sc->sc_counter = tmp_counter`; ucarp does the same in src/carp.c packethandler()
 * (`sc.sc_counter = tmp_counter` on every valid advert, in any state) and increments it by one in
 * carp_prepare_ad(). Until they hear an advert they draw a random counter per advert (e), and
 * current OpenBSD sends one random constant for ever (vhe_replay_cookie; src/core/node.ts lets
 * such a source repeat it unchanged in `once` mode).
 *
 * The rule. The counter is the only authenticated field, so the only thing that can tell a fresh
 * advert from a copy is its counter value; and since the source address is not authenticated,
 * the counters are tracked per vhid, not per (vhid, source): keyed by source, a captured advert
 * re-stamped with a source the vhid never heard (or one whose last counter is lower) would pass.
 * Every CARP implementation copies (kernels, ucarp) or raises (carpd) its counter to the one it
 * heard, so a vhid's counters form one rising stream across its nodes and "newer than anything
 * this vhid has seen" is the test. Per vhid we keep:
 *
 * - `top`: the newest counter seen, sent by us or accepted from a peer. Our own adverts count:
 *   otherwise a captured advert of ours, replayed to us from another source, would pass.
 * - a short list of the values seen just below `top` (at most SEEN_MAX, within WINDOW), so an
 *   advert that crossed one of ours on the wire is still accepted once (below).
 * - epochs: the ranges of counters this vhid has lived through (at most EPOCHS_MAX), so a resync
 *   after a peer's restart cannot be abused to replay anything from them.
 *
 * An advert is accepted when its counter is (1) newer than `top` (RFC 1982 serial arithmetic on
 * 64 bits: the counter starts random and wraps; ucarp's carp_prepare_ad() goes from 2^64 − 1 to
 * 0), and not inside an epoch we left; or (2) "late": at most WINDOW behind `top`, newer than the
 * floor, and not seen before; or (3) a resync: the vhid has accepted nothing for
 * RESYNC_INTERVALS master-down intervals and the counter lies outside every epoch we know
 * (starting FAR below it); or (4), in `once` mode only, outside every epoch and not among the
 * last ONCE_MAX such counters (e). Everything else is a replay: dropped, counted as carps_replay.
 *
 * The corner cases:
 *
 * (a) Peers that copy the counter. A kernel or ucarp peer's own sequence goes backwards when it
 *   hears a lower counter (from a third node, or from an attacker's replay: ucarp and the kernels
 *   have no protection and copy it). Its adverts then look like replays to us. This ends as soon
 *   as it hears one of ours: it copies our counter, which is `top`, and its next advert is
 *   top + 1, newer than anything we have seen. If we are MASTER we advertise every interval; if
 *   we are BACKUP and drop the real master's adverts, our master-down timer fires and we become
 *   MASTER and advertise. So a split brain in which the peer that should win is ignored lasts at
 *   most one master-down interval (we were BACKUP) plus one advert interval of ours (it hears us)
 *   plus one of its own (it answers): test/unit/replay.test.ts measures it.
 *   A crossing: the copier heard our x and sends x + 1 while our next advert is already on the
 *   wire. With the kernels' +1 step our next advert would be x + 1 too, and its advert would
 *   collide with ours and be dropped, round after round while the timers stay in phase. So our
 *   step is 2..257 (the pseudo-random `stride`), never 1: its x + 1 is a value we never sent,
 *   accepted by rule (2). Two carpd nodes in lockstep both step from the same `top`; they collide
 *   only when their strides are equal (1 in 256 per round) and the next round differs again.
 * (b) Our own counter. We no longer copy the peer's: our next counter is `top` + stride, so it is
 *   newer than every advert we accepted (what copying was for: a peer that hears us continues
 *   above everything) and our own sequence never goes backwards, except through a resync (c).
 * (c) A restarted peer. It starts with a new random counter (kernel carp_prepare_ad() with
 *   sc_init_counter, ucarp likewise, carpd from the engine's random source). If it hears anyone
 *   before it advertises (it starts BACKUP and listens a master-down interval) it copies or raises
 *   to the current stream and nothing special happens. If it advertises first and its counter is
 *   newer, rule (1) takes it (a jump of FAR or more starts a new epoch). If it is older, `once`
 *   mode takes it at once (e); `strict` takes it only after RESYNC_INTERVALS master-down intervals in which this vhid accepted nothing
 *   from anyone, and only if it lies outside every epoch we know: a random 64-bit start falls
 *   within one (2^41 wide) with probability ~2^-23, while any captured advert of ours or our peers'
 *   lies inside. Then our own counter moves to the new epoch too.
 *   What this cannot see: adverts captured before our own restart, from a stream we never heard
 *   after it. A node that restarts and becomes MASTER without hearing any peer starts a fresh
 *   epoch, so such captures are outside everything it knows, and a MASTER with only backups is
 *   always "silent". The window closes when it hears any peer of the old stream.
 * (e) Random counters. A kernel or ucarp MASTER that has not heard any advert since it started
 *   draws a new random counter for every advert (sc_init_counter in carp_prepare_ad(); the first
 *   adverts of test/fixtures/vectors/ucarp-s1-basic-failover.pcap). There is no order to check,
 *   so `once` mode (the default, ReplayProtection below) accepts a counter outside every epoch
 *   once and remembers the last ONCE_MAX of them; `strict` leaves them to the resync rule, and a
 *   carpd backup would take over from such a master.
 * (d) The counter is a u64 starting at a random value: all comparisons are serial (RFC 1982),
 *   so the wrap from 2^64 − 1 to 0 is "newer" and a counter 2^63 away is "older".
 */

const U64 = 1n << 64n;
const HALF = 1n << 63n;

/** How far behind `top` an unseen counter may still be accepted (a crossing on the wire). */
export const WINDOW = 1n << 16n;
/** How many recent values below `top` are remembered to accept each late one once. */
export const SEEN_MAX = 64;
/** An epoch's past: counters up to FAR below its first one count as already seen (~2^40 adverts). */
export const FAR = 1n << 40n;
/** Epochs (counter ranges) remembered. */
export const EPOCHS_MAX = 16;
/** Silence, in master-down intervals, after which a counter outside every epoch is accepted. */
export const RESYNC_INTERVALS = 3;
/** Our step: 2..257, never 1 (see (a)). */
const STRIDE_MIN = 2n;
const STRIDE_SPAN = 256n;

export type ReplayVerdict = 'first' | 'newer' | 'late' | 'resync' | 'once' | 'replay';

/**
 * `[carpd] replay_protection`. strict: the rules above, for segments where every CARP speaker is
 * carpd. once (the default): also accept, once each, counters outside every range we know,
 * because a kernel or ucarp MASTER that has heard no advert since it started draws a new random
 * counter for every advert (sc_init_counter: OpenBSD/FreeBSD carp_prepare_ad(), ucarp
 * carp_prepare_ad(); test/fixtures/vectors/ucarp-s1-basic-failover.pcap shows it) and strict
 * would take it for a replay. off: accept every counter, as the kernels do.
 */
export type ReplayProtection = 'strict' | 'once' | 'off';

/** Random counters remembered per vhid in `once` mode (~17 min of a lone kernel master's adverts at advbase 1). */
export const ONCE_MAX = 1024;

/** c − ref as a 64-bit serial difference (RFC 1982): in (−2^63, 2^63), positive when c is newer; exactly 2^63 apart counts as older. */
export function serialDiff(c: bigint, ref: bigint): bigint {
  const d = BigInt.asUintN(64, c - ref);
  return d >= HALF ? d - U64 : d;
}

interface Epoch {
  lo: bigint;
  hi: bigint;
}

export class ReplayGuard {
  private top: bigint | undefined;
  /** Values at or behind the floor are old. */
  private floor = 0n;
  /** Values seen in (floor, top], newest last. */
  private seen: bigint[] = [];
  private epochs: Epoch[] = [];
  /** Monotonic time of the last accepted advert; undefined: none yet. */
  private lastAccepted: number | undefined;
  /** Counters outside every epoch accepted in `once` mode, oldest first. */
  private once = new Set<bigint>();
  /** xorshift64 state for our stride. */
  private prng: bigint;

  /** `seed`: our first counter (random, from the shell); the stride sequence derives from it. */
  constructor(private readonly seed: bigint) {
    this.prng = BigInt.asUintN(64, seed ^ 0x9e3779b97f4a7c15n) || 1n;
  }

  /** The newest counter seen on this vhid, ours included (status, tests). */
  get newest(): bigint | undefined {
    return this.top;
  }

  /** How many counter epochs are known (tests). */
  get epochCount(): number {
    return this.epochs.length;
  }

  /** The counter for our next advert; it counts as seen from now on. */
  next(): bigint {
    // The seed counts as sent: a vhid the node starts afresh is seeded with its last counter.
    if (this.top === undefined) this.startEpoch(BigInt.asUintN(64, this.seed));
    const c = BigInt.asUintN(64, this.top! + STRIDE_MIN + (this.random() % STRIDE_SPAN));
    this.advance(c);
    return c;
  }

  /**
   * Judge a peer's authenticated counter and remember it when accepted. `masterDownMs` is the
   * vhid's current master-down interval (the silence before a resync is counted in them).
   */
  check(counter: bigint, now: number, masterDownMs: number, mode: ReplayProtection = 'strict'): ReplayVerdict {
    const c = BigInt.asUintN(64, counter);
    if (mode === 'off') {
      // The kernels' behaviour; our counter still rises above what we hear (corner case (b)).
      if (this.top === undefined || serialDiff(c, this.top) >= FAR || serialDiff(c, this.top) < 0n) this.startEpoch(c);
      else this.advance(c);
      this.lastAccepted = now;
      return 'newer';
    }
    if (this.top === undefined) {
      this.startEpoch(c);
      this.lastAccepted = now;
      return 'first';
    }
    const ahead = serialDiff(c, this.top);
    if (ahead > 0n && ahead < FAR) {
      // Newer than anything seen, unless it belongs to an epoch we resynced away from.
      if (this.epochs.slice(0, -1).some((e) => inEpoch(c, e))) return 'replay';
      this.advance(c);
      this.lastAccepted = now;
      return 'newer';
    }
    if (ahead <= 0n && -ahead < WINDOW && serialDiff(c, this.floor) > 0n && !this.seen.includes(c)) {
      this.remember(c);
      this.lastAccepted = now;
      return 'late';
    }
    // Far ahead or far behind: another epoch. Taken only after the silence, and only when it is
    // not one we know: on the 2^64 ring, "far ahead" is just as likely for a capture from before
    // a cold restart of the cluster as for a restarted peer.
    const silent = this.lastAccepted === undefined || now - this.lastAccepted >= RESYNC_INTERVALS * masterDownMs;
    if (this.once.has(c) || this.epochs.some((e) => inEpoch(c, e))) return 'replay';
    if (silent) {
      this.startEpoch(c);
      this.lastAccepted = now;
      return 'resync';
    }
    if (mode === 'once') {
      this.once.add(c);
      if (this.once.size > ONCE_MAX) this.once.delete(this.once.values().next().value!);
      this.lastAccepted = now;
      return 'once';
    }
    return 'replay';
  }

  private random(): bigint {
    let x = this.prng;
    x ^= BigInt.asUintN(64, x << 13n);
    x ^= x >> 7n;
    x ^= BigInt.asUintN(64, x << 17n);
    this.prng = x;
    return x;
  }

  private startEpoch(c: bigint): void {
    this.epochs.push({ lo: c, hi: c });
    if (this.epochs.length > EPOCHS_MAX) this.epochs.shift();
    this.top = c;
    this.floor = BigInt.asUintN(64, c - 1n);
    this.seen = [c];
  }

  /** A new top in the current epoch. */
  private advance(c: bigint): void {
    this.top = c;
    this.epochs[this.epochs.length - 1]!.hi = c;
    this.remember(c);
  }

  private remember(c: bigint): void {
    this.seen.push(c);
    const top = this.top!;
    // Forget what fell out of the window or beyond SEEN_MAX, oldest first; the floor rises past it.
    this.seen.sort((a, b) => (serialDiff(a, b) < 0n ? -1 : 1));
    while (this.seen.length > SEEN_MAX || (this.seen.length > 0 && serialDiff(top, this.seen[0]!) >= WINDOW)) {
      this.floor = this.seen.shift()!;
    }
  }
}

/** Whether c lies in an epoch or up to FAR before its start (serial). */
function inEpoch(c: bigint, e: Epoch): boolean {
  return serialDiff(c, e.lo) >= -FAR && serialDiff(c, e.hi) <= 0n;
}
