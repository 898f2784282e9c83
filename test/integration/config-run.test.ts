/**
 * `carpd run` straight from an admin's existing files, in lab namespaces: a FreeBSD rc.conf (a
 * modern alias and a legacy cloned carp0 whose parent is found by subnet) with its sysctl.conf,
 * and an OpenBSD hostname.carp0 with the hostname.eth0 beside it. Each node must really run CARP:
 * its adverts on the wire (seen by an observer namespace) and the VIP on eth0 as MASTER.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { HeardAdvert } from '../../src/proto/heard.js';
import { CARPD_JS, LAB_PREFIX_LEN, currentMasters, labNodes, labVip, spawnObserver } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

const TEST = { timeout: 30_000 };
const PASSWORD = 'lab-secret';
/** A netmask spelled the old way, as hostname.if(5) and rc.conf often do. */
const NETMASK = '255.255.0.0';

interface Daemon {
  child: ChildProcess;
  lines: string[];
}

class Bench {
  readonly heard: HeardAdvert[] = [];
  readonly log: string[] = [];

  constructor(readonly lab: Lab) {}

  /** Writes `files` (name → text, mode 0600) into a directory of the node's own. */
  files(node: LabNode, files: Record<string, string>): string[] {
    const dir = join(this.lab.dir, node.name);
    mkdirSync(dir, { recursive: true });
    return Object.entries(files).map(([name, text]) => {
      const path = join(dir, name);
      writeFileSync(path, text, { mode: 0o600 });
      chmodSync(path, 0o600);
      return path;
    });
  }

  /** `carpd run -c FILE…` in the node's namespace. */
  run(node: LabNode, configs: string[]): Daemon {
    const argv = [process.execPath, CARPD_JS, 'run', ...configs.flatMap((c) => ['-c', c])];
    const child = this.lab.spawn(node.ns, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const d: Daemon = { child, lines: [] };
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s! }).on('line', (l) => {
        if (d.lines.length < 2000) d.lines.push(l);
        if (this.log.length < 2000) this.log.push(`${node.name}: ${l}`);
      });
    }
    return d;
  }

  async vips(node: LabNode): Promise<string[]> {
    const r = await this.lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.equal(r.exitCode, 0, r.stderr);
    return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!).filter((a) => a !== node.address);
  }

  masterOf(vhid: number): string | undefined {
    return currentMasters(this.heard, vhid, Date.now(), 1500).get(vhid);
  }

  /** Waits (bounded) until `node` holds every VIP and is the only one advertising each vhid. */
  async becomesMaster(node: LabNode, vhids: number[], timeoutMs = 10_000): Promise<void> {
    await waitFor(
      async () => {
        const vips = await this.vips(node);
        return vhids.every((v) => vips.includes(labVip(v)) && this.masterOf(v) === node.address);
      },
      { timeoutMs, intervalMs: 100, what: `${node.name} MASTER of vhid ${vhids.join(', ')}` },
    );
  }

  /** SIGTERM, and a clean exit within a bound. */
  async stop(d: Daemon): Promise<void> {
    this.lab.kill(d.child, 'SIGTERM');
    assert.equal(await this.lab.waitExit(d.child, 5_000), 0, 'carpd exits 0 on SIGTERM');
  }
}

async function bench(nodes: string[], fn: (b: Bench) => Promise<void>): Promise<void> {
  await withLab({ prefix: 'cfgrun', nodes: labNodes(nodes) }, async (lab) => {
    const b = new Bench(lab);
    spawnObserver(lab, lab.node('obs'), b.heard);
    try {
      await fn(b);
    } catch (err) {
      if (err instanceof Error) err.message += `\n--- carpd output ---\n${b.log.slice(-80).join('\n')}`;
      throw err;
    }
  });
}

