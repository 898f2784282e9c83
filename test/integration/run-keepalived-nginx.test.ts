/**
 * End to end: `carpd run` with `engine = keepalived` on two lab nodes, each following its own real
 * keepalived (Debian 2.2.7) and running nginx through the httpd plugin on whichever node keepalived
 * made MASTER. A third namespace pings and fetches the VIP. Maintenance on the master hands the VIP
 * (and nginx) to the peer through keepalived's track_file; kill -9 of the master keepalived moves
 * nginx to the other node; a restarted keepalived is followed again.
 *
 * carpd runs inside its node's namespace, so the nginx it starts listens there. Every process is
 * ours by PID (lab.spawn, pid files) and the lab goes away in withLab's finally.
 * Figures go to console.log lines starting `keepalived-e2e:`.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';
import { ctl, nodeDir, startCarpd, stopCarpd, type Daemon } from './plugin-lab.js';

const VIP = '198.18.0.100';
const KEY = 'INSTANCE@VI_1';
const PINGS = 600;
/** Maintenance on/off round trips for the latency figures (each gives ~4 transitions). */
const ROUNDS = 5;

interface Node {
  name: 'a' | 'b';
  node: LabNode;
  dir: string;
  kaConf: string;
  pidFile: string;
  vrrpPidFile: string;
  tmp: string;
  ka?: ChildProcess;
  carpd?: Daemon;
}

interface Ev {
  type: string;
  time: string;
  seq?: number;
  key?: string;
  to?: string;
  plugin?: string;
  hook?: string;
  result?: string;
}

function kaConf(n: Node, priority: number, fifo: string, track: string): string {
  // weight -1: carpd's ledger total (maintenance: 240) comes straight off the priority.
  return (
    `global_defs {\n  router_id node${n.name}\n  notify_fifo ${fifo}\n}\ntrack_file carpd {\n  file ${track}\n  weight -1\n}\n` +
    `vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority ${priority}\n  advert_int 1\n` +
    `  virtual_ipaddress {\n    ${VIP}/24\n  }\n  track_file {\n    carpd\n  }\n}\n`
  );
}

function carpdConf(n: Node, fifo: string, track: string): string {
  return [
    '[carpd]',
    'engine = keepalived',
    `keepalived_fifo = ${fifo}`,
    `keepalived_pidfile = ${n.pidFile}`,
    `keepalived_track_file = ${track}`,
    `keepalived_dump_dir = ${n.tmp}`,
    `state_dir = ${join(n.dir, 'state')}`,
    'log = 5',
    'hook_timeout = 15s',
    '',
    '[plugin.httpd]',
    `follow = ${KEY}`,
    'control = direct',
    // The lab directory is root's, mode 0700: nginx's workers read the page as root.
    'user = root',
    `root = ${join(n.dir, 'www')}`,
    `prefix = ${join(n.dir, 'nginx')}`,
    `conf = ${join(n.dir, 'nginx.conf')}`,
    '',
  ].join('\n');
}

function startKeepalived(lab: Lab, n: Node, log: string[]): ChildProcess {
  const child = lab.spawn(n.node.ns, ['keepalived', '-P', '-n', '-l', '-D', '-f', n.kaConf, '-p', n.pidFile, '-r', n.vrrpPidFile], {
    env: { TMPDIR: n.tmp },
  });
  // A ring: the gratuitous ARP lines alone would fill any cap before the end of the test.
  for (const s of [child.stdout, child.stderr])
    s?.on('data', (d: Buffer) => {
      log.push(`${n.name}: ${d.toString().trimEnd()}`);
      if (log.length > 400) log.splice(0, log.length - 400);
    });
  n.ka = child;
  return child;
}

