/** The built-in `nat` plugin: golden argv and rendered rules per OS (nftables table, pf anchor). */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { PluginsInvalidError } from '../../src/host/errors.js';
import { vhidCfg } from '../helpers/fake-wire.js';
import { golden, goldenPlan, LAN, lanVhid, planLines, type Golden, type GoldenOptions } from './plugin-harness.js';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const OPTIONS = { snat: '10.0.0.0/24,10.0.1.0/24', dnat: 'tcp 443 10.0.0.10, udp 53 10.0.0.53:5353' };

async function nat(os: GoldenOptions['os'], over: Partial<GoldenOptions> = {}, options: Record<string, string> = OPTIONS): Promise<Golden> {
  const g = await golden({ os, plugins: [{ name: 'nat', options }], ...over });
  roots.push(g.root);
  return g;
}

/** boot (INIT) → BACKUP → MASTER → BACKUP → MASTER → INIT at shutdown. */
async function cycle(g: Golden): Promise<string[][]> {
  const out = [g.take()];
  await g.go(LAN, 'INIT', 'BACKUP');
  out.push(g.take());
  await g.go(LAN, 'BACKUP', 'MASTER');
  out.push(g.take());
  await g.go(LAN, 'MASTER', 'BACKUP');
  out.push(g.take());
  await g.go(LAN, 'BACKUP', 'MASTER');
  out.push(g.take());
  await g.go(LAN, 'MASTER', 'INIT', 'shutdown');
  out.push(g.take());
  return out;
}

const NFT = `# Rendered by carpd (plugin nat, vhid:1@eth0). Loaded with \`nft -f\` when this node becomes MASTER;
# the table is deleted when it stops being MASTER. The first two lines make the load replace the
# table in one transaction.
table ip carpd_nat
delete table ip carpd_nat
table ip carpd_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" ip saddr 10.0.0.0/24 snat to 198.18.0.101
		oifname "eth0" ip saddr 10.0.1.0/24 snat to 198.18.0.101
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth0" ip daddr 198.18.0.101 tcp dport 443 dnat to 10.0.0.10:443
		iifname "eth0" ip daddr 198.18.0.101 udp dport 53 dnat to 10.0.0.53:5353
	}
}
`;

const PF_OPENBSD = `# Rendered by carpd (plugin nat, vhid:1@eth0). Loaded into anchor carpd/nat when this node becomes
# MASTER, flushed when it stops being MASTER. pf.conf calls it with: anchor "carpd/*"
match out on eth0 inet from 10.0.0.0/24 to any nat-to 198.18.0.101
match out on eth0 inet from 10.0.1.0/24 to any nat-to 198.18.0.101
match in on eth0 inet proto tcp from any to 198.18.0.101 port 443 rdr-to 10.0.0.10 port 443
match in on eth0 inet proto udp from any to 198.18.0.101 port 53 rdr-to 10.0.0.53 port 5353
`;

const PF_FREEBSD = `# Rendered by carpd (plugin nat, vhid:1@eth0). Loaded into anchor carpd/nat when this node becomes
# MASTER, flushed when it stops being MASTER. pf.conf calls it with:
#   nat-anchor "carpd/*"
#   rdr-anchor "carpd/*"
nat on eth0 inet from 10.0.0.0/24 to any -> 198.18.0.101
nat on eth0 inet from 10.0.1.0/24 to any -> 198.18.0.101
rdr on eth0 inet proto tcp from any to 198.18.0.101 port 443 -> 10.0.0.10 port 443
rdr on eth0 inet proto udp from any to 198.18.0.101 port 53 -> 10.0.0.53 port 5353
`;

