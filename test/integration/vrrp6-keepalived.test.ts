/**
 * carpd's VRRPv3 (`version = 3`) over IPv6 against Debian's real keepalived 2.2.7 (`vrrp_version
 * 3`, an IPv6 virtual_ipaddress: one instance per family, as keepalived runs them) on one lab
 * bridge. The IPv4 twin of this file is vrrp-keepalived.test.ts; the Run class is its copy with the
 * IPv6 differences: adverts to ff02::12 from the link-local, hop limit 255, the pseudo-header of
 * RFC 8200 §8.1, the VIP a /64 added without DAD. Covered: keepalived MASTER with a carpd BACKUP and the other way round, kill -9
 * failover both ways, preempt both ways, and priority-0 takeover both ways (keepalived stopped
 * cleanly; carpd forced to BACKUP with carpctl and stopped with SIGTERM, with carpd's priority-0
 * advert seen in a capture). State is judged from outside: the VIP in each namespace, carpctl
 * status, and a tcpdump capture on the bridge whose adverts are decoded with carpd's own codec
 * (every one must verify, checksum with the pseudo-header). Timings come from the capture.
 *
 * Expected timings (RFC 5798 §6.1), interval 1 s: master-down 3 s + (256 − prio)/256 s, so
 * 3.609 s at priority 100, 3.414 s at 150; after a priority-0 advert only the skew: 0.609 s at
 * 100, 0.414 s at 150.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CARPD_JS } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Capture, type Lab, type LabNode } from '../../src/lab/netns.js';
import { decodeIpv6 } from '../../src/proto/ipv6.js';
import { linkPayloadOf, readPcap } from '../../src/proto/pcap.js';
import { checkVrrp } from '../../src/proto/vrrp.js';

const CARPCTL_JS = CARPD_JS.replace(/carpd\.js$/, 'carpctl.js');
const VIP = '2001:db8::101';
const PLEN = 64;
const KEY = '1@eth0';

interface Advert {
  /** Capture time, seconds (wall clock). */
  t: number;
  src: string;
  priority: number;
  checksumForm: 'pseudo' | 'v2';
  addresses: string[];
}

class Run {
  readonly log: string[] = [];
  readonly t0 = Date.now();
  capture?: Capture;
  carpd?: ChildProcess;
  ka?: ChildProcess;
  /** What an advert must list (keepalived's list; see the capture test). */
  listed: string[] = [`${VIP}/${PLEN}`];
  constructor(
    readonly lab: Lab,
    readonly k: LabNode,
    readonly c: LabNode,
  ) {}

  note(who: string, line: string): void {
    if (this.log.length < 4000) this.log.push(`[${((Date.now() - this.t0) / 1000).toFixed(3)}] ${who}: ${line}`);
  }

  dump(): string {
    return `\n--- log ---\n${this.log.slice(-150).join('\n')}`;
  }

  /** Every VRRP advert on the bridge so far; each must pass carpd's receive check. */
  adverts(): Advert[] {
    const out: Advert[] = [];
    for (const rec of readPcap(readFileSync(this.capture!.file))) {
      const link = linkPayloadOf(rec);
      if (!link || link.ethertype !== 0x86dd) continue;
      const d = decodeIpv6(link.payload);
      if (!d.ok || d.nextHeader !== 112) continue;
      const payload = link.payload.subarray(40, 40 + d.payloadLength);
      assert.equal(d.dst, 'ff02::12', `VRRP over IPv6 goes to ff02::12${this.dump()}`);
      assert.ok(d.src.startsWith('fe80:'), `the source is the link-local: ${d.src}`);
      const r = checkVrrp(payload, { family: 6, src: d.src, dst: d.dst, ttl: d.hopLimit }, (v) =>
        v === 1 ? { version: 3, addresses: this.listed } : undefined,
      );
      assert.ok(r.ok, `advert from ${d.src} at ${rec.tsText} fails carpd's check: ${JSON.stringify(r)}${this.dump()}`);
      assert.ok(r.addressesMatch, `advert from ${d.src} lists ${r.advert.addresses.join(' ')}`);
      out.push({ t: rec.ts, src: d.src, priority: r.advert.priority, checksumForm: r.checksumForm, addresses: r.advert.addresses });
    }
    return out;
  }

