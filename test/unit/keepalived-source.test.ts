/**
 * KeepalivedSource on a fake OS: notify lines become transitions keyed `INSTANCE@name`, dumps set
 * the state when keepalived started first, a half-written dump is not believed, a new or vanished
 * pid re-reads the state, and the demotion ledger lands in the track file (0 again at stop).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FifoReader, FileIdentity, KeepalivedIo } from '../../src/adapters/keepalived-io.js';
import { KeepalivedSource, MAX_TRACK_VALUE } from '../../src/adapters/keepalived-source.js';
import type { TransitionEvent } from '../../src/ports/state-source.js';
import { keepalivedConfSnippet, notifyFifoLine } from '../../src/sources/keepalived-conf.js';
import { fixture } from '../helpers/fake-kernel/fixtures.js';

const DATA = '/k/keepalived.data';
const JSON_FILE = '/k/keepalived.json';
const PID = '/k/keepalived.pid';
const TRACK = '/k/demote';

/** A dump of one instance VI_1 in `state`, in dump_vrrp()'s shape. */
function data(state: string, extra: string[] = []): string {
  return [
    '------< VRRP Topology >------',
    ' VRRP Instance = VI_1',
    `   State = ${state}`,
    ...(state === 'BACKUP' ? ['   Master router = 198.51.100.3'] : []),
    '   Interface = eth0',
    '   Virtual Router ID = 51',
    '   Priority = 150',
    '   Effective priority = 150',
    '   Virtual IP (1):',
    '     198.51.100.100/24 dev eth0 scope global set',
    '   Tracked files :',
    '     carpd, weight -1',
    ...extra,
    '',
  ].join('\n');
}

class FakeIo implements KeepalivedIo {
  files = new Map<string, string>();
  private ino = 1;
  private ids = new Map<string, FileIdentity>();
  alive = new Set<number>();
  signals: [number, number][] = [];
  /** What keepalived writes on a dump signal: the final text, or a sequence (half-written first). */
  onDump: (sig: number) => string[] | undefined = () => undefined;
  writes: [string, string][] = [];
  fifoAtPath = true;
  opened = 0;
  closed = 0;
  private feed: ((chunk: Buffer) => void) | undefined;

  put(path: string, text: string): void {
    this.files.set(path, text);
    this.ids.set(path, { ino: this.ino++, size: text.length, mtimeMs: this.ino });
  }

  /** Writes into the FIFO as keepalived would. */
  write(text: string): void {
    this.feed!(Buffer.from(text));
  }

  async ensureFifo(): Promise<void> {}
  async openFifo(_path: string, onData: (chunk: Buffer) => void): Promise<FifoReader> {
    this.opened++;
    this.feed = onData;
    this.fifoAtPath = true;
    return {
      close: () => {
        this.closed++;
      },
      stillAtPath: async () => this.fifoAtPath,
    };
  }
  async readText(path: string): Promise<string | undefined> {
    const next = this.pending.get(path)?.shift();
    if (next !== undefined) this.files.set(path, next);
    return this.files.get(path);
  }
  private pending = new Map<string, string[]>();
  async identity(path: string): Promise<FileIdentity | undefined> {
    return this.ids.get(path);
  }
  signal(pid: number, sig: number): boolean {
    if (!this.alive.has(pid)) return false;
    if (sig === 0) return true;
    this.signals.push([pid, sig]);
    const out = this.onDump(sig);
    if (out) {
      const path = sig === 10 ? DATA : JSON_FILE;
      this.put(path, out[0]!);
      this.pending.set(path, [...out]);
    }
    return true;
  }
  names = new Map<number, string>();
  async processName(pid: number): Promise<string | undefined> {
    return this.alive.has(pid) ? (this.names.get(pid) ?? 'keepalived') : undefined;
  }
  async processAgeMs(): Promise<number> {
    return 60_000;
  }
  async writeAtomic(path: string, text: string): Promise<void> {
    this.writes.push([path, text]);
    this.files.set(path, text);
  }
  async signum(name: 'DATA' | 'JSON'): Promise<number> {
    return name === 'DATA' ? 10 : 36;
  }
}

