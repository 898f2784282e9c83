/** The built-in `bgpd` plugin: OpenBGPD sessions or daemon following the VIP; golden argv and bgpd.conf. */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { PluginsInvalidError } from '../../src/host/errors.js';
import type { OsName } from '../../src/host/types.js';
import { FakeService, golden, goldenPlan, LAN, lanVhid, OSES, planLines, type Golden, type GoldenOptions } from './plugin-harness.js';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const NEIGHBORS = { as: '65001', neighbor: '192.0.2.254 65000,192.0.2.253 65010' };
const START: Record<OsName, string> = { openbsd: 'rcctl -f start bgpd', freebsd: 'service openbgpd onestart', linux: 'service openbgpd start' };
const STOP: Record<OsName, string> = { openbsd: 'rcctl stop bgpd', freebsd: 'service openbgpd onestop', linux: 'service openbgpd stop' };
const CONF: Record<OsName, string> = { openbsd: '/etc/bgpd.conf', freebsd: '/usr/local/etc/bgpd.conf', linux: '/etc/bgpd.conf' };

async function bgpd(o: Omit<GoldenOptions, 'plugins'>, options: Record<string, string>): Promise<Golden> {
  const g = await golden({ ...o, plugins: [{ name: 'bgpd', options }] });
  roots.push(g.root);
  return g;
}

const service = (os: OsName, status = 'bgpctl show summary', running = true) => new FakeService({ status, start: START[os], stop: STOP[os] }, { running });

