/**
 * `carpd ucarp …` as a drop-in for ucarp 1.5.2 (PROTOCOL.md "ucarp, for the drop-in mode"), run
 * in lab namespaces, with a real ucarp as the peer where one is needed. The up/down scripts
 * append `"$0 $@"` to a log in the lab's directory and add/remove the VIP, as ucarp's examples
 * do; the test reads that log, the VIPs in each namespace, the observer's adverts and a capture
 * on the bridge.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { run } from '../../src/adapters/exec.js';
import type { HeardAdvert } from '../../src/proto/heard.js';
import { CARPD_JS, currentMasters, LAB_PREFIX_LEN, labNodes, labVip, spawnObserver, spawnUcarp, writePassfile } from '../../src/lab/lab.js';
import { sleep, waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const TEST = { timeout: 30_000 };
const VIP = labVip(1);
const XP = 'xp-lab';
const PASSWORD = 'lab-secret';

interface Scripts {
  up: string;
  down: string;
  log: string;
}

interface UcarpMode {
  child: ChildProcess;
  lines: string[];
}

/** One test's lab, observer and the scripts' log. */
class Bench {
  readonly heard: HeardAdvert[] = [];
  readonly log: string[] = [];
  readonly scripts: Scripts;
  readonly passfile: string;
  private readonly t0 = Date.now();

  constructor(readonly lab: Lab) {
    this.scripts = writeScripts(lab.dir);
    this.passfile = writePassfile(lab.dir, PASSWORD);
  }

  note(who: string, line: string): void {
    if (this.log.length < 2000) this.log.push(`[${((Date.now() - this.t0) / 1000).toFixed(3)}] ${who}: ${line}`);
  }

  /** `carpd ucarp` in the node's namespace, with the options of the brief plus `extra`. */
  carpdUcarp(node: LabNode, opts: { advskew?: number; extra?: string[]; passArgs?: string[] } = {}): UcarpMode {
    const argv = [
      process.execPath,
      CARPD_JS,
      'ucarp',
      '-i',
      'eth0',
      '-s',
      node.address,
      '-v',
      '1',
      ...(opts.passArgs ?? ['--passfile', this.passfile]),
      '-a',
      VIP,
      '-b',
      '1',
      '-k',
      String(opts.advskew ?? 0),
      '-u',
      this.scripts.up,
      '-d',
      this.scripts.down,
      '-x',
      XP,
      ...(opts.extra ?? []),
    ];
    const child = this.lab.spawn(node.ns, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const d: UcarpMode = { child, lines: [] };
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s! }).on('line', (l) => {
        if (d.lines.length < 5000) d.lines.push(l);
        this.note(node.name, l);
      });
    }
    const shown = argv.slice(3).map((x, i, all) => (all[i - 1] === '-p' ? '<secret>' : x));
    this.note(node.name, `started carpd ucarp pid ${child.pid}: ${shown.join(' ')}`);
    return d;
  }

  /** The scripts' log, one `script if vip xparam` per run. */
  scriptRuns(): string[] {
    if (!existsSync(this.scripts.log)) return [];
    return readFileSync(this.scripts.log, 'utf8').split('\n').filter(Boolean);
  }

  async waitRuns(n: number, timeoutMs: number, what: string): Promise<string[]> {
    return waitFor(() => (this.scriptRuns().length >= n ? this.scriptRuns() : undefined), { timeoutMs, intervalMs: 50, what });
  }

  async vips(node: LabNode): Promise<string[]> {
    const r = await this.lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.equal(r.exitCode, 0, r.stderr);
    return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!).filter((a) => a !== node.address);
  }

  /** Send a signal and wait for a new output line matching `re`. */
  async signalAndWait(d: UcarpMode, signal: NodeJS.Signals, re: RegExp, timeoutMs = 3_000): Promise<string> {
    const from = d.lines.length;
    this.lab.kill(d.child, signal);
    return waitFor(() => d.lines.slice(from).find((l) => re.test(l)), { timeoutMs, intervalMs: 20, what: `a line matching ${re} after ${signal}` });
  }

  masterOf(vhid: number): string | undefined {
    return currentMasters(this.heard, vhid, Date.now(), 1500).get(vhid);
  }

  /** Gratuitous ARPs for the VIP from `mac` (sender IP = target IP = VIP), with their times (ms). */
  async garps(file: string, mac: string): Promise<number[]> {
    const r = await run(
      [
        'tshark',
        '-r',
        file,
        '-T',
        'fields',
        '-E',
        'separator=,',
        '-e',
        'frame.time_epoch',
        '-e',
        'eth.src',
        '-e',
        'arp.src.proto_ipv4',
        '-e',
        'arp.dst.proto_ipv4',
        '-e',
        'arp.opcode',
        '-Y',
        'arp',
      ],
      { timeoutMs: 20_000 },
    );
    assert.equal(r.exitCode, 0, `tshark: ${r.stderr}`);
    const out: number[] = [];
    for (const l of r.stdout.split('\n').filter(Boolean)) {
      const [t, src, sender, target] = l.split(',');
      if (src === mac && sender === VIP && target === VIP) out.push(Number(t) * 1000);
    }
    return out;
  }
}

