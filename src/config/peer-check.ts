/**
 * `carpd check --peer`: this node's vhids against another node's. CARP hashes the password and
 * the address list into every advert, so a mismatch there makes each node drop the other's
 * adverts and both become MASTER: a silent split brain.
 */
import { Code, error, warning, type Diagnostic } from './errors.js';
import { formatRef } from './format.js';
import type { CarpModel, VhidConfig } from './model.js';
import { canonicalIp, splitCidr } from './netaddr.js';
import { locate, MAX_PASSWORD_BYTES } from './validate.js';

/** The bytes of a password the kernels use. */
function keyOf(password: string): string {
  return Buffer.from(password, 'utf8').subarray(0, MAX_PASSWORD_BYTES).toString('hex');
}

/** The hashed address set: every distinct address, without prefix, link-locals aside (OpenBSD sends without them). */
function hashedAddresses(v: VhidConfig): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of v.addresses) {
    const c = splitCidr(a);
    const ip = c?.ip ?? a.split('/')[0]!;
    if (c?.family === 6 && /^fe[89ab]/i.test(ip)) continue;
    out.set(canonicalIp(ip), ip);
  }
  return out;
}

/** Pairs each of our vhids with the peer's: same vhid number, then same interface, then shared addresses. */
function pair(ours: VhidConfig[], theirs: VhidConfig[]): { pairs: [VhidConfig, VhidConfig][]; onlyOurs: VhidConfig[]; onlyTheirs: VhidConfig[] } {
  const left = [...theirs];
  const pairs: [VhidConfig, VhidConfig][] = [];
  const onlyOurs: VhidConfig[] = [];
  const take = (pred: (t: VhidConfig) => boolean) => {
    const i = left.findIndex(pred);
    return i === -1 ? undefined : left.splice(i, 1)[0];
  };
  const pending: VhidConfig[] = [];
  for (const v of ours) {
    const t = take((x) => x.vhid === v.vhid && x.interface === v.interface);
    if (t) pairs.push([v, t]);
    else pending.push(v);
  }
  for (const v of pending) {
    const mine = hashedAddresses(v);
    const t = take((x) => x.vhid === v.vhid && [...hashedAddresses(x).keys()].some((a) => mine.has(a))) ?? take((x) => x.vhid === v.vhid);
    if (t) pairs.push([v, t]);
    else onlyOurs.push(v);
  }
  return { pairs, onlyOurs, onlyTheirs: left };
}

/**
 * Diagnostics located on our side (the peer's location for a vhid we lack), in the order of our
 * vhids, then the peer's vhids we lack.
 */
