/**
 * The flood bench (`npm run bench -- --only flood`): a carpd master and backup and an attacker on
 * a bridge, in namespaces this process makes and removes. The attacker runs a small C sender
 * (compiled here with gcc; sendmmsg(2) on an IP_HDRINCL raw socket, bounded in count and time) at
 * the highest rate it reaches, for each scenario: forged adverts (bad HMAC), replays of a validly
 * signed advert, and wrong TTLs; from one source, from random sources anywhere, and from random
 * sources inside the segment's /24. After each: the master must still be MASTER and the backup
 * BACKUP with no transition, and carpd's log must have grown by fewer than 100 lines. Reported:
 * the sender's achieved rate, CPU and RSS of both daemons, the backup's valid adverts from the
 * master during the flood, and what the kernel guard dropped.
 *
 * Options (from run.ts): --seconds S (30), --guard nft|off (nft), --scenario NAME (all).
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CARPD_JS } from '../../src/lab/lab.js';
import { createLab, sleep, waitFor, type Lab, type LabNode } from '../../src/lab/netns.js';
import { buildAdvert } from '../../src/proto/advert.js';
import { makeAuthContext } from '../../src/proto/hmac.js';

const CLK_TCK = 100;
const PAGE = 4096;
const PASSWORD = 'floodbench';
const VIP = '198.18.1.1/24';
/** The sender never runs longer than this, whatever it is asked. */
const MAX_SEND_SECONDS = 120;
const MAX_PACKETS = 100_000_000;

/**
 * The sender. argv: IFNAME SRC MODE COUNT SECONDS VHID [HEX36]
 *   SRC: a.b.c.d (one source), `any` (random over the whole IPv4 space) or a.b.c.0/24 (random
 *   host .3–.254 in that /24). MODE: badauth (random counter and HMAC, good checksum), ttl (TTL 64),
 *   replay (the 36 CARP bytes in HEX36, validly signed). Prints one JSON line.
 */
