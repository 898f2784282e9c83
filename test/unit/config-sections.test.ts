import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configCommand } from '../../src/cli/check.js';
import { loadConfigFiles } from '../../src/adapters/config-files.js';
import { formatDuration, parseDuration } from '../../src/config/values.js';
import { netmaskToPrefix, prefixToNetmask } from '../../src/config/netaddr.js';
import { splitShellWords } from '../../src/config/shell-words.js';
import { assertOneError, configFiles } from '../helpers/config-files.js';

const { tempDir } = configFiles('carpd-config-sections-');

const VHIDS = `[vhid.lan]
vhid = 1
interface = eth0
address = 10.0.0.1/24
group = uplink

[vhid.wan]
vhid = 2
interface = eth1
address = 10.1.0.1/24
`;

test('every [carpd] key lands in the model, durations in their units', (t) => {
  const file = tempDir(t).write(
    'carpd.conf',
    `[carpd]
state_dir = /var/db/carpd
run_dir = /run/carpd-a
metrics = [::1]:9112
garp_refresh = 2m
pre_phase_budget = 750
plugin_dir = /p
template_dir = /t
hook_timeout = 1.5s
senderr_demotion = 200
demotion = 10
${VHIDS}`,
  );
  const r = loadConfigFiles([file]);
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(r.model.global, {
    allow: true,
    preempt: false,
    log: 2,
    stateDir: '/var/db/carpd',
    runDir: '/run/carpd-a',
    metrics: '[::1]:9112',
    garpRefresh: 120,
    prePhaseBudgetMs: 750,
    pluginDir: '/p',
    templateDir: '/t',
    hookTimeoutMs: 1500,
    senderrDemotion: 200,
    demotion: 10,
  });
});

test('plugins, health checks, groups and maintenance become typed sections, names resolved to keys', (t) => {
  const file = tempDir(t).write(
    'carpd.conf',
    `${VHIDS}
[group.edge]
vhid = wan, 1@eth0
demote = 5

[plugin.httpd]
follow = lan
on_failure = retry 3
timeout = 30s
config = /etc/httpd.conf
extra = a
extra = b

[plugin.bgpd]
follow = group:edge
on_failure = demote 100

[plugin.pfsync]
follow = node

[plugin.nat]
follow = 2

[health.web]
command = /usr/bin/curl -fsS "http://127.0.0.1/a b" 'x y'
interval = 2s
timeout = 500ms
rise = 2
fall = 3
demote = 20
group = uplink

[health.cron]
command = /bin/true
schedule = */5 * * * *

[maintenance]
enter = 0 3 * * sun
leave = 0 4 * * sun
demote = 100
`,
  );
  const { model, diagnostics } = loadConfigFiles([file]);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(model.groups, [{ name: 'edge', members: ['2@eth1', '1@eth0'], demote: 5, source: `${file}:12` }]);
  assert.deepEqual(model.plugins, [
    {
      name: 'httpd',
      follow: { kind: 'vhid', ref: '1@eth0' },
      onFailure: { kind: 'retry', times: 3 },
      timeoutMs: 30_000,
      options: { config: '/etc/httpd.conf', extra: 'a,b' },
      source: `${file}:16`,
    },
    { name: 'bgpd', follow: { kind: 'group', group: 'edge' }, onFailure: { kind: 'demote', by: 100 }, options: {}, source: `${file}:24` },
    { name: 'pfsync', follow: { kind: 'node' }, options: {}, source: `${file}:28` },
    { name: 'nat', follow: { kind: 'vhid', ref: '2@eth1' }, options: {}, source: `${file}:31` },
  ]);
  assert.deepEqual(model.health, [
    {
      name: 'web',
      command: ['/usr/bin/curl', '-fsS', 'http://127.0.0.1/a b', 'x y'],
      intervalMs: 2000,
      timeoutMs: 500,
      rise: 2,
      fall: 3,
      demote: 20,
      group: 'uplink',
      source: `${file}:34`,
    },
    { name: 'cron', command: ['/bin/true'], schedule: '*/5 * * * *', rise: 1, fall: 1, demote: 240, group: 'carp', source: `${file}:43` },
  ]);
  assert.deepEqual(model.maintenance, { enter: '0 3 * * sun', leave: '0 4 * * sun', demote: 100, source: `${file}:47` });
  // The text of every section stays in `extra`, as before.
  assert.deepEqual(
    model.extra?.map((s) => s.name),
    ['group.edge', 'plugin.httpd', 'plugin.bgpd', 'plugin.pfsync', 'plugin.nat', 'health.web', 'health.cron', 'maintenance'],
  );
});