export function comparePeers(ours: CarpModel, theirs: CarpModel): Diagnostic[] {
  const byVhid = new Map<VhidConfig, Diagnostic[]>(ours.vhids.map((v) => [v, []]));
  const { pairs, onlyOurs, onlyTheirs } = pair(ours.vhids, theirs.vhids);
  for (const [v, t] of pairs) {
    const out = byVhid.get(v)!;
    const peerAt = formatRef(locate(t));
    if ((v.version ?? 2) !== (t.version ?? 2)) {
      const name = (x?: number) => (x === 3 ? 'VRRPv3' : 'CARP');
      out.push(
        error(
          locate(v, 'version'),
          Code.PEER_MISMATCH,
          `vhid ${v.vhid}: ${name(v.version)} here, ${name(t.version)} on the peer (${peerAt}); each drops the other's adverts and both become MASTER`,
        ),
      );
      continue;
    }
    if (v.version === 3) {
      out.push(...vrrpPeer(v, t, peerAt));
      continue;
    }
    if (v.interface !== t.interface) {
      out.push(
        warning(
          locate(v, 'interface'),
          Code.WARN_PEER_INTERFACE,
          `vhid ${v.vhid} is on ${v.interface} here but on ${t.interface} on the peer (${peerAt}); check both are on the same segment`,
        ),
      );
    }
    if (keyOf(v.password) !== keyOf(t.password)) {
      out.push(
        error(
          locate(v, 'password'),
          Code.PEER_MISMATCH,
          `vhid ${v.vhid}: the password differs from the peer's (${peerAt}); each node would drop the other's adverts and both become MASTER`,
        ),
      );
    }
    if (v.advbase !== t.advbase) {
      out.push(
        error(
          locate(v, 'advbase'),
          Code.PEER_MISMATCH,
          `vhid ${v.vhid}: advbase ${v.advbase} here, ${t.advbase} on the peer (${peerAt}); the election compares advbase first, so the skews no longer decide`,
        ),
      );
    }
    const a = hashedAddresses(v);
    const b = hashedAddresses(t);
    const onlyHere = [...a].filter(([k]) => !b.has(k)).map(([, ip]) => ip);
    const onlyThere = [...b].filter(([k]) => !a.has(k)).map(([, ip]) => ip);
    if (onlyHere.length > 0 || onlyThere.length > 0) {
      const parts = [onlyHere.length > 0 ? `only here: ${onlyHere.join(' ')}` : '', onlyThere.length > 0 ? `only on the peer: ${onlyThere.join(' ')}` : '']
        .filter(Boolean)
        .join('; ');
      out.push(
        error(
          locate(v),
          Code.PEER_MISMATCH,
          `vhid ${v.vhid}: the addresses differ from the peer's (${peerAt}): ${parts}; CARP hashes the address list, ` +
            "so each node would drop the other's adverts and both become MASTER",
        ),
      );
    }
    if (v.advskew === t.advskew) {
      out.push(
        warning(
          locate(v, 'advskew'),
          Code.WARN_PEER_ADVSKEW,
          `vhid ${v.vhid}: advskew ${v.advskew} is the same on the peer (${peerAt}); give the intended master the lower one`,
        ),
      );
    }
  }
  for (const v of onlyOurs) {
    byVhid.get(v)!.push(error(locate(v), Code.PEER_MISSING, `vhid ${v.vhid} on ${v.interface} is not configured on the peer`));
  }
  const out = [...byVhid.values()].flat();
  for (const t of onlyTheirs) {
    out.push(error(locate(t), Code.PEER_MISSING, `vhid ${t.vhid} on ${t.interface} (the peer's) is not configured here`));
  }
  return out;
}

/**
 * A VRRPv3 pair: no password to compare and no address hash, so a different list still elects
 * (keepalived and FreeBSD accept it); equal priorities elect by address; different intervals are
 * legal but the RFC says they SHOULD match (keepalived logs the mismatch).
 */
function vrrpPeer(v: VhidConfig, t: VhidConfig, peerAt: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  const [pv, pt] = [v.priority ?? 100, t.priority ?? 100];
  if (pv === pt) {
    out.push(
      warning(
        locate(v, 'priority'),
        Code.WARN_PEER_ADVSKEW,
        `vhid ${v.vhid}: priority ${pv} is the same on the peer (${peerAt}); the higher address wins, give the intended master the higher priority`,
      ),
    );
  }
  if ((v.intervalCs ?? 100) !== (t.intervalCs ?? 100)) {
    out.push(
      warning(
        locate(v, 'intervalCs'),
        Code.WARN_PEER_ADVSKEW,
        `vhid ${v.vhid}: interval ${v.intervalCs ?? 100} cs here, ${t.intervalCs ?? 100} cs on the peer (${peerAt}); RFC 5798 says they should match`,
      ),
    );
  }
  const a = new Set(v.addresses.map((x) => x.split('/')[0]!.toLowerCase()));
  const b = new Set(t.addresses.map((x) => x.split('/')[0]!.toLowerCase()));
  if (a.size !== b.size || [...a].some((x) => !b.has(x))) {
    out.push(
      warning(
        locate(v),
        Code.WARN_PEER_ADVSKEW,
        `vhid ${v.vhid}: the addresses differ from the peer's (${peerAt}); VRRP still elects, but the new master would not hold the same VIPs`,
      ),
    );
  }
  return out;
}
