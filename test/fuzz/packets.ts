/**
 * The packet fuzzer: pushes packets through the real receive path (the engine's socket callback:
 * the codec's checks, the node's replay check, the election, with a fake clock, wire and net) and
 * checks each one against a reference written here from the kernels' order of checks (FreeBSD
 * carp_input() / carp_input_c(), OpenBSD carp_proto_input_if() / carp_proto_input_c()):
 *
 * - nothing is thrown out of the receive path;
 * - every packet is counted once in carps_ipackets (unless it claims our own source, which is
 *   ignored as our own advert looped back) and, when dropped, under exactly one reason, the one
 *   the reference expects (hdrops, badttl, badlen, badsum, badver, badvhid, badauth), or `replay`
 *   for an authenticated advert; an advert whose counter was already accepted, or sent by us, is
 *   always a replay;
 * - no packet that was dropped causes a transition, and no packet with a bad HMAC is accepted;
 * - the sum of the drop counters equals the packets dropped;
 * - RSS stays bounded (sampled).
 *
 * Inputs: random bytes; the captured ucarp adverts of test/fixtures/vectors with bit flips, byte
 * changes, truncations and extensions, and re-stamped fields (advbase, advskew, demote, the IP
 * source: a valid HMAC with an old counter); fresh valid adverts with newer counters (so the
 * election runs and legitimate transitions happen); wrong vhids, TTLs, lengths.
 */
import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { CarpModel } from '../../src/config/model.js';
import { Engine, type TransitionEvent } from '../../src/daemon/engine.js';
import type { CarpSocket, Transport } from '../../src/ports/transport.js';
import { buildAdvert } from '../../src/proto/advert.js';
import { COUNTER_NAMES, type CounterName } from '../../src/proto/counters.js';
import { makeAuthContext } from '../../src/proto/hmac.js';
import { ipPayloadOf, readPcap } from '../../src/proto/pcap.js';
import { FakeNet, FakeTime, seeded, vhidCfg } from '../helpers/fake-wire.js';
import { ipPacket, restamp } from '../helpers/inject.js';
import type { FuzzOptions, FuzzReport, FuzzTarget } from './report.js';

const VECTORS = new URL('../../../test/fixtures/vectors/', import.meta.url);
/** The vectors' vhid, password and address (test/fixtures/vectors/README.md). */
const VHID = 42;
const PASSWORD = 's3cretPass';
const VIP = '10.200.0.100';
/** A second vhid with another password, so the vhid lookup has a choice. */
const VHID2 = 7;
const PASSWORD2 = 'other-secret';
const VIP2 = '10.200.0.107';
const OWN = '198.18.0.1';
const MAX_FAILURES = 100;
/** RSS may grow this much past its level after warm-up. */
const RSS_BOUND_MB = 128;

const DROPS = COUNTER_NAMES.filter(
  (n) => !['carps_ipackets', 'carps_ipackets6', 'carps_opackets', 'carps_opackets6', 'carps_onomem', 'carps_ostates', 'carps_preempt'].includes(n),
);

type Expect = 'ignored' | 'auth' | 'hdrops' | 'badttl' | 'badlen' | 'badsum' | 'badver' | 'badvhid' | 'badauth';

