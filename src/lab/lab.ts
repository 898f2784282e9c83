/**
 * `carpd lab`: a throwaway CARP cluster in network namespaces. It starts the nodes, shows who is
 * master, kills the master with SIGKILL, measures the failover from an observer's point of view
 * (last advert of the dead master → first advert of the new one), lets the old master rejoin,
 * and removes everything, also on Ctrl-C.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { writeText } from '../adapters/files.js';
import type { ChildProcess } from '../adapters/process.js';
import type { HeardAdvert } from '../proto/heard.js';
import type { Io } from '../ports/io.js';
import { createLab, sleep, waitFor, type Lab, type LabNode } from './netns.js';

export const CARPD_JS = fileURLToPath(new URL('../cli/carpd.js', import.meta.url));
const LAB_PASSWORD = 'lab-secret';

export interface LabPeer {
  node: LabNode;
  kind: 'carpd' | 'ucarp';
  advskew: number;
  procs: ChildProcess[];
}

/** Lab nodes sit in 198.18.0.0/16 (RFC 2544 benchmarking range): nodes 198.18.0.N, VIPs 198.18.1.V. */
export const LAB_PREFIX_LEN = 16;

/** The VIP of vhid `v` (1..255). */
export function labVip(v: number): string {
  return `198.18.1.${v}`;
}

/** Node specs for createLab with the lab's /16 addressing. */
export function labNodes(names: string[]): { name: string; address: string }[] {
  return names.map((name, i) => ({ name, address: `198.18.0.${i + 1}/${LAB_PREFIX_LEN}` }));
}

/** A carpd.conf for one lab node. */
export function labConfig(opts: { vhids: number; advskew: number; passfile: string; preempt?: boolean; advbase?: number }): string {
  const lines = ['[carpd]', `preempt = ${opts.preempt ? 'yes' : 'no'}`, 'log = 5', ''];
  for (let v = 1; v <= opts.vhids; v++) {
    lines.push(
      `[vhid.v${v}]`,
      `vhid = ${v}`,
      'interface = eth0',
      `address = ${labVip(v)}/${LAB_PREFIX_LEN}`,
      `advbase = ${opts.advbase ?? 1}`,
      `advskew = ${opts.advskew}`,
      `passfile = ${opts.passfile}`,
      '',
    );
  }
  return lines.join('\n');
}

/** Write the lab's shared password file, mode 0600. */
export function writePassfile(dir: string, password = LAB_PASSWORD): string {
  const file = join(dir, 'carp.pass');
  writeText(file, `${password}\n`, 0o600);
  return file;
}

/** ucarp up/down scripts that add or remove the VIP, as ucarp's own examples do. */
export function writeUcarpScripts(dir: string): { up: string; down: string } {
  const up = join(dir, 'vip-up.sh');
  const down = join(dir, 'vip-down.sh');
  writeText(up, `#!/bin/sh\nexec /sbin/ip addr add "$2"/${LAB_PREFIX_LEN} dev "$1"\n`, 0o700);
  writeText(down, `#!/bin/sh\nexec /sbin/ip addr del "$2"/${LAB_PREFIX_LEN} dev "$1"\n`, 0o700);
  return { up, down };
}

/** Start carpd in a node's namespace; its log lines go to `onLine`. */
export function spawnCarpd(lab: Lab, node: LabNode, conf: string, onLine: (l: string) => void): ChildProcess {
  // Each node gets its own control socket and state directory: the namespaces share one filesystem.
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'run', '-c', conf, '--control', join(lab.dir, `${node.name}.sock`), '--run-dir', lab.dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { STATE_DIRECTORY: join(lab.dir, `${node.name}-state`) },
  });
  for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on('line', onLine);
  return child;
}

/** Start one ucarp per vhid in a node's namespace. */
export function spawnUcarp(
  lab: Lab,
  node: LabNode,
  vhids: number,
  advskew: number,
  passfile: string,
  onLine: (l: string) => void,
  extra: string[] = [],
): ChildProcess[] {
  const { up, down } = writeUcarpScripts(lab.dir);
  const procs: ChildProcess[] = [];
  for (let v = 1; v <= vhids; v++) {
    const argv = [
      'ucarp',
      '-i',
      'eth0',
      '-s',
      node.address,
      '-v',
      String(v),
      '-o',
      passfile,
      '-a',
      labVip(v),
      '-b',
      '1',
      '-k',
      String(advskew),
      '-u',
      up,
      '-d',
      down,
      '-x',
      'lab',
      ...extra,
    ];
    const child = lab.spawn(node.ns, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on('line', onLine);
    procs.push(child);
  }
  return procs;
}

/** Observe adverts on the lab's segment from a namespace of its own. */
export function spawnObserver(lab: Lab, node: LabNode, heard: HeardAdvert[]): ChildProcess {
  const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'monitor', '-i', 'eth0', '--json', '--srcip', node.address, '--seconds', '600'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (l) => {
      try {
        heard.push(JSON.parse(l) as HeardAdvert);
      } catch {
        // not a JSON line: ignore
      }
    });
  }
  return child;
}