function writeScripts(dir: string): Scripts {
  const log = join(dir, 'scripts.log');
  const up = join(dir, 'up.sh');
  const down = join(dir, 'down.sh');
  writeFileSync(up, `#!/bin/sh\necho "$0 $@" >> '${log}'\nexec /sbin/ip addr add "$2"/${LAB_PREFIX_LEN} dev "$1"\n`, { mode: 0o700 });
  writeFileSync(down, `#!/bin/sh\necho "$0 $@" >> '${log}'\n/sbin/ip addr del "$2"/${LAB_PREFIX_LEN} dev "$1" 2>/dev/null\nexit 0\n`, { mode: 0o700 });
  return { up, down, log };
}

async function bench(nodes: string[], fn: (b: Bench) => Promise<void>): Promise<void> {
  await withLab({ prefix: 'ucarpmode', nodes: labNodes(nodes) }, async (lab) => {
    const b = new Bench(lab);
    if (nodes.includes('obs')) spawnObserver(lab, lab.node('obs'), b.heard);
    try {
      await fn(b);
      if (process.env.CARPD_TEST_LOG) process.stderr.write(`${b.log.join('\n')}\n`);
    } catch (err) {
      if (err instanceof Error) err.message += `\n--- scripts ---\n${b.scriptRuns().join('\n')}\n--- lab log ---\n${b.log.slice(-120).join('\n')}`;
      throw err;
    }
  });
}

test('carpd ucarp: down script first at INIT → BACKUP, up script on MASTER, SIGUSR1 reports, SIGTERM with -z runs the down script', TEST, async () => {
  await bench(['n1', 'obs'], async (b) => {
    const n1 = b.lab.node('n1');
    const down = `${b.scripts.down} eth0 ${VIP} ${XP}`;
    const up = `${b.scripts.up} eth0 ${VIP} ${XP}`;
    const d = b.carpdUcarp(n1, { extra: ['-z'] });

    assert.deepEqual(await b.waitRuns(1, 5_000, 'the down script at start'), [down], 'the down script runs first, with <if> <vip> <xparam>');
    assert.deepEqual(await b.vips(n1), [], 'no VIP while BACKUP');
    await b.signalAndWait(d, 'SIGUSR1', /BACKUP on eth0 id 1\b/);

    const started = Date.now();
    assert.deepEqual(await b.waitRuns(2, 6_000, 'the up script on MASTER'), [down, up]);
    await waitFor(async () => (await b.vips(n1)).includes(VIP) && b.masterOf(1) === n1.address, {
      timeoutMs: 3_000,
      intervalMs: 100,
      what: 'the VIP on n1 and its adverts',
    });
    assert.ok(Date.now() - started < 4_500, 'master after about 3 × advbase');
    assert.ok(
      d.lines.some((l) => l.includes('Switching to state: MASTER')),
      'ucarp-style state line',
    );
    await b.signalAndWait(d, 'SIGUSR1', /MASTER on eth0 id 1\b/);

    const heardBefore = b.heard.length;
    b.lab.kill(d.child, 'SIGTERM');
    assert.equal(await b.lab.waitExit(d.child, 5_000), 0, 'clean exit on SIGTERM');
    assert.deepEqual(b.scriptRuns(), [down, up, down], '-z: the down script ran at exit');
    assert.deepEqual(await b.vips(n1), [], 'the down script removed the VIP');
    await sleep(1_500);
    assert.equal(b.heard.slice(heardBefore).filter((h) => h.src === n1.address && h.advbase !== 255).length, 0, 'no adverts after exit');
  });
});