  kaConf(priority: number): string {
    const dir = join(this.lab.dir, 'ka');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const conf = join(dir, 'keepalived.conf');
    writeFileSync(
      conf,
      `global_defs {
  router_id ka
  vrrp_version 3
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 1
  priority ${priority}
  advert_int 1
  virtual_ipaddress {
    ${VIP}/${PLEN}
  }
}
`,
    );
    return dir;
  }

  startKeepalived(priority: number): void {
    const dir = this.kaConf(priority);
    const child = this.lab.spawn(
      this.k.ns,
      ['keepalived', '-P', '-n', '-l', '-D', '-G', '-f', join(dir, 'keepalived.conf'), '-p', join(dir, 'keepalived.pid'), '-r', join(dir, 'vrrp.pid')],
      { env: { TMPDIR: join(dir, 'tmp') } },
    );
    for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on('line', (l) => this.note('keepalived', l));
    this.ka = child;
    this.note('test', `started keepalived priority ${priority} pid ${child.pid}`);
  }

  /**
   * keepalived as kill -9 leaves it: no priority 0. The parent is stopped first so it cannot
   * restart its VRRP child, then the child (its pid from keepalived's own pid file) and the parent
   * are killed.
   */
  async kill9Keepalived(): Promise<void> {
    const ka = this.ka!;
    const vrrpPid = Number(readFileSync(join(this.lab.dir, 'ka', 'vrrp.pid'), 'utf8').trim());
    this.lab.kill(ka, 'SIGSTOP');
    process.kill(vrrpPid, 'SIGKILL');
    this.lab.kill(ka, 'SIGKILL');
    await this.lab.waitExit(ka, 3_000);
    await waitFor(() => !alive(vrrpPid), { timeoutMs: 3_000, what: 'the VRRP child to die' });
    this.note('test', 'kill -9 keepalived');
    // kill -9 leaves keepalived's VIP behind; an operator (or a restart) removes it.
    await this.lab.exec(this.k.ns, ['ip', '-6', 'addr', 'del', `${VIP}/${PLEN}`, 'dev', 'eth0']);
  }

  async stopKeepalived(): Promise<void> {
    this.lab.kill(this.ka!, 'SIGTERM');
    await this.lab.waitExit(this.ka!, 5_000);
    this.note('test', 'keepalived stopped (SIGTERM)');
  }

