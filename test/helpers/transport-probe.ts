/**
 * Runs the Linux adapters inside a network namespace for the integration tests (a raw socket
 * opens in the namespace of its process). Prints one JSON object per line on stdout.
 *
 *   transport-probe.js transport --if IF [--src IP] [--group G] [--send N@DST]… [--interval MS] [--duration MS]
 *   transport-probe.js net add|del|garp IF CIDR
 *   transport-probe.js net primary|link IF
 *   transport-probe.js net watch IF [--duration MS]
 *
 * Everything is bounded: the transport mode exits after --duration ms (default 5000, max 30000)
 * or on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { LinuxNet } from '../../src/adapters/linux-net.js';
import type { OpenSocketOptions } from '../../src/ports/transport.js';
import { RawTransport } from '../../src/adapters/raw-transport.js';

const MAX_DURATION_MS = 30_000;

function out(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** The IPv4 header fields the tests look at. */
export function describeIpv4(pkt: Buffer): Record<string, unknown> {
  const ihl = (pkt[0]! & 0x0f) * 4;
  return {
    version: pkt[0]! >> 4,
    tos: pkt[1],
    totalLength: pkt.readUInt16BE(2),
    df: (pkt[6]! & 0x40) !== 0,
    ttl: pkt[8],
    proto: pkt[9],
    src: [...pkt.subarray(12, 16)].join('.'),
    dst: [...pkt.subarray(16, 20)].join('.'),
    payload: pkt.subarray(ihl).toString('hex'),
  };
}

function duration(value: string | undefined, fallback: number): number {
  const ms = value === undefined ? fallback : Number(value);
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`bad duration ${value}`);
  return Math.min(ms, MAX_DURATION_MS);
}

async function transport(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      if: { type: 'string' },
      src: { type: 'string' },
      group: { type: 'string' },
      send: { type: 'string', multiple: true },
      interval: { type: 'string' },
      duration: { type: 'string' },
    },
  });
  if (!values.if) throw new Error('--if is required');
  const opts: OpenSocketOptions = { ifname: values.if };
  if (values.src) opts.srcip = values.src;
  if (values.group) opts.group = values.group;
  const sock = new RawTransport().open(opts);
  sock.onMessage((pkt) => out({ event: 'recv', ...describeIpv4(pkt) }));
  sock.onSendError((err) => out({ event: 'send-error', message: err.message }));

  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    sock.close();
    out({ event: 'done' });
    process.exit(0);
  };
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
  setTimeout(finish, duration(values.duration, 5_000));
  out({ event: 'ready', ifname: sock.ifname });

  const interval = duration(values.interval, 20);
  let seq = 0;
  for (const spec of values.send ?? []) {
    const [count, dst] = spec.split('@');
    const n = Math.min(Number(count), 1000);
    for (let i = 0; i < n; i++) {
      seq++;
      const payload = Buffer.alloc(36);
      payload[0] = 0x21;
      payload[1] = seq & 0xff;
      payload.write('carpd-probe', 16, 'latin1');
      if (dst) sock.send(payload, dst);
      else sock.send(payload);
      out({ event: 'sent', seq, dst: dst ?? 'group' });
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  }
  out({ event: 'sent-all', count: seq });
}

async function net(argv: string[]): Promise<void> {
  const [op, ifname, cidr, ...rest] = argv;
  const backend = new LinuxNet({ logger: { log: (level, message) => out({ event: 'log', level, message }) } });
  try {
    switch (op) {
      case 'add':
        await backend.addVip(ifname!, cidr!);
        out({ ok: true });
        break;
      case 'del':
        await backend.delVip(ifname!, cidr!);
        out({ ok: true });
        break;
      case 'garp': {
        const t0 = performance.now();
        await backend.garp(ifname!, cidr!);
        out({ ok: true, ms: Math.round(performance.now() - t0) });
        break;
      }
      case 'primary':
        out({ ok: true, value: backend.primaryAddress(ifname!) ?? null });
        break;
      case 'link':
        out({ ok: true, value: backend.linkUp(ifname!) });
        break;
      case 'watch': {
        const { values } = parseArgs({ args: [cidr ?? '', ...rest].filter(Boolean), options: { duration: { type: 'string' } } });
        const stop = backend.watchLinks([ifname!], (name, up) => out({ event: 'link', ifname: name, up }));
        out({ event: 'ready', up: backend.linkUp(ifname!) });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, duration(values.duration, 5_000));
          const end = (): void => {
            clearTimeout(timer);
            resolve();
          };
          process.once('SIGTERM', end);
          process.once('SIGINT', end);
        });
        stop();
        out({ event: 'done' });
        break;
      }
      default:
        throw new Error(`unknown net op ${op}`);
    }
  } catch (err) {
    const e = err as { code?: string; message: string };
    out({ ok: false, code: e.code ?? null, message: e.message });
    process.exitCode = 1;
  }
}

async function main(): Promise<void> {
  const [mode, ...argv] = process.argv.slice(2);
  if (mode === 'transport') await transport(argv);
  else if (mode === 'net') await net(argv);
  else throw new Error('usage: transport-probe.js transport|net …');
}

main().catch((err: Error) => {
  out({ event: 'fatal', code: (err as { code?: string }).code ?? null, message: err.message });
  process.exit(2);
});
