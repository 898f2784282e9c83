/** The built-in `httpd` plugin: OpenBSD httpd / obhttpd / nginx, golden argv and files per OS. */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { OsName } from '../../src/host/types.js';
import { vhidCfg } from '../helpers/fake-wire.js';
import { FakeService, golden, goldenPlan, LAN, lanVhid, planLines, type Golden, type GoldenOptions } from './plugin-harness.js';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Case {
  os: OsName;
  status: string;
  start: string;
  stop: string;
  test: string;
  reload: string;
  /** LSB `status` says 3 for "not running". */
  stoppedExit: number;
  conf: string;
  text: string;
}

const BSD_TEXT = (conf: string) => `# Rendered by carpd (plugin httpd, vhid:1@eth0). Include it from httpd.conf:
#   include "${conf}"
# httpd runs on the CARP MASTER only; carpd starts and stops it.
server "default" {
	listen on 198.18.0.101 port 80
	root "/htdocs"
}
`;

const CASES: Case[] = [
  {
    os: 'openbsd',
    status: 'rcctl check httpd',
    start: 'rcctl -f start httpd',
    stop: 'rcctl stop httpd',
    test: 'httpd -n -f /etc/httpd.conf',
    reload: 'rcctl reload httpd',
    stoppedExit: 1,
    conf: '/etc/carpd/httpd.conf',
    text: BSD_TEXT('/etc/carpd/httpd.conf'),
  },
  {
    os: 'freebsd',
    status: 'service obhttpd onestatus',
    start: 'service obhttpd onestart',
    stop: 'service obhttpd onestop',
    test: 'obhttpd -n -f /usr/local/etc/obhttpd.conf',
    reload: 'service obhttpd onereload',
    stoppedExit: 1,
    conf: '/usr/local/etc/carpd/httpd.conf',
    text: BSD_TEXT('/usr/local/etc/carpd/httpd.conf'),
  },
  {
    os: 'linux',
    status: 'service nginx status',
    start: 'service nginx start',
    stop: 'service nginx stop',
    test: 'nginx -t -q -c /etc/nginx/nginx.conf',
    reload: 'service nginx reload',
    stoppedExit: 3,
    conf: '/etc/nginx/conf.d/carpd.conf',
    text: `# Rendered by carpd (plugin httpd, vhid:1@eth0). nginx runs on the CARP MASTER only; carpd starts
# and stops it.
server {
	listen 198.18.0.101:80;
	server_name "_";
	root "/var/www/html";
}
`,
  },
];

async function httpd(o: Omit<GoldenOptions, 'plugins'>, options: Record<string, string> = {}): Promise<Golden> {
  const g = await golden({ ...o, plugins: [{ name: 'httpd', options }] });
  roots.push(g.root);
  return g;
}