test('carpd ucarp -n: no down script at start; without -z, SIGTERM runs no script', TEST, async () => {
  await bench(['n1'], async (b) => {
    const n1 = b.lab.node('n1');
    const up = `${b.scripts.up} eth0 ${VIP} ${XP}`;
    const d = b.carpdUcarp(n1, { extra: ['-n'] });
    await waitFor(() => d.lines.some((l) => l.includes('Switching to state: BACKUP')), { timeoutMs: 5_000, what: 'BACKUP' });
    assert.deepEqual(await b.waitRuns(1, 6_000, 'the up script'), [up], 'with -n the first script run is the up script');
    await waitFor(async () => (await b.vips(n1)).includes(VIP), { timeoutMs: 2_000, what: 'the VIP' });
    b.lab.kill(d.child, 'SIGTERM');
    assert.equal(await b.lab.waitExit(d.child, 5_000), 0, 'clean exit on SIGTERM');
    await sleep(300);
    assert.deepEqual(b.scriptRuns(), [up], 'without -z no down script at exit');
    assert.deepEqual(await b.vips(n1), [VIP], 'so the VIP stays, as with ucarp');
  });
});

test('carpd ucarp: gratuitous ARP for the VIP when it becomes MASTER', TEST, async () => {
  await bench(['n1'], async (b) => {
    const n1 = b.lab.node('n1');
    const cap = await b.lab.capture(b.lab.switchNs!, b.lab.bridge!, 'arp');
    const d = b.carpdUcarp(n1);
    await waitFor(() => d.lines.some((l) => l.includes('Switching to state: MASTER')), { timeoutMs: 6_000, what: 'MASTER' });
    const becameMaster = Date.now();
    await b.waitRuns(2, 3_000, 'the up script');
    // ucarp sends its ARP right after the up script has run; carpd repeats it after the 2nd advert.
    try {
      await waitFor(async () => (await b.garps(cap.file, n1.mac)).length >= 2, { timeoutMs: 3_500, intervalMs: 200, what: 'two gratuitous ARPs' }).catch(
        () => undefined,
      );
    } finally {
      await cap.stop();
    }
    const garps = await b.garps(cap.file, n1.mac);
    b.note('test', `gratuitous ARPs at ${garps.map((t) => `+${Math.round(t - becameMaster)} ms`).join(', ')} after MASTER`);
    const errors = d.lines.filter((l) => /(garp|arping).*(fail|error)/i.test(l));
    assert.deepEqual(errors, [], 'no ARP errors');
    assert.ok(garps.length >= 1, `no gratuitous ARP for ${VIP} from n1 within 3.5 s of MASTER`);
    assert.ok(garps[0]! - becameMaster < 500, `the first gratuitous ARP came ${Math.round(garps[0]! - becameMaster)} ms after MASTER, not at once`);
    assert.ok(garps.length >= 2, 'and is repeated after the second advert');
  });
});