describe('bgpd plugin', () => {
  for (const os of OSES) {
    it(`${os}, mode neighbors: sessions up after the VIP, down before it goes; bgpd started if it is not running`, async () => {
      const svc = service(os);
      const g = await bgpd({ os, answer: svc.answer }, NEIGHBORS);
      const st = (h: string) => `${h}: bgpctl show summary`;
      const nb = (h: string, how: string) => [`${h}: bgpctl neighbor 192.0.2.254 ${how}`, `${h}: bgpctl neighbor 192.0.2.253 ${how}`];
      // Boot: sessions down; the new bgpd.conf is checked and reloaded into the running bgpd.
      assert.deepEqual(g.take(), [st('pre-backup'), ...nb('pre-backup', 'down'), st('backup'), `backup: bgpd -n -f ${CONF[os]}`, 'backup: bgpctl reload']);
      await g.go(LAN, 'INIT', 'BACKUP');
      assert.deepEqual(g.take(), [st('pre-backup'), ...nb('pre-backup', 'down')]);
      await g.go(LAN, 'BACKUP', 'MASTER');
      assert.deepEqual(g.take(), [st('master'), ...nb('master', 'up')]);
      await g.go(LAN, 'MASTER', 'BACKUP');
      assert.deepEqual(g.take(), [st('pre-backup'), ...nb('pre-backup', 'down')]);
      svc.running = false;
      await g.go(LAN, 'BACKUP', 'MASTER');
      assert.deepEqual(g.take(), [st('master'), `master: ${START[os]}`, st('master'), ...nb('master', 'up')]);
      await g.go(LAN, 'MASTER', 'INIT', 'hardware interface down');
      assert.deepEqual(g.take(), [st('pre-backup'), ...nb('pre-backup', 'down')]);
      assert.ok(g.hooks.every((h) => h.result === 'ok'));
      await g.stop();
    });
  }

  it('linux: the rendered bgpd.conf marks the sessions down and announces the VIP', async () => {
    const g = await bgpd({ os: 'linux' }, { ...NEIGHBORS, router_id: '198.18.0.1', socket: '/run/carpd/bgpd.sock' });
    assert.equal(
      g.file('/etc/bgpd.conf'),
      `# Rendered by carpd (plugin bgpd, vhid:1@eth0). The routes below are announced from the CARP MASTER
# only: carpd brings the sessions up there and takes them down on the BACKUP.
AS 65001
router-id 198.18.0.1
socket "/run/carpd/bgpd.sock"

network 198.18.0.101/32

neighbor 192.0.2.254 {
	remote-as 65000
	descr "carpd"
	down "carpd: not CARP MASTER"
}
allow to 192.0.2.254
allow from 192.0.2.254
neighbor 192.0.2.253 {
	remote-as 65010
	descr "carpd"
	down "carpd: not CARP MASTER"
}
allow to 192.0.2.253
allow from 192.0.2.253
`,
    );
    assert.ok(
      g.take().every((c) => c.includes('bgpctl -s /run/carpd/bgpd.sock') || c.includes('bgpd -n')),
      'bgpctl talks to the configured socket',
    );
    await g.stop();
  });

  it('openbsd: depend on the vhid’s carp interface (auto), a named one, or none', async () => {
    const depends = async (options: Record<string, string>, name?: string) => {
      const g = await golden({
        os: 'openbsd',
        vhids: [lanVhid(name ? { name } : { name: undefined })],
        plugins: [{ name: 'bgpd', options: { ...NEIGHBORS, ...options } }],
      });
      roots.push(g.root);
      const lines = g
        .file('/etc/bgpd.conf')
        .split('\n')
        .filter((l) => l.includes('depend on'))
        .map((l) => l.trim());
      await g.stop();
      return lines;
    };
    assert.deepEqual(await depends({}, 'carp3'), ['depend on carp3', 'depend on carp3']);
    assert.deepEqual(await depends({ depend_on: 'carp7' }, 'carp3'), ['depend on carp7', 'depend on carp7']);
    assert.deepEqual(await depends({ depend_on: 'none' }, 'carp3'), []);
    assert.deepEqual(await depends({}), [], 'no carp interface name: nothing to depend on');
    const linux = await bgpd({ os: 'linux' }, { ...NEIGHBORS, depend_on: 'carp0' });
    assert.doesNotMatch(linux.file('/etc/bgpd.conf'), /depend/, 'only OpenBSD has carp interfaces');
    await linux.stop();
  });

  for (const os of OSES) {
    it(`${os}, mode daemon: bgpd started on MASTER (sessions not marked down), stopped before the VIP goes`, async () => {
      const svc = service(os, 'bgpctl show summary', false);
      const g = await bgpd({ os, answer: svc.answer }, { ...NEIGHBORS, mode: 'daemon', network: '203.0.113.0/24' });
      await g.go(LAN, 'INIT', 'BACKUP');
      await g.go(LAN, 'BACKUP', 'MASTER');
      await g.go(LAN, 'MASTER', 'BACKUP');
      assert.deepEqual(g.take(), [
        'pre-backup: bgpctl show summary',
        'pre-backup: bgpctl show summary',
        'master: bgpctl show summary',
        `master: ${START[os]}`,
        'master: bgpctl show summary',
        'pre-backup: bgpctl show summary',
        `pre-backup: ${STOP[os]}`,
        'pre-backup: bgpctl show summary',
      ]);
      const text = g.file(CONF[os]);
      assert.doesNotMatch(text, /^\tdown /m);
      assert.match(text, /^network 203\.0\.113\.0\/24$/m);
      await g.stop();
    });
  }

  it('control = direct: bgpd -f CONF, and pkill of exactly that command line', async () => {
    const conf = '/srv/lab.1/bgpd.conf';
    const stop = 'pkill -TERM -x -f bgpd -f /srv/lab\\.1/bgpd\\.conf';
    const svc = new FakeService({ status: 'bgpctl show summary', start: `bgpd -f ${conf}`, stop }, { lingers: 1 });
    const g = await bgpd({ os: 'linux', answer: svc.answer }, { ...NEIGHBORS, mode: 'daemon', control: 'direct', conf });
    await g.go(LAN, 'INIT', 'BACKUP');
    g.take();
    await g.go(LAN, 'BACKUP', 'MASTER');
    await g.go(LAN, 'MASTER', 'BACKUP');
    assert.deepEqual(g.take(), [
      'master: bgpctl show summary',
      `master: bgpd -f ${conf}`,
      'master: bgpctl show summary',
      'pre-backup: bgpctl show summary',
      `pre-backup: ${stop}`,
      'pre-backup: bgpctl show summary',
      'pre-backup: bgpctl show summary',
    ]);
    await g.stop();
  });

  it('refuses a missing AS or neighbor and malformed values, at start-up', async () => {
    const bad: Record<string, string>[] = [
      { neighbor: '192.0.2.1 65000' },
      { as: '65001' },
      { ...NEIGHBORS, neighbor: '192.0.2.1' },
      { ...NEIGHBORS, network: '203.0.113.0/24 }' },
      { ...NEIGHBORS, socket: '/tmp/a b' },
    ];
    for (const options of bad) {
      await assert.rejects(
        golden({ os: 'linux', plugins: [{ name: 'bgpd', options }] }),
        (e: unknown) => e instanceof PluginsInvalidError && e.errors.every((x) => x.code === 'CARPD_ERR_PLUGIN_OPTION'),
      );
    }
  });

  it('plan: going MASTER the sessions come up after the VIP; going BACKUP they go down before it', async () => {
    const o: GoldenOptions = { os: 'openbsd', plugins: [{ name: 'bgpd', options: { as: '65001', neighbor: '192.0.2.254 65000' } }] };
    assert.deepEqual(planLines(await goldenPlan(o, LAN, 'MASTER')), [
      'render bgpd: file /etc/bgpd.conf',
      'vip: add 198.18.0.101/24 on eth0; gratuitous ARP',
      'master bgpd: bgpctl show summary',
      // The file differs from what is on disk (nothing): the plan shows the check and reload too.
      'master bgpd: bgpd -n -f /etc/bgpd.conf',
      'master bgpd: bgpctl reload',
      'master bgpd: bgpctl neighbor 192.0.2.254 up',
    ]);
    assert.deepEqual(planLines(await goldenPlan(o, LAN, 'BACKUP')), [
      'render bgpd: file /etc/bgpd.conf',
      'pre-backup bgpd: bgpctl show summary',
      'pre-backup bgpd: bgpctl neighbor 192.0.2.254 down',
      'vip: remove 198.18.0.101/24 from eth0',
      'backup bgpd: bgpctl show summary',
      'backup bgpd: bgpd -n -f /etc/bgpd.conf',
      'backup bgpd: bgpctl reload',
    ]);
  });
});
