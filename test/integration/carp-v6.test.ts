/**
 * IPv6 adverts and unicast peers for real: `carpd run` nodes in network namespaces with real
 * configs, in the topologies of FreeBSD's tests/sys/netinet/carp.sh (HalfBSD/freebsd-src
 * @569873cc): B3 (a bridge namespace "one" with the nodes "two" and "three" on it) and, for the
 * unicast cases, a routing namespace in the middle so adverts arrive with TTL / hop limit 254.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CARPD_JS, spawnCarpd } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const run = promisify(execFile);
const TEST = { timeout: 60_000 };
const CARPCTL_JS = fileURLToPath(new URL('../../src/cli/carpctl.js', import.meta.url));
const RAW_SOCKET = fileURLToPath(new URL('../../../node_modules/raw-socket/index.js', import.meta.url));

async function sh(ns: string, argv: string[], ok = true): Promise<{ code: number; out: string }> {
  try {
    const r = await run('ip', ['netns', 'exec', ns, ...argv], { timeout: 15_000 });
    return { code: 0, out: r.stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (ok) throw new Error(`${ns}: ${argv.join(' ')}: ${e.stderr ?? ''}`, { cause: err });
    return { code: typeof e.code === 'number' ? e.code : 1, out: e.stdout ?? '' };
  }
}

/** Wait (bounded) until no IPv6 address on ns's `ifname` is tentative (DAD done). */
async function dadDone(ns: string, ifname = 'eth0'): Promise<void> {
  await waitFor(async () => (await sh(ns, ['ip', '-6', 'addr', 'show', 'dev', ifname, 'tentative'])).out.trim() === '' || undefined, {
    timeoutMs: 8_000,
    intervalMs: 100,
    what: `DAD on ${ns} ${ifname}`,
  });
}

async function holds(ns: string, vip: string): Promise<boolean> {
  const fam = vip.includes(':') ? '-6' : '-4';
  const out = (await sh(ns, ['ip', fam, '-o', 'addr', 'show', 'dev', 'eth0'])).out;
  return out.includes(` ${vip}/`);
}

/** Exactly one of `nss` holds the VIP (FreeBSD carp.sh wait_for_carp, bounded): its index. */
async function oneMaster(nss: string[], vip: string, timeoutMs = 15_000): Promise<number> {
  let stable = 0;
  let last = -1;
  return waitFor(
    async () => {
      const h = await Promise.all(nss.map((ns) => holds(ns, vip)));
      const n = h.filter(Boolean).length;
      const i = n === 1 ? h.indexOf(true) : -1;
      stable = i >= 0 && i === last ? stable + 1 : 0;
      last = i;
      // Held by one node over three looks 200 ms apart: not a moment of a flap.
      return stable >= 2 ? i + 1 : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `exactly one holder of ${vip}` },
  ).then((i) => i - 1);
}

async function stats(sock: string): Promise<Record<string, number>> {
  const r = await run(process.execPath, [CARPCTL_JS, '-s', sock, 'stats', '--json'], { timeout: 10_000 });
  const j = JSON.parse(r.stdout) as { counters?: Record<string, number> } & Record<string, unknown>;
  return (j.counters ?? j) as Record<string, number>;
}

function conf(lab: Lab, node: LabNode, body: string): string {
  const path = join(lab.dir, `${node.name}.conf`);
  writeFileSync(path, `[carpd]\nlog = 6\n\n${body}`, { mode: 0o600 });
  return path;
}

const VHID6 = (advskew: number, extra = '') =>
  `[vhid.v1]\nvhid = 1\ninterface = eth0\naddress = 2001:db8::1/64\nadvskew = ${advskew}\npass = v6-secret\n${extra}`;

/** B3 with IPv6: the bridge namespace has 2001:db8::4/64, the nodes 2001:db8::1:2 and ::1:3. */
async function b3v6(lab: Lab): Promise<void> {
  // The lab turns IPv6 off on its bridge (no stray router solicitations); the B3 "one" needs it.
  await sh(lab.switchNs!, ['sysctl', '-qw', `net.ipv6.conf.${lab.bridge!}.disable_ipv6=0`]);
  await sh(lab.switchNs!, ['ip', '-6', 'addr', 'add', '2001:db8::4/64', 'dev', lab.bridge!, 'nodad']);
  for (const [i, n] of lab.nodes.entries()) await sh(n.ns, ['ip', '-6', 'addr', 'add', `2001:db8::1:${i + 2}/64`, 'dev', 'eth0', 'nodad']);
  for (const ns of [lab.switchNs!, ...lab.nodes.map((n) => n.ns)]) await dadDone(ns, ns === lab.switchNs ? lab.bridge! : 'eth0');
}