test('a plugin may follow a vhid read from another file and format', (t) => {
  const tmp = tempDir(t);
  const hn = tmp.write('hostname.carp3', '10.0.0.1/24 carpdev eth0 vhid 7\n');
  const conf = tmp.write('carpd.conf', '[plugin.httpd]\nfollow = carp3\n[group.all]\nvhid = 7@eth0\n');
  const { model, diagnostics } = loadConfigFiles([hn, conf]);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(model.plugins?.[0]?.follow, { kind: 'vhid', ref: '7@eth0' });
  assert.deepEqual(model.groups?.[0]?.members, ['7@eth0']);
});

const sectionErrors: { name: string; text: string; code: string; line: number }[] = [
  { name: 'a plugin without follow', text: `${VHIDS}[plugin.httpd]\nconfig = x\n`, code: 'CARPD_ERR_CONFIG_MISSING', line: 11 },
  { name: 'a plugin following an unknown vhid', text: `${VHIDS}[plugin.httpd]\n\nfollow = dmz\n`, code: 'CARPD_ERR_REFERENCE', line: 13 },
  { name: 'a plugin following an unknown group', text: `${VHIDS}[plugin.httpd]\nfollow = group:core\n`, code: 'CARPD_ERR_REFERENCE', line: 12 },
  { name: 'a bad plugin name', text: `${VHIDS}[plugin.Web_Server]\nfollow = node\n`, code: 'CARPD_ERR_CONFIG_SECTION', line: 11 },
  { name: 'a bad on_failure', text: `${VHIDS}[plugin.httpd]\nfollow = node\non_failure = retry\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 13 },
  { name: 'follow twice', text: `${VHIDS}[plugin.httpd]\nfollow = node\nfollow = lan\n`, code: 'CARPD_ERR_CONFIG_DUPLICATE', line: 13 },
  { name: 'a health check without command', text: `${VHIDS}[health.web]\ninterval = 5s\n`, code: 'CARPD_ERR_CONFIG_MISSING', line: 11 },
  { name: 'a bad cron schedule', text: `${VHIDS}[health.web]\ncommand = /bin/true\nschedule = every minute\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 13 },
  {
    name: 'interval and schedule together',
    text: `${VHIDS}[health.web]\ncommand = /bin/true\ninterval = 5s\nschedule = * * * * *\n`,
    code: 'CARPD_ERR_CONFIG_CONFLICT',
    line: 14,
  },
  { name: 'a bad interval', text: `${VHIDS}[health.web]\ncommand = /bin/true\ninterval = 5 minutes\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 13 },
  { name: 'an unknown health key', text: `${VHIDS}[health.web]\ncommand = /bin/true\nretries = 3\n`, code: 'CARPD_ERR_CONFIG_KEY', line: 13 },
  { name: 'rise 0', text: `${VHIDS}[health.web]\ncommand = /bin/true\nrise = 0\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 13 },
  { name: 'a health group with no vhid', text: `${VHIDS}[health.web]\ncommand = /bin/true\ngroup = core\n`, code: 'CARPD_ERR_REFERENCE', line: 13 },
  { name: 'an unterminated quote in a command', text: `${VHIDS}[health.web]\ncommand = '/bin/echo "x'\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 12 },
  { name: 'maintenance enter without an end', text: `${VHIDS}[maintenance]\nenter = 0 3 * * *\n`, code: 'CARPD_ERR_CONFIG_MISSING', line: 12 },
  {
    name: 'maintenance leave and duration',
    text: `${VHIDS}[maintenance]\nenter = 0 3 * * *\nleave = 0 4 * * *\nduration = 1h\n`,
    code: 'CARPD_ERR_CONFIG_CONFLICT',
    line: 14,
  },
  { name: 'maintenance duration without enter', text: `${VHIDS}[maintenance]\nduration = 1h\n`, code: 'CARPD_ERR_CONFIG_MISSING', line: 12 },
  { name: 'a bad maintenance cron', text: `${VHIDS}[maintenance]\nenter = 61 3 * * *\nduration = 1h\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 12 },
  { name: 'a group naming an unknown vhid', text: `${VHIDS}[group.edge]\nvhid = lan, 9@eth9\n`, code: 'CARPD_ERR_REFERENCE', line: 12 },
  { name: 'a group name ending in a digit', text: `${VHIDS}[group.edge1]\nvhid = lan\n`, code: 'CARPD_ERR_GROUP', line: 11 },
  { name: 'an unknown group key', text: `${VHIDS}[group.edge]\nmembers = lan\n`, code: 'CARPD_ERR_CONFIG_KEY', line: 12 },
  { name: 'metrics without a port', text: `[carpd]\nmetrics = localhost\n${VHIDS}`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  { name: 'a bad pre_phase_budget', text: `[carpd]\npre_phase_budget = soon\n${VHIDS}`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  { name: 'demotion above 255', text: `[carpd]\ndemotion = 256\n${VHIDS}`, code: 'CARPD_ERR_CONFIG_VALUE', line: 2 },
  { name: 'deadratio 0', text: `${VHIDS}deadratio = 0\n`, code: 'CARPD_ERR_CONFIG_VALUE', line: 11 },
];

for (const c of sectionErrors) {
  test(`carpd.conf: ${c.name} is an error at its line`, (t) => {
    const file = tempDir(t).write('carpd.conf', c.text);
    assertOneError(loadConfigFiles([file]).diagnostics, c.code, file, c.line);
  });
}

test('the same plugin in two files is an error in the second', (t) => {
  const tmp = tempDir(t);
  const a = tmp.write('a.conf', `${VHIDS}[plugin.httpd]\nfollow = lan\n`);
  const b = tmp.write('b.conf', '\n[plugin.httpd]\nfollow = node\n');
  assertOneError(loadConfigFiles([a, b]).diagnostics, 'CARPD_ERR_CONFIG_DUPLICATE', b, 2);
});

test('config prints the typed sections, with secret-looking plugin options redacted', async (t) => {
  const file = tempDir(t).write('carpd.conf', `${VHIDS}[plugin.bgpd]\nfollow = lan\nmd5_password = Sw0rdfish\n`);
  const out: string[] = [];
  assert.equal(await configCommand(['-c', file], { out: (l) => out.push(l), err: () => undefined }), 0);
  const json = JSON.parse(out[0]!) as { plugins?: unknown };
  assert.deepEqual(json.plugins, [{ name: 'bgpd', follow: { kind: 'vhid', ref: '1@eth0' }, options: { md5_password: '<redacted>' }, source: `${file}:11` }]);
  assert.ok(!out[0]!.includes('Sw0rdfish'));
});

test('durations, netmasks and shell words parse as documented', () => {
  assert.deepEqual(
    ['500ms', '10s', '1.5s', '5m', '2h', '3'].map((s) => parseDuration(s)),
    [500, 10_000, 1500, 300_000, 7_200_000, 3000],
  );
  assert.equal(parseDuration('250', 'ms'), 250);
  assert.deepEqual(
    ['', '5 min', '-1s', 'ms'].map((s) => parseDuration(s)),
    [undefined, undefined, undefined, undefined],
  );
  assert.deepEqual([1500, 10_000, 300_000, 7_200_000, 0].map(formatDuration), ['1500ms', '10s', '5m', '2h', '0s']);
  assert.deepEqual(['255.255.255.0', '0xffffff00', '24', '/24', '255.255.255.255', '0.0.0.0'].map(netmaskToPrefix), [24, 24, 24, 24, 32, 0]);
  assert.deepEqual(['255.0.255.0', '0xff00ff00', '33', 'abc'].map(netmaskToPrefix), [undefined, undefined, undefined, undefined]);
  assert.equal(prefixToNetmask(27), '255.255.255.224');
  assert.deepEqual(splitShellWords(`a "b c" 'd e' f\\ g "h\\"i" # not a comment`), {
    ok: true,
    words: ['a', 'b c', 'd e', 'f g', 'h"i', '#', 'not', 'a', 'comment'],
  });
  assert.deepEqual(splitShellWords('a # comment', { comments: true }), { ok: true, words: ['a'] });
  assert.deepEqual(splitShellWords('a "b'), { ok: false, message: 'unterminated double quote' });
});