export const FLOODER_C = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
static uint32_t x = 2463534242u;
static uint32_t rnd(void) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static uint16_t cksum(const uint8_t *p, int n) {
  uint32_t s = 0;
  for (int i = 0; i < n; i += 2) s += (p[i] << 8) | p[i + 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}
int main(int argc, char **argv) {
  if (argc < 7) { fprintf(stderr, "usage: IFNAME SRC MODE COUNT SECONDS VHID [HEX36]\n"); return 2; }
  const char *ifn = argv[1], *src = argv[2], *mode = argv[3];
  long count = atol(argv[4]); double secs = atof(argv[5]); int vhid = atoi(argv[6]);
  if (count < 1 || count > ${MAX_PACKETS} || secs <= 0 || secs > ${MAX_SEND_SECONDS}) { fprintf(stderr, "out of bounds\n"); return 2; }
  int s = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (s < 0) { perror("socket"); return 1; }
  if (setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, ifn, strlen(ifn)) < 0) { perror("SO_BINDTODEVICE"); return 1; }
  int big = 8 << 20; setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  uint32_t one = 0, net = 0; int random_any = 0, random_net = 0;
  if (strcmp(src, "any") == 0) random_any = 1;
  else if (strchr(src, '/')) { char b[32]; snprintf(b, sizeof b, "%s", src); *strchr(b, '/') = 0; net = ntohl(inet_addr(b)) & 0xffffff00u; random_net = 1; }
  else one = ntohl(inet_addr(src));
  uint8_t carp[36] = {0};
  int ttl = 255;
  if (strcmp(mode, "replay") == 0) {
    if (argc < 8 || strlen(argv[7]) != 72) { fprintf(stderr, "replay needs HEX36\n"); return 2; }
    for (int i = 0; i < 36; i++) sscanf(argv[7] + 2 * i, "%2hhx", &carp[i]);
  } else {
    carp[0] = 0x21; carp[1] = vhid; carp[2] = 0; carp[3] = 7; carp[4] = 0; carp[5] = 1;
    if (strcmp(mode, "ttl") == 0) ttl = 64;
  }
  static uint8_t pkts[BATCH][56];
  struct iovec iov[BATCH]; struct mmsghdr msgs[BATCH];
  struct sockaddr_in dst = { .sin_family = AF_INET };
  dst.sin_addr.s_addr = inet_addr("224.0.0.18");
  for (int i = 0; i < BATCH; i++) {
    uint8_t *p = pkts[i];
    p[0] = 0x45; p[1] = 0x10; p[2] = 0; p[3] = 56; p[8] = ttl; p[9] = 112;
    memcpy(p + 16, &dst.sin_addr.s_addr, 4);
    memcpy(p + 20, carp, 36);
    iov[i].iov_base = p; iov[i].iov_len = 56;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &dst; msgs[i].msg_hdr.msg_namelen = sizeof dst;
  }
  int vary = strcmp(mode, "badauth") == 0;
  long sent = 0, errors = 0; double t0 = now(), t = t0;
  while (sent < count && (t = now()) - t0 < secs) {
    int n = count - sent < BATCH ? (int)(count - sent) : BATCH;
    for (int i = 0; i < n; i++) {
      uint8_t *p = pkts[i];
      uint32_t a = random_any ? rnd() : random_net ? (net | (3 + rnd() % 252)) : one;
      uint32_t be = htonl(a); memcpy(p + 12, &be, 4);
      if (vary) {
        for (int k = 8; k < 36; k += 4) { uint32_t r = rnd(); memcpy(p + 20 + k, &r, 4); }
        p[26] = p[27] = 0;
        uint16_t c = cksum(p + 20, 36); p[26] = c >> 8; p[27] = c & 0xff;
      }
    }
    int r = sendmmsg(s, msgs, n, 0);
    if (r < 0) { errors++; if (errno == ENOBUFS || errno == EAGAIN) { usleep(50); continue; } perror("sendmmsg"); break; }
    sent += r;
  }
  t = now() - t0;
  printf("{\"sent\":%ld,\"seconds\":%.3f,\"pps\":%.0f,\"errors\":%ld}\n", sent, t, sent / t, errors);
  return 0;
}
`;

/** Compile the sender into `dir`; undefined when there is no C compiler. */
export async function buildFlooder(lab: Lab, dir: string): Promise<string | undefined> {
  const src = join(dir, 'carpflood.c');
  const bin = join(dir, 'carpflood');
  writeFileSync(src, FLOODER_C);
  const r = await lab.exec(lab.namespaces()[0]!, ['gcc', '-O2', '-o', bin, src], { timeoutMs: 60_000 }).catch(() => undefined);
  return r && r.exitCode === 0 ? bin : undefined;
}

export interface FloodResult {
  sent: number;
  seconds: number;
  pps: number;
  errors: number;
}

/** Run the sender in `ns` to completion (bounded by its own limits and a wall-clock timeout). */
export async function runFlooder(lab: Lab, ns: string, bin: string, args: string[], seconds: number): Promise<FloodResult> {
  const r = await lab.exec(ns, [bin, ...args], { timeoutMs: (seconds + 15) * 1000 });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as FloodResult;
  } catch {
    throw new Error(`flooder: exit ${String(r.exitCode)}: ${r.stdout} ${r.stderr}`);
  }
}

/** The guard's drop counters by comment (badttl, badsrc, flood…), from `nft list table`. */
export async function guardCounters(lab: Lab, ns: string): Promise<Record<string, number>> {
  const r = await lab.exec(ns, ['nft', 'list', 'table', 'inet', 'carpd_guard']);
  const out: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/counter packets (\d+) bytes \d+ drop comment "([a-z]+)"/g)) out[m[2]!] = (out[m[2]!] ?? 0) + Number(m[1]);
  return out;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function rssMb(pid: number): number {
  return (Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE) / 1024 / 1024;
}

interface Daemon {
  node: LabNode;
  child: ChildProcess;
  lines: string[];
  sock: string;
}

function startCarpd(lab: Lab, node: LabNode, advskew: number, guard: string, passfile: string): Daemon {
  const conf = join(lab.dir, `${node.name}.conf`);
  writeFileSync(
    conf,
    [
      '[carpd]',
      'preempt = no',
      'log = 2',
      `flood_guard = ${guard}`,
      '',
      '[vhid.v1]',
      'vhid = 1',
      'interface = eth0',
      `address = ${VIP}`,
      'advbase = 1',
      `advskew = ${advskew}`,
      `passfile = ${passfile}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const sock = join(lab.dir, `${node.name}.sock`);
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'run', '-c', conf, '--control', sock], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { STATE_DIRECTORY: join(lab.dir, `${node.name}-state`) },
  });
  const lines: string[] = [];
  for (const s of [child.stdout, child.stderr]) s?.setEncoding('utf8').on('data', (c: string) => lines.push(...c.split('\n').filter(Boolean)));
  return { node, child, lines, sock };
}

