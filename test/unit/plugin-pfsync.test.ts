/** The built-in `pfsync` plugin: ifconfig pfsync0 on the BSDs, conntrackd as primary-backup.sh drives it on Linux. */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import type { TransitionEvent } from '../../src/host/log.js';
import { FakeService, golden, goldenPlan, LAN, planLines, type Golden, type GoldenOptions } from './plugin-harness.js';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const LINUX = { syncdev: 'eth1', syncpeer: '10.9.9.2', address: '10.9.9.1' };
const CT = 'conntrackd -C /etc/conntrackd/conntrackd.conf';

async function pfsync(o: Omit<GoldenOptions, 'plugins'>, options: Record<string, string>): Promise<Golden> {
  const g = await golden({ ...o, plugins: [{ name: 'pfsync', options }] });
  roots.push(g.root);
  return g;
}

const conntrackd = (running: boolean, start = 'service conntrackd start') => new FakeService({ status: `${CT} -s`, start, stop: '-' }, { running });

describe('pfsync plugin', () => {
  for (const os of ['openbsd', 'freebsd'] as const) {
    it(`${os}: pfsync0 up on BACKUP and before MASTER (before the VIP), down on INIT`, async () => {
      const g = await pfsync({ os }, { syncdev: 'em2', syncpeer: '10.9.9.2', defer: 'yes' });
      const ifc = (h: string, how: string) => `${h}: ifconfig pfsync0 syncdev em2 syncpeer 10.9.9.2 defer ${how}`;
      assert.deepEqual(g.take(), ['setup: ifconfig pfsync0', ifc('init', 'down')]);
      await g.go(LAN, 'INIT', 'BACKUP');
      await g.go(LAN, 'BACKUP', 'MASTER');
      await g.go(LAN, 'MASTER', 'BACKUP');
      await g.go(LAN, 'BACKUP', 'INIT', 'shutdown');
      assert.deepEqual(g.take(), [ifc('backup', 'up'), ifc('pre-master', 'up'), ifc('backup', 'up'), ifc('init', 'down')]);
      assert.deepEqual(g.files(), [], 'nothing rendered on the BSDs');
      await g.stop();
    });
  }

  it('openbsd: multicast (no syncpeer), defer off by default, another pfsync interface', async () => {
    const g = await pfsync({ os: 'openbsd' }, { syncdev: 'vlan9', interface: 'pfsync1' });
    await g.go(LAN, 'INIT', 'BACKUP');
    assert.deepEqual(g.take().slice(-1), ['backup: ifconfig pfsync1 syncdev vlan9 -defer up']);
    await g.stop();
  });

  it('linux: pre-master commits, flushes, resyncs and bulk-sends; backup shortens timers and asks for a resync; INIT shortens timers', async () => {
    const svc = conntrackd(true);
    const g = await pfsync({ os: 'linux', answer: svc.answer }, LINUX);
    assert.deepEqual(g.take(), ['setup: conntrackd -v', `init: ${CT} -s`, `init: ${CT} -t`]);
    await g.go(LAN, 'INIT', 'BACKUP');
    assert.deepEqual(g.take(), [`backup: ${CT} -s`, `backup: ${CT} -t`, `backup: ${CT} -n`]);
    await g.go(LAN, 'BACKUP', 'MASTER');
    assert.deepEqual(g.take(), [`pre-master: ${CT} -s`, `pre-master: ${CT} -c`, `pre-master: ${CT} -f`, `pre-master: ${CT} -R`, `pre-master: ${CT} -B`]);
    await g.go(LAN, 'MASTER', 'INIT', 'hardware interface down');
    assert.deepEqual(g.take(), [`init: ${CT} -s`, `init: ${CT} -t`]);
    svc.running = false;
    await g.go(LAN, 'INIT', 'BACKUP', 'shutdown');
    await g.go(LAN, 'BACKUP', 'INIT', 'shutdown');
    assert.deepEqual(g.take(), [
      `backup: ${CT} -s`,
      'backup: rm -f /var/lock/conntrack.lock',
      'backup: service conntrackd start',
      `backup: ${CT} -s`,
      `backup: ${CT} -t`,
      `backup: ${CT} -n`,
      `init: ${CT} -s`,
      `init: ${CT} -t`,
    ]);
    assert.ok(g.hooks.every((h) => h.result === 'ok'));
    await g.stop();
  });

  it('linux: the VIP step waits for the whole pre-master sequence (the gate resolves after -B)', async () => {
    const g = await pfsync({ os: 'linux', answer: conntrackd(true).answer }, LINUX);
    await g.go(LAN, 'INIT', 'BACKUP');
    g.take();
    const ev: TransitionEvent = {
      seq: 99,
      time: '2026-01-01T00:00:00.000Z',
      vhid: 1,
      interface: 'eth0',
      key: LAN,
      from: 'BACKUP',
      to: 'MASTER',
      reason: 'test',
    };
    const gate = g.host.handle(ev);
    assert.ok(gate, 'a scope changes: the engine gets a gate');
    await gate;
    assert.equal(g.calls.at(-1), `pre-master: ${CT} -B`);
    await g.host.idle();
    await g.stop();
  });

  it('linux, control = direct: conntrackd -d with our own config, lock file and socket', async () => {
    const conf = '/srv/lab/ct.conf';
    const svc = new FakeService({ status: `conntrackd -C ${conf} -s`, start: `conntrackd -C ${conf} -d`, stop: '-' }, { running: false });
    const g = await pfsync(
      { os: 'linux', answer: svc.answer },
      { ...LINUX, control: 'direct', conf, socket: '/srv/lab/ct.sock', lockfile: '/srv/lab/ct.lock', logfile: '/srv/lab/ct.log' },
    );
    await g.go(LAN, 'INIT', 'BACKUP');
    assert.deepEqual(g.take().slice(-6), [
      `backup: conntrackd -C ${conf} -s`,
      'backup: rm -f /srv/lab/ct.lock',
      `backup: conntrackd -C ${conf} -d`,
      `backup: conntrackd -C ${conf} -s`,
      `backup: conntrackd -C ${conf} -t`,
      `backup: conntrackd -C ${conf} -n`,
    ]);
    assert.equal(
      g.file(conf),
      `# Rendered by carpd (plugin pfsync, vhid:1@eth0). FTFW sync on eth1; carpd commits,
# flushes, resyncs and bulk-sends before this node takes the VIP (conntrack-tools' primary-backup.sh).
Sync {
	Mode FTFW {
		DisableExternalCache Off
	}
	UDP {
		IPv4_address 10.9.9.1
		IPv4_Destination_Address 10.9.9.2
		Port 3780
		Interface eth1
		Checksum on
	}
}

General {
	HashSize 32768
	HashLimit 131072
	LogFile /srv/lab/ct.log
	Syslog off
	LockFile /srv/lab/ct.lock
	UNIX {
		Path /srv/lab/ct.sock
	}
	NetlinkBufferSize 2097152
	NetlinkBufferSizeMaxGrowth 8388608
	Filter From Userspace {
		Address Ignore {
			IPv4_address 127.0.0.1
			IPv4_address 10.9.9.1
			IPv4_address 198.18.0.101
		}
	}
}
`,
    );
    await g.stop();
  });

  it('linux: multicast without syncpeer', async () => {
    const g = await pfsync({ os: 'linux' }, { syncdev: 'eth1', address: '10.9.9.1', group: '225.0.0.51', port: '3781' });
    const text = g.file('/etc/conntrackd/conntrackd.conf');
    assert.match(text, /\tMulticast \{\n\t\tIPv4_address 225\.0\.0\.51\n\t\tGroup 3781\n\t\tIPv4_interface 10\.9\.9\.1\n\t\tInterface eth1\n/);
    assert.doesNotMatch(text, /UDP/);
    await g.stop();
  });

  it('linux: without address, setup fails and the node stays demoted', async () => {
    const g = await pfsync({ os: 'linux' }, { syncdev: 'eth1' });
    assert.equal(g.hooks[0]!.error?.code, 'CARPD_ERR_HOOK_FAILED');
    assert.match(g.hooks[0]!.error!.message, /address/);
    assert.deepEqual(g.demotions, ['carp boot:plugins 240']);
    await g.stop();
  });

  it('linux: conntrackd that never answers after its start fails the hook (bounded wait)', async () => {
    const g = await pfsync({ os: 'linux', answer: (a) => (a.at(-1) === '-s' ? { exitCode: 1 } : {}) }, LINUX);
    await g.go(LAN, 'INIT', 'BACKUP');
    const failed = g.hooks.filter((h) => h.result !== 'ok');
    assert.deepEqual(
      failed.map((h) => h.hook),
      ['backup'],
    );
    assert.match(failed[0]!.error!.message, /does not answer/);
    await g.stop();
  });

  it('plan (Linux): the conntrackd sequence comes before the VIP step', async () => {
    assert.deepEqual(planLines(await goldenPlan({ os: 'linux', plugins: [{ name: 'pfsync', options: LINUX }] }, LAN, 'MASTER')), [
      'render pfsync: file /etc/conntrackd/conntrackd.conf',
      `pre-master pfsync: ${CT} -s`,
      `pre-master pfsync: ${CT} -c`,
      `pre-master pfsync: ${CT} -f`,
      `pre-master pfsync: ${CT} -R`,
      `pre-master pfsync: ${CT} -B`,
      'vip: add 198.18.0.101/24 on eth0; gratuitous ARP',
    ]);
  });
});
