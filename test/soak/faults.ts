/**
 * The soak's faults: how each is drawn from the seeded PRNG, applied and healed. A round holds one
 * or two of them for a few seconds, then heals them all.
 */
import type { Prng } from './prng.js';
import { nodeAddress, soakVip, type SoakCluster, type SoakNode } from './cluster.js';

export type FaultKind = 'kill' | 'flap' | 'partition' | 'loss' | 'hup';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'flap', 'partition', 'loss', 'hup'];

const WEIGHTS: ReadonlyArray<readonly [FaultKind, number]> = [
  ['kill', 3],
  ['flap', 3],
  ['partition', 3],
  ['loss', 2],
  ['hup', 2],
];

export interface Fault {
  kind: FaultKind;
  node: string;
  /** partition: the node whose adverts `node` drops. */
  peer?: string;
  /** partition: also drop `node`'s adverts in `peer`'s namespace. */
  symmetric?: boolean;
  /** flap: `carrier` downs the bridge end of the veth (cable pulled), `admin` the node's own eth0. */
  side?: 'carrier' | 'admin';
}

export interface Round {
  faults: Fault[];
  holdMs: number;
}

/**
 * How 20 % loss is made: tc netem on the node's eth0 where the kernel has sch_netem; else an
 * nftables bridge rule on the node's port of the bridge, in the switch namespace. Both lose the
 * node's frames on the wire without the sender noticing. (A drop in the node's own OUTPUT hook
 * would not do: sendto(2) then fails with EPERM, and carpd counts send errors and demotes itself,
 * as FreeBSD's carp_send_ad_error_adjust() does: a different fault.)
 */
export type LossMethod = 'netem' | 'bridge';

export function describe(f: Fault): string {
  switch (f.kind) {
    case 'kill':
      return `kill -9 ${f.node} (restart at heal)`;
    case 'flap':
      return `link down ${f.node} (${f.side === 'admin' ? 'ip link set eth0 down in the node' : 'bridge end of its veth down: carrier lost'})`;
    case 'partition':
      return `partition: ${f.node} drops CARP from ${f.peer}${f.symmetric ? ` and ${f.peer} drops CARP from ${f.node}` : ''}`;
    case 'loss':
      return `20% loss on ${f.node}'s eth0 egress`;
    case 'hup':
      return `SIGHUP ${f.node}`;
  }
}

/** Draw one round from the PRNG only (never from what the run observed), so a seed replays. */
export function drawRound(rng: Prng, nodes: readonly string[]): Round {
  const count = rng.next() < 0.35 ? 2 : 1;
  const faults: Fault[] = [];
  for (let tries = 0; faults.length < count && tries < 20; tries++) {
    const kind = rng.weighted(WEIGHTS);
    const node = rng.pick(nodes);
    const f: Fault = { kind, node };
    if (kind === 'partition') {
      f.peer = rng.pick(nodes.filter((n) => n !== node));
      f.symmetric = rng.next() < 0.5;
    }
    if (kind === 'flap') f.side = rng.next() < 0.5 ? 'carrier' : 'admin';
    if (faults.some((g) => conflicts(f, g))) continue;
    faults.push(f);
  }
  return { faults, holdMs: rng.int(2_000, 6_000) };
}

/** Two faults that would step on each other's set-up or healing. */
function conflicts(a: Fault, b: Fault): boolean {
  if (a.kind === b.kind && a.node === b.node) return true;
  if (a.kind === 'partition' && b.kind === 'partition' && a.node === b.peer && a.peer === b.node) return true;
  const killHup = (x: Fault, y: Fault) => x.kind === 'kill' && y.kind === 'hup' && x.node === y.node;
  return killHup(a, b) || killHup(b, a);
}

/** The nftables bridge table in the switch namespace that drops 20 % of a node's frames. */
function lossTable(n: SoakNode): string {
  return `soak_loss_${n.name}`;
}

/** The drop counter of a partition's nftables table in a node's namespace. */
async function dropped(c: SoakCluster, at: SoakNode, table: string): Promise<string> {
  const text = await c.exec(at, ['nft', 'list', 'table', 'inet', table]);
  return /counter packets (\d+)/.exec(text)?.[1] ?? '?';
}