test('freebsd carp.sh basic_v6: IPv6-only vhid 2001:db8::1/64, exactly one MASTER, the bridge pings the VIP', TEST, async () => {
  await withLab({ prefix: 'v6b', nodes: ['two', 'three'] }, async (lab) => {
    await b3v6(lab);
    const logs: string[] = [];
    const procs: ChildProcess[] = [];
    for (const n of lab.nodes) procs.push(spawnCarpd(lab, n, conf(lab, n, VHID6(0)), (l) => logs.push(`${n.name}: ${l}`)));
    const cap = await lab.capture(lab.switchNs!, lab.bridge!, 'ip6 proto 112');
    const m = await oneMaster(
      lab.nodes.map((n) => n.ns),
      '2001:db8::1',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs.slice(-30).join('\n')}`);
    });
    await sleep(1_500);
    assert.equal(
      await oneMaster(
        lab.nodes.map((n) => n.ns),
        '2001:db8::1',
        3_000,
      ),
      m,
      'still the same single MASTER',
    );
    // The bridge pings the VIP (a few tries: the first NS may race the VIP's neighbour entry).
    let ping = { code: 1, out: '' };
    for (let i = 0; i < 3 && ping.code !== 0; i++) ping = await sh(lab.switchNs!, ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '1', '2001:db8::1'], false);
    assert.equal(ping.code, 0, `ping -6 2001:db8::1 from the bridge: ${ping.out}`);
    await cap.stop();
    // Hop limit 255 on the wire, next header 112, to ff02::12.
    const td = await run('tcpdump', ['-nn', '-v', '-r', cap.file], { timeout: 10_000 });
    assert.match(td.stdout, /hlim 255, next-header unknown \(112\)|hlim 255.*\(112\)/);
    assert.match(td.stdout, /> ff02::12:/);
    for (const p of procs) lab.kill(p, 'SIGTERM');
    for (const p of procs) await lab.waitExit(p, 5_000);
  });
});

test('a hop-limit-64 IPv6 advert is dropped and counted (carpctl stats: carps_badttl)', TEST, async () => {
  await withLab({ prefix: 'v6h', nodes: ['two', 'three'] }, async (lab) => {
    await b3v6(lab);
    const [two, three] = lab.nodes as [LabNode, LabNode];
    const logs: string[] = [];
    const p = spawnCarpd(lab, two, conf(lab, two, VHID6(100)), (l) => logs.push(l));
    await waitFor(() => logs.some((l) => /-> (BACKUP|MASTER)/.test(l)) || undefined, { timeoutMs: 8_000, what: 'carpd up' });
    const sock = join(lab.dir, `${two.name}.sock`);
    const before = await stats(sock);
    // A correctly signed advert (same password and VIP: only the hop limit is wrong), sent
    // from `three` with IPV6_MULTICAST_HOPS 64, five times. And five with 255, which count as input.
    const script = `
      const raw = require(${JSON.stringify(RAW_SOCKET)});
      const { buildAdvert } = await import(${JSON.stringify(fileURLToPath(new URL('../../src/proto/advert.js', import.meta.url)))});
      const { makeAuthContext } = await import(${JSON.stringify(fileURLToPath(new URL('../../src/proto/hmac.js', import.meta.url)))});
      const idx = Number(require('fs').readFileSync('/sys/class/net/eth0/ifindex', 'utf8'));
      const ctx = makeAuthContext('v6-secret', 1, ['2001:db8::1/64']);
      for (const hops of [64, 255]) {
        const s = raw.createSocket({ protocol: 112, addressFamily: raw.AddressFamily.IPv6 });
        s.setOption(41, 18, hops);
        s.setOption(41, 17, idx);
        for (let i = 0; i < 5; i++) {
          const pkt = buildAdvert(ctx, { advbase: 1, advskew: 200, demote: 0, counter: BigInt(Date.now()) * 1000n + BigInt(hops * 10 + i) });
          s.wrap.send(pkt, 0, pkt.length, 'ff02::12%eth0', () => {});
        }
        await new Promise((r) => setTimeout(r, 200));
        s.close();
      }`;
    const r = await sh(
      three.ns,
      [process.execPath, '--input-type=commonjs', '-e', `(async () => {${script}})().catch((e) => { console.error(e); process.exit(1); })`],
      false,
    );
    assert.equal(r.code, 0, r.out);
    await sleep(500);
    const after = await stats(sock);
    const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    assert.equal(d('carps_badttl'), 5, `5 hop-limit-64 adverts dropped as badttl: ${JSON.stringify(after)}`);
    // Exactly 10: each advert came up through one socket only (the two filters are complementary).
    assert.equal(d('carps_ipackets6'), 10, `all 10 counted once as IPv6 input: ${JSON.stringify(after)}`);
    assert.ok(
      logs.some((l) => /dropped: badttl/.test(l)),
      logs.join('\n'),
    );
    lab.kill(p, 'SIGTERM');
    await lab.waitExit(p, 5_000);
  });
});

/**
 * The routed topology of carp.sh unicast_v4 / unicast_v6: "one" forwards between two links,
 * "two" on the first, "three" on the second. Names are unique per run; everything is removed.
 */
class Routed {
  readonly id = `v6r${randomBytes(2).toString('hex')}`;
  readonly one = `${this.id}-one`;
  readonly two = `${this.id}-two`;
  readonly three = `${this.id}-three`;
  readonly dir = mkdtempSync(join(tmpdir(), 'carpd-v6r-'));
  readonly procs: ChildProcess[] = [];
  readonly logs: string[] = [];

  async build(): Promise<void> {
    for (const ns of [this.one, this.two, this.three]) await run('ip', ['netns', 'add', ns]);
    await run('ip', ['link', 'add', 'a1', 'netns', this.one, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.two]);
    await run('ip', ['link', 'add', 'a2', 'netns', this.one, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.three]);
    for (const ns of [this.one, this.two, this.three]) {
      await sh(ns, [
        'sysctl',
        '-qw',
        'net.ipv4.ip_forward=1',
        'net.ipv6.conf.all.forwarding=1',
        'net.ipv6.conf.all.accept_dad=0',
        'net.ipv6.conf.default.accept_dad=0',
      ]);
      await sh(ns, ['ip', 'link', 'set', 'lo', 'up']);
    }
    for (const [ns, ifs] of [
      [this.one, ['a1', 'a2']],
      [this.two, ['eth0']],
      [this.three, ['eth0']],
    ] as const) {
      for (const i of ifs) {
        await sh(ns, ['sysctl', '-qw', `net.ipv6.conf.${i}.accept_dad=0`]);
        await sh(ns, ['ip', 'link', 'set', i, 'up']);
      }
    }
  }

  carpd(ns: string, name: string, body: string): ChildProcess {
    mkdirSync(join(this.dir, `${name}-state`), { recursive: true });
    const path = join(this.dir, `${name}.conf`);
    writeFileSync(path, `[carpd]\nlog = 6\n\n${body}`, { mode: 0o600 });
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CARPD_JS, 'run', '-c', path, '--control', this.sock(name), '--run-dir', this.dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, STATE_DIRECTORY: join(this.dir, `${name}-state`) },
    });
    for (const s of [child.stdout, child.stderr]) createInterface({ input: s }).on('line', (l) => this.logs.length < 4000 && this.logs.push(`${name}: ${l}`));
    this.procs.push(child);
    return child;
  }

  sock(name: string): string {
    return join(this.dir, `${name}.sock`);
  }

  async destroy(): Promise<void> {
    for (const p of this.procs) {
      if (p.exitCode === null && p.pid !== undefined) {
        try {
          process.kill(p.pid, 'SIGTERM');
        } catch {
          // gone
        }
      }
    }
    await sleep(300);
    for (const p of this.procs) {
      if (p.exitCode === null && p.pid !== undefined) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    for (const ns of [this.one, this.two, this.three]) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

test(
  'freebsd carp.sh unicast_v4: routed peers .2 and .224 (PR 284872), TTL 254, one MASTER, ping via a host route, advskew by SIGHUP stays unicast',
  TEST,
  async (t) => {
    const r = new Routed();
    t.after(() => r.destroy());
    await r.build();
    await sh(r.one, ['ip', 'addr', 'add', '198.51.100.1/25', 'dev', 'a1']);
    await sh(r.one, ['ip', 'addr', 'add', '198.51.100.129/25', 'dev', 'a2']);
    await sh(r.two, ['ip', 'addr', 'add', '198.51.100.2/25', 'dev', 'eth0']);
    await sh(r.two, ['ip', 'route', 'add', '198.51.100.224', 'via', '198.51.100.1']);
    await sh(r.three, ['ip', 'addr', 'add', '198.51.100.224/25', 'dev', 'eth0']);
    await sh(r.three, ['ip', 'route', 'add', '198.51.100.2', 'via', '198.51.100.129']);
    assert.equal((await sh(r.two, ['ping', '-c', '1', '-W', '2', '198.51.100.224'], false)).code, 0, 'sanity: two reaches three through one');
    const body = (peer: string, advskew: number) =>
      `[vhid.v1]\nvhid = 1\ninterface = eth0\naddress = 192.0.2.1/32\npeer = ${peer}\nadvskew = ${advskew}\npass = uni-secret\n`;
    const cap = spawn('ip', ['netns', 'exec', r.two, 'tcpdump', '-nn', '-v', '-l', '-i', 'eth0', 'ip proto 112 and src 198.51.100.224'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    r.procs.push(cap);
    const seen: string[] = [];
    createInterface({ input: cap.stdout! }).on('line', (l) => seen.length < 200 && seen.push(l));
    const p2 = r.carpd(r.two, 'two', body('198.51.100.224', 0));
    r.carpd(r.three, 'three', body('198.51.100.2', 0));
    const idx = await oneMaster([r.two, r.three], '192.0.2.1').catch((err: Error) => {
      throw new Error(`${err.message}\n${r.logs.slice(-30).join('\n')}`);
    });
    const master = idx === 0 ? '198.51.100.2' : '198.51.100.224';
    await sh(r.one, ['ip', 'route', 'add', '192.0.2.1/32', 'via', master]);
    assert.equal((await sh(r.one, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '192.0.2.1'], false)).code, 0, 'one pings the VIP via the host route');
    // The adverts crossed the router: TTL 254 at the receiver. (From three: whichever is master, a backup sends nothing, so wait for one if any.)
    const stats2 = await stats(r.sock('two'));
    assert.equal(stats2.carps_badttl ?? 0, 0, JSON.stringify(stats2));
    assert.ok((stats2.carps_ipackets ?? 0) > 0 || idx === 0, `two heard three: ${JSON.stringify(stats2)}`);
    if (idx === 1)
      assert.ok(
        seen.some((l) => /ttl 254/.test(l)),
        seen.join('\n'),
      );

    // unicast_v4 step 5: change advskew (SIGHUP reload) and the vhid still sends to its peer.
    writeFileSync(join(r.dir, 'two.conf'), `[carpd]\nlog = 6\n\n${body('198.51.100.224', 2)}`, { mode: 0o600 });
    process.kill(p2.pid!, 'SIGHUP');
    await sleep(1_000);
    const st = await run(process.execPath, [CARPCTL_JS, '-s', r.sock('two'), 'status', '--json'], { timeout: 10_000 });
    assert.match(st.stdout, /"advskew":\s*2/);
    const before = (await stats(r.sock('three'))).carps_ipackets ?? 0;
    // Force two to MASTER so it advertises, and three must still hear it (unicast, TTL 254).
    await run(process.execPath, [CARPCTL_JS, '-s', r.sock('two'), 'state', '1@eth0', 'MASTER'], { timeout: 10_000 });
    await sleep(2_500);
    const after3 = await stats(r.sock('three'));
    assert.ok((after3.carps_ipackets ?? 0) > before, `three still hears two's unicast adverts after the reload: ${JSON.stringify(after3)}`);
    assert.equal(after3.carps_badttl ?? 0, 0);
  },
);

/** carp.sh unicast_v6 / unicast_ll_v6: B3, the bridge namespace also routes between 2001:db8:1::/64 and 2001:db8:2::/64. */
async function b3routed(lab: Lab, nodes: [string, string]): Promise<void> {
  const sw = lab.switchNs!;
  await sh(sw, ['sysctl', '-qw', `net.ipv6.conf.${lab.bridge!}.disable_ipv6=0`, 'net.ipv6.conf.all.forwarding=1']);
  for (const a of ['2001:db8::4/64', '2001:db8:1::1/64', '2001:db8:2::1/64']) await sh(sw, ['ip', '-6', 'addr', 'add', a, 'dev', lab.bridge!, 'nodad']);
  for (const [i, n] of lab.nodes.entries()) {
    // No redirects: the test wants the adverts routed (hop limit 254), as carp.sh's are.
    await sh(n.ns, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_redirects=0', 'net.ipv6.conf.eth0.accept_redirects=0']);
    await sh(n.ns, ['ip', '-6', 'addr', 'add', nodes[i]!, 'dev', 'eth0', 'nodad']);
  }
  for (const ns of [sw, ...lab.nodes.map((n) => n.ns)]) await dadDone(ns, ns === sw ? lab.bridge! : 'eth0');
}

async function linkLocal(ns: string): Promise<string> {
  const out = (await sh(ns, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link'])).out;
  const m = /inet6 (fe80::[0-9a-f:]+)\//.exec(out);
  assert.ok(m, `no link-local in ${ns}: ${out}`);
  return m[1]!;
}

/** Runs carpd on both nodes with `peer6` each, waits for one MASTER, pings the VIP from the bridge; returns the hop limits seen. */
async function unicast6(lab: Lab, peers: [string, string]): Promise<{ hlims: string[]; logs: string[] }> {
  const logs: string[] = [];
  const procs = lab.nodes.map((n, i) =>
    spawnCarpd(lab, n, conf(lab, n, VHID6(i === 0 ? 0 : 100, `peer6 = ${peers[i]}\n`)), (l) => logs.push(`${n.name}: ${l}`)),
  );
  const dump = lab.spawn(lab.nodes[1]!.ns, ['tcpdump', '-nn', '-v', '-l', '-i', 'eth0', 'ip6 proto 112'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const seen: string[] = [];
  createInterface({ input: dump.stdout! }).on('line', (l) => seen.length < 400 && seen.push(l));
  const m = await oneMaster(
    lab.nodes.map((n) => n.ns),
    '2001:db8::1',
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${logs.slice(-30).join('\n')}`);
  });
  assert.equal(m, 0, 'two (advskew 0) is MASTER');
  await sleep(1_500);
  assert.equal(
    await oneMaster(
      lab.nodes.map((n) => n.ns),
      '2001:db8::1',
      3_000,
    ),
    0,
    'and stays the only one: three hears it',
  );
  let ping = { code: 1, out: '' };
  for (let i = 0; i < 3 && ping.code !== 0; i++) ping = await sh(lab.switchNs!, ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '1', '2001:db8::1'], false);
  assert.equal(ping.code, 0, `one pings the VIP: ${ping.out}`);
  const st = await stats(join(lab.dir, 'three.sock'));
  assert.equal(st.carps_badttl ?? 0, 0, JSON.stringify(st));
  assert.ok((st.carps_ipackets6 ?? 0) > 0, JSON.stringify(st));
  for (const p of [...procs, dump]) lab.kill(p, 'SIGTERM');
  for (const p of [...procs, dump]) await lab.waitExit(p, 5_000);
  return { hlims: seen.flatMap((l) => /hlim (\d+)/.exec(l)?.[1] ?? []), logs };
}

test('freebsd carp.sh unicast_v6: peer6 across a router (hop limit 254), one MASTER, one pings the VIP', TEST, async () => {
  await withLab({ prefix: 'v6u', nodes: ['two', 'three'] }, async (lab) => {
    await b3routed(lab, ['2001:db8:1::2/64', '2001:db8:2::2/64']);
    await sh(lab.nodes[0]!.ns, ['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:1::1']);
    await sh(lab.nodes[1]!.ns, ['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:2::1']);
    assert.equal((await sh(lab.nodes[0]!.ns, ['ping', '-6', '-c', '1', '-W', '2', '2001:db8:2::2'], false)).code, 0, 'sanity: two reaches three');
    const { hlims } = await unicast6(lab, ['2001:db8:2::2', '2001:db8:1::2']);
    assert.ok(hlims.length > 0 && hlims.every((h) => h === '254'), `routed adverts arrive with hop limit 254: ${hlims.join(',')}`);
  });
});

test('freebsd carp.sh unicast_ll_v6: link-local peer6 scoped to the interface, one MASTER, one pings the VIP', TEST, async () => {
  await withLab({ prefix: 'v6l', nodes: ['two', 'three'] }, async (lab) => {
    await b3routed(lab, ['2001:db8:1::2/64', '2001:db8:1::3/64']);
    assert.equal((await sh(lab.nodes[0]!.ns, ['ping', '-6', '-c', '1', '-W', '2', '2001:db8:1::3'], false)).code, 0, 'sanity: two reaches three');
    const [ll2, ll3] = [await linkLocal(lab.nodes[0]!.ns), await linkLocal(lab.nodes[1]!.ns)];
    const { hlims } = await unicast6(lab, [ll3, ll2]);
    assert.ok(hlims.length > 0 && hlims.every((h) => h === '255'), `on-link adverts keep hop limit 255: ${hlims.join(',')}`);
  });
});

/**
 * OpenBSD regress/sys/netinet/carp carp_3 / carp_4 (rev 1.3): two nodes back to back, vhid 251,
 * 192.168.0.1/24, carppeer each other, groups regressa / regressb, node 2 advskew 100. Node 1
 * MASTER; `carpdemote` of node 1's group (+1) makes node 2 MASTER within wait_until's 4 s.
 * carp_4 adds `lladdr <parent MAC>`: carpd always sends from the parent's MAC, so the capture
 * checks that instead.
 */
async function openbsdCarppeer(lab: Lab, checkMac: boolean): Promise<void> {
  const [n1, n2] = lab.nodes as [LabNode, LabNode];
  const logs: string[] = [];
  const files = (n: LabNode, other: LabNode, group: string, advskew: number): string => {
    const dir = join(lab.dir, n.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hostname.eth0'), `inet ${n.address} 255.255.255.0\nup\n`, { mode: 0o600 });
    const carp = join(dir, `hostname.carp${n === n1 ? 11 : 12}`);
    writeFileSync(
      carp,
      `inet 192.168.0.1/24 vhid 251 carpdev eth0 pass regress group ${group}${advskew ? ` advskew ${advskew}` : ''} carppeer ${other.address}\nup\n`,
      { mode: 0o600 },
    );
    return carp;
  };
  const cap = await lab.capture(n2.ns, 'eth0', 'ip proto 112');
  // Each log line with the time it arrived: the swap is timed from node 1's demote line to the
  // last of the two transitions, so carpctl's own start-up is not in the figure.
  const at = new Map<string, number>();
  const line = (who: string) => (l: string) => {
    logs.push(`${who}: ${l}`);
    if (/demote: group regressa \+1/.test(l)) at.set('demoted', Date.now());
    if (/-> MASTER \(preempting a more demoted master\)/.test(l) && who === '2') at.set('2 master', Date.now());
    if (/MASTER -> BACKUP/.test(l) && who === '1') at.set('1 backup', Date.now());
  };
  const p1 = spawnCarpd(lab, n1, files(n1, n2, 'regressa', 0), line('1'));
  const p2 = spawnCarpd(lab, n2, files(n2, n1, 'regressb', 100), line('2'));
  const m = await oneMaster([n1.ns, n2.ns], '192.168.0.1').catch((err: Error) => {
    throw new Error(`${err.message}\n${logs.slice(-30).join('\n')}`);
  });
  assert.equal(m, 0, 'carp11 is master, carp12 backup');
  // No 224.0.0.18 membership on a carppeer-only interface (OpenBSD carp_join_multicast()).
  const maddr = (await sh(n1.ns, ['ip', 'maddr', 'show', 'dev', 'eth0'])).out;
  assert.doesNotMatch(maddr, /224\.0\.0\.18/, maddr);
  await run(process.execPath, [CARPCTL_JS, '-s', join(lab.dir, `${n1.name}.sock`), 'demote', 'regressa', '+1'], { timeout: 10_000 });
  // OpenBSD's assertion is the interfaces' status (master / backup), not the VIP: carpd keeps a
  // yielding master's VIP for the planned-handover hold (make-before-break), so ask carpctl.
  const state = async (n: LabNode) =>
    /"state":\s*"(\w+)"/.exec(
      (await run(process.execPath, [CARPCTL_JS, '-s', join(lab.dir, `${n.name}.sock`), 'status', '--json'], { timeout: 5_000 })).stdout,
    )?.[1];
  await waitFor(async () => ((await state(n2)) === 'MASTER' && (await state(n1)) === 'BACKUP') || undefined, {
    // OpenBSD's wait_until: 8 tries 0.5 s apart.
    timeoutMs: 4_000,
    intervalMs: 20,
    what: 'carp12 master after carpdemote of regressa',
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${logs.slice(-30).join('\n')}`);
  });
  const swapMs = Math.max(at.get('2 master')!, at.get('1 backup')!) - at.get('demoted')!;
  assert.ok(swapMs < 1_000, `the demote swap took ${swapMs} ms\n${logs.slice(-20).join('\n')}`);
  await sleep(300);
  await cap.stop();
  const td = await run('tcpdump', ['-nn', '-e', '-v', '-r', cap.file], { timeout: 10_000 });
  const lines = td.stdout.split('\n').filter((l) => /CARP|vrrp|proto VRRP|\(112\)/i.test(l) || /> 198\.18/.test(l));
  assert.ok(td.stdout.includes(`${n1.address} > ${n2.address}`), `unicast adverts to the peer: ${td.stdout.slice(0, 800)}`);
  assert.ok(!td.stdout.includes('> 224.0.0.18'), 'nothing to the group');
  if (checkMac) assert.ok(td.stdout.includes(`${n1.mac} >`), `adverts from the parent's MAC ${n1.mac}: ${lines.slice(0, 3).join('\n')}`);
  for (const p of [p1, p2]) lab.kill(p, 'SIGTERM');
  for (const p of [p1, p2]) await lab.waitExit(p, 5_000);
}

test('openbsd carp_3: carppeer, carpdemote swaps master and backup within a second', TEST, async () => {
  await withLab({ prefix: 'v6o3', nodes: ['one', 'two'], bridge: false }, (lab) => openbsdCarppeer(lab, false));
});

test('openbsd carp_4: carppeer with the parent MAC (lladdr = parent, carpd default), demote swap', TEST, async () => {
  await withLab({ prefix: 'v6o4', nodes: ['one', 'two'], bridge: false }, (lab) => openbsdCarppeer(lab, true));
});

test('kill -9 failover over IPv6: the VIP moves and the bridge namespace neighbour entry follows (unsolicited NA)', TEST, async () => {
  await withLab({ prefix: 'v6k', nodes: ['two', 'three'] }, async (lab) => {
    await b3v6(lab);
    const [two, three] = lab.nodes as [LabNode, LabNode];
    const logs: string[] = [];
    const p2 = spawnCarpd(lab, two, conf(lab, two, VHID6(0)), (l) => logs.push(`two: ${l}`));
    await sleep(300);
    const p3 = spawnCarpd(lab, three, conf(lab, three, VHID6(50)), (l) => logs.push(`three: ${l}`));
    assert.equal(await oneMaster([two.ns, three.ns], '2001:db8::1'), 0, 'two (advskew 0) is MASTER');
    const neigh = async () => /lladdr ([0-9a-f:]{17})/.exec((await sh(lab.switchNs!, ['ip', '-6', 'neigh', 'show', '2001:db8::1'])).out)?.[1];
    let ping = { code: 1, out: '' };
    for (let i = 0; i < 3 && ping.code !== 0; i++) ping = await sh(lab.switchNs!, ['ping', '-6', '-c', '1', '-W', '1', '2001:db8::1'], false);
    assert.equal(ping.code, 0, ping.out);
    assert.equal(await neigh(), two.mac, 'the bridge learnt two as the VIP');
    const t0 = Date.now();
    lab.kill(p2, 'SIGKILL');
    await lab.waitExit(p2, 3_000);
    // Nothing pings meanwhile: only three's unsolicited NA can update the entry.
    const moved = await waitFor(async () => ((await neigh()) === three.mac ? Date.now() - t0 : undefined), {
      timeoutMs: 8_000,
      intervalMs: 50,
      what: "the bridge's neighbour entry for 2001:db8::1 to move to three",
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs.slice(-20).join('\n')}`);
    });
    assert.ok(await holds(three.ns, '2001:db8::1'), 'three holds the VIP');
    assert.ok(moved > 2_500 && moved < 6_000, `moved after ${moved} ms (3 × advbase + skew, then the NA)`);
    assert.equal((await sh(lab.switchNs!, ['ping', '-6', '-c', '2', '-i', '0.2', '-W', '1', '2001:db8::1'], false)).code, 0, 'the VIP answers from three');
    lab.kill(p3, 'SIGTERM');
    await lab.waitExit(p3, 5_000);
  });
});
