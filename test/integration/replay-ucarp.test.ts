/**
 * Replay protection against Debian's real ucarp on a lab bridge. ucarp copies every counter it
 * hears (src/carp.c packethandler()), so this is the peer that tests carpd's counter rules
 * (src/core/replay.ts) for real:
 *
 * 1. ucarp master, carpd backup: one of ucarp's adverts, captured on the bridge, re-stamped to
 *    255/255 (bow-out) and sent again from the observer namespace, keeps its source and valid
 *    HMAC; carpd must stay BACKUP and count every copy as carps_replay.
 * 2. Failover both ways, twice (kill -9, restart): carpd must drop none of ucarp's genuine
 *    adverts, and each takeover is the master-down kind.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CARPD_JS, labConfig, labNodes, labVip, spawnCarpd, spawnUcarp, writePassfile } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { ipPayloadOf, readPcap } from '../../src/proto/pcap.js';
import { restamp, ipPacket } from '../helpers/inject.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const RAW_SOCKET = new URL('../../../node_modules/raw-socket/index.js', import.meta.url).pathname;
const VIP = labVip(1);

interface Proc {
  procs: ChildProcess[];
  lines: string[];
  /** When each line arrived (ms), parallel to `lines`. */
  times: number[];
}

/** The lab VIP on a node's eth0? */
async function holdsVip(lab: Lab, node: LabNode): Promise<boolean> {
  const r = await lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return r.stdout.includes(`inet ${VIP}/`);
}