/** The nftables table in a node's namespace that drops `peer`'s CARP. */
function partTable(peer: string): string {
  return `soak_part_${peer}`;
}

async function dropFrom(c: SoakCluster, at: SoakNode, from: SoakNode): Promise<void> {
  await c.exec(
    at,
    ['nft', '-f', '-'],
    `table inet ${partTable(from.name)} {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    ip saddr ${nodeAddress(from.index)} ip protocol 112 counter drop\n  }\n}\n`,
  );
}

export async function applyFault(c: SoakCluster, f: Fault, loss: LossMethod): Promise<string> {
  const n = c.node(f.node);
  switch (f.kind) {
    case 'kill': {
      const pid = await c.kill9(n);
      if (pid === undefined) return 'was not running';
      // What kill -9 leaves behind: the restarted carpd must clear these (check.ts, vip-not-master).
      const o = await c.observe(n);
      const left = c.vhidList().filter((v) => o.addresses?.has(soakVip(v)));
      return `pid ${pid} killed; VIPs it left in its namespace: ${left.length ? left.map(soakVip).join(' ') : 'none'}`;
    }
    case 'flap':
      if (f.side === 'admin') await c.exec(n, ['ip', 'link', 'set', 'eth0', 'down']);
      else await c.lab.linkDown(n.lab);
      return '';
    case 'partition': {
      const p = c.node(f.peer!);
      await dropFrom(c, n, p);
      if (f.symmetric) await dropFrom(c, p, n);
      return '';
    }
    case 'loss':
      if (loss === 'netem') await c.exec(n, ['tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'loss', '20%']);
      else
        await c.execSwitch(
          ['nft', '-f', '-'],
          `table bridge ${lossTable(n)} {\n  chain pre {\n    type filter hook prerouting priority 0; policy accept;\n    iifname "${n.lab.peerIfname}" counter\n    iifname "${n.lab.peerIfname}" numgen random mod 100 < 20 counter drop\n  }\n}\n`,
        );
      return '';
    case 'hup':
      return c.signal(n, 'SIGHUP') ? `pid ${n.child!.pid}` : 'was not running';
  }
}

export async function healFault(c: SoakCluster, f: Fault, loss: LossMethod): Promise<string> {
  const n = c.node(f.node);
  switch (f.kind) {
    case 'kill':
      c.start(n);
      return `restarted, pid ${n.child?.pid ?? '?'}`;
    case 'flap':
      if (f.side === 'admin') await c.exec(n, ['ip', 'link', 'set', 'eth0', 'up']);
      else await c.lab.linkUp(n.lab);
      return '';
    case 'partition': {
      let text = `${f.node} dropped ${await dropped(c, n, partTable(f.peer!))} of ${f.peer}'s CARP packets`;
      await c.exec(n, ['nft', 'delete', 'table', 'inet', partTable(f.peer!)]);
      if (f.symmetric) {
        const p = c.node(f.peer!);
        text += `, ${f.peer} ${await dropped(c, p, partTable(f.node))} of ${f.node}'s`;
        await c.exec(p, ['nft', 'delete', 'table', 'inet', partTable(f.node)]);
      }
      return text;
    }
    case 'loss':
      if (loss === 'netem') {
        const stats = await c.exec(n, ['tc', '-s', 'qdisc', 'show', 'dev', 'eth0']);
        await c.exec(n, ['tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
        return `netem: ${/\bdropped (\d+)/.exec(stats)?.[1] ?? '?'} dropped`;
      } else {
        const text = await c.execSwitch(['nft', 'list', 'table', 'bridge', lossTable(n)]);
        const [all, lost] = [...text.matchAll(/counter packets (\d+)/g)].map((m) => m[1]);
        await c.execSwitch(['nft', 'delete', 'table', 'bridge', lossTable(n)]);
        return `${lost ?? '?'} of ${all ?? '?'} frames dropped`;
      }
    case 'hup':
      return '';
  }
}

/** netem if this kernel has it (probed on a node's eth0 and removed again), else nftables. */
export async function probeLoss(c: SoakCluster): Promise<LossMethod> {
  const n = c.nodes[0]!;
  try {
    await c.exec(n, ['tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'loss', '0%']);
    await c.exec(n, ['tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
    return 'netem';
  } catch {
    return 'bridge';
  }
}