describe('nat plugin', () => {
  it('linux: nft -f loads the table on MASTER; it is deleted after the VIP leaves, and at INIT', async () => {
    const g = await nat('linux');
    const del = 'backup: nft delete table ip carpd_nat';
    assert.deepEqual(await cycle(g), [
      ['setup: nft --version', del],
      [del],
      ['master: nft -f /etc/carpd/nat.nft'],
      [del],
      ['master: nft -f /etc/carpd/nat.nft'],
      [del],
    ]);
    assert.deepEqual(g.files(), ['etc/carpd/nat.nft']);
    assert.equal(g.file('/etc/carpd/nat.nft'), NFT);
    assert.ok(g.hooks.every((h) => h.result === 'ok'));
    await g.stop();
  });

  it('openbsd: pfctl loads anchor carpd/nat on MASTER and flushes it on BACKUP; match … nat-to/rdr-to rules', async () => {
    const g = await nat('openbsd');
    const flush = 'backup: pfctl -a carpd/nat -F all';
    assert.deepEqual(await cycle(g), [
      ['setup: pfctl -s info', flush],
      [flush],
      ['master: pfctl -a carpd/nat -f /etc/carpd/nat.pf'],
      [flush],
      ['master: pfctl -a carpd/nat -f /etc/carpd/nat.pf'],
      [flush],
    ]);
    assert.deepEqual(g.files(), ['etc/carpd/nat.pf']);
    assert.equal(g.file('/etc/carpd/nat.pf'), PF_OPENBSD);
    await g.stop();
  });

  it('freebsd: the same anchor with nat/rdr rules, under /usr/local/etc', async () => {
    const g = await nat('freebsd', {}, { ...OPTIONS, anchor: 'carpd/wan' });
    const flush = 'backup: pfctl -a carpd/wan -F all';
    assert.deepEqual(await cycle(g), [
      ['setup: pfctl -s info', flush],
      [flush],
      ['master: pfctl -a carpd/wan -f /usr/local/etc/carpd/nat.pf'],
      [flush],
      ['master: pfctl -a carpd/wan -f /usr/local/etc/carpd/nat.pf'],
      [flush],
    ]);
    assert.equal(g.file('/usr/local/etc/carpd/nat.pf'), PF_FREEBSD.replace('anchor carpd/nat', 'anchor carpd/wan'));
    await g.stop();
  });

  it('linux: deleting a table that is not there is fine; any other nft error fails the hook', async () => {
    let stderr = 'Error: Could not process rule: No such file or directory\ndelete table ip carpd_nat\n';
    const g = await nat('linux', { answer: (a) => (a[1] === 'delete' ? { exitCode: 1, stderr } : {}) });
    await g.go(LAN, 'INIT', 'BACKUP');
    assert.ok(
      g.hooks.every((h) => h.result === 'ok'),
      JSON.stringify(g.hooks.map((h) => h.error)),
    );
    stderr = 'Error: Could not process rule: Operation not permitted\n';
    await g.go(LAN, 'BACKUP', 'MASTER');
    await g.go(LAN, 'MASTER', 'BACKUP');
    const failed = g.hooks.filter((h) => h.result !== 'ok');
    assert.deepEqual(
      failed.map((h) => [h.hook, h.error?.code]),
      [['backup', 'CARPD_ERR_HOOK_FAILED']],
    );
    assert.match(failed[0]!.error!.message, /Operation not permitted/);
    await g.stop();
  });

  it('a node scope gets rules per vhid, each on its own interface and VIP; IPv6-only vhids are skipped', async () => {
    const vhids = [
      lanVhid(),
      vhidCfg(2, 100, { interface: 'eth1', addresses: ['2001:db8::1/64', '203.0.113.7/24'] }),
      vhidCfg(3, 100, { interface: 'eth2', addresses: ['2001:db8:1::1/64'] }),
    ];
    const g = await nat('linux', { vhids }, { snat: '10.0.0.0/24', interface: 'wan0' });
    const rules = g
      .file('/etc/carpd/nat.nft')
      .split('\n')
      .filter((l) => /snat|dnat to/.test(l))
      .map((l) => l.trim());
    assert.deepEqual(rules, ['oifname "wan0" ip saddr 10.0.0.0/24 snat to 198.18.0.101']);
    await g.stop();
    const n = await nat('linux', { vhids, plugins: [{ name: 'nat', follow: { kind: 'node' }, options: { snat: '10.0.0.0/24', dnat: 'tcp 80 10.0.0.8' } }] });
    const lines = n
      .file('/etc/carpd/nat.nft')
      .split('\n')
      .filter((l) => /snat to|dnat to/.test(l))
      .map((l) => l.trim());
    assert.deepEqual(lines, [
      'oifname "eth0" ip saddr 10.0.0.0/24 snat to 198.18.0.101',
      'oifname "eth1" ip saddr 10.0.0.0/24 snat to 203.0.113.7',
      'iifname "eth0" ip daddr 198.18.0.101 tcp dport 80 dnat to 10.0.0.8:80',
      'iifname "eth1" ip daddr 203.0.113.7 tcp dport 80 dnat to 10.0.0.8:80',
    ]);
    await n.stop();
  });

  it('refuses values that could steer the rules, at start-up', async () => {
    const bad: Record<string, string>[] = [
      { snat: '10.0.0.0/24; flush ruleset' },
      { dnat: 'tcp 80 10.0.0.1 } table x {' },
      { snat: '300.0.0.0/8' },
      { dnat: 'icmp 1 10.0.0.1' },
      { interface: 'eth0"' },
      { table: 'x y' },
    ];
    for (const options of bad) {
      await assert.rejects(golden({ os: 'linux', plugins: [{ name: 'nat', options }] }), (e: unknown) => {
        assert.ok(e instanceof PluginsInvalidError);
        assert.deepEqual(
          e.errors.map((x) => x.code),
          ['CARPD_ERR_PLUGIN_OPTION'],
          JSON.stringify(options),
        );
        return true;
      });
    }
  });

  it('plan: the rules file, then the VIP step, then nft -f; going down the table goes after the VIP', async () => {
    const o: GoldenOptions = { os: 'linux', plugins: [{ name: 'nat', options: OPTIONS }] };
    assert.deepEqual(planLines(await goldenPlan(o, LAN, 'MASTER')), [
      'render nat: file /etc/carpd/nat.nft',
      'vip: add 198.18.0.101/24 on eth0; gratuitous ARP',
      'master nat: nft -f /etc/carpd/nat.nft',
    ]);
    assert.deepEqual(planLines(await goldenPlan({ ...o, os: 'openbsd' }, LAN, 'BACKUP')), [
      'render nat: file /etc/carpd/nat.pf',
      'vip: remove 198.18.0.101/24 from eth0',
      'backup nat: pfctl -a carpd/nat -F all',
    ]);
  });
});
