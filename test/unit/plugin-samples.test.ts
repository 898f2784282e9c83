/**
 * The built-in plugins together: every sample section in etc/plugins/ is a valid carpd.conf section
 * that loads on each OS the plugin supports, and the plugins of one scope run in the order the
 * phases promise, both ways (state sync before the VIP; NAT, then services, then BGP after it; the
 * reverse going down).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { hasErrors } from '../../src/config/errors.js';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import { loadPlugins } from '../../src/host/loader.js';
import { planTransition } from '../../src/host/plan.js';
import { Templates } from '../../src/adapters/templates.js';
import { ROOT } from '../fixtures/plugins/kit.js';
import { goldenPlan, LAN, OSES, planLines, PLUGINS, TEMPLATES, type PluginSpec } from './plugin-harness.js';
import { loaderPorts } from '../helpers/host-defaults.js';

const tmp = mkdtempSync(join(tmpdir(), 'carpd-plugin-samples-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const VHIDS = `[carpd]\nlog = 2\n\n[vhid.lan]\nvhid = 1\ninterface = eth0\naddress = 192.0.2.1/24\npass = secret\n\n[vhid.wan]\nvhid = 2\ninterface = eth1\naddress = 198.51.100.1/24\npass = secret\n\n`;
const SUPPORTED: Record<string, readonly string[]> = { relayd: ['openbsd', 'freebsd'], bgpd: OSES, httpd: OSES, pfsync: OSES, nat: OSES };

describe('etc/plugins samples', () => {
  for (const [name, oses] of Object.entries(SUPPORTED)) {
    it(`${name}.sample is a valid section that loads and plans on ${oses.join(', ')}`, async () => {
      const conf = join(tmp, `${name}.conf`);
      writeFileSync(conf, VHIDS + readFileSync(join(ROOT, 'etc', 'plugins', `${name}.sample`), 'utf8'));
      chmodSync(conf, 0o600);
      const { model, diagnostics } = loadConfigFiles([conf]);
      assert.equal(hasErrors(diagnostics), false, JSON.stringify(diagnostics));
      assert.deepEqual(
        model.plugins?.map((p) => p.name),
        [name],
      );
      for (const os of oses) {
        const templates = new Templates({ builtin: TEMPLATES }, os as 'linux');
        const plugins = await loadPlugins(model, { ...loaderPorts, dirs: { builtin: PLUGINS }, os: os as 'linux', templates });
        const key = plugins[0]!.scope.vhids[0]!;
        for (const to of ['MASTER', 'BACKUP'] as const) {
          const plan = await planTransition(model, { key, to, os: os as 'linux', plugins, templates });
          assert.deepEqual(
            plan.steps.filter((s) => s.kind === 'error'),
            [],
            `${os} ${to}`,
          );
          assert.ok(
            plan.steps.some((s) => s.kind === 'exec'),
            `${os} ${to}: the plan runs something`,
          );
        }
      }
    });
  }
});

describe('built-in plugins of one scope', () => {
  const plugins: PluginSpec[] = [
    { name: 'bgpd', options: { as: '65001', neighbor: '192.0.2.254 65000' } },
    { name: 'httpd' },
    { name: 'nat', options: { snat: '10.0.0.0/24' } },
    { name: 'pfsync', options: { syncdev: 'eth1', syncpeer: '10.9.9.2', address: '10.9.9.1' } },
  ];

  it('going MASTER: state sync before the VIP; then NAT, the web server, and BGP last', async () => {
    const lines = planLines(await goldenPlan({ os: 'linux', plugins }, LAN, 'MASTER')).filter((l) => !l.startsWith('render'));
    assert.deepEqual(lines, [
      'pre-master pfsync: conntrackd -C /etc/conntrackd/conntrackd.conf -s',
      'pre-master pfsync: conntrackd -C /etc/conntrackd/conntrackd.conf -c',
      'pre-master pfsync: conntrackd -C /etc/conntrackd/conntrackd.conf -f',
      'pre-master pfsync: conntrackd -C /etc/conntrackd/conntrackd.conf -R',
      'pre-master pfsync: conntrackd -C /etc/conntrackd/conntrackd.conf -B',
      'vip: add 198.18.0.101/24 on eth0; gratuitous ARP',
      'master nat: nft -f /etc/carpd/nat.nft',
      'master httpd: service nginx status',
      'master httpd: service nginx start',
      'master bgpd: bgpctl show summary',
      'master bgpd: bgpd -n -f /etc/bgpd.conf',
      'master bgpd: bgpctl reload',
      'master bgpd: bgpctl neighbor 192.0.2.254 up',
    ]);
  });

  it('going BACKUP: withdraw the routes and stop the web server before the VIP goes; NAT and state sync after', async () => {
    const lines = planLines(await goldenPlan({ os: 'openbsd', plugins }, LAN, 'BACKUP')).filter((l) => !l.startsWith('render'));
    assert.deepEqual(lines, [
      'pre-backup bgpd: bgpctl show summary',
      'pre-backup bgpd: bgpctl neighbor 192.0.2.254 down',
      'pre-backup httpd: rcctl check httpd',
      'pre-backup httpd: rcctl stop httpd',
      'vip: remove 198.18.0.101/24 from eth0',
      'backup bgpd: bgpctl show summary',
      'backup bgpd: bgpd -n -f /etc/bgpd.conf',
      'backup bgpd: bgpctl reload',
      'backup nat: pfctl -a carpd/nat -F all',
      'backup pfsync: ifconfig pfsync0 syncdev eth1 syncpeer 10.9.9.2 -defer up',
    ]);
  });
});
