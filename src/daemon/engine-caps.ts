/**
 * What each engine cannot do, said in one place: carpctl's errors and status lines come from this
 * table, keyed by the capability the StateSource port reports false.
 */
import type { StateSource, StateSourceCapabilities } from '../ports/state-source.js';
import { ControlCode, ControlError } from './control-protocol.js';

/** The capability's absence, in the words carpctl prints after the engine's name. */
export const CANNOT: Readonly<Record<keyof StateSourceCapabilities, string>> = {
  forceState: 'cannot force a vhid into a state (carpctl state); demote the node instead',
  prePhaseHoldsVip: 'moves the VIP itself before carpd hears of it: pre-master hooks run beside the VIP change, not before it',
  packetCounters: 'counts its own packets: carpctl stats shows zeros',
};

/** `carpd`, `kernel (freebsd)`, `kernel (openbsd)` or `keepalived`. */
export function engineLabel(source: Pick<StateSource, 'kind'> & { os?: string }): string {
  return source.kind === 'kernel' && source.os ? `kernel (${source.os})` : source.kind;
}

/** One line per capability the engine lacks, for `carpctl status`. */
export function limitations(source: Pick<StateSource, 'kind' | 'capabilities'> & { os?: string }): string[] {
  return (Object.keys(CANNOT) as (keyof StateSourceCapabilities)[]).filter((c) => !source.capabilities[c]).map((c) => `${engineLabel(source)} ${CANNOT[c]}`);
}

/** The error carpctl gets when it asks for what the engine cannot do. */
export function unsupported(source: Pick<StateSource, 'kind'> & { os?: string }, capability: keyof StateSourceCapabilities): ControlError {
  return new ControlError(ControlCode.UNSUPPORTED, `engine ${engineLabel(source)} ${CANNOT[capability]}`);
}
