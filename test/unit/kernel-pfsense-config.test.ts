/**
 * Vhid descriptions from a fake pfSense / OPNsense config.xml, and the FreeBSD kernel source
 * showing them as the vhid's name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FreebsdKernelCarpSource } from '../../src/adapters/kernel-freebsd.js';
import type { RunResult } from '../../src/ports/exec.js';
import { parsePfsenseVips } from '../../src/sources/pfsense-config.js';
import { freebsdIfconfig } from '../helpers/fake-kernel/format.js';
import { ManualTimers } from '../helpers/kernel-source.js';

const PFSENSE = `<?xml version="1.0"?>
<pfsense>
  <version>23.3</version>
  <interfaces>
    <wan>
      <enable></enable>
      <if>igb0</if>
      <descr><![CDATA[WAN]]></descr>
      <ipaddr>198.51.100.2</ipaddr>
    </wan>
    <lan>
      <enable></enable>
      <if>igb1</if>
      <ipaddr>192.0.2.2</ipaddr>
    </lan>
    <opt1>
      <if>igb1.100</if>
    </opt1>
  </interfaces>
  <!-- <virtualip><vip><mode>carp</mode><interface>wan</interface><vhid>9</vhid><descr>commented out</descr></vip></virtualip> -->
  <virtualip>
    <vip>
      <mode>carp</mode>
      <interface>wan</interface>
      <vhid>1</vhid>
      <advskew>0</advskew>
      <advbase>1</advbase>
      <password>not-read</password>
      <descr><![CDATA[WAN <shared> VIP]]></descr>
      <type>single</type>
      <subnet_bits>24</subnet_bits>
      <subnet>198.51.100.1</subnet>
    </vip>
    <vip>
      <mode>carp</mode>
      <interface>lan</interface>
      <vhid>2</vhid>
      <descr>LAN gateway &amp; DNS</descr>
      <subnet>192.0.2.1</subnet>
    </vip>
    <vip>
      <mode>carp</mode>
      <interface>lan</interface>
      <vhid>2</vhid>
      <descr>LAN v6</descr>
      <subnet>2001:db8:200::1</subnet>
    </vip>
    <vip>
      <mode>ipalias</mode>
      <interface>_vip5f1a2b3c4d5e6</interface>
      <descr>alias on top of CARP</descr>
      <subnet>198.51.100.20</subnet>
    </vip>
    <vip>
      <mode>carp</mode>
      <interface>opt1</interface>
      <vhid>7</vhid>
      <descr/>
    </vip>
  </virtualip>
</pfsense>
`;

test('pfSense config.xml: CARP VIPs give VHID@IF names through the interfaces table; aliases and comments are skipped', () => {
  const r = parsePfsenseVips(PFSENSE);
  assert.equal(r.kind, 'vips');
  if (r.kind !== 'vips') return;
  assert.deepEqual(
    [...r.names],
    [
      ['1@igb0', 'WAN <shared> VIP'],
      ['2@igb1', 'LAN gateway & DNS, LAN v6'],
    ],
  );
  assert.deepEqual(
    r.vips.map((v) => `${v.vhid}@${v.ifname ?? '?'} ${v.friendly} ${v.subnet ?? ''}`),
    ['1@igb0 wan 198.51.100.1', '2@igb1 lan 192.0.2.1', '2@igb1 lan 2001:db8:200::1', '7@igb1.100 opt1 '],
  );
});

test('OPNsense config.xml: the MVC virtualip with uuid attributes reads the same', () => {
  const xml = `<?xml version="1.0"?>
<opnsense>
  <interfaces><wan><if>vtnet0</if></wan></interfaces>
  <virtualip version="1.0.1">
    <vip uuid="0b1e5c2a-1111-4a4a-9c9c-000000000001">
      <interface>wan</interface>
      <mode>carp</mode>
      <subnet>203.0.113.1</subnet>
      <subnet_bits>24</subnet_bits>
      <vhid>3</vhid>
      <advbase>1</advbase>
      <advskew>0</advskew>
      <descr>edge</descr>
    </vip>
  </virtualip>
</opnsense>`;
  const r = parsePfsenseVips(xml);
  assert.equal(r.kind, 'vips');
  if (r.kind === 'vips') assert.deepEqual([...r.names], [['3@vtnet0', 'edge']]);
});

test('config.xml reader refuses what is not a pfSense/OPNsense config and never throws on garbage', () => {
  assert.equal(parsePfsenseVips('<html></html>').kind, 'invalid');
  assert.equal(parsePfsenseVips(42 as unknown as string).kind, 'invalid');
  assert.equal(parsePfsenseVips('x'.repeat(16 * 1024 * 1024 + 1)).kind, 'invalid');
  const empty = parsePfsenseVips('<pfsense><interfaces/></pfsense>');
  assert.equal(empty.kind, 'vips');
  const bad = parsePfsenseVips('<pfsense><virtualip><vip><mode>carp</mode><vhid>999</vhid><interface>wan</interface></vip><vip><mode>carp');
  assert.equal(bad.kind, 'vips');
  if (bad.kind === 'vips') assert.equal(bad.vips.length, 0);
});

test('the FreeBSD kernel source shows config.xml descriptions as the vhid names', async (t) => {
  const r = parsePfsenseVips(PFSENSE);
  assert.equal(r.kind, 'vips');
  if (r.kind !== 'vips') return;
  const st = {
    demotion: 0,
    seq: 0,
    changes: [],
    vhids: [{ ifname: 'igb0', vhid: 1, state: 'MASTER' as const, advbase: 1, advskew: 0, addresses: ['198.51.100.1/24'] }],
  };
  const exec = async (argv: readonly string[]): Promise<RunResult> => ({
    exitCode: 0,
    stdout: argv[0] === 'ifconfig' ? freebsdIfconfig(st) : '0\n',
    stderr: '',
    timedOut: false,
    canceled: false,
  });
  const src = new FreebsdKernelCarpSource({ devdPath: '/nonexistent/devd.pipe', exec, timers: new ManualTimers(), snapshotIntervalMs: 0, names: r.names });
  t.after(() => src.stop());
  await src.start();
  assert.equal(src.status()[0]!.name, 'WAN <shared> VIP');
});