function setup(opts: { running?: boolean; dump?: (sig: number) => string[] | undefined; groupTrackFiles?: Record<string, string> } = {}) {
  const io = new FakeIo();
  if (opts.running ?? true) {
    io.alive.add(4242);
    io.put(PID, '4242\n');
  }
  io.onDump = opts.dump ?? (() => undefined);
  const logs: string[] = [];
  const src = new KeepalivedSource({
    logger: { log: (_l, m) => logs.push(m) },
    io,
    fifo: '/k/fifo',
    trackFile: TRACK,
    pidFile: PID,
    dataFile: DATA,
    jsonFile: JSON_FILE,
    pidCheckMs: 100,
    resnapshotMs: 60_000,
    dumpTimeoutMs: 300,
    ...(opts.groupTrackFiles ? { groupTrackFiles: opts.groupTrackFiles } : {}),
  });
  const events: TransitionEvent[] = [];
  const groups: TransitionEvent[] = [];
  src.on('transition', (ev: TransitionEvent) => events.push(ev));
  src.on('group', (ev: TransitionEvent) => groups.push(ev));
  return { io, src, events, groups, logs };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('notify lines become transitions keyed INSTANCE@name; a repeated state and checker lines emit nothing', async () => {
  const { io, src, events } = setup({ running: false });
  await src.start();
  io.write('INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" BACKUP 100\n');
  io.write('VS [192.0.2.10]:tcp:80 UP\n\0RS [192.0.2.21]:tcp:80 [192.0.2.10]:tcp:80 UP\n\0');
  // A line split across two reads is one line.
  io.write('INSTANCE "VI_1" MAS');
  io.write('TER 100\n');
  assert.deepEqual(
    events.map((e) => `${e.key} ${e.from}->${e.to} ${e.seq}`),
    ['INSTANCE@VI_1 INIT->BACKUP 1', 'INSTANCE@VI_1 BACKUP->MASTER 2'],
  );
  assert.match(events[1]!.reason, /MASTER, priority 100/);
  assert.equal(src.counters.fifoRejected, 0);
  await src.stop();
});

test('FAULT, STOP and DELETED hold no VIP: the instance goes INIT, and DELETED forgets it', async () => {
  const { io, src, events } = setup({ running: false });
  await src.start();
  io.write('INSTANCE "VI_1" MASTER 100\nINSTANCE "VI_1" FAULT 100\nINSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" DELETED 100\n');
  assert.deepEqual(
    events.map((e) => e.to),
    ['MASTER', 'INIT', 'BACKUP', 'INIT'],
  );
  assert.deepEqual(src.status(), []);
  await src.stop();
});

test('GROUP lines are sync-group events, not vhid transitions', async () => {
  const { io, src, events, groups } = setup({ running: false });
  await src.start();
  io.write('GROUP "G1" MASTER 0\n');
  assert.deepEqual(events, []);
  assert.deepEqual(
    groups.map((g) => `${g.key} ${g.from}->${g.to}`),
    ['GROUP@G1 INIT->MASTER'],
  );
  assert.deepEqual(src.syncGroups(), [{ name: 'G1', state: 'MASTER', kaState: 'MASTER' }]);
  await src.stop();
});

test('keepalived started first: the SIGUSR1 dump at start sets states, vrid, interface, VIPs and sync groups', async () => {
  const { io, src, events } = setup({ dump: (sig) => (sig === 10 ? [fixture('keepalived-data.txt')] : undefined) });
  await src.start();
  assert.deepEqual(io.signals, [[4242, 10]]);
  assert.deepEqual(
    events.map((e) => `${e.key} ${e.vhid}@${e.interface} ${e.from}->${e.to}`),
    ['INSTANCE@VI_WAN 51@eth0 INIT->MASTER', 'INSTANCE@VI_LAN 52@eth1 INIT->BACKUP'],
  );
  const wan = src.status().find((s) => s.key === 'INSTANCE@VI_WAN')!;
  assert.deepEqual(wan.addresses, ['198.51.100.1/24', '198.51.100.10/32']);
  assert.deepEqual(wan.groups, ['carp', 'G_EDGE']);
  assert.equal(src.status().find((s) => s.key === 'INSTANCE@VI_DMZ')!.state, 'INIT');
  assert.equal(src.status().find((s) => s.key === 'INSTANCE@VI_LAN')!.masterSrc, '192.0.2.3');
  assert.deepEqual(src.syncGroups(), [{ name: 'G_EDGE', state: 'MASTER', kaState: 'MASTER' }]);
  assert.deepEqual(src.keepalivedView('INSTANCE@VI_WAN')?.trackFiles, [{ name: 'carpd_demote', weight: -1, reverse: false }]);
  await src.stop();
});

test('an instance first heard on the FIFO asks for a dump, which fills in its vrid, interface and VIPs', async () => {
  let dumps = 0;
  const { io, src, events } = setup({ dump: () => [dumps++ === 0 ? '------< VRRP Topology >------\n' : data('BACKUP')] });
  await src.start();
  io.write('INSTANCE "VI_1" BACKUP 150\n');
  assert.deepEqual(
    events.map((e) => `${e.key} ${e.vhid}@${e.interface} ${e.to}`),
    ['INSTANCE@VI_1 0@ BACKUP'],
  );
  await sleep(400);
  assert.equal(dumps, 2);
  const st = src.status()[0]!;
  assert.equal(`${st.vhid}@${st.interface} ${st.addresses.join(',')}`, '51@eth0 198.51.100.100/24');
  assert.equal(events.length, 1);
  await src.stop();
});

test('a dump read half-written is not believed: reads go on until two agree', async () => {
  const full = data('MASTER');
  const { src, events } = setup({ dump: () => [full.slice(0, full.indexOf('   State')), full.slice(0, full.indexOf('   Interface')), full] });
  await src.start();
  assert.deepEqual(
    events.map((e) => `${e.to} ${e.vhid}@${e.interface}`),
    ['MASTER 51@eth0'],
  );
  assert.deepEqual(src.status()[0]!.addresses, ['198.51.100.100/24']);
  await src.stop();
});

test('a notify line that arrives while a dump is taken wins over the dump, which may be older', async () => {
  const { io, src, events } = setup();
  io.onDump = () => {
    // keepalived wrote the dump (BACKUP), then went MASTER and wrote its notify line before we read the dump.
    io.write('INSTANCE "VI_1" MASTER 150\n');
    return [data('BACKUP')];
  };
  await src.start();
  assert.deepEqual(
    events.map((e) => e.to),
    ['MASTER'],
  );
  assert.equal(src.status()[0]!.vhid, 51);
  await src.stop();
});

test('an unreadable data dump falls back to the JSON dump (SIGJSON)', async () => {
  const json = JSON.stringify([
    {
      data: {
        iname: 'VI_1',
        ifp_ifname: 'eth0',
        vrid: 51,
        base_priority: 150,
        effective_priority: 150,
        state: 1,
        vips: ['198.51.100.100/24 dev eth0 scope global'],
      },
    },
  ]);
  const { io, src, events } = setup({ dump: (sig) => [sig === 10 ? 'garbage without sections\n' : json] });
  await src.start();
  assert.deepEqual(
    io.signals.map(([, s]) => s),
    [10, 36],
  );
  assert.deepEqual(
    events.map((e) => `${e.key} ${e.to}`),
    ['INSTANCE@VI_1 BACKUP'],
  );
  await src.stop();
});

test('no dump within the timeout leaves the state alone and counts a failure', async () => {
  const { src, events } = setup();
  await src.start();
  assert.deepEqual(events, []);
  assert.equal(src.counters.dumpFailures, 1);
  await src.stop();
});

test('keepalived gone (kill -9): its instances go INIT; a new pid takes a fresh dump', async () => {
  let state = 'MASTER';
  const { io, src, events } = setup({ dump: () => [data(state)] });
  await src.start();
  io.alive.delete(4242);
  await sleep(250);
  assert.deepEqual(
    events.map((e) => e.to),
    ['MASTER', 'INIT'],
  );
  assert.match(events[1]!.reason, /not running/);
  state = 'BACKUP';
  io.alive.add(4343);
  io.put(PID, '4343\n');
  await sleep(250);
  assert.deepEqual(
    events.map((e) => e.to),
    ['MASTER', 'INIT', 'BACKUP'],
  );
  assert.equal(src.keepalivedPid, 4343);
  await src.stop();
});

test('a pid file naming another program (pid reused after kill -9) is never signalled', async () => {
  const { io, src, events } = setup({ dump: () => [data('MASTER')] });
  io.names.set(4242, 'sshd');
  await src.start();
  assert.deepEqual(io.signals, []);
  assert.deepEqual(events, []);
  assert.equal(src.counters.dumps, 0);
  await src.stop();
});

test('a signal keepalived may not receive (EPERM) is logged and counted, never thrown', async () => {
  const { io, src, logs } = setup();
  io.signal = (_pid: number, sig: number) => {
    if (sig === 0) return true;
    throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
  };
  await src.start();
  assert.equal(src.counters.dumpFailures, 1);
  assert.ok(logs.some((l) => l.includes('EPERM')));
  await src.stop();
});

test('a FIFO that keepalived removed or replaced is opened again', async () => {
  const { io, src } = setup({ running: false });
  await src.start();
  io.fifoAtPath = false;
  await sleep(250);
  assert.equal(io.opened, 2);
  assert.equal(io.closed, 1);
  await src.stop();
});

test('demotion goes into the track file as the ledger total, capped below FAULT, and stop() writes 0', async () => {
  const { io, src } = setup({ running: false });
  await src.start();
  assert.equal(io.files.get(TRACK), '0\n');
  assert.equal(src.demote('carp', 'maintenance', 100), 100);
  assert.equal(src.setDemotion('carp', 'health', 20), 120);
  await src.demotionWritten();
  assert.equal(io.files.get(TRACK), '120\n');
  src.demote('web', 'plugin', 200);
  await src.demotionWritten();
  // keepalived reads −254 as FAULT (process_update_vrrp_track_file_status()): a demoted node must still take over when alone.
  assert.equal(io.files.get(TRACK), `${MAX_TRACK_VALUE}\n`);
  assert.deepEqual(
    src.ledger.entries().map((e) => `${e.group}/${e.by}=${e.count}`),
    ['carp/health=20', 'carp/maintenance=100', 'web/plugin=200'],
  );
  await src.stop();
  assert.equal(io.files.get(TRACK), '0\n');
});

test('a group with its own track file is demoted there only', async () => {
  const { io, src } = setup({ running: false, groupTrackFiles: { G_EDGE: '/k/demote-edge' } });
  await src.start();
  src.demote('G_EDGE', 'plugin', 50);
  src.demote('carp', 'admin', 5);
  await src.demotionWritten();
  assert.equal(io.files.get('/k/demote-edge'), '50\n');
  assert.equal(io.files.get(TRACK), '5\n');
  await src.stop();
});

test('many demotions in a row end with the last total in the file, writes never overlapping', async () => {
  const { io, src } = setup({ running: false });
  await src.start();
  for (let i = 1; i <= 50; i++) src.setDemotion('carp', 'flap', i);
  await src.demotionWritten();
  assert.equal(io.files.get(TRACK), '50\n');
  assert.ok(io.writes.length < 50, `${io.writes.length} writes`);
  await src.stop();
});

test('keepalived has no forced state, no VIP hold, no packet counters', async () => {
  const { io, src } = setup({ running: false });
  await src.start();
  io.write('INSTANCE "VI_1" MASTER 100\n');
  assert.deepEqual(src.capabilities, { forceState: false, prePhaseHoldsVip: false, packetCounters: false });
  assert.equal(src.force('INSTANCE@VI_1', 'BACKUP'), false);
  assert.equal(src.refreshGarp(), 0);
  await src.netSettled('INSTANCE@VI_1');
  assert.equal(src.vhidStats('INSTANCE@VI_1')?.transitionsToMaster, 1);
  assert.equal(src.kind, 'keepalived');
  await src.stop();
});

test('the phase gate hears every transition but is never awaited', async () => {
  const { io, src, events } = setup({ running: false });
  await src.start();
  const gated: string[] = [];
  src.setPhaseGate((ev) => {
    gated.push(ev.to);
    return new Promise(() => undefined);
  });
  io.write('INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" MASTER 100\n');
  assert.deepEqual(gated, ['BACKUP', 'MASTER']);
  assert.equal(events.length, 2);
  await src.stop();
});

test('the keepalived.conf snippet names the FIFO and the track file, and refuses a path that would break the line', () => {
  assert.equal(notifyFifoLine(), 'global_defs { notify_fifo /run/carpd/keepalived.fifo }');
  const snippet = keepalivedConfSnippet({ trackFile: '/run/carpd/demote' });
  assert.match(snippet, /track_file carpd \{\n {4}file \/run\/carpd\/demote\n {4}weight -1\n\}/);
  assert.match(snippet, /track_file \{ carpd \}/);
  assert.throws(() => notifyFifoLine('/run/x }\nvrrp_script'));
});