async function vhidStats(lab: Lab, d: Daemon): Promise<{ state: string; received: number }> {
  const r = await lab.exec(d.node.ns, [process.execPath, CARPD_JS.replace(/carpd\.js$/, 'carpctl.js'), '-s', d.sock, 'stats', '--json']);
  try {
    const v = (JSON.parse(r.stdout) as { vhids: { state: string; advertsReceived: number }[] }).vhids[0];
    return { state: v?.state ?? '?', received: v?.advertsReceived ?? 0 };
  } catch {
    return { state: `? (${r.stderr.trim() || r.stdout.trim()})`, received: 0 };
  }
}

interface Scenario {
  name: string;
  src: (lab: Lab) => string;
  mode: 'badauth' | 'ttl' | 'replay';
}

export const SCENARIOS: Scenario[] = [
  { name: 'bad HMAC, one source', src: (l) => l.node('attacker').address, mode: 'badauth' },
  { name: 'bad HMAC, random sources (any)', src: () => 'any', mode: 'badauth' },
  { name: 'bad HMAC, random sources in the /24', src: () => '198.18.0.0/24', mode: 'badauth' },
  { name: 'replay, one source', src: (l) => l.node('attacker').address, mode: 'replay' },
  { name: 'replay, random sources in the /24', src: () => '198.18.0.0/24', mode: 'replay' },
  { name: 'TTL 64, one source', src: (l) => l.node('attacker').address, mode: 'ttl' },
  { name: 'TTL 64, random sources (any)', src: () => 'any', mode: 'ttl' },
];

export interface FloodBenchOptions {
  seconds: number;
  guard: 'nft' | 'off';
  scenario?: string;
}