/** For each vhid, the source of its adverts in the last `windowMs`, when there is exactly one. */
export function currentMasters(heard: HeardAdvert[], vhids: number, now: number, windowMs: number): Map<number, string> {
  const out = new Map<number, string>();
  for (let v = 1; v <= vhids; v++) {
    const srcs = new Set(heard.filter((h) => h.vhid === v && h.advbase !== 255 && now - h.t <= windowMs).map((h) => h.src));
    if (srcs.size === 1) out.set(v, [...srcs][0]!);
  }
  return out;
}

/** "n1 is MASTER of vhids 1-255", grouped by master, so 255 vhids fit on a line. */
export function summarize(masters: Map<number, string>, name: (src: string) => string): string {
  const by = new Map<string, number[]>();
  for (const [v, s] of [...masters].sort(([a], [b]) => a - b)) by.set(name(s), [...(by.get(name(s)) ?? []), v]);
  const ranges = (vs: number[]) => {
    const out: string[] = [];
    for (let i = 0; i < vs.length;) {
      let j = i;
      while (j + 1 < vs.length && vs[j + 1] === vs[j]! + 1) j++;
      out.push(i === j ? `${vs[i]}` : `${vs[i]}-${vs[j]}`);
      i = j + 1;
    }
    return out.join(',');
  };
  return [...by].map(([n, vs]) => `${n} is MASTER of vhid${vs.length > 1 ? 's' : ''} ${ranges(vs)}`).join('; ');
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface LabRunOptions {
  /** carpd nodes (the cli checks that there are at least two peers in all). */
  nCarpd: number;
  vhids: number;
  /** advskew grows by this per node. */
  step: number;
  withUcarp: boolean;
  /** Restart the failed master and watch it rejoin. */
  rejoin: boolean;
}

/** `carpd lab`: namespaces, carpd (and ucarp) peers and an observer; fail the master, watch the handover. */
export async function runLab({ nCarpd, vhids, step, withUcarp, rejoin }: LabRunOptions, io: Io): Promise<number> {
  const t0 = Date.now();
  const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(3).padStart(7)}]`;
  const say = (s: string) => io.out(`${stamp()} ${s}`);
  const names = [...Array.from({ length: nCarpd }, (_, i) => `n${i + 1}`), ...(withUcarp ? ['ucarp'] : []), 'obs'];
  io.out(`carpd lab: ${nCarpd} carpd node(s)${withUcarp ? ' + 1 ucarp node' : ''}, ${vhids} vhid(s), advbase 1, advskew step ${step}`);

  const lab = await createLab({ prefix: 'carpdlab', nodes: labNodes(names) });
  const nsCount = lab.namespaces().length;
  let interrupted = false;
  const onInt = () => {
    interrupted = true;
  };
  process.on('SIGINT', onInt);
  try {
    say(`namespaces ${lab.namespaces().join(' ')} on bridge ${lab.bridge}`);
    const passfile = writePassfile(lab.dir);
    const heard: HeardAdvert[] = [];
    spawnObserver(lab, lab.node('obs'), heard);
    await sleep(300);

    const peers: LabPeer[] = [];
    // One line per node and state, not per vhid: 255 vhids would flood the screen.
    const quiet = vhids <= 4 ? /INIT -> BACKUP|running|MASTER|BACKUP|:\d+: |error|cannot/i : /running|:\d+: |error|cannot/i;
    for (const [i, name] of names.slice(0, -1).entries()) {
      const node = lab.node(name);
      const advskew = i * step;
      const show = (l: string) => {
        if (quiet.test(l)) say(`${name}: ${l.replace(/^.*?: /, '')}`);
      };
      if (name === 'ucarp') {
        // ucarp hears adverts late (libpcap buffering): started together with the carpd nodes it
        // can time out before it has heard the first master. Let the cluster settle first.
        await sleep(1500);
        peers.push({ node, kind: 'ucarp', advskew, procs: spawnUcarp(lab, node, vhids, advskew, passfile, show) });
      } else {
        const conf = join(lab.dir, `${name}.conf`);
        writeText(conf, labConfig({ vhids, advskew, passfile }), 0o600);
        peers.push({ node, kind: 'carpd', advskew, procs: [spawnCarpd(lab, node, conf, show)] });
      }
      say(`${name} (${node.address}) started: ${peers.at(-1)!.kind}, advskew ${advskew}`);
    }
    const bySrc = (src: string) => peers.find((x) => x.node.address === src);

    const masters = await waitFor(
      () => {
        if (interrupted) throw new Error('interrupted');
        const m = currentMasters(heard, vhids, Date.now(), 1500);
        return m.size === vhids && Date.now() - t0 > 4500 ? m : undefined;
      },
      { timeoutMs: 20_000, what: 'one master per vhid' },
    );
    const master = bySrc(masters.get(1)!)!;
    say(`elected: ${summarize(masters, (s) => bySrc(s)?.node.name ?? s)}`);
    const addrs = await lab.exec(master.node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    const vipsUp = Array.from({ length: vhids }, (_, i) => labVip(i + 1)).filter((a) => addrs.stdout.includes(`${a}/`));
    say(
      `${master.node.name} holds ${vipsUp.length}/${vhids} VIP(s)${vipsUp.length ? `: ${vipsUp.slice(0, 3).join(', ')}${vipsUp.length > 3 ? ', …' : ''}` : ''}`,
    );

    say(`kill -9 ${master.node.name} (${master.procs.map((c) => c.pid).join(',')})`);
    const killedAt = Date.now();
    for (const c of master.procs) lab.kill(c, 'SIGKILL');
    const after = await waitFor(
      () => {
        if (interrupted) throw new Error('interrupted');
        const m = currentMasters(heard, vhids, Date.now(), 1000);
        return [...m.values()].every((s) => s !== master.node.address) && m.size === vhids ? m : undefined;
      },
      { timeoutMs: 20_000, what: 'a new master' },
    );
    const times: number[] = [];
    for (let v = 1; v <= vhids; v++) {
      const last = heard.filter((h) => h.vhid === v && h.src === master.node.address && h.t <= killedAt + 50).at(-1);
      const first = heard.find((h) => h.vhid === v && h.src === after.get(v) && last && h.t > last.t);
      if (last && first) times.push(first.t - last.t);
    }
    const next = bySrc(after.get(1)!)!;
    const nominal = 3000 + (next.advskew * 1000) / 256;
    const spread =
      times.length > 1 ? ` (min ${(Math.min(...times) / 1000).toFixed(3)} s, max ${(Math.max(...times) / 1000).toFixed(3)} s over ${times.length} vhids)` : '';
    say(
      `${next.node.name} (${next.kind}) took over: failover ${(median(times) / 1000).toFixed(3)} s${spread}; nominal 3 × advbase + advskew/256 = ${(nominal / 1000).toFixed(3)} s`,
    );
    const addrs2 = await lab.exec(next.node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    say(
      `${next.node.name} holds ${Array.from({ length: vhids }, (_, i) => labVip(i + 1)).filter((a) => addrs2.stdout.includes(`${a}/`)).length}/${vhids} VIP(s)`,
    );

    if (rejoin && master.kind === 'carpd') {
      const conf = join(lab.dir, `${master.node.name}.conf`);
      master.procs = [spawnCarpd(lab, master.node, conf, (l) => /MASTER|BACKUP/.test(l) && say(`${master.node.name}: ${l.replace(/^.*?: /, '')}`))];
      say(`${master.node.name} restarted; preempt is off, so it should stay BACKUP`);
      await sleep(5000);
      const m = currentMasters(heard, vhids, Date.now(), 1500);
      say(`after rejoin: vhid 1 master is ${bySrc(m.get(1) ?? '')?.node.name ?? 'unclear'}`);
    }
    io.out(`result: failover ${(median(times) / 1000).toFixed(3)} s, nominal ${(nominal / 1000).toFixed(3)} s, ${next.node.name} is MASTER`);
    return 0;
  } catch (err) {
    io.err(`carpd lab: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    process.off('SIGINT', onInt);
    await lab.destroy();
    io.out(`${stamp()} cleaned up: ${nsCount} namespaces removed, all lab processes stopped`);
  }
}