describe('httpd plugin', () => {
  for (const c of CASES) {
    it(`${c.os}: started on MASTER after the VIP, stopped before the VIP goes; checks first, so both are idempotent`, async () => {
      const svc = new FakeService(c, { stoppedExit: c.stoppedExit });
      const g = await httpd({ os: c.os, answer: svc.answer });
      const st = (hook: string) => `${hook}: ${c.status}`;
      assert.deepEqual(g.take(), [st('pre-backup')], 'boot (INIT): not running, nothing to stop');
      await g.go(LAN, 'INIT', 'BACKUP');
      assert.deepEqual(g.take(), [st('pre-backup')]);
      await g.go(LAN, 'BACKUP', 'MASTER');
      assert.deepEqual(g.take(), [st('master'), `master: ${c.start}`]);
      assert.equal(svc.running, true);
      await g.go(LAN, 'MASTER', 'BACKUP');
      assert.deepEqual(g.take(), [st('pre-backup'), `pre-backup: ${c.stop}`]);
      assert.equal(svc.running, false);
      await g.go(LAN, 'BACKUP', 'INIT', 'shutdown');
      assert.deepEqual(g.take(), [st('pre-backup')]);
      assert.deepEqual(g.files(), [c.conf.slice(1)]);
      assert.equal(g.file(c.conf), c.text);
      assert.ok(g.hooks.every((h) => h.result === 'ok'));
      await g.stop();
    });

    it(`${c.os}: already running on MASTER: nothing, unless the file changed: then test and reload`, async () => {
      const svc = new FakeService(c, { running: true, stoppedExit: c.stoppedExit });
      const g = await httpd({ os: c.os, answer: svc.answer, states: { [LAN]: 'MASTER' } });
      // Boot with the vhid MASTER: the file is new (changed), the server runs: test and reload.
      assert.deepEqual(g.take(), [`master: ${c.status}`, `master: ${c.test}`, `master: ${c.reload}`]);
      await g.go(LAN, 'MASTER', 'BACKUP');
      svc.running = true; // someone started it again by hand
      await g.go(LAN, 'BACKUP', 'MASTER');
      assert.deepEqual(g.take(), [`pre-backup: ${c.status}`, `pre-backup: ${c.stop}`, `master: ${c.status}`], 'unchanged: no reload');
      await g.go(LAN, 'MASTER', 'BACKUP');
      writeFileSync(join(g.root, c.conf), '# edited by hand\n');
      svc.running = true;
      g.take();
      await g.go(LAN, 'BACKUP', 'MASTER');
      assert.deepEqual(g.take(), [`master: ${c.status}`, `master: ${c.test}`, `master: ${c.reload}`]);
      assert.equal(g.file(c.conf), c.text, 'the hand edit is replaced');
      await g.stop();
    });
  }

  it('100 transitions in a burst: at most 2 runs, and the server ends running exactly when the last state is MASTER', async () => {
    for (const last of ['MASTER', 'BACKUP'] as const) {
      const c = CASES[0]!;
      const svc = new FakeService(c);
      const g = await httpd({ os: c.os, answer: svc.answer });
      await g.go(LAN, 'INIT', 'BACKUP');
      const before = g.hooks.length;
      for (let i = 0; i < 100; i++) {
        const to = (i % 2 === 0) === (last === 'BACKUP') ? 'MASTER' : 'BACKUP';
        void g.host.handle({
          seq: 1000 + i,
          time: '2026-01-01T00:00:00.000Z',
          vhid: 1,
          interface: 'eth0',
          key: LAN,
          from: to === 'MASTER' ? 'BACKUP' : 'MASTER',
          to,
          reason: 'flap',
        });
      }
      await g.host.idle();
      const runs = g.hooks.slice(before).filter((h) => h.hook === 'render');
      assert.ok(runs.length >= 1 && runs.length <= 2, `${runs.length} runs`);
      assert.equal(svc.running, last === 'MASTER', last);
      assert.equal(g.host.status()[0]!.state, last);
      await g.stop();
    }
  });

  it('linux, control = direct: a whole nginx.conf, nginx -c/-p with its own pid file; stop waits for the exit', async () => {
    const pid = '/srv/carpd/nginx/nginx.pid';
    const base = 'nginx -e /srv/carpd/nginx/error.log -c /srv/carpd/nginx.conf -p /srv/carpd/nginx';
    const svc = new FakeService({ status: `pgrep -F ${pid} -x nginx`, start: base, stop: `${base} -s stop` }, { lingers: 2 });
    const g = await httpd(
      { os: 'linux', answer: svc.answer },
      { control: 'direct', prefix: '/srv/carpd/nginx', conf: '/srv/carpd/nginx.conf', root: '/srv/www', port: '8080', server_name: 'www.example.org' },
    );
    const st = (hook: string) => `${hook}: pgrep -F ${pid} -x nginx`;
    await g.go(LAN, 'INIT', 'BACKUP');
    await g.go(LAN, 'BACKUP', 'MASTER');
    await g.go(LAN, 'MASTER', 'BACKUP');
    assert.deepEqual(g.take(), [
      st('pre-backup'),
      st('pre-backup'),
      st('master'),
      'master: mkdir -p /srv/carpd/nginx',
      `master: ${base}`,
      st('pre-backup'),
      `pre-backup: ${base} -s stop`,
      st('pre-backup'),
      st('pre-backup'),
      st('pre-backup'),
    ]);
    assert.equal(
      g.file('/srv/carpd/nginx.conf'),
      `# Rendered by carpd (plugin httpd, vhid:1@eth0). nginx runs on the CARP MASTER only; carpd starts
# and stops it.
worker_processes 1;
pid "/srv/carpd/nginx/nginx.pid";
error_log "/srv/carpd/nginx/error.log";
events {
	worker_connections 256;
}
http {
	types {
		text/html html htm;
		text/plain txt;
		text/css css;
		application/javascript js;
	}
	default_type application/octet-stream;
	access_log off;
	client_body_temp_path "/srv/carpd/nginx/client_body";
	proxy_temp_path "/srv/carpd/nginx/proxy";
	fastcgi_temp_path "/srv/carpd/nginx/fastcgi";
	uwsgi_temp_path "/srv/carpd/nginx/uwsgi";
	scgi_temp_path "/srv/carpd/nginx/scgi";
server {
	listen 198.18.0.101:8080;
	server_name "www.example.org";
	root "/srv/www";
}
}
`,
    );
    await g.stop();
  });

  it('linux, control = direct: a changed file is tested with the same -c/-p before nginx -s reload', async () => {
    const base = 'nginx -e /var/lib/carpd/nginx/error.log -c /etc/carpd/nginx.conf -p /var/lib/carpd/nginx';
    const g = await httpd({ os: 'linux', states: { [LAN]: 'MASTER' } }, { control: 'direct' });
    assert.deepEqual(g.take(), [
      'master: pgrep -F /var/lib/carpd/nginx/nginx.pid -x nginx',
      'master: nginx -t -q -e /var/lib/carpd/nginx/error.log -c /etc/carpd/nginx.conf -p /var/lib/carpd/nginx',
      `master: ${base} -s reload`,
    ]);
    await g.stop();
  });

  it('a server on every IPv4 VIP of a group scope', async () => {
    const vhids = [
      lanVhid({ addresses: ['198.18.0.101/24', '198.18.0.102/24'] }),
      vhidCfg(2, 100, { interface: 'eth1', addresses: ['203.0.113.7/24', '2001:db8::7/64'], groups: ['web'] }),
    ];
    const g = await golden({ os: 'openbsd', vhids, plugins: [{ name: 'httpd', follow: { kind: 'node' }, options: { root: '/htdocs/site' } }] });
    roots.push(g.root);
    assert.deepEqual(
      g
        .file('/etc/carpd/httpd.conf')
        .split('\n')
        .filter((l) => /listen|root/.test(l))
        .map((l) => l.trim()),
      ['listen on 198.18.0.101 port 80', 'listen on 198.18.0.102 port 80', 'listen on 203.0.113.7 port 80', 'root "/htdocs/site"'],
    );
    await g.stop();
  });

  it('control = direct on a BSD fails setup: the node stays demoted', async () => {
    const g = await httpd({ os: 'openbsd' }, { control: 'direct' });
    assert.equal(g.hooks[0]!.hook, 'setup');
    assert.equal(g.hooks[0]!.error?.code, 'CARPD_ERR_HOOK_FAILED');
    assert.match(g.hooks[0]!.error!.message, /Linux only/);
    assert.deepEqual(g.demotions, ['carp boot:plugins 240']);
    assert.equal(g.host.status()[0]!.ready, false);
    await g.stop();
  });

  it('plan: going MASTER shows the start (it assumes the server stopped with the BACKUP), going BACKUP the stop', async () => {
    const o: GoldenOptions = { os: 'openbsd', plugins: [{ name: 'httpd' }] };
    assert.deepEqual(planLines(await goldenPlan(o, LAN, 'MASTER')), [
      'render httpd: file /etc/carpd/httpd.conf',
      'vip: add 198.18.0.101/24 on eth0; gratuitous ARP',
      'master httpd: rcctl check httpd',
      'master httpd: rcctl -f start httpd',
    ]);
    assert.deepEqual(planLines(await goldenPlan({ ...o, os: 'linux' }, LAN, 'BACKUP')), [
      'render httpd: file /etc/nginx/conf.d/carpd.conf',
      'pre-backup httpd: service nginx status',
      'pre-backup httpd: service nginx stop',
      'vip: remove 198.18.0.101/24 from eth0',
    ]);
  });
});