function pidOf(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function vipOn(lab: Lab, n: Node): Promise<boolean> {
  const r = await lab.exec(n.node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return r.stdout.includes(`${VIP}/24`);
}

async function nginxRuns(lab: Lab, n: Node): Promise<boolean> {
  const r = await lab.exec(n.node.ns, ['pgrep', '-F', join(n.dir, 'nginx', 'nginx.pid'), '-x', 'nginx']);
  return r.exitCode === 0;
}

async function fetchVip(lab: Lab, client: LabNode): Promise<string | undefined> {
  const r = await lab.exec(client.ns, ['curl', '-sS', '--max-time', '2', `http://${VIP}/`], { timeoutMs: 5_000 });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

async function events(lab: Lab, d: Daemon): Promise<Ev[]> {
  const r = await ctl(lab, d, 'events', '--json', '-n', '1000');
  return r.out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Ev);
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

test(
  'carpd run, engine = keepalived: nginx follows keepalived’s VIP through maintenance (track_file), kill -9 of the master keepalived and its restart',
  { timeout: 240_000 },
  async () => {
    await withLab({ prefix: 'kaweb', nodes: ['a', 'b', 'c'] }, async (lab) => {
      const client = lab.node('c');
      const kaLog: string[] = [];
      const nodes: Node[] = (['a', 'b'] as const).map((name) => {
        const node = lab.node(name);
        const dir = nodeDir(lab, node);
        const tmp = join(dir, 'ka-tmp');
        mkdirSync(tmp, { recursive: true });
        mkdirSync(join(dir, 'www'), { recursive: true });
        writeFileSync(join(dir, 'www', 'index.html'), `served by ${name}\n`);
        return { name, node, dir, tmp, kaConf: join(dir, 'keepalived.conf'), pidFile: join(dir, 'keepalived.pid'), vrrpPidFile: join(dir, 'vrrp.pid') };
      });
      const [a, b] = nodes as [Node, Node];
      for (const [n, prio] of [
        [a, 150],
        [b, 100],
      ] as const) {
        writeFileSync(n.kaConf, kaConf(n, prio, join(n.dir, 'notify.fifo'), join(n.dir, 'demote')));
      }
      const report: string[] = [];
      const say = (l: string) => report.push(l);
      const diag = () =>
        `\n--- keepalived ---\n${kaLog.slice(-40).join('\n')}\n` +
        nodes.map((n) => `--- carpd ${n.name} ---\n${(n.carpd?.lines ?? []).slice(-40).join('\n')}`).join('\n');
      const page = (who: string, timeoutMs = 20_000) =>
        waitFor(async () => ((await fetchVip(lab, client)) === `served by ${who}` ? true : undefined), {
          timeoutMs,
          intervalMs: 100,
          what: `${who}'s page from the VIP${diag()}`,
        });
      const nginxOn = (n: Node) => waitFor(() => nginxRuns(lab, n), { timeoutMs: 20_000, intervalMs: 100, what: `nginx on ${n.name}${diag()}` });
      const nginxOff = (n: Node) =>
        waitFor(async () => !(await nginxRuns(lab, n)), { timeoutMs: 20_000, intervalMs: 100, what: `no nginx on ${n.name}${diag()}` });
      const masterIs = (n: Node) => waitFor(() => vipOn(lab, n), { timeoutMs: 20_000, intervalMs: 100, what: `${n.name} holds the VIP${diag()}` });
      /** Pings the VIP at 100/s from the client around `act`; returns the replies lost. */
      const pingAround = async (act: () => Promise<void>): Promise<number> => {
        const ping = lab.spawn(client.ns, ['ping', '-n', '-q', '-i', '0.01', '-W', '1', '-c', String(PINGS), VIP]);
        let out = '';
        ping.stdout?.on('data', (d: Buffer) => (out += d.toString()));
        await sleep(1_000);
        await act();
        await lab.waitExit(ping, 20_000);
        const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
        assert.ok(m, `ping output: ${out}`);
        return Number(m[1]) - Number(m[2]);
      };

      try {
        // keepalived first: a (150) wins the election before carpd exists; carpd learns it from a dump.
        startKeepalived(lab, a, kaLog);
        startKeepalived(lab, b, kaLog);
        await masterIs(a);
        for (const n of nodes) n.carpd = startCarpd(lab, n.node, carpdConf(n, join(n.dir, 'notify.fifo'), join(n.dir, 'demote')));
        const [ca, cb] = [a.carpd!, b.carpd!];

        // a is MASTER in carpd's words, runs nginx, b does not; the client gets a's page.
        await nginxOn(a);
        const st = await ctl(lab, ca, 'status');
        assert.match(st.out, /^eth0: carp: MASTER vhid 51 /m, st.out);
        assert.match(st.out, /^engine: keepalived$/m, st.out);
        await page('a');
        assert.equal(await nginxRuns(lab, b), false, 'no nginx on the backup b');

        // Maintenance on a: 240 into a's track file takes its priority to 1, b (100) preempts.
        const lostOn = await pingAround(async () => {
          const on = await ctl(lab, ca, 'maintenance', 'on');
          assert.equal(on.code, 0, on.err);
          await masterIs(b);
        });
        say(`pings lost at 100/s during the maintenance handover a -> b: ${lostOn}/${PINGS}`);
        await nginxOn(b);
        await nginxOff(a);
        await page('b');
        assert.ok(!(await vipOn(lab, a)), 'a gave the VIP up');
        const runsA = (await events(lab, ca)).filter((e) => e.type === 'hook' && e.plugin === 'httpd');
        assert.ok(
          runsA.some((e) => e.hook === 'pre-backup' && e.result === 'ok'),
          `a's httpd hook runs: ${JSON.stringify(runsA)}`,
        );
        assert.ok(lostOn <= 5, `${lostOn} pings lost`);

        // Maintenance off: the track file reads 0 again; keepalived preempts by default (no
        // nopreempt), so a (150) takes the VIP back and nginx with it.
        const lostOff = await pingAround(async () => {
          const off = await ctl(lab, ca, 'maintenance', 'off');
          assert.equal(off.code, 0, off.err);
          await masterIs(a);
        });
        say(`pings lost at 100/s when a preempts back after maintenance off: ${lostOff}/${PINGS}`);
        await nginxOn(a);
        await nginxOff(b);
        await page('a');

        // More round trips, only for the hook latency figures below.
        for (let i = 0; i < ROUNDS; i++) {
          assert.equal((await ctl(lab, ca, 'maintenance', 'on')).code, 0);
          await masterIs(b);
          await nginxOn(b);
          assert.equal((await ctl(lab, ca, 'maintenance', 'off')).code, 0);
          await masterIs(a);
          await nginxOn(a);
        }
        await page('a');

        // kill -9 of the master keepalived (both its processes, by PID): b's keepalived takes the VIP
        // after the master-down interval, and b's carpd starts nginx there.
        const t0 = Date.now();
        // The parent is stopped first: it can neither respawn the VRRP child nor, dying first, hand
        // it the SIGTERM (PDEATHSIG) that would let it send a priority 0 advert on its way out.
        const [parent, vrrp] = [pidOf(a.pidFile), pidOf(a.vrrpPidFile)];
        assert.ok(parent && vrrp, 'keepalived pid files');
        process.kill(parent, 'SIGSTOP');
        process.kill(vrrp, 'SIGKILL');
        process.kill(parent, 'SIGKILL');
        await lab.waitExit(a.ka!, 10_000);
        await masterIs(b);
        await page('b');
        say(`kill -9 of the master keepalived: b's page served over the VIP after ${Date.now() - t0} ms`);
        await nginxOn(b);

        // Restart a's keepalived: a's carpd follows it (a new pid, a dump), and a (150) preempts.
        startKeepalived(lab, a, kaLog);
        let lastStatus = '';
        await waitFor(
          async () => {
            lastStatus = (await ctl(lab, ca, 'status')).out;
            return /^eth0: carp: (MASTER|BACKUP) vhid 51 /m.test(lastStatus);
          },
          { timeoutMs: 20_000, intervalMs: 200, what: `a's carpd following the restarted keepalived` },
        ).catch((err: Error) => {
          err.message += `; last status:\n${lastStatus}${diag()}`;
          throw err;
        });
        await masterIs(a);
        await nginxOn(a);
        await page('a');
        const st2 = await ctl(lab, ca, 'status');
        assert.match(st2.out, /^eth0: carp: MASTER vhid 51 /m, st2.out);

        // Latency: carpd's transition (stamped when it read keepalived's notify line) to the first
        // hook run the transition caused (its start time), over both nodes.
        const lat: number[] = [];
        for (const d of [ca, cb]) {
          const evs = await events(lab, d);
          const hooks = evs.filter((e) => e.type === 'hook' && e.seq !== undefined && e.seq > 0);
          for (const t of evs.filter((e) => e.type === 'transition' && e.key === KEY)) {
            const first = hooks.filter((h) => h.seq === t.seq).sort((x, y) => Date.parse(x.time) - Date.parse(y.time))[0];
            if (first) lat.push(Date.parse(first.time) - Date.parse(t.time));
          }
        }
        assert.ok(lat.length >= 4, `${lat.length} transitions with hook runs`);
        say(
          `transition -> first httpd hook over ${lat.length} transitions: p50 ${pct(lat, 50)} ms, p99 ${pct(lat, 99)} ms, max ${Math.max(...lat)} ms; all: ${[
            ...lat,
          ]
            .sort((x, y) => x - y)
            .join(' ')}`,
        );
        for (const d of [ca, cb]) {
          const failed = (await events(lab, d)).filter((e) => e.type === 'hook' && e.result !== 'ok');
          assert.deepEqual(failed, [], `${d.node.name}'s failed hook runs`);
        }
      } finally {
        // carpd's shutdown stops nginx; then keepalived, then any nginx left, all by PID.
        for (const n of nodes) if (n.carpd) await stopCarpd(lab, n.carpd);
        for (const n of nodes) if (n.ka) await lab.waitExit((lab.kill(n.ka, 'SIGTERM'), n.ka), 10_000);
        for (const n of nodes) {
          const pid = pidOf(join(n.dir, 'nginx', 'nginx.pid'));
          if (pid && (await lab.exec(n.node.ns, ['pgrep', '-F', join(n.dir, 'nginx', 'nginx.pid'), '-x', 'nginx'])).exitCode === 0) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // Gone meanwhile.
            }
          }
        }
        if (report.length) console.log(report.map((l) => `keepalived-e2e: ${l}`).join('\n'));
      }
    });
  },
);
