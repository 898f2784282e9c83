/**
 * One line of keepalived's `notify_fifo` / `vrrp_notify_fifo`.
 *
 * VRRP lines come from notify_fifo() in keepalived/vrrp/vrrp_notify.c (acassen/keepalived):
 *   `%s "%s" %s %d\n`  →  `INSTANCE "VI_1" MASTER 100`, `GROUP "G1" BACKUP 0`
 * with the state one of MASTER BACKUP FAULT STOP DELETED, or an event: MASTER_RX_LOWER_PRI
 * (send_event_notify()), MASTER_PRIORITY / BACKUP_PRIORITY (send_instance_priority_notifies()),
 * `{UNKNOWN}` otherwise. The number is the instance's effective priority; groups always print 0.
 * The shared notify_fifo also carries the checker's `VS …` and `RS …` lines
 * (keepalived/check/ipwrapper.c notify_fifo_vs()/notify_fifo_rs()), which write their
 * terminating NUL too, so a NUL can start the next line.
 */
import { MAX_LINE, parseIntIn, quote, reject, type CarpState, type Reject } from './text.js';

export type KeepalivedState = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP' | 'DELETED';

export type KeepalivedFifoLine =
  | {
      kind: 'instance' | 'group';
      name: string;
      state: KeepalivedState;
      /** What a carp follower makes of it: FAULT, STOP and DELETED hold no VIP, as INIT. */
      carpState: CarpState;
      priority: number;
    }
  /** The effective priority changed without a state change. */
  | { kind: 'priority'; name: string; state: 'MASTER' | 'BACKUP'; priority: number }
  /** A MASTER heard a lower-priority advert. */
  | { kind: 'rx-lower-priority'; name: string; priority: number }
  /** A checker line (VS/RS) or an `{UNKNOWN}` state. */
  | { kind: 'other' }
  | Reject;

const VRRP = /^(INSTANCE|GROUP) "(.*)" (\S+) (\d{1,3})$/;

export function carpStateOfKeepalived(state: KeepalivedState): CarpState {
  return state === 'MASTER' ? 'MASTER' : state === 'BACKUP' ? 'BACKUP' : 'INIT';
}

/** Parses one line (newline optional). Never throws. */
export function parseKeepalivedFifoLine(line: string): KeepalivedFifoLine {
  if (typeof line !== 'string') return reject('not a string');
  if (line.length > MAX_LINE) return reject(`longer than ${MAX_LINE} characters`);
  const l = line.replace(/^\0+/, '').replace(/\n$/, '');
  if (l.startsWith('VS ') || l.startsWith('RS ')) return { kind: 'other' };
  const m = VRRP.exec(l);
  if (!m) return reject(`not a keepalived notify line: ${quote(l)}`);
  const name = m[2]!;
  const priority = parseIntIn(m[4], 0, 255);
  if (name === '' || priority === undefined) return reject(`malformed notify line: ${quote(l)}`);
  const what = m[3]!;
  const group = m[1] === 'GROUP';
  switch (what) {
    case 'MASTER':
    case 'BACKUP':
    case 'FAULT':
    case 'STOP':
    case 'DELETED':
      return { kind: group ? 'group' : 'instance', name, state: what, carpState: carpStateOfKeepalived(what), priority };
    case 'MASTER_PRIORITY':
    case 'BACKUP_PRIORITY':
      return group
        ? reject(`priority event for a group: ${quote(l)}`)
        : { kind: 'priority', name, state: what === 'MASTER_PRIORITY' ? 'MASTER' : 'BACKUP', priority };
    case 'MASTER_RX_LOWER_PRI':
      return group ? reject(`priority event for a group: ${quote(l)}`) : { kind: 'rx-lower-priority', name, priority };
    case '{UNKNOWN}':
      return { kind: 'other' };
    default:
      return reject(`unknown keepalived state: ${quote(what)}`);
  }
}
