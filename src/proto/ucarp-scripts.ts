/**
 * ucarp's up/down script rules (PROTOCOL.md): which script a state change runs, and its argv
 * `<script> <interface> <vip> [xparam]`. carpd's ucarp mode and the `script` plugin both follow
 * them, so they live here once.
 */

export interface ScriptPolicy {
  /** ucarp -n: no down script on the initial INIT → BACKUP. */
  neutral: boolean;
  /** ucarp -z: run the down script when a MASTER shuts down. */
  shutdown: boolean;
}

/** A state change; `from` absent is the first one (from INIT). States are CARP's INIT, BACKUP, MASTER. */
export interface ScriptTransition {
  from?: string;
  to: string;
  reason: string;
}

/** Which script a state change runs, if any. */
export function ucarpScriptFor(ev: ScriptTransition, policy: ScriptPolicy): 'up' | 'down' | undefined {
  const from = ev.from ?? 'INIT';
  if (ev.to === 'MASTER') return 'up';
  if (ev.to === 'BACKUP') return from === 'INIT' && policy.neutral ? undefined : 'down';
  if (from === 'MASTER') return ev.reason === 'shutdown' && !policy.shutdown ? undefined : 'down';
  return undefined;
}

/** The argv ucarp gives a script: the first VIP without its prefix length, then xparam if set. */
export function ucarpArgv(script: string, ifname: string, addresses: readonly string[], xparam?: string): string[] {
  const vip = (addresses[0] ?? '').split('/')[0] ?? '';
  return [script, ifname, vip, ...(xparam !== undefined ? [xparam] : [])];
}
