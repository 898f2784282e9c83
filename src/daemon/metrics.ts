/**
 * Prometheus text exposition (format 0.0.4): per-vhid state and counters, netstat's counters,
 * drops by reason, demotion, maintenance, transitions and plugin hook durations. Served by
 * `carpctl stats --prometheus` and, when `global.metrics` is set, by a small HTTP listener
 * (loopback unless an address says otherwise).
 */
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { LOG, type Logger } from '../ports/logger.js';
import type { CarpState } from '../core/machine.js';
import type { CounterName } from '../proto/counters.js';
import type { ControlCounters } from './reports.js';
import type { EventLog } from './event-log.js';
import type { StateSource } from '../ports/state-source.js';
import type { Maintenance } from './maintenance.js';

export interface MetricsSource {
  engine: StateSource;
  events?: EventLog;
  maintenance?: Maintenance;
  control?: ControlCounters;
}

const STATE_VALUE: Record<CarpState, number> = { INIT: 0, BACKUP: 1, MASTER: 2 };
const DROPS: CounterName[] = [
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
];

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string | number>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(String(v))}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Writer {
  readonly lines: string[] = [];
  family(
    name: string,
    type: 'gauge' | 'counter' | 'summary',
    help: string,
    samples: [Record<string, string | number>, number][],
    suffix?: (i: number) => string,
  ): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    samples.forEach(([l, v], i) => this.lines.push(`${name}${suffix?.(i) ?? ''}${labels(l)} ${Number.isFinite(v) ? v : 0}`));
  }
}

/** The whole exposition, one string ending in a newline. */
export function renderMetrics(src: MetricsSource): string {
  const { engine } = src;
  const w = new Writer();
  const vhids = engine.status();
  const vl = (s: { key: string; vhid: number; interface: string }) => ({ key: s.key, vhid: s.vhid, interface: s.interface });
  w.family(
    'carpd_vhid_state',
    'gauge',
    'CARP state of the vhid: 0 INIT, 1 BACKUP, 2 MASTER.',
    vhids.map((s) => [vl(s), STATE_VALUE[s.state]]),
  );
  w.family(
    'carpd_vhid_master',
    'gauge',
    '1 while this node is MASTER of the vhid.',
    vhids.map((s) => [vl(s), s.state === 'MASTER' ? 1 : 0]),
  );
  w.family(
    'carpd_vhid_advskew',
    'gauge',
    'The advskew this node advertises, demotion folded in.',
    vhids.map((s) => [vl(s), s.wireAdvskew]),
  );
  w.family(
    'carpd_vhid_demote',
    'gauge',
    'The demote byte this node advertises.',
    vhids.map((s) => [vl(s), s.demote]),
  );
  // VRRPv3 vhids (version = 3) carry a priority instead of advskew and demote.
  const vrrp = vhids.filter((s) => s.vrrp);
  if (vrrp.length > 0) {
    w.family(
      'carpd_vhid_vrrp_priority',
      'gauge',
      'The VRRPv3 priority this node advertises, demotion folded in.',
      vrrp.map((s) => [vl(s), s.vrrp!.wirePriority]),
    );
  }
  const per = vhids.map((s) => ({ s, c: engine.vhidStats(s.key) }));
  w.family(
    'carpd_vhid_adverts_sent_total',
    'counter',
    'Adverts sent for the vhid.',
    per.map(({ s, c }) => [vl(s), c?.advertsSent ?? 0]),
  );
  w.family(
    'carpd_vhid_adverts_received_total',
    'counter',
    'Valid adverts received from peers for the vhid.',
    per.map(({ s, c }) => [vl(s), c?.advertsReceived ?? 0]),
  );
  w.family(
    'carpd_vhid_badauth_total',
    'counter',
    'Adverts for the vhid discarded for bad authentication.',
    per.map(({ s, c }) => [vl(s), c?.badauth ?? 0]),
  );
  w.family(
    'carpd_vhid_transitions_to_master_total',
    'counter',
    'Transitions of the vhid to MASTER.',
    per.map(({ s, c }) => [vl(s), c?.transitionsToMaster ?? 0]),
  );
  // Only carpd's own engine reconciles VIPs; a followed engine reports no such counter.
  const repaired = per.filter(({ c }) => c?.vipRestored !== undefined || c?.vipRemoved !== undefined);
  if (repaired.length > 0) {
    w.family(
      'carpd_vhid_vip_restored_total',
      'counter',
      'VIPs of the vhid found missing from the kernel while MASTER and added again (a deleted primary address took them, or someone deleted them).',
      repaired.map(({ s, c }) => [vl(s), c?.vipRestored ?? 0]),
    );
    w.family(
      'carpd_vhid_vip_removed_total',
      'counter',
      'VIPs of the vhid found on the interface while not MASTER and removed.',
      repaired.map(({ s, c }) => [vl(s), c?.vipRemoved ?? 0]),
    );
  }
  if (src.events) {
    const t: [Record<string, string>, number][] = [];
    for (const [key, byState] of src.events.transitions) for (const [to, n] of Object.entries(byState)) t.push([{ key, to }, n ?? 0]);
    w.family('carpd_transitions_total', 'counter', 'State transitions by vhid and target state.', t);
  }
  const st = engine.stats;
  w.family('carpd_packets_received_total', 'counter', 'CARP packets received (netstat: packets received).', [
    [{ family: 'ipv4' }, st.carps_ipackets],
    [{ family: 'ipv6' }, st.carps_ipackets6],
  ]);
  w.family('carpd_packets_sent_total', 'counter', 'CARP packets sent (netstat: packets sent).', [
    [{ family: 'ipv4' }, st.carps_opackets],
    [{ family: 'ipv6' }, st.carps_opackets6],
  ]);
  w.family(
    'carpd_packets_dropped_total',
    'counter',
    'Received CARP packets discarded, by reason (the carps_ counter without its prefix).',
    DROPS.map((n) => [{ reason: n.slice('carps_'.length) }, st[n]]),
  );
  w.family('carpd_receive_errors_total', 'counter', 'Receive errors on the CARP sockets (each one reopens the socket); send errors are not counted here.', [
    [{}, st.carps_ierrors],
  ]);
  w.family('carpd_transitions_to_master_total', 'counter', 'Transitions to master (netstat: carps_preempt).', [[{}, st.carps_preempt]]);
  const peers = [...engine.badAuthByPeer].map(([peer, n]): [Record<string, string>, number] => {
    const sp = peer.indexOf(' ');
    return [{ src: peer.slice(0, sp), key: peer.slice(sp + 1) }, n];
  });
  w.family('carpd_badauth_by_peer_total', 'counter', 'Adverts discarded for bad authentication, by source and vhid.', peers);
  const groups = new Set(['carp', ...vhids.flatMap((s) => s.groups), ...engine.ledger.entries().map((e) => e.group)]);
  w.family(
    'carpd_demotion',
    'gauge',
    'Demotion counter per interface group.',
    [...groups].sort().map((g) => [{ group: g }, engine.ledger.total(g)]),
  );
  if (src.maintenance) w.family('carpd_maintenance', 'gauge', '1 while the node is in maintenance mode.', [[{}, src.maintenance.state.on ? 1 : 0]]);
  if (src.events) {
    const hooks = [...src.events.hooks.values()];
    w.family(
      'carpd_hook_duration_seconds',
      'summary',
      'Plugin hook run durations.',
      hooks.flatMap((h): [Record<string, string>, number][] => [
        [{ plugin: h.plugin, hook: h.hook }, h.sumMs / 1000],
        [{ plugin: h.plugin, hook: h.hook }, h.count],
      ]),
      (i) => (i % 2 === 0 ? '_sum' : '_count'),
    );
    w.family(
      'carpd_hook_runs_total',
      'counter',
      'Plugin hook runs by result.',
      hooks.flatMap((h) => Object.entries(h.results).map(([result, n]): [Record<string, string>, number] => [{ plugin: h.plugin, hook: h.hook, result }, n])),
    );
  }
  if (src.control) {
    w.family('carpd_control_requests_total', 'counter', 'Control socket requests.', [[{}, src.control.requests]]);
    w.family('carpd_control_malformed_total', 'counter', 'Control socket requests refused as malformed.', [[{}, src.control.malformed]]);
  }
  return `${w.lines.join('\n')}\n`;
}

