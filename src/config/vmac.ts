/**
 * The virtual MAC of a vhid (`vmac = yes`): its macvlan's name and address. Pure, shared by the
 * engine (which sends, receives and holds the VIPs on that interface), the adapter that creates it
 * (src/adapters/vmac.ts) and validation.
 */
import { Code, error, parseSource, type Diagnostic } from './errors.js';
import type { CarpModel, VhidConfig } from './model.js';

/**
 * `carpv<VHID>`, at most 8 characters (IFNAMSIZ allows 15). Not keepalived's `vrrp.<VRID>`: the
 * interop tests and real hosts run keepalived beside carpd, and a name of carpd's own makes it
 * plain who created the interface (and who may delete it after a kill -9). One name per vhid
 * number: the same vhid with `vmac` on two interfaces of one host is refused (validation), as it
 * would be one interface name for two macvlans.
 */
export function vmacName(vhid: number): string {
  return `carpv${vhid}`;
}

/**
 * 00:00:5e:00:01:VHID, the IANA VRRP IPv4 range the kernels' CARP uses for both address families
 * (FreeBSD ip_carp.c carp_alloc(): `sc->sc_addr = {0, 0, 0x5e, 0, 1, vhid}`; OpenBSD carp_set_enaddr()).
 */
export function vmacAddress(vhid: number): string {
  return `00:00:5e:00:01:${(vhid & 0xff).toString(16).padStart(2, '0')}`;
}

/** Where a vhid's adverts, VIPs and gratuitous ARP live: its macvlan with `vmac`, else its interface. */
export function wireInterface(cfg: Pick<VhidConfig, 'vhid' | 'interface' | 'vmac'>): string {
  return cfg.vmac ? vmacName(cfg.vhid) : cfg.interface;
}

/**
 * What `carpd check` (and start-up) refuses about `vmac`:
 * - the same vhid number with vmac on two interfaces: one `carpv<VHID>` name for two macvlans;
 * - vmac with a unicast peer: the peer's unicast adverts are addressed to the parent's MAC and
 *   arrive on the parent, not on the macvlan carpd listens on (keepalived's man page likewise
 *   requires `vmac_xmit_base` with `unicast_peer`), and FreeBSD sends unicast adverts from the real
 *   MAC anyway (ip_carp.c carp_output() tags only multicast ones with the vMAC).
 */
export function vmacDiagnostics(model: CarpModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  const byName = new Map<string, VhidConfig>();
  for (const v of model.vhids) {
    if (!v.vmac) continue;
    const where = v.fieldSources?.vmac ?? v.fieldSources?.header ?? parseSource(v.source);
    const name = vmacName(v.vhid);
    const first = byName.get(name);
    if (first && first.interface !== v.interface) {
      out.push(
        error(
          where,
          Code.CONFIG_CONFLICT,
          `vmac: vhid ${v.vhid} on ${v.interface} and on ${first.interface} would both need the macvlan ${name}; use vmac on one of them, or another vhid`,
        ),
      );
    } else if (!first) byName.set(name, v);
    // RFC 5798 §7.3: a VRRP router's IPv6 virtual MAC is 00:00:5e:00:02:VRID, not the :01: of the
    // one macvlan carpd makes (FreeBSD keeps :01: for both). One vhid would need two macvlans.
    if (v.version === 3 && v.addresses.some((a) => a.includes(':'))) {
      out.push(
        error(
          where,
          Code.UNSUPPORTED,
          `vmac: vhid ${v.vhid} on ${v.interface} is VRRPv3 with IPv6 addresses, whose virtual MAC is 00:00:5e:00:02:${v.vhid.toString(16).padStart(2, '0')} (RFC 5798 §7.3); carpd's vMAC is IPv4's 00:00:5e:00:01:xx only: drop vmac or the IPv6 addresses`,
        ),
      );
    }
    if (v.peer !== undefined || v.peer6 !== undefined) {
      out.push(
        error(
          where,
          Code.UNSUPPORTED,
          `vmac: vhid ${v.vhid} on ${v.interface} has a unicast peer: unicast adverts arrive on ${v.interface}, not on its macvlan; drop vmac or the peer`,
        ),
      );
    }
  }
  return out;
}