  startCarpd(priority: number, preempt: boolean): void {
    const conf = join(this.lab.dir, 'carpd.conf');
    writeFileSync(
      conf,
      [
        '[carpd]',
        `preempt = ${preempt ? 'yes' : 'no'}`,
        'log = 6',
        '',
        '[vhid.v1]',
        'vhid = 1',
        'interface = eth0',
        `address = ${VIP}/${PLEN}`,
        'version = 3',
        `priority = ${priority}`,
        'interval = 1s',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const child = this.lab.spawn(this.c.ns, [process.execPath, CARPD_JS, 'run', '-c', conf, '--control', this.sock, '--run-dir', this.lab.dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { STATE_DIRECTORY: join(this.lab.dir, 'carpd-state') },
    });
    for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on('line', (l) => this.note('carpd', l));
    this.carpd = child;
    this.note('test', `started carpd priority ${priority}${preempt ? ' preempt' : ''} pid ${child.pid}`);
  }

  get sock(): string {
    return join(this.lab.dir, 'carpd.sock');
  }

  async kill9Carpd(): Promise<void> {
    this.lab.kill(this.carpd!, 'SIGKILL');
    await this.lab.waitExit(this.carpd!, 3_000);
    this.note('test', 'kill -9 carpd');
    await this.lab.exec(this.c.ns, ['ip', '-6', 'addr', 'del', `${VIP}/${PLEN}`, 'dev', 'eth0']);
  }

  async stopCarpd(): Promise<void> {
    this.lab.kill(this.carpd!, 'SIGTERM');
    await this.lab.waitExit(this.carpd!, 5_000);
    this.note('test', 'carpd stopped (SIGTERM)');
  }

  async ctl(...args: string[]): Promise<{ code: number | null; out: string }> {
    const r = await this.lab.exec(this.c.ns, [process.execPath, CARPCTL_JS, '-s', this.sock, ...args], { timeoutMs: 10_000 });
    return { code: r.exitCode, out: r.stdout + r.stderr };
  }

  /** carpd's state as carpctl status prints it (FreeBSD ifconfig's vrrp line). */
  async carpdLine(): Promise<string | undefined> {
    const r = await this.ctl('status');
    return r.out.split('\n').find((l) => l.startsWith('eth0: vrrp: '));
  }

  async vipOn(n: LabNode): Promise<boolean> {
    const r = await this.lab.exec(n.ns, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0']);
    return r.stdout.includes(`${VIP}/${PLEN}`);
  }

  /** Exactly one of the two holds the VIP, and it is `who`. */
  async holder(who: LabNode, timeoutMs: number, what: string): Promise<void> {
    const other = who === this.k ? this.c : this.k;
    await waitFor(async () => (await this.vipOn(who)) && !(await this.vipOn(other)), { timeoutMs, intervalMs: 50, what: `${what}${this.dump()}` });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const ms = (s: number) => Math.round(s * 1000);

/** Wait (bounded) until no IPv6 address on the node's eth0 is tentative. */
async function dadDone(lab: Lab, n: LabNode): Promise<void> {
  await waitFor(async () => (await lab.exec(n.ns, ['ip', '-6', 'addr', 'show', 'dev', 'eth0', 'tentative'])).stdout.trim() === '' || undefined, {
    timeoutMs: 8_000,
    intervalMs: 100,
    what: `DAD on ${n.ns}`,
  });
}

async function linkLocal(lab: Lab, n: LabNode): Promise<string> {
  const out = (await lab.exec(n.ns, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link'])).stdout;
  const m = /inet6 (fe80::[0-9a-f:]+)\//.exec(out);
  assert.ok(m, `no link-local in ${n.ns}: ${out}`);
  return m[1]!;
}

test(
  'VRRPv3 interop with keepalived 2.2.7, IPv6 (freebsd carp.sh vrrp_v6 against keepalived): election, kill -9, preempt and priority 0 both ways',
  { timeout: 240_000 },
  async (t) => {
    await withLab({ prefix: 'vrrpka6', nodes: ['k', 'c'] }, async (lab) => {
      const r = new Run(lab, lab.node('k'), lab.node('c'));
      const { k, c } = r;
      // The link-locals must be usable (DAD done) before either daemon sends from them.
      for (const n of [k, c]) await dadDone(lab, n);
      const [kLL, cLL] = [await linkLocal(lab, k), await linkLocal(lab, c)];
      r.capture = await lab.capture(lab.switchNs!, 'br0', 'ip6 proto 112');
      const report: string[] = [];
      t.after(async () => {
        for (const p of [r.carpd, r.ka]) if (p && p.exitCode === null && p.signalCode === null) lab.kill(p, 'SIGKILL');
        await r.capture?.stop();
      });

      await t.test('keepalived MASTER (150), carpd BACKUP (100): carpd hears it and keeps out', async () => {
        r.startKeepalived(150);
        await r.holder(k, 15_000, 'keepalived to take the VIP');
        r.startCarpd(100, false);
        await waitFor(async () => (await r.carpdLine()) === 'eth0: vrrp: BACKUP vrid 1 prio 100 interval 100', {
          timeoutMs: 10_000,
          what: `carpd BACKUP${r.dump()}`,
        });
        await sleep(5_000);
        assert.equal(await r.carpdLine(), 'eth0: vrrp: BACKUP vrid 1 prio 100 interval 100');
        assert.ok((await r.ctl('status')).out.includes(`backup, master is ${kLL} (prio 150 interval 100)`), r.dump());
        await r.holder(k, 1000, 'keepalived to keep the VIP');
        const stats = JSON.parse((await r.ctl('stats', '--json')).out) as { counters: Record<string, number> };
        assert.equal(stats.counters.carps_badsum, 0);
        assert.equal(stats.counters.carps_badttl, 0);
        assert.ok(stats.counters.carps_ipackets6 >= 4, JSON.stringify(stats.counters));
        const ads = r.adverts();
        assert.ok(ads.some((a) => a.src === kLL && a.priority === 150 && a.checksumForm === 'pseudo'));
        assert.ok(!ads.some((a) => a.src === cLL), 'a BACKUP sends nothing');
      });

      await t.test('kill -9 keepalived: carpd takes over after 3 × 1 s + 156/256 s', async () => {
        const killedAt = Date.now() / 1000;
        await r.kill9Keepalived();
        await r.holder(c, 8_000, 'carpd to take over');
        await sleep(1_200);
        const ads = r.adverts();
        const lastK = ads.filter((a) => a.src === kLL && a.t < killedAt + 0.5).at(-1)!;
        const firstC = ads.find((a) => a.src === cLL)!;
        const gap = ms(firstC.t - lastK.t);
        report.push(`kill -9 keepalived → carpd's first advert: ${gap} ms (nominal 3609)`);
        assert.ok(firstC.priority === 100);
        assert.ok(gap >= 3550 && gap <= 4300, `${gap} ms${r.dump()}`);
        assert.equal(await r.carpdLine(), 'eth0: vrrp: MASTER vrid 1 prio 100 interval 100');
      });

      await t.test('keepalived (150) back with preempt (its default) takes over from carpd (100)', async () => {
        r.startKeepalived(150);
        await r.holder(k, 10_000, 'keepalived to preempt carpd');
        await waitFor(async () => (await r.carpdLine())?.includes('BACKUP'), { timeoutMs: 3_000, what: `carpd BACKUP${r.dump()}` });
      });

      await t.test('carpd (200, preempt) restarted takes over from keepalived (150) at once', async () => {
        await r.stopCarpd();
        const startedAt = Date.now() / 1000;
        r.startCarpd(200, true);
        await r.holder(c, 10_000, 'carpd to preempt keepalived');
        assert.equal(await r.carpdLine(), 'eth0: vrrp: MASTER vrid 1 prio 200 interval 100');
        await sleep(3_000);
        await r.holder(c, 1000, 'carpd to stay MASTER with keepalived BACKUP');
        const ads = r.adverts().filter((a) => a.t > startedAt);
        assert.ok(ads.filter((a) => a.src === cLL).every((a) => a.priority === 200));
        // keepalived went quiet as BACKUP: its last advert is before carpd's second.
        const cAds = ads.filter((a) => a.src === cLL);
        assert.ok(!ads.some((a) => a.src === kLL && a.t > cAds[1]!.t), r.dump());
      });

      await t.test('kill -9 carpd: keepalived takes over after its 3 × 1 s + 106/256 s', async () => {
        const killedAt = Date.now() / 1000;
        await r.kill9Carpd();
        await r.holder(k, 8_000, 'keepalived to take over');
        await sleep(1_200);
        const ads = r.adverts();
        const lastC = ads.filter((a) => a.src === cLL && a.t < killedAt + 0.5).at(-1)!;
        const firstK = ads.find((a) => a.src === kLL && a.t > lastC.t)!;
        const gap = ms(firstK.t - lastC.t);
        report.push(`kill -9 carpd → keepalived's first advert: ${gap} ms (nominal 3414)`);
        assert.ok(gap >= 3350 && gap <= 4400, `${gap} ms${r.dump()}`);
      });

      await t.test('carpctl state BACKUP: carpd sends priority 0 and keepalived takes over after its skew time', async () => {
        r.startCarpd(200, true);
        await r.holder(c, 10_000, 'carpd to preempt keepalived again');
        await sleep(1_500);
        const res = await r.ctl('state', KEY, 'BACKUP');
        assert.equal(res.code, 0, res.out);
        await r.holder(k, 5_000, 'keepalived to take over after priority 0');
        await sleep(1_200);
        const ads = r.adverts();
        const zero = ads.filter((a) => a.src === cLL && a.priority === 0).at(-1)!;
        assert.ok(zero, `no priority-0 advert from carpd${r.dump()}`);
        const firstK = ads.find((a) => a.src === kLL && a.t > zero.t)!;
        const gap = ms(firstK.t - zero.t);
        report.push(`carpctl state BACKUP (priority 0) → keepalived's first advert: ${gap} ms (nominal 414)`);
        assert.ok(gap >= 350 && gap <= 1000, `${gap} ms${r.dump()}`);
        // Forced BACKUP holds: no preempting back although carpd's 200 beats keepalived's 150.
        await sleep(4_000);
        await r.holder(k, 1000, 'keepalived to keep the VIP');
        assert.equal(await r.carpdLine(), 'eth0: vrrp: BACKUP vrid 1 prio 200 interval 100');
      });

      await t.test('SIGTERM of a MASTER carpd: priority 0 on the wire, keepalived takes over after its skew time', async () => {
        await r.stopCarpd();
        r.startCarpd(200, true);
        await r.holder(c, 10_000, 'carpd to preempt keepalived');
        await sleep(1_500);
        const stoppedAt = Date.now() / 1000;
        await r.stopCarpd();
        await r.holder(k, 5_000, 'keepalived to take over after carpd stops');
        await sleep(1_200);
        const ads = r.adverts();
        const zero = ads.find((a) => a.src === cLL && a.priority === 0 && a.t >= stoppedAt - 0.1)!;
        assert.ok(zero, `no priority-0 advert from the stopping carpd${r.dump()}`);
        const firstK = ads.find((a) => a.src === kLL && a.t > zero.t)!;
        const gap = ms(firstK.t - zero.t);
        report.push(`SIGTERM carpd (priority 0) → keepalived's first advert: ${gap} ms (nominal 414)`);
        assert.ok(gap >= 350 && gap <= 1000, `${gap} ms${r.dump()}`);
      });

      await t.test('keepalived stopped cleanly: its priority 0 makes carpd MASTER after 156/256 s', async () => {
        r.startCarpd(100, false);
        await waitFor(async () => (await r.carpdLine())?.includes('BACKUP'), { timeoutMs: 10_000, what: `carpd BACKUP${r.dump()}` });
        await sleep(2_000);
        await r.stopKeepalived();
        await r.holder(c, 5_000, 'carpd to take over after priority 0');
        await sleep(1_200);
        const ads = r.adverts();
        const zero = ads.filter((a) => a.src === kLL && a.priority === 0).at(-1)!;
        assert.ok(zero, `no priority-0 advert from keepalived${r.dump()}`);
        const firstC = ads.find((a) => a.src === cLL && a.t > zero.t)!;
        const gap = ms(firstC.t - zero.t);
        report.push(`keepalived SIGTERM (priority 0) → carpd's first advert: ${gap} ms (nominal 609)`);
        assert.ok(gap >= 590 && gap <= 1100, `${gap} ms${r.dump()}`);
        assert.ok((await r.ctl('status')).out.includes('(master sent priority 0)'), r.dump());
        await r.stopCarpd();
      });

      t.diagnostic(report.join('; '));
    });
  },
);