/** A metrics listen address: `PORT` or `ADDRESS:PORT` (`[v6]:PORT`); no address means loopback. */
export function parseListen(spec: string): { host: string; port: number } {
  const s = spec.trim();
  let host = '127.0.0.1';
  let port: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1]!;
    port = v6[2]!;
  } else if (/^\d+$/.test(s)) {
    port = s;
  } else {
    const i = s.lastIndexOf(':');
    if (i < 0) throw new Error(`metrics: "${spec}" is not PORT or ADDRESS:PORT`);
    if (i > 0) host = s.slice(0, i);
    port = s.slice(i + 1);
  }
  const p = Number(port);
  if (!/^\d+$/.test(port) || p > 65535) throw new Error(`metrics: bad port in "${spec}"`);
  if (!isIP(host) && !/^[A-Za-z0-9.-]+$/.test(host)) throw new Error(`metrics: bad address in "${spec}"`);
  return { host, port: p };
}

/** The HTTP listener: GET /metrics. */
export class MetricsServer {
  private server: Server | undefined;
  private spec: string | undefined;

  constructor(
    private readonly render: () => string,
    private readonly logger: Logger,
  ) {}

  /** Listen on `spec` (or stop when undefined); a no-op when it is already what we listen on. */
  async reconfigure(spec: string | undefined): Promise<void> {
    if (spec === this.spec) return;
    await this.close();
    if (spec === undefined || spec === '') return;
    const { host, port } = parseListen(spec);
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('carpd: only GET /metrics here\n');
        return;
      }
      let body: string;
      try {
        body = this.render();
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
    });
    server.on('error', (err) => this.logger.log(LOG.ERR, `carpd: metrics: ${err.message}`));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.spec = spec;
  }

  /** The bound port (useful with port 0 in tests). */
  get port(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.spec = undefined;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}