test('carpd ucarp: SIGUSR2 steps down (down script) and a real ucarp with a higher advskew takes over', TEST, async () => {
  await bench(['n1', 'uc', 'obs'], async (b) => {
    const [n1, uc] = [b.lab.node('n1'), b.lab.node('uc')];
    const down = `${b.scripts.down} eth0 ${VIP} ${XP}`;
    const up = `${b.scripts.up} eth0 ${VIP} ${XP}`;
    const d = b.carpdUcarp(n1, { extra: ['-z'] });
    await b.waitRuns(2, 6_000, 'the up script');
    await waitFor(async () => (await b.vips(n1)).includes(VIP) && b.masterOf(1) === n1.address, { timeoutMs: 3_000, intervalMs: 100, what: 'n1 master' });
    const peerLines: string[] = [];
    const [peer] = spawnUcarp(b.lab, uc, 1, 50, b.passfile, (l) => {
      peerLines.push(l);
      b.note('uc', l);
    });
    await waitFor(() => peerLines.some((l) => l.includes('Switching to state: BACKUP')), { timeoutMs: 3_000, what: 'ucarp as BACKUP' });
    await sleep(1_200);
    assert.deepEqual(await b.vips(uc), [], 'ucarp is a backup');

    const usr2 = Date.now();
    b.lab.kill(d.child, 'SIGUSR2');
    assert.deepEqual(await b.waitRuns(3, 2_000, 'the down script after SIGUSR2'), [down, up, down]);
    await waitFor(async () => (await b.vips(n1)).length === 0, { timeoutMs: 2_000, intervalMs: 50, what: 'the VIP to leave n1' });
    await waitFor(async () => (await b.vips(uc)).includes(VIP) && b.masterOf(1) === uc.address, {
      timeoutMs: 7_000,
      intervalMs: 100,
      what: 'ucarp to take over',
    });
    const took = Date.now() - usr2;
    b.note('test', `ucarp took over ${took} ms after SIGUSR2`);
    // ucarp's master-down is 3.195 s after the last advert it heard, measured up to 4.6 s.
    assert.ok(took <= 5_000, `ucarp took over ${took} ms after SIGUSR2`);
    assert.equal(b.heard.filter((h) => h.src === n1.address && h.t > usr2 + 100).length, 0, 'n1 stopped advertising at once');
    // n1 stays BACKUP: preempt is off and it hears ucarp.
    await sleep(2_500);
    assert.equal(b.masterOf(1), uc.address);
    assert.deepEqual(await b.vips(n1), []);
    assert.deepEqual(b.scriptRuns(), [down, up, down], 'no further scripts');
    await b.signalAndWait(d, 'SIGUSR1', /BACKUP on eth0 id 1\b/);
    assert.ok(peer && peer.exitCode === null, 'the ucarp peer still runs');
  });
});

test('carpd ucarp refuses a world-readable passfile, without showing the password', TEST, async () => {
  await bench(['n1'], async (b) => {
    const n1 = b.lab.node('n1');
    const secret = 'open-sesame-4711';
    const pf = join(b.lab.dir, 'open.pass');
    writeFileSync(pf, `${secret}\n`, { mode: 0o644 });
    chmodSync(pf, 0o644);
    const r = await b.lab.exec(
      n1.ns,
      [
        process.execPath,
        CARPD_JS,
        'ucarp',
        '-i',
        'eth0',
        '-s',
        n1.address,
        '-v',
        '1',
        '--passfile',
        pf,
        '-a',
        VIP,
        '-u',
        b.scripts.up,
        '-d',
        b.scripts.down,
        '-x',
        XP,
      ],
      { timeoutMs: 10_000 },
    );
    const out = `${r.stdout}${r.stderr}`;
    assert.ok(r.exitCode !== 0 && r.exitCode !== null, `exit code ${r.exitCode}: ${out}`);
    assert.ok(!out.includes(secret), `the password is in the output: ${out}`);
    assert.match(out, /world-readable|0644/, 'says why');
    assert.deepEqual(b.scriptRuns(), [], 'no script ran');
  });
});

test('the password never shows in ps: not with --passfile, and not with -p once running', TEST, async () => {
  await bench(['n1', 'n2'], async (b) => {
    const secret = 'argv-secret-0815';
    const withFile = b.carpdUcarp(b.lab.node('n1'));
    const withArg = b.carpdUcarp(b.lab.node('n2'), { passArgs: ['-p', secret] });
    for (const d of [withFile, withArg]) {
      await waitFor(() => d.lines.some((l) => l.includes('Switching to state: BACKUP')), { timeoutMs: 5_000, what: 'BACKUP' });
    }
    const ps = async (d: UcarpMode) => {
      const r = await run(['ps', '-o', 'args=', '-p', String(d.child.pid)], { timeoutMs: 5_000 });
      assert.equal(r.exitCode, 0, r.stderr);
      return r.stdout.trim();
    };
    const argsFile = await ps(withFile);
    assert.ok(argsFile.length > 0);
    assert.ok(!argsFile.includes(PASSWORD), `ps shows the password: ${argsFile}`);
    const argsArg = await ps(withArg);
    b.note('test', `ps -o args=: --passfile → ${JSON.stringify(argsFile)}; -p → ${JSON.stringify(argsArg)}`);
    assert.ok(!argsArg.includes(secret), `ps shows the -p password: ${argsArg}`);
    assert.ok(
      withArg.lines.some((l) => /visible in ps|--passfile/.test(l)),
      'warns about -p',
    );
    assert.ok(![...withFile.lines, ...withArg.lines].some((l) => l.includes(secret) || l.includes(PASSWORD)), 'no password in the logs');
  });
});