/** Runs the scenarios and prints a Markdown table. Returns false when a scenario failed its checks. */
export async function floodBench(opts: FloodBenchOptions): Promise<boolean> {
  const lab = await createLab({
    prefix: 'carpdflood',
    nodes: [
      { name: 'master', address: '198.18.0.1/24' },
      { name: 'backup', address: '198.18.0.2/24' },
      { name: 'attacker', address: '198.18.0.3/24' },
    ],
  });
  let ok = true;
  try {
    const bin = await buildFlooder(lab, lab.dir);
    if (!bin) {
      console.log('flood: no C compiler (gcc); skipped');
      return true;
    }
    const passfile = join(lab.dir, 'carp.pass');
    writeFileSync(passfile, `${PASSWORD}\n`, { mode: 0o600 });
    const m = startCarpd(lab, lab.node('master'), 0, opts.guard, passfile);
    await sleep(300);
    const b = startCarpd(lab, lab.node('backup'), 100, opts.guard, passfile);
    const daemons = [m, b];
    try {
      await waitFor(() => m.lines.some((l) => l.includes('-> MASTER')), { timeoutMs: 20_000, what: 'the master' });
      await waitFor(() => b.lines.some((l) => l.includes('INIT -> BACKUP')), { timeoutMs: 20_000, what: 'the backup' });
    } catch (err) {
      throw new Error(`${(err as Error).message}; master said: ${m.lines.join(' | ')}; backup said: ${b.lines.join(' | ')}`, { cause: err });
    }
    await sleep(3000);
    // A replay: an advert signed with the real key (what a capture of the master would hold).
    const replay = buildAdvert(makeAuthContext(PASSWORD, 1, [VIP]), { advbase: 1, advskew: 0, demote: 0, counter: 12345n }).toString('hex');
    console.log(`\n## Flood (guard ${opts.guard}, ${opts.seconds} s per scenario, sender: C sendmmsg on a raw socket in a third namespace)\n`);
    console.log(
      '| scenario | sender pkt/s | sent | transitions | master | backup | log lines | valid adverts received by the backup | CPU % master / backup | RSS MB master / backup | kernel drops (backup) |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const sc of SCENARIOS) {
      if (opts.scenario && !sc.name.includes(opts.scenario)) continue;
      const lines0 = daemons.map((d) => d.lines.length);
      const before = await vhidStats(lab, b);
      const k0 = opts.guard === 'nft' ? await guardCounters(lab, b.node.ns) : {};
      const pids = daemons.map((d) => d.child.pid!);
      const c0 = pids.map(cpuTicks);
      const t0 = performance.now();
      const args = ['eth0', sc.src(lab), sc.mode, String(MAX_PACKETS), String(opts.seconds), '1', ...(sc.mode === 'replay' ? [replay] : [])];
      const fr = await runFlooder(lab, lab.node('attacker').ns, bin, args, opts.seconds);
      const wall = (performance.now() - t0) / 1000;
      const cpu = pids.map((p, i) => (100 * (cpuTicks(p) - c0[i]!)) / CLK_TCK / wall);
      const rss = pids.map(rssMb);
      // Let the queues drain before looking at the states.
      await sleep(1500);
      const after = await vhidStats(lab, b);
      const mState = (await vhidStats(lab, m)).state;
      const k1 = opts.guard === 'nft' ? await guardCounters(lab, b.node.ns) : {};
      const newLines = daemons.map((d, i) => d.lines.slice(lines0[i]));
      const transitions = newLines.flat().filter((l) => / -> /.test(l));
      const logCount = newLines.reduce((s, l) => s + l.length, 0);
      const drops = Object.entries(k1)
        .map(([k, v]) => [k, v - (k0[k] ?? 0)] as const)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      const pass = transitions.length === 0 && mState === 'MASTER' && after.state === 'BACKUP' && logCount < 100;
      if (!pass) ok = false;
      console.log(
        `| ${sc.name} | ${fr.pps}${fr.errors ? ` (${fr.errors} ENOBUFS)` : ''} | ${fr.sent} | ${transitions.length}${pass ? '' : ' **FAIL**'} | ${mState} | ${after.state} | ${logCount} | ${after.received - before.received} | ${cpu.map((c) => c.toFixed(1)).join(' / ')} | ${rss.map((r) => r.toFixed(1)).join(' / ')} | ${drops || '-'} |`,
      );
      for (const t of transitions) console.log(`  transition: ${t}`);
      if (!pass && (mState !== 'MASTER' || after.state !== 'BACKUP')) {
        // Put the cluster back for the next scenario: wait until the master holds again.
        await waitFor(async () => (await vhidStats(lab, m)).state === 'MASTER' && (await vhidStats(lab, b)).state === 'BACKUP', {
          timeoutMs: 20_000,
          intervalMs: 500,
          what: 'the cluster to settle',
        }).catch(() => undefined);
      }
    }
    for (const d of daemons) lab.kill(d.child, 'SIGTERM');
    await Promise.all(daemons.map((d) => lab.waitExit(d.child, 5000)));
    if (opts.guard === 'nft') {
      const left = await lab.exec(b.node.ns, ['nft', 'list', 'table', 'inet', 'carpd_guard']);
      console.log(`\nafter SIGTERM: table inet carpd_guard ${left.exitCode === 0 ? 'still there (wrong)' : 'removed'}`);
    }
  } finally {
    await lab.destroy();
  }
  return ok;
}