/** RFC 1071, written again here so the reference does not share the codec's code. */
function sum16(b: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = off; i < off + len; i += 2) s += (b[i]! << 8) | (i + 1 < off + len ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

const KEYS = new Map<number, { key: Buffer; addr: Buffer }>([
  [VHID, { key: Buffer.from(PASSWORD), addr: Buffer.from(VIP.split('.').map(Number)) }],
  [VHID2, { key: Buffer.from(PASSWORD2), addr: Buffer.from(VIP2.split('.').map(Number)) }],
]);

/** The reference: what the kernels' order of checks makes of this packet. */
function reference(b: Buffer): { expect: Expect; vhid?: number; counter?: bigint } {
  if (b.length < 20) return { expect: 'hdrops' };
  const ihl = b[0]! & 15;
  if (b[0]! >> 4 !== 4 || ihl < 5 || b.length < ihl * 4) return { expect: 'hdrops' };
  const src = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  if (src === OWN) return { expect: 'ignored' };
  const off = ihl * 4;
  const total = b.readUInt16BE(2);
  if (b.length > off && b[off]! >> 4 === 3) {
    // VRRPv3 (src/proto/vrrp.ts): FreeBSD carp_input() reads the version nibble first, and
    // vrrp_input_c() looks the vrid up before the TTL. Every vhid here is CARP: badver, or badvhid.
    if (b.length < total) return { expect: 'hdrops' };
    if (total < off + 8) return { expect: 'badlen' };
    return { expect: KEYS.has(b[off + 1]!) ? 'badver' : 'badvhid' };
  }
  if (b[8] !== 255) return { expect: 'badttl' };
  if (total < off + 36) return { expect: 'badlen' };
  if (b.length < total) return { expect: 'hdrops' };
  if (sum16(b, off, 36) !== 0) return { expect: 'badsum' };
  if (b[off] !== 0x21) return { expect: 'badver' };
  const vhid = b[off + 1]!;
  const k = KEYS.get(vhid);
  if (!k) return { expect: 'badvhid' };
  const counter = b.readBigUInt64BE(off + 8);
  const md = createHmac('sha1', k.key)
    .update(Buffer.from([2, 1, vhid]))
    .update(k.addr)
    .update(b.subarray(off + 8, off + 16))
    .digest();
  if (!md.equals(b.subarray(off + 16, off + 36))) return { expect: 'badauth', vhid };
  return { expect: 'auth', vhid, counter };
}

/** The counters in COUNTER_NAMES order. */
function snapshot(stats: Record<CounterName, number>): number[] {
  return COUNTER_NAMES.map((n) => stats[n]);
}

/** The ucarp adverts of the captures, whole IP packets. */
function vectors(): Buffer[] {
  const out: Buffer[] = [];
  for (const f of readdirSync(VECTORS).filter((x) => x.endsWith('.pcap'))) {
    for (const rec of readPcap(readFileSync(new URL(f, VECTORS)))) {
      const ip = ipPayloadOf(rec);
      if (ip && ip[9] === 112) out.push(Buffer.from(ip));
    }
  }
  return out;
}

/** A seeded generator of integers, on fake-wire's mulberry32. */
function rng(seed: number): { int: (n: number) => number; bytes: (n: number) => Buffer; pick: <T>(a: readonly T[]) => T } {
  const raw = seeded(seed);
  const int = (n: number) => (n <= 1 ? 0 : raw(4).readUInt32BE(0) % n);
  return { int, bytes: (n) => raw(n), pick: (a) => a[int(a.length)]! };
}

export const packets: FuzzTarget = async (opts: FuzzOptions): Promise<FuzzReport> => {
  const r = rng(opts.seed);
  const failures: string[] = [];
  const fail = (i: number, what: string) => {
    if (failures.length < MAX_FAILURES) failures.push(`packet ${i}: ${what}`);
  };

  // The engine exactly as the daemon builds it, on a fake clock, net and one fake socket.
  const time = new FakeTime();
  let deliver: ((pkt: Buffer) => void) | undefined;
  /** Our own adverts' counters per vhid (byte 1 of the payload). */
  const sent = new Map<number, Set<bigint>>([
    [VHID, new Set()],
    [VHID2, new Set()],
  ]);
  const transport: Transport = {
    open: (o): CarpSocket => ({
      ifname: o.ifname,
      send: (payload) => {
        const set = sent.get(payload[1]!);
        set?.add(payload.readBigUInt64BE(8));
        if (set && set.size > 4096) set.delete(set.values().next().value!);
      },
      onMessage: (cb) => {
        deliver = cb;
      },
      onSendError: () => undefined,
      close: () => undefined,
    }),
  };
  const model: CarpModel = {
    global: { allow: true, preempt: true, log: 2 },
    vhids: [vhidCfg(VHID, 100, { addresses: [`${VIP}/24`], password: PASSWORD }), vhidCfg(VHID2, 50, { addresses: [`${VIP2}/24`], password: PASSWORD2 })],
  };
  let logLines = 0;
  const engine = new Engine(model, {
    transport,
    net: new FakeNet({ eth0: OWN }),
    clock: time.clock(),
    logger: { log: () => void logLines++ },
    random: seeded(opts.seed ^ 0x5eed),
    wallClock: () => new Date(Date.UTC(2026, 0, 1) + time.now),
  });
  let transitions = 0;
  engine.on('transition', (_e: TransitionEvent) => void transitions++);
  engine.start();
  if (!deliver) throw new Error('the engine opened no socket');

  const ctx = makeAuthContext(PASSWORD, VHID, [VIP]);
  const ctx2 = makeAuthContext(PASSWORD2, VHID2, [VIP2]);
  const vecs = vectors();
  if (vecs.length === 0) throw new Error(`no CARP packets in ${VECTORS.pathname}`);
  /** Counters accepted per vhid: an advert carrying one again must be a replay. */
  const accepted = new Map<number, Set<bigint>>([
    [VHID, new Set()],
    [VHID2, new Set()],
  ]);
  /** Per `vhid source`: the one counter (with advbase, advskew, demote) it has sent, null once it sent another. */
  const onlyCounter = new Map<string, string | null>();
  /** Recently accepted adverts of ours and the vectors', for re-stamps with old counters. */
  const old: Buffer[] = [...vecs.slice(0, 8)];
  let newest = 1n << 62n;

  const drops: Record<string, number> = Object.fromEntries(DROPS.map((n) => [n.slice(6), 0]));
  let dropped = 0;
  let acceptedCount = 0;
  let ignored = 0;
  let peakRss = process.memoryUsage.rss();
  let baseRss = 0;
  const started = performance.now();

  const fresh = (vhid: number): Buffer => {
    newest += BigInt(1 + r.int(1000));
    const c = vhid === VHID ? ctx : ctx2;
    const payload = buildAdvert(c, { advbase: r.int(4), advskew: r.int(256), demote: r.int(4) === 0 ? r.int(256) : 0, counter: newest });
    return ipPacket(r.pick(['10.200.0.1', '10.200.0.2', '198.18.0.9']), payload);
  };
  /** Valid adverts built once, for the mutations that never reach the HMAC or break it anyway. */
  const pool = Array.from({ length: 256 }, () => fresh(r.int(4) === 0 ? VHID2 : VHID));
  const pooled = () => Buffer.from(r.pick(pool));
  const mutateBits = (b: Buffer): Buffer => {
    const c = Buffer.from(b);
    for (let k = 1 + r.int(3); k > 0 && c.length > 0; k--) c[r.int(c.length)]! ^= 1 << r.int(8);
    return c;
  };

  const generate = (i: number): Buffer => {
    const base = r.pick(vecs);
    switch (r.int(13)) {
      case 0:
        return r.bytes(r.int(100));
      case 1:
        return mutateBits(base);
      case 2: {
        const c = Buffer.from(base);
        c[r.int(c.length)] = r.int(256);
        return c;
      }
      case 3:
        return base.subarray(0, r.int(base.length));
      case 4:
        return Buffer.concat([base, r.bytes(1 + r.int(40))]);
      case 5: {
        // An old authenticated advert re-stamped: a valid HMAC with an old counter.
        const o = r.pick(old);
        const payload = restamp(o.subarray((o[0]! & 15) * 4), { advbase: r.int(256), advskew: r.int(256), demote: r.int(256) });
        return ipPacket(r.pick(['10.200.0.1', '10.200.0.2', '10.200.0.99', `10.${r.int(256)}.${r.int(256)}.${r.int(256)}`]), payload);
      }
      case 6:
      case 7:
        return fresh(r.int(4) === 0 ? VHID2 : VHID);
      case 8: {
        // A valid advert with one IP header field wrong: TTL, total length, version, ihl.
        const c = pooled();
        const which = r.int(4);
        if (which === 0) c[8] = r.int(255);
        else if (which === 1) c.writeUInt16BE(r.int(80), 2);
        else if (which === 2) c[0] = (r.int(16) << 4) | 5;
        else c[0] = 0x40 | r.int(16);
        return c;
      }
      case 9: {
        // Our own adverts, played back from another source.
        const vhid = r.int(2) ? VHID : VHID2;
        const ours = [...sent.get(vhid)!].slice(-16);
        const c = ours.length > 0 ? ours[r.int(ours.length)]! : newest;
        return ipPacket('10.200.0.2', buildAdvert(vhid === VHID ? ctx : ctx2, { advbase: r.int(256), advskew: r.int(256), demote: 0, counter: c }));
      }
      case 10: {
        // A valid advert for a vhid we do not have, or a mutated fresh one.
        if (r.int(2))
          return ipPacket('10.200.0.1', buildAdvert(makeAuthContext(PASSWORD, 1 + r.int(255), [VIP]), { advbase: 1, advskew: 0, demote: 0, counter: newest }));
        return mutateBits(pooled());
      }
      case 11: {
        // A fresh advert with a changed HMAC, version or type, the checksum made right again.
        const f = pooled();
        if (r.int(2)) f[20 + 16 + r.int(20)]! ^= 1 << r.int(8);
        else f[20] = r.int(256);
        f.writeUInt16BE(0, 26);
        f.writeUInt16BE(sum16(f, 20, 36), 26);
        return f;
      }
      default: {
        // Options in the IP header (ihl 6..15), then the advert.
        const f = pooled();
        const ihl = 6 + r.int(10);
        const opt = Buffer.concat([f.subarray(0, 20), Buffer.alloc((ihl - 5) * 4, 1), f.subarray(20)]);
        opt[0] = 0x40 | ihl;
        opt.writeUInt16BE(opt.length, 2);
        return i % 2 ? opt : opt.subarray(0, r.int(opt.length));
      }
    }
  };

  for (let i = 0; i < opts.count; i++) {
    // Time moves: the engine's timers (adverts, master-down) run between bursts of packets, and
    // the event loop turns so the VIP queue's promises settle as in the daemon.
    if (i % 64 === 0) time.advance(r.int(400));
    if (i % 1024 === 0) await new Promise((res) => setImmediate(res));
    const pkt = generate(i);
    const ref = reference(pkt);
    const before = snapshot(engine.stats);
    const tBefore = transitions;
    try {
      deliver(pkt);
    } catch (err) {
      fail(i, `threw out of the receive path: ${err instanceof Error ? err.stack : String(err)}`);
      continue;
    }
    const after = engine.stats;
    const changed: CounterName[] = [];
    for (let k = 0; k < COUNTER_NAMES.length; k++) if (after[COUNTER_NAMES[k]!] !== before[k]) changed.push(COUNTER_NAMES[k]!);
    const dropNames = changed.filter((n) => DROPS.includes(n));
    const delta = (n: CounterName) => after[n] - before[COUNTER_NAMES.indexOf(n)]!;
    for (const n of changed) if (delta(n) !== 1 && n !== 'carps_opackets' && n !== 'carps_preempt') fail(i, `${n} moved by ${delta(n)}`);
    if (ref.expect === 'ignored') {
      ignored++;
      if (changed.length > 0 || transitions !== tBefore) fail(i, `our own source: counted ${changed.join(',')}`);
      continue;
    }
    if (delta('carps_ipackets') !== 1) fail(i, `carps_ipackets moved by ${delta('carps_ipackets')}`);
    if (dropNames.length > 1) fail(i, `counted under ${dropNames.join(' and ')}`);
    const got = dropNames[0]?.slice(6);
    if (got) {
      drops[got]!++;
      dropped++;
      if (transitions !== tBefore) fail(i, `dropped as ${got} but caused a transition`);
    }
    if (ref.expect === 'auth') {
      const seen = accepted.get(ref.vhid!)!;
      if (got === undefined) {
        acceptedCount++;
        // OpenBSD's constant counter: a source that has only ever sent one counter may repeat it
        // with the same advbase, advskew and demote (src/core/node.ts, `once` mode).
        const off = (pkt[0]! & 15) * 4;
        const src = `${ref.vhid} ${pkt[12]}.${pkt[13]}.${pkt[14]}.${pkt[15]}`;
        const fields = `${ref.counter} ${pkt[off + 5]} ${pkt[off + 2]} ${pkt[off + 4]}`;
        const only = onlyCounter.get(src);
        const cookieRepeat = only === fields;
        if (only === undefined) onlyCounter.set(src, fields);
        else if (only !== null && only.split(' ')[0] !== String(ref.counter)) onlyCounter.set(src, null);
        if (seen.has(ref.counter!) && !cookieRepeat) fail(i, `vhid ${ref.vhid} accepted counter ${ref.counter} a second time`);
        if (sent.get(ref.vhid!)!.has(ref.counter!)) fail(i, `accepted our own counter ${ref.counter}`);
        seen.add(ref.counter!);
        if (seen.size > 4096) seen.delete(seen.values().next().value!);
        if (old.length < 64) old.push(pkt);
        else old[r.int(old.length)] = pkt;
        if (ref.counter! > newest && ref.counter! - newest < 1n << 40n) newest = ref.counter!;
      } else if (got !== 'replay') {
        fail(i, `an authenticated advert dropped as ${got}`);
      }
    } else if (got !== ref.expect) {
      fail(i, `expected ${ref.expect}, counted ${got ?? 'nothing (accepted)'}: ${pkt.subarray(0, 64).toString('hex')}`);
    }
    if (i % 10_000 === 0) {
      const rss = process.memoryUsage.rss();
      if (i === Math.max(10_000, Math.floor(opts.count / 20 / 10_000) * 10_000)) baseRss = rss;
      peakRss = Math.max(peakRss, rss);
      if (baseRss > 0 && rss > baseRss + RSS_BOUND_MB * 1024 * 1024)
        fail(i, `RSS ${(rss / 1048576).toFixed(0)} MB, more than ${RSS_BOUND_MB} MB over ${(baseRss / 1048576).toFixed(0)} MB after warm-up`);
      if (i % 100_000 === 0 && i > 0) opts.log(`packets: ${i} of ${opts.count}, ${failures.length} failures, RSS ${(rss / 1048576).toFixed(0)} MB`);
    }
  }
  await engine.stop();
  const dropSum = DROPS.reduce((s, n) => s + engine.stats[n], 0);
  if (dropSum !== dropped) failures.push(`the drop counters sum to ${dropSum}, but ${dropped} packets were dropped`);
  if (engine.stats.carps_ipackets !== opts.count - ignored) {
    failures.push(`carps_ipackets ${engine.stats.carps_ipackets}, packets not from our own source ${opts.count - ignored}`);
  }
  const secs = (performance.now() - started) / 1000;
  return {
    name: 'packets',
    cases: opts.count,
    failures,
    figures: {
      ...Object.fromEntries(Object.entries(drops).map(([k, v]) => [`dropped ${k}`, v])),
      dropped,
      accepted: acceptedCount,
      'ignored (our source)': ignored,
      transitions,
      'adverts sent': engine.stats.carps_opackets,
      'log lines': logLines,
      'peak RSS MB': Math.round(peakRss / 1048576),
      'packets/s': Math.round(opts.count / secs),
      seconds: Number(secs.toFixed(1)),
    },
  };
};

// A small main for trying it alone: node dist/test/fuzz/packets.js [count] [seed].
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const count = Number(process.argv[2] ?? 100_000);
  const seed = Number(process.argv[3] ?? 1);
  const rep = await packets({ seed, count, log: (l) => console.log(l) });
  console.log(JSON.stringify(rep, null, 2));
  process.exitCode = rep.failures.length > 0 ? 1 : 0;
}
