/**
 * Counter names of `struct carpstats` (FreeBSD/OpenBSD sys/netinet/ip_carp.h), in struct order,
 * then carpd's own, not in the kernels' struct, worded the same way by netstat's format below:
 * `carps_replay` (the kernels have no replay protection: "XXX Replay protection goes here" in
 * carp_input_c()) and `carps_ierrors` (receive errors, counted apart from send errors).
 */
export const COUNTER_NAMES = [
  'carps_ipackets',
  'carps_ipackets6',
  'carps_badif',
  'carps_badttl',
  'carps_hdrops',
  'carps_badsum',
  'carps_badver',
  'carps_badlen',
  'carps_badauth',
  'carps_badvhid',
  'carps_badaddrs',
  'carps_replay',
  'carps_opackets',
  'carps_opackets6',
  'carps_onomem',
  'carps_ostates',
  'carps_preempt',
  // carpd's own: receive errors on the CARP socket (each one reopens it), apart from send errors.
  'carps_ierrors',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];
export type CarpStats = Record<CounterName, number>;

/**
 * Why a received packet was dropped: the counter name without `carps_`. checkAdvert returns all
 * but `badif` (the interface check belongs to whoever owns the socket) and `replay` (an
 * authenticated advert whose counter this vhid has seen before: src/core/replay.ts, the node).
 */
export type DropReason = 'badif' | 'badttl' | 'hdrops' | 'badlen' | 'badsum' | 'badver' | 'badvhid' | 'badauth' | 'replay';

/** The counter a drop increments. */
export function dropCounter(reason: DropReason): CounterName {
  return `carps_${reason}`;
}

/** All counters at zero. */
export function newStats(): CarpStats {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as CarpStats;
}

/**
 * netstat's format per counter: FreeBSD usr.bin/netstat/inet.c carp_stats(), `%s` being the
 * plural "s" (its p() macro; p2() lines have none). FreeBSD prints neither badif nor preempt,
 * and ostates only under `#if notyet`: those three use OpenBSD's netstat text and FreeBSD's
 * disabled line. indent is netstat's tab count (sub-counts of a total are indented twice).
 */
const NETSTAT_FORMAT: Record<CounterName, { indent: 1 | 2; fmt: string }> = {
  carps_ipackets: { indent: 1, fmt: 'packet%s received (IPv4)' },
  carps_ipackets6: { indent: 1, fmt: 'packet%s received (IPv6)' },
  carps_badif: { indent: 2, fmt: 'packet%s discarded for bad interface' },
  carps_badttl: { indent: 2, fmt: 'packet%s discarded for wrong TTL' },
  carps_hdrops: { indent: 2, fmt: 'packet%s shorter than header' },
  carps_badsum: { indent: 2, fmt: 'discarded for bad checksum%s' },
  carps_badver: { indent: 2, fmt: 'discarded packet%s with a bad version' },
  carps_badlen: { indent: 2, fmt: 'discarded because packet too short' },
  carps_badauth: { indent: 2, fmt: 'discarded for bad authentication' },
  carps_badvhid: { indent: 2, fmt: 'discarded for bad vhid' },
  carps_badaddrs: { indent: 2, fmt: 'discarded because of a bad address list' },
  // carpd's own; worded like its neighbours.
  carps_replay: { indent: 2, fmt: 'discarded as replayed (counter seen before)' },
  carps_opackets: { indent: 1, fmt: 'packet%s sent (IPv4)' },
  carps_opackets6: { indent: 1, fmt: 'packet%s sent (IPv6)' },
  carps_onomem: { indent: 2, fmt: 'send failed due to mbuf memory error' },
  carps_ostates: { indent: 2, fmt: 'state update%s sent' },
  carps_preempt: { indent: 1, fmt: 'transition%s to master' },
  carps_ierrors: { indent: 1, fmt: 'receive error%s (socket reopened)' },
};

/** The wording of each `netstat -s -p carp` line, plural form ("packets received (IPv4)"). */
export const NETSTAT_WORDING: Readonly<Record<CounterName, string>> = Object.fromEntries(
  COUNTER_NAMES.map((n) => [n, NETSTAT_FORMAT[n].fmt.replace('%s', 's')]),
) as Record<CounterName, string>;

/**
 * The body of `netstat -s -p carp` ("\t3 packets received (IPv4)", ...), in struct order as
 * netstat prints it; like netstat -s -s, `all = false` leaves out the zero lines.
 */
export function netstatLines(stats: CarpStats, all = true): string[] {
  const lines: string[] = [];
  for (const name of COUNTER_NAMES) {
    const n = stats[name];
    if (!all && n === 0) continue;
    const { indent, fmt } = NETSTAT_FORMAT[name];
    lines.push(`${'\t'.repeat(indent)}${n} ${fmt.replace('%s', n === 1 ? '' : 's')}`);
  }
  return lines;
}
