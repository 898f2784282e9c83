/**
 * The keepalived.conf lines an admin adds so carpd can follow keepalived (checked against
 * Debian 12's keepalived 2.2.7 and keepalived.conf(5)):
 *
 *   global_defs { notify_fifo /run/carpd/keepalived.fifo }     events (vrrp_notify.c notify_fifo())
 *   track_file carpd { file /run/carpd/demote  weight -1 }     carpd's demotion (track_file.c)
 *   vrrp_instance VI_1 { … track_file { carpd } }              in every instance carpd demotes
 *
 * `weight -1` lowers the priority by carpd's demotion count. keepalived.conf(5): an instance in a
 * sync group needs `sync_group_tracking_weight` on the group (else weight 0 is forced), or the
 * track_file goes on the vrrp_sync_group instead; an address owner (priority 255) never moves.
 */

export const DEFAULT_FIFO = '/run/carpd/keepalived.fifo';
export const DEFAULT_TRACK_FILE = '/run/carpd/demote';
/** The track_file's name in keepalived.conf. */
export const TRACK_FILE_NAME = 'carpd';

/** keepalived.conf names are bare words; a path must not break the line it sits on. */
function word(s: string, what: string): string {
  if (!/^[A-Za-z0-9_./@:+-]+$/.test(s)) throw new Error(`${what} must be a plain path or name: ${JSON.stringify(s)}`);
  return s;
}

/** The one line keepalived.conf needs for events. */
export function notifyFifoLine(fifo = DEFAULT_FIFO): string {
  return `global_defs { notify_fifo ${word(fifo, 'fifo')} }`;
}

/** The whole snippet: the FIFO, the track_file, and what each vrrp_instance (or sync group) adds. */
export function keepalivedConfSnippet(opts: { fifo?: string; trackFile?: string; name?: string } = {}): string {
  const name = word(opts.name ?? TRACK_FILE_NAME, 'track_file name');
  return [
    '# carpd follows keepalived: events through notify_fifo, demotion through track_file.',
    notifyFifoLine(opts.fifo),
    `track_file ${name} {`,
    `    file ${word(opts.trackFile ?? DEFAULT_TRACK_FILE, 'track file')}`,
    '    weight -1',
    '}',
    '# In every vrrp_instance carpd may demote (in a sync group: add sync_group_tracking_weight to the group):',
    `#     track_file { ${name} }`,
    '',
  ].join('\n');
}