async function carpStats(lab: Lab, node: LabNode, sock: string): Promise<Record<string, number>> {
  const r = await lab.exec(node.ns, [process.execPath, CARPCTL_JS, '-s', sock, 'stats', '--json'], { timeoutMs: 10_000 });
  assert.equal(r.exitCode, 0, `carpctl stats: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { counters: Record<string, number> }).counters;
}

/**
 * Send `pkt` (a whole IP packet, our header) `count` times, 500 ms apart, from `node`'s namespace
 * to `dst` with IP_HDRINCL: the source stays the captured one, TTL 255.
 */
async function sendRaw(lab: Lab, node: LabNode, pkt: Buffer, dst: string, count: number): Promise<void> {
  const script = `
const raw = require(${JSON.stringify(RAW_SOCKET)});
const s = raw.createSocket({ protocol: 112 });
s.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
const pkt = Buffer.from(${JSON.stringify(pkt.toString('hex'))}, 'hex');
let n = ${count};
const go = () => s.send(pkt, 0, pkt.length, ${JSON.stringify(dst)}, (err) => {
  if (err) { console.error(err.message); process.exit(1); }
  if (--n > 0) setTimeout(go, 500); else { s.close(); }
});
go();`;
  const r = await lab.exec(node.ns, [process.execPath, '-e', script], { timeoutMs: 5_000 + count * 600 });
  assert.equal(r.exitCode, 0, `raw send: ${r.stderr}`);
}

test(
  'carpd with a ucarp peer: a captured ucarp advert replayed as a bow-out is dropped, and failover works both ways with protection on',
  { timeout: 120_000 },
  async () => {
    await withLab({ prefix: 'carpdrpl', nodes: labNodes(['n1', 'uc', 'obs']) }, async (lab) => {
      const n1 = lab.node('n1');
      const uc = lab.node('uc');
      const obs = lab.node('obs');
      const dir = join(lab.dir, 'pass');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const passfile = writePassfile(dir);
      const conf = join(lab.dir, 'n1.conf');
      writeFileSync(conf, labConfig({ vhids: 1, advskew: 50, passfile }), { mode: 0o600 });
      const sock = join(lab.dir, 'n1.sock');
      const log: string[] = [];
      const startCarpd = (): Proc => {
        const p: Proc = { procs: [], lines: [], times: [] };
        p.procs.push(spawnCarpd(lab, n1, conf, (l) => (p.lines.push(l), p.times.push(Date.now()), log.push(`carpd: ${l}`))));
        return p;
      };
      const startUcarp = (advskew: number, extra: string[] = []): Proc => {
        const p: Proc = { procs: [], lines: [], times: [] };
        p.procs = spawnUcarp(lab, uc, 1, advskew, passfile, (l) => (p.lines.push(l), log.push(`ucarp: ${l}`)), extra);
        return p;
      };
      const kill9 = (p: Proc) => {
        for (const c of p.procs) lab.kill(c, 'SIGKILL');
      };
      const why = () => log.slice(-40).join('\n');

      // 1. ucarp master (advskew 0), carpd backup (advskew 50); capture one of ucarp's adverts.
      let ucarp = startUcarp(0);
      await waitFor(() => holdsVip(lab, uc), { timeoutMs: 10_000, what: 'ucarp to hold the VIP' });
      let carpd = startCarpd();
      await waitFor(() => carpd.lines.some((l) => l.includes('INIT -> BACKUP')), { timeoutMs: 10_000, what: 'carpd BACKUP' });
      const cap = await lab.capture(lab.switchNs!, lab.bridge!, 'ip proto 112');
      await sleep(2_500);
      await cap.stop();
      const adverts = [...readPcap(readFileSync(cap.file))].map((rec) => ipPayloadOf(rec)).filter((p): p is Buffer => p !== undefined && p[9] === 112);
      const fromUcarp = adverts.filter((p) => `${p[12]}.${p[13]}.${p[14]}.${p[15]}` === uc.address);
      assert.ok(fromUcarp.length >= 1, `no ucarp advert captured (${adverts.length} CARP packets)`);
      const ihl = (fromUcarp[0]![0]! & 15) * 4;
      const bowout = ipPacket(uc.address, restamp(fromUcarp[0]!.subarray(ihl, ihl + 36), { advbase: 255, advskew: 255 }));

      // Replayed to carpd 10 times, 500 ms apart, from the observer. The bridge floods it to ucarp
      // as well (carpd, a silent backup, is not in its MAC table yet), and ucarp, which has no
      // protection, copies the replayed counter (packethandler()): its next adverts carry counters
      // carpd has seen and are dropped too, carpd's master-down timer fires, and ucarp, hearing
      // carpd, copies carpd's counter and wins again: the bounded split brain of
      // src/core/replay.ts (a). Without the fix carpd took over at once ("master bowed out").
      const before = await carpStats(lab, n1, sock);
      const attackAt = Date.now();
      await sendRaw(lab, obs, bowout, n1.address, 10);
      await waitFor(async () => !(await holdsVip(lab, n1)) && (await holdsVip(lab, uc)), {
        timeoutMs: 10_000,
        what: 'ucarp master, carpd backup after the attack',
      });
      await sleep(3_000);
      const after = await carpStats(lab, n1, sock);
      assert.ok(!carpd.lines.some((l) => l.includes('master bowed out')), `carpd believed a replayed bow-out:\n${why()}`);
      assert.ok(after.carps_replay! - before.carps_replay! >= 10, `every replay counted:\n${JSON.stringify(after)}`);
      assert.ok(
        carpd.lines.some((l) => /dropped: replay/.test(l)),
        'carpd logged the replay',
      );
      // Every MASTER episode of carpd's ended within ucarp's advert interval plus jitter.
      const episodes: number[] = [];
      carpd.lines.forEach((l, i) => {
        if (!l.includes('BACKUP -> MASTER')) return;
        const end = carpd.lines.findIndex((x, j) => j > i && x.includes('MASTER -> BACKUP'));
        assert.ok(end > i, `carpd still MASTER:\n${why()}`);
        episodes.push(carpd.times[end]! - carpd.times[i]!);
      });
      log.push(
        `test: attack ${Date.now() - attackAt} ms; carpd MASTER episodes (ms): ${JSON.stringify(episodes)}; carps_replay +${after.carps_replay! - before.carps_replay!}`,
      );
      console.log(log.at(-1));
      for (const ms of episodes) assert.ok(ms <= 2_500, `a split brain of ${ms} ms:\n${why()}`);
      assert.equal(await holdsVip(lab, n1), false, 'carpd does not hold the VIP');
      const replaysAfterAttack = after.carps_replay!;

      // 2. Failover ucarp → carpd (kill -9), then a restarted ucarp with -P, which copies carpd's
      // counter, preempts, and must be believed at once.
      kill9(ucarp);
      await waitFor(() => holdsVip(lab, n1), { timeoutMs: 8_000, what: 'carpd to take over from ucarp' });
      assert.ok(
        carpd.lines.some((l) => l.includes('BACKUP -> MASTER (master timed out)')),
        why(),
      );
      ucarp = startUcarp(0, ['-P']);
      await waitFor(async () => (await holdsVip(lab, uc)) && !(await holdsVip(lab, n1)), {
        timeoutMs: 10_000,
        what: 'the restarted ucarp -P to preempt carpd',
      });
      assert.ok(
        carpd.lines.some((l) => l.includes('MASTER -> BACKUP (more frequent advertisement received)')),
        why(),
      );
      assert.equal((await carpStats(lab, n1, sock)).carps_replay, replaysAfterAttack, `no genuine ucarp advert dropped:\n${why()}`);

      // 3. Failover carpd → ucarp: carpd master again (ucarp restarted at advskew 100, no -P), kill
      // -9 carpd, ucarp takes over with counters copied from carpd's; a restarted carpd follows it.
      kill9(ucarp);
      await waitFor(() => holdsVip(lab, n1), { timeoutMs: 8_000, what: 'carpd to take over again' });
      ucarp = startUcarp(100);
      await sleep(4_000);
      assert.equal(await holdsVip(lab, uc), false, `ucarp at advskew 100 stays backup:\n${why()}`);
      kill9(carpd);
      await waitFor(() => holdsVip(lab, uc), { timeoutMs: 10_000, what: 'ucarp to take over from carpd' });
      carpd = startCarpd();
      await waitFor(() => carpd.lines.some((l) => l.includes('INIT -> BACKUP')), { timeoutMs: 10_000, what: 'the restarted carpd BACKUP' });
      await sleep(6_000);
      assert.ok(!carpd.lines.some((l) => l.includes('-> MASTER')), `the restarted carpd stayed BACKUP behind ucarp:\n${why()}`);
      const last = await carpStats(lab, n1, sock);
      assert.equal(last.carps_replay, 0, "the restarted carpd dropped none of ucarp's adverts");
      assert.ok(last.carps_ipackets! >= 4, `carpd heard ucarp: ${JSON.stringify(last)}`);
      kill9(carpd);
      kill9(ucarp);
    });
  },
);
