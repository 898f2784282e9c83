/** The built-in `relayd` plugin: BSD only; rcctl/service and relayctl, golden argv and fragment. */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PluginsInvalidError } from '../../src/host/errors.js';
import { FakeService, golden, goldenPlan, LAN, lanVhid, planLines, type Golden, type GoldenOptions } from './plugin-harness.js';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function relayd(o: Omit<GoldenOptions, 'plugins'>, options: Record<string, string> = {}): Promise<Golden> {
  const g = await golden({ ...o, plugins: [{ name: 'relayd', options }] });
  roots.push(g.root);
  return g;
}

const CASES = [
  {
    os: 'openbsd' as const,
    status: 'rcctl check relayd',
    start: 'rcctl -f start relayd',
    stop: 'rcctl stop relayd',
    main: '/etc/relayd.conf',
    conf: '/etc/carpd/relayd.conf',
  },
  {
    os: 'freebsd' as const,
    status: 'service relayd onestatus',
    start: 'service relayd onestart',
    stop: 'service relayd onestop',
    main: '/usr/local/etc/relayd.conf',
    conf: '/usr/local/etc/carpd/relayd.conf',
  },
];

describe('relayd plugin', () => {
  it('refuses to load on Linux, at start-up, saying where it runs', async () => {
    await assert.rejects(golden({ os: 'linux', plugins: [{ name: 'relayd' }] }), (e: unknown) => {
      assert.ok(e instanceof PluginsInvalidError);
      assert.deepEqual(
        e.errors.map((x) => x.code),
        ['CARPD_ERR_PLUGIN_OS'],
      );
      assert.match(e.errors[0]!.message, /relayd: does not run on linux \(it supports openbsd, freebsd\)/);
      return true;
    });
  });

  for (const c of CASES) {
    it(`${c.os}: started on MASTER, stopped before the VIP goes, relayctl reload when the fragment changed`, async () => {
      const svc = new FakeService(c);
      const g = await relayd(
        { os: c.os, answer: svc.answer },
        { backends: '10.0.0.11, 10.0.0.12', backend_port: '8080', check: 'http', check_path: '/health' },
      );
      await g.go(LAN, 'INIT', 'BACKUP');
      await g.go(LAN, 'BACKUP', 'MASTER');
      await g.go(LAN, 'MASTER', 'BACKUP');
      assert.deepEqual(g.take(), [
        `pre-backup: ${c.status}`,
        `pre-backup: ${c.status}`,
        `master: ${c.status}`,
        `master: ${c.start}`,
        `pre-backup: ${c.status}`,
        `pre-backup: ${c.stop}`,
      ]);
      // Running by hand while BACKUP, the fragment edited: MASTER checks the whole config and reloads.
      writeFileSync(join(g.root, c.conf), '# edited\n');
      svc.running = true;
      await g.go(LAN, 'BACKUP', 'MASTER');
      assert.deepEqual(g.take(), [`master: ${c.status}`, `master: relayd -n -f ${c.main}`, 'master: relayctl reload']);
      assert.equal(
        g.file(c.conf),
        `# Rendered by carpd (plugin relayd, vhid:1@eth0). Include it from relayd.conf:
#   include "${c.conf}"
# relayd runs on the CARP MASTER only; carpd starts, reloads and stops it.
carpd_vip1 = "198.18.0.101"

table <carpd> { 10.0.0.11 10.0.0.12 }
relay "carpd-1" {
	listen on $carpd_vip1 port 80
	forward to <carpd> port 8080 check http "/health" code 200
}
`,
      );
      await g.stop();
    });
  }

  it('without backends the fragment only names the VIPs, one macro each', async () => {
    const g = await golden({
      os: 'openbsd',
      vhids: [lanVhid({ addresses: ['198.18.0.101/24', '2001:db8::1/64', '198.18.0.102/24'] })],
      plugins: [{ name: 'relayd', options: { conf: '/etc/relayd.carpd.conf' } }],
    });
    roots.push(g.root);
    assert.deepEqual(g.file('/etc/relayd.carpd.conf').split('\n').slice(3), ['carpd_vip1 = "198.18.0.101"', 'carpd_vip2 = "198.18.0.102"', '']);
    await g.stop();
  });

  it('refuses backends and paths that are not plain values', async () => {
    const bad: Record<string, string>[] = [{ backends: '10.0.0.1 } relay x {' }, { check_path: '/"x' }, { conf: 'relative.conf' }, { check: 'smtp' }];
    for (const options of bad) {
      await assert.rejects(
        golden({ os: 'openbsd', plugins: [{ name: 'relayd', options }] }),
        (e: unknown) => e instanceof PluginsInvalidError && e.errors[0]!.code === 'CARPD_ERR_PLUGIN_OPTION',
      );
    }
  });

  it('plan (OpenBSD): fragment, VIP, check and start', async () => {
    assert.deepEqual(planLines(await goldenPlan({ os: 'openbsd', plugins: [{ name: 'relayd' }] }, LAN, 'MASTER')), [
      'render relayd: file /etc/carpd/relayd.conf',
      'vip: add 198.18.0.101/24 on eth0; gratuitous ARP',
      'master relayd: rcctl check relayd',
      'master relayd: rcctl -f start relayd',
    ]);
  });
});
