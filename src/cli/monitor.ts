/**
 * `carpd monitor -i IF`: print the CARP adverts heard on an interface, one line each (like
 * `tcpdump proto 112`, decoded). Used by `carpd lab` as its observer. Bounded by --count/--seconds.
 */
import { RawTransport } from '../adapters/raw-transport.js';
import { decodeHeard } from '../proto/heard.js';
import { intOpt, last, parseArgs, UsageError } from './args.js';
import type { Io } from '../ports/io.js';

export async function monitorCommand(args: string[], io: Io): Promise<number> {
  const p = parseArgs(args, ['-i', '--interface', '--count', '--seconds', '--srcip'], ['--json']);
  const ifname = last(p, '-i', '--interface');
  if (!ifname) throw new UsageError('monitor needs -i IF');
  const count = intOpt(p, '--count', 1, 1e9, 1e9);
  const seconds = intOpt(p, '--seconds', 1, 7 * 86400, 3600);
  const json = p.flags.has('--json');
  const srcip = last(p, '--srcip');
  const socket = new RawTransport().open({ ifname, ...(srcip ? { srcip } : {}) });
  const origin = Date.now() - performance.now();
  let seen = 0;
  return new Promise((resolve) => {
    const done = (code: number) => {
      clearTimeout(timer);
      process.off('SIGTERM', onSig);
      process.off('SIGINT', onSig);
      socket.close();
      resolve(code);
    };
    const onSig = () => done(0);
    const timer = setTimeout(() => done(0), seconds * 1000);
    process.on('SIGTERM', onSig);
    process.on('SIGINT', onSig);
    socket.onMessage((pkt) => {
      const h = decodeHeard(pkt, origin + performance.now());
      if (!h) return;
      if (json) io.out(JSON.stringify(h));
      else
        io.out(
          `${new Date(h.t).toISOString()} ${h.src} > 224.0.0.18: CARP vhid ${h.vhid} advbase ${h.advbase} advskew ${h.advskew} demote ${h.demote} ttl ${h.ttl}`,
        );
      if (++seen >= count) done(0);
    });
  });
}