/** A FreeBSD rc.conf for a lab node: eth0's own address, one modern alias, one legacy carp0. */
function rcConf(node: LabNode, advskew: number): string {
  return `# /etc/rc.conf for ${node.name}, as a FreeBSD admin writes it
hostname="${node.name}.lab"
sshd_enable="YES"
ifconfig_eth0="inet ${node.address} netmask ${NETMASK}"

# CARP the FreeBSD 10+ way: an alias with a vhid
ifconfig_eth0_alias0="inet vhid 1 advskew ${advskew} pass ${PASSWORD} alias ${labVip(1)}/${LAB_PREFIX_LEN}"

# and the legacy way: a cloned carp0, whose parent is eth0 by subnet
cloned_interfaces="carp0"
ifconfig_carp0="vhid 2 advskew ${advskew} \\
	pass ${PASSWORD} ${labVip(2)}/${LAB_PREFIX_LEN}"
`;
}

/** An OpenBSD hostname.carp0 (the old positional form) and the hostname.eth0 beside it. */
function hostnameFiles(node: LabNode, advskew: number): Record<string, string> {
  return {
    'hostname.eth0': `inet ${node.address} ${NETMASK} NONE\nup\n`,
    'hostname.carp0': `# /etc/hostname.carp0 on ${node.name}
inet ${labVip(1)} ${NETMASK} NONE vhid 1 carpdev eth0 pass ${PASSWORD} advskew ${advskew}
description "lab VIP"
up
`,
  };
}

test('carpd run -c rc.conf -c sysctl.conf: both vhids (alias and legacy carp0) go MASTER and advertise', TEST, async () => {
  await bench(['n1', 'obs'], async (b) => {
    const n1 = b.lab.node('n1');
    const files = b.files(n1, { 'rc.conf': rcConf(n1, 50), 'sysctl.conf': 'net.inet.carp.preempt=1\nnet.inet.carp.log=5\n' });
    const d = b.run(n1, files);
    await b.becomesMaster(n1, [1, 2]);
    for (const v of [1, 2]) {
      const adverts = b.heard.filter((h) => h.vhid === v && h.src === n1.address);
      assert.ok(adverts.length > 0, `adverts for vhid ${v}`);
      assert.ok(
        adverts.every((h) => h.advskew === 50 && h.advbase === 1 && h.ttl === 255),
        'advbase 1, advskew 50 from rc.conf',
      );
    }
    assert.ok(
      d.lines.some((l) => l.includes('2@eth0') && l.includes('-> MASTER')),
      'carp0 ran as vhid 2 on its parent eth0',
    );
    await b.stop(d);
  });
});

test('carpd run -c hostname.carp0: the vhid goes MASTER on its carpdev and advertises', TEST, async () => {
  await bench(['n1', 'obs'], async (b) => {
    const n1 = b.lab.node('n1');
    const [, carp0] = b.files(n1, hostnameFiles(n1, 100));
    const d = b.run(n1, [carp0!]);
    await b.becomesMaster(n1, [1]);
    assert.ok(
      b.heard.some((h) => h.vhid === 1 && h.src === n1.address && h.advskew === 100),
      'adverts with advskew 100',
    );
    assert.ok(d.lines.some((l) => l.includes('1@eth0') && l.includes('-> MASTER')));
    await b.stop(d);
  });
});

test('an rc.conf node and a hostname.carp0 node form one cluster: the lower advskew is MASTER, the other BACKUP', TEST, async () => {
  await bench(['n1', 'n2', 'obs'], async (b) => {
    const n1 = b.lab.node('n1');
    const n2 = b.lab.node('n2');
    // Start the would-be backup first, so n1 must win the election, not just arrive first.
    const [, carp0] = b.files(n2, hostnameFiles(n2, 100));
    const backup = b.run(n2, [carp0!]);
    await b.becomesMaster(n2, [1]);
    const master = b.run(n1, b.files(n1, { 'rc.conf': rcConf(n1, 10), 'sysctl.conf': 'net.inet.carp.preempt=1\n' }));
    // n1 preempts (same password, same address list: the two formats hash alike).
    await b.becomesMaster(n1, [1, 2]);
    await waitFor(async () => !(await b.vips(n2)).includes(labVip(1)), { timeoutMs: 5_000, intervalMs: 100, what: 'n2 to release the VIP' });
    assert.ok(
      backup.lines.some((l) => l.includes('1@eth0') && l.includes('MASTER -> BACKUP')),
      'n2 stepped down',
    );
    await b.stop(master);
    await b.stop(backup);
  });
});
