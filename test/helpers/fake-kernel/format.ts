/**
 * The simulated kernel's printers. Each follows the C function named on it, as recorded in
 * test/fixtures/kernel/README.md; they are written apart from src/sources so that a round trip
 * (print here, parse there) checks the parsers against the recorded formats, not against themselves.
 */
import { isIPv4 } from 'node:net';
import type { CarpState } from '../../../src/core/machine.js';
import { openbsdLink, type FakeKernelState, type FakeVhid } from './state.js';

function v4(addr: string): number {
  return addr.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);
}

function v4str(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** ` netmask 0x%x broadcast %s` for a v4 CIDR: FreeBSD in_status_nl(), OpenBSD in_status(). */
function inetLine(c: string): string {
  const [addr, plen] = c.split('/') as [string, string];
  const p = Number(plen);
  const mask = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
  return `\tinet ${addr} netmask 0x${mask.toString(16)} broadcast ${v4str((v4(addr) | ~mask) >>> 0)}`;
}

function inet6Line(c: string): string {
  const [addr, plen] = c.split('/') as [string, string];
  return `\tinet6 ${addr} prefixlen ${plen}`;
}

function groupBy(vhids: FakeVhid[]): Map<string, FakeVhid[]> {
  const m = new Map<string, FakeVhid[]>();
  for (const v of vhids) m.set(v.ifname, [...(m.get(v.ifname) ?? []), v]);
  return m;
}

const FREEBSD_LO0 = [
  'lo0: flags=1008049<UP,LOOPBACK,RUNNING,MULTICAST,LOWER_UP> metric 0 mtu 16384',
  '\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>',
  '\tinet 127.0.0.1 netmask 0xff000000',
  '\tinet6 ::1 prefixlen 128',
  '\tgroups: lo',
];

/** FreeBSD 14 ifconfig: status_nl() header, in_status_nl()/in6_status_nl() with ` vhid %d`, carp_status() per vhid. */
export function freebsdIfconfig(st: FakeKernelState, only?: string): string {
  const out: string[] = only === undefined || only === 'lo0' ? [...FREEBSD_LO0] : [];
  let index = 1;
  for (const [ifname, vhids] of groupBy(st.vhids)) {
    index++;
    if (only !== undefined && only !== ifname) continue;
    out.push(`${ifname}: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500`);
    out.push(
      '\toptions=4e527bb<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,JUMBO_MTU,VLAN_HWCSUM,TSO4,TSO6,LRO,WOL_MAGIC,VLAN_HWFILTER,VLAN_HWTSO,RXCSUM_IPV6,TXCSUM_IPV6,HWSTATS,MEXTPG>',
    );
    out.push(`\tether 00:08:a2:0c:11:${index.toString(16).padStart(2, '0')}`);
    for (const v of vhids) for (const a of v.addresses) if (isIPv4(a.split('/')[0]!)) out.push(`${inetLine(a)} vhid ${v.vhid}`);
    for (const v of vhids) for (const a of v.addresses) if (!isIPv4(a.split('/')[0]!)) out.push(`${inet6Line(a)} vhid ${v.vhid}`);
    for (const v of vhids) {
      out.push(`\tcarp: ${v.state} vhid ${v.vhid} advbase ${v.advbase} advskew ${v.advskew}`);
      out.push('\t      peer 224.0.0.18 peer6 ff02::12');
    }
    out.push('\tmedia: Ethernet autoselect (1000baseT <full-duplex>)', '\tstatus: active', '\tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>');
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/**
 * OpenBSD ifconfig: status() prints header, lladdr, index line, carp_status() (one vhid per carpN
 * here: the fake keeps no carpnodes), getifgroups(), `status:` from get_linkstate(), addresses.
 * The carpdevs are listed first as plain Ethernet interfaces.
 */
export function openbsdIfconfig(st: FakeKernelState, only?: string): string {
  const out: string[] = [];
  const carps = groupBy(st.vhids);
  const devs = [...new Set(st.vhids.map((v) => v.carpdev).filter((d): d is string => d !== undefined))];
  let index = 0;
  for (const dev of devs) {
    index++;
    if (only !== undefined && only !== dev) continue;
    out.push(`${dev}: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500`);
    out.push(`\tlladdr 52:54:00:12:34:${index.toString(16).padStart(2, '0')}`);
    out.push(`\tindex ${index} priority 0 llprio 3`, '\tmedia: Ethernet autoselect (1000baseT full-duplex)', '\tstatus: active');
  }
  for (const [ifname, vhids] of carps) {
    index++;
    if (only !== undefined && only !== ifname && only !== 'carp') continue;
    const v = vhids[0]!;
    out.push(`${ifname}: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500`);
    out.push(`\tlladdr 00:00:5e:00:01:${v.vhid.toString(16).padStart(2, '0')}`);
    out.push(`\tindex ${index} priority 15 llprio 3`);
    out.push(`\tcarp: ${v.state} carpdev ${v.carpdev ?? 'none'} vhid ${v.vhid} advbase ${v.advbase} advskew ${v.advskew}`);
    out.push('\tgroups: carp', `\tstatus: ${openbsdLink(st.vhids, ifname)}`);
    for (const a of v.addresses) out.push(isIPv4(a.split('/')[0]!) ? inetLine(a) : inet6Line(a));
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/** The interface index the OpenBSD listing above gives a carp interface (carpdevs first). */
export function openbsdIfIndex(st: FakeKernelState, ifname: string): number {
  const devs = new Set(st.vhids.map((v) => v.carpdev).filter((d) => d !== undefined));
  return devs.size + [...groupBy(st.vhids).keys()].indexOf(ifname) + 1;
}

/** devctl_notify("CARP", "%u@%s", carp_states[state], NULL) in carp_set_state(). */
export function devdCarpLine(vhid: number, ifname: string, state: CarpState): string {
  return `!system=CARP subsystem=${vhid}@${ifname} type=${state}\n`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** ctime(3): `%.3s %.3s%3d %.2d:%.2d:%.2d %d\n`, here in UTC. */
function ctime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]}${String(d.getUTCDate()).padStart(3)} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${d.getUTCFullYear()}\n`;
}

/** monitor()'s header and print_rtmsg()'s RTM_IFINFO line for a carp interface. */
export function routeIfinfo(ifIndex: number, ifname: string, link: string, at: number): string {
  return `got message of size 176 on ${ctime(at)}RTM_IFINFO: iface status change: len 176, if# ${ifIndex}, name ${ifname}, link: ${link}, mtu: 1500, flags:<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>\n`;
}
