/**
 * The soak's invariants, as a pure function of one observation of the cluster: what each carpd
 * says (control socket `status`, the data of `carpctl status --json`) and what each namespace's
 * kernel holds (`ip -o -4 addr show dev eth0`). No I/O here, so the rules are unit-testable.
 *
 * After the faults are healed and the cluster has had its quiescence time, for every vhid:
 * exactly one node holds the VIP, that node says MASTER, every other node says BACKUP; a node
 * holds no VIP of a vhid it is not MASTER of (a restarted node must clear what its killed
 * predecessor left), and with preempt on and nobody demoted, the preferred node is the MASTER.
 */

export type ViolationKind =
  | 'no-master'
  | 'multi-master'
  | 'no-holder'
  | 'multi-holder'
  | 'master-without-vip'
  | 'vip-not-master'
  | 'not-backup'
  | 'unreachable'
  | 'not-running'
  | 'preempt'
  | 'unexpected-exit'
  | 'shutdown';

export interface Violation {
  kind: ViolationKind;
  node?: string;
  vhid?: number;
  detail: string;
}

export interface VhidView {
  state: string;
  demote: number;
}

export interface NodeObservation {
  name: string;
  /** Whether carpd (the process we started) is running. */
  running: boolean;
  /** vhid → what carpd said; undefined when the control socket did not answer. */
  vhids?: Map<number, VhidView>;
  /** Why the status could not be read. */
  statusError?: string;
  /** Every IPv4 address on the lan interface, without prefix; undefined if `ip` failed. */
  addresses?: Set<string>;
  addrError?: string;
}

export interface CheckSpec {
  vhids: number[];
  vip(v: number): string;
  /** The node whose advskew is lowest for vhid v. */
  preferred(v: number): string;
  preempt: boolean;
}

/** Every violation in one observation; empty means the cluster is converged and correct. */
export function evaluate(spec: CheckSpec, obs: readonly NodeObservation[]): Violation[] {
  const out: Violation[] = [];
  for (const o of obs) {
    if (!o.running) out.push({ kind: 'not-running', node: o.name, detail: `${o.name}: carpd is not running` });
    else if (!o.vhids) out.push({ kind: 'unreachable', node: o.name, detail: `${o.name}: no status: ${o.statusError ?? 'no answer'}` });
    if (!o.addresses) out.push({ kind: 'unreachable', node: o.name, detail: `${o.name}: no addresses: ${o.addrError ?? 'ip failed'}` });
  }
  for (const v of spec.vhids) {
    const vip = spec.vip(v);
    const stateOf = (o: NodeObservation): string => (!o.running ? 'DEAD' : (o.vhids?.get(v)?.state ?? (o.vhids ? 'ABSENT' : '?')));
    const masters = obs.filter((o) => stateOf(o) === 'MASTER').map((o) => o.name);
    const holders = obs.filter((o) => o.addresses?.has(vip)).map((o) => o.name);
    const seen = () =>
      `VIP ${vip} on ${holders.join(',') || 'no node'}; ${obs.map((o) => `${o.name}=${stateOf(o)}${o.vhids?.get(v)?.demote ? `(demote ${o.vhids.get(v)!.demote})` : ''}`).join(' ')}`;
    const add = (kind: ViolationKind, node: string | undefined, what: string) =>
      out.push({ kind, vhid: v, ...(node ? { node } : {}), detail: `vhid ${v}: ${what}; ${seen()}` });
    // A running carpd that did not answer is reported once (unreachable); its vhids' states are
    // unknown, so no claim is made about them, only about what its kernel holds.
    const unknown = obs.some((o) => stateOf(o) === '?');
    if (masters.length === 0 && !unknown) add('no-master', undefined, 'no node is MASTER');
    if (masters.length > 1) add('multi-master', undefined, `${masters.length} MASTERs (${masters.join(', ')})`);
    if (holders.length === 0) add('no-holder', undefined, 'no node holds the VIP');
    if (holders.length > 1) add('multi-holder', undefined, `${holders.length} nodes hold the VIP (${holders.join(', ')})`);
    for (const o of obs) {
      const st = stateOf(o);
      const holds = o.addresses?.has(vip) ?? false;
      if (st === 'MASTER' && o.addresses && !holds) add('master-without-vip', o.name, `${o.name} is MASTER without the VIP`);
      if (holds && st !== 'MASTER' && st !== '?') add('vip-not-master', o.name, `${o.name} holds the VIP but is ${st}`);
      if (o.running && o.vhids && st !== 'MASTER' && st !== 'BACKUP') add('not-backup', o.name, `${o.name} is ${st}, neither MASTER nor BACKUP`);
    }
    if (spec.preempt && masters.length === 1) {
      const want = spec.preferred(v);
      const undemoted = obs.every((o) => o.running && o.vhids?.get(v)?.demote === 0);
      if (masters[0] !== want && undemoted) add('preempt', want, `preempt is on and nobody is demoted, but ${masters[0]} is MASTER instead of ${want}`);
    }
  }
  return out;
}
