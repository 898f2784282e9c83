/**
 * The service files in rc.d/: shell syntax (dash -n), golden tests of what the FreeBSD and OpenBSD
 * scripts would run (under test doubles of each rc.subr that print commands instead of running
 * them, following the real rc.subr's rules), the systemd unit's settings, and install-service.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { installServiceCommand, RCD_DIR, renderServiceFile } from '../../src/cli/install-service.js';

const SCRIPTS = ['carpd', 'carpd.openbsd', 'carpd.init', 'carpd.default'];

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-rcd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A stub `carpd` that logs its argv and answers `check` with $CHECK_EXIT. */
function stubCarpd(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'carpd'),
    '#!/bin/sh\necho "carpd $*"\nif [ "$1" = check ]; then\n\tif [ "${CHECK_EXIT:-0}" = 0 ]; then echo "configuration OK"; else echo "carpd.conf:3: bad"; fi\n\texit "${CHECK_EXIT:-0}"\nfi\n',
    { mode: 0o755 },
  );
  return bin;
}

/**
 * Run `script arg` with dash: stdout lines, and stderr (the rc.subr double's trace) apart, with the
 * stub's directory put back to /usr/local/bin and runs of blanks collapsed as the shell would.
 */
function runScript(script: string, arg: string, env: Record<string, string>, bin: string): { code: number | null; lines: string[]; trace: string[] } {
  const r = spawnSync('dash', [script, arg], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', ...env }, timeout: 10_000 });
  const clean = (text: string) =>
    text
      .replaceAll(bin, '/usr/local/bin')
      .split('\n')
      .map((l) => l.replace(/[ \t]+/g, ' ').trim())
      .filter(Boolean);
  return { code: r.status, lines: clean(r.stdout), trace: clean(r.stderr) };
}

describe('rc.d files', () => {
  it('every shell script passes sh -n (dash)', () => {
    for (const f of SCRIPTS) {
      const r = spawnSync('dash', ['-n', join(RCD_DIR, f)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${f}: ${r.stderr}`);
    }
  });

  /**
   * FreeBSD rc.subr, reduced to what carpd's script relies on, after libexec/rc/rc.subr
   * run_rc_command(): `${name}_program` overrides command; rc_flags is `${name}_flags` (start_precmd
   * may change it); pids come from `check_pidfile $pidfile $procname $command_interpreter`; start runs
   * `limits -C daemon $command $rc_flags $command_args` after start_precmd succeeded; stop and reload
   * kill -TERM / -HUP the pid (reload after reload_precmd); `${cmd}_cmd` replaces an extra command.
   */
  const FREEBSD_RC_SUBR = `
load_rc_config() { . "$RC_CONF"; }
checkyesno() { eval _v=\\$$1; case $_v in [Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]|[Oo][Nn]|1) return 0 ;; *) return 1 ;; esac; }
warn() { echo "$0: WARNING: $*"; }
check_pidfile() { echo "check_pidfile $*" >&2; [ -f "$PIDFILE_FIXTURE" ] && cat "$PIDFILE_FIXTURE"; }
run_rc_command() {
	rc_arg=$1
	eval _override=\\$\${name}_program
	command=\${_override:-$command}
	_procname=\${procname:-$command}
	if [ -n "$flags" ]; then rc_flags=$flags; else eval rc_flags=\\$\${name}_flags; fi
	eval _user=\\$\${name}_user
	rc_pid=$(check_pidfile $pidfile $_procname $command_interpreter)
	case " start stop restart status $extra_commands " in *" $rc_arg "*) ;; *) echo "$0: unknown directive '$rc_arg'."; return 1 ;; esac
	if [ "$rc_arg" != stop ] && [ "$rc_arg" != status ] && ! checkyesno $rcvar; then
		echo "Cannot '$rc_arg' $name. Set $rcvar to YES in /etc/rc.conf or use 'one$rc_arg' instead of '$rc_arg'."
		return 0
	fi
	eval _cmd=\\$\${rc_arg}_cmd _precmd=\\$\${rc_arg}_precmd
	if [ -n "$_cmd" ]; then
		if [ -n "$_precmd" ]; then eval "$_precmd" || return 1; fi
		eval "$_cmd"
		return $?
	fi
	case $rc_arg in
	start)
		if [ -n "$rc_pid" ]; then echo "$name already running? (pid=$rc_pid)."; return 1; fi
		if [ -n "$_precmd" ] && ! eval "$_precmd"; then warn "failed precmd routine for $name"; return 1; fi
		_doit="$command $rc_flags $command_args"
		[ -n "$_user" ] && _doit="su -m $_user -c 'sh -c \\"$_doit\\"'"
		echo "Starting $name."
		echo "RUN: limits -C daemon $_doit"
		;;
	stop)
		if [ -z "$rc_pid" ]; then echo "$name not running? (check $pidfile)."; return 1; fi
		echo "Stopping $name."
		echo "RUN: kill -\${sig_stop:-TERM} $rc_pid"
		;;
	reload)
		if [ -z "$rc_pid" ]; then echo "$name not running? (check $pidfile)."; return 1; fi
		if [ -n "$_precmd" ]; then eval "$_precmd" || return 1; fi
		echo "RUN: kill -\${sig_reload:-HUP} $rc_pid"
		;;
	status)
		if [ -n "$rc_pid" ]; then echo "$name is running as pid $rc_pid."; else echo "$name is not running."; return 1; fi
		;;
	esac
}
`;

  function freebsd(t: TestContext, rcconf: string, pid?: number) {
    const dir = tmp(t);
    const bin = stubCarpd(dir);
    writeFileSync(join(dir, 'rc.subr'), FREEBSD_RC_SUBR);
    writeFileSync(join(dir, 'rc.conf'), rcconf);
    if (pid) writeFileSync(join(dir, 'pid'), `${pid}\n`);
    const script = join(dir, 'carpd');
    const text = renderServiceFile(readFileSync(join(RCD_DIR, 'carpd'), 'utf8'), bin).replace('. /etc/rc.subr', `. ${join(dir, 'rc.subr')}`);
    writeFileSync(script, text, { mode: 0o755 });
    return (arg: string, env: Record<string, string> = {}) =>
      runScript(script, arg, { RC_CONF: join(dir, 'rc.conf'), PIDFILE_FIXTURE: join(dir, 'pid'), ...env }, bin);
  }

  const FB_CONF = 'carpd_enable="YES"\ncarpd_config="/usr/local/etc/carpd.conf /usr/local/etc/carpd.d/lan.conf"\ncarpd_flags="--log-level 6"\n';
  const FB_CHECK = 'carpd check -c /usr/local/etc/carpd.conf -c /usr/local/etc/carpd.d/lan.conf';

  it('FreeBSD start: carpd check first, then daemon(8) with a pidfile and syslog, carpd_flags behind "carpd run"', (t) => {
    const rc = freebsd(t, FB_CONF);
    assert.deepEqual(rc('start'), {
      code: 0,
      trace: ['check_pidfile /var/run/carpd.pid /usr/local/bin/carpd node'],
      lines: [
        FB_CHECK,
        'configuration OK',
        'Starting carpd.',
        'RUN: limits -C daemon /usr/sbin/daemon -f -S -T carpd -p /var/run/carpd.pid /usr/local/bin/carpd run -c /usr/local/etc/carpd.conf -c /usr/local/etc/carpd.d/lan.conf --log-level 6',
      ],
    });
  });

  it('FreeBSD start refuses a configuration with errors, and does nothing unless enabled', (t) => {
    const rc = freebsd(t, FB_CONF);
    const bad = rc('start', { CHECK_EXIT: '1' });
    assert.equal(bad.code, 1);
    assert.ok(!bad.lines.some((l) => l.startsWith('RUN:')), bad.lines.join('\n'));
    assert.ok(bad.lines.includes('carpd.conf:3: bad'));
    assert.ok(bad.lines.some((l) => l.includes('failed precmd routine for carpd')));
    const off = freebsd(t, 'carpd_config=/usr/local/etc/carpd.conf\n')('start');
    assert.ok(!off.lines.some((l) => l.startsWith('RUN:') || l.startsWith('carpd ')), off.lines.join('\n'));
    assert.ok(off.lines.some((l) => l.startsWith("Cannot 'start' carpd. Set carpd_enable to YES")));
  });

  it('FreeBSD defaults, carpd_user, stop, reload (checked first), status and check', (t) => {
    const def = freebsd(t, 'carpd_enable=YES\ncarpd_user=_carpd\n')('start');
    assert.deepEqual(def.lines.slice(-1), [
      `RUN: limits -C daemon su -m _carpd -c 'sh -c "/usr/sbin/daemon -f -S -T carpd -p /var/run/carpd.pid /usr/local/bin/carpd run -c /usr/local/etc/carpd.conf"'`,
    ]);
    const rc = freebsd(t, FB_CONF, 4242);
    assert.deepEqual(rc('start').lines, ['carpd already running? (pid=4242).']);
    assert.deepEqual(rc('stop').lines, ['Stopping carpd.', 'RUN: kill -TERM 4242']);
    assert.deepEqual(rc('reload').lines, [FB_CHECK, 'configuration OK', 'RUN: kill -HUP 4242']);
    assert.deepEqual(rc('reload', { CHECK_EXIT: '1' }).lines, [FB_CHECK, 'carpd.conf:3: bad']);
    assert.deepEqual(rc('status'), {
      code: 0,
      lines: ['carpd is running as pid 4242.'],
      trace: ['check_pidfile /var/run/carpd.pid /usr/local/bin/carpd node'],
    });
    assert.deepEqual(rc('check').lines, [FB_CHECK, 'configuration OK']);
    const down = freebsd(t, FB_CONF)('status');
    assert.equal(down.code, 1);
    assert.deepEqual(down.lines, ['carpd is not running.']);
  });

  it('FreeBSD carpd_engine is passed as --engine to both carpd check and carpd run', (t) => {
    const rc = freebsd(t, 'carpd_enable="YES"\ncarpd_engine="kernel"\n');
    const r = rc('start');
    assert.equal(r.code, 0);
    assert.deepEqual(r.lines, [
      'carpd check -c /usr/local/etc/carpd.conf --engine kernel',
      'configuration OK',
      'Starting carpd.',
      'RUN: limits -C daemon /usr/sbin/daemon -f -S -T carpd -p /var/run/carpd.pid /usr/local/bin/carpd run -c /usr/local/etc/carpd.conf --engine kernel',
    ]);
  });

  /**
   * OpenBSD rc.subr (etc/rc.d/rc.subr 1.160), reduced: `${_name}_flags` / `_logger` from rc.conf.local
   * override daemon_flags / daemon_logger; pexp defaults to "$daemon $daemon_flags"; rc_exec runs
   * through su -fl with the logger pipe; reload and stop pkill -xf pexp; start runs rc_pre first.
   */
  const OPENBSD_RC_SUBR = `
_name=\${0##*/}
[ -n "\${daemon}" ] || { echo "$0: daemon is not set"; exit 1; }
eval _rcflags=\\\${\${_name}_flags}
eval _rclogger=\\\${\${_name}_logger}
[ -n "\${_rcflags}" ] && daemon_flags=\${_rcflags}
[ -n "\${_rclogger}" ] && daemon_logger=\${_rclogger}
daemon_class=daemon
daemon_user=root
daemon_rtable=0
pexp="\${daemon}\${daemon_flags:+ \${daemon_flags}}"
rc_exec() { echo "RUN: su -fl -c \${daemon_class} -s /bin/sh \${daemon_user} -c \\"\${daemon_logger:+set -o pipefail; }$*\${daemon_logger:+ 2>&1 | logger -isp \${daemon_logger} -t \${_name}}\\""; }
rc_start() { rc_exec "\${daemon} \${daemon_flags}"; }
rc_check() { echo "RUN: pgrep -T \${daemon_rtable} -q -xf \\"\${pexp}\\""; }
rc_reload() { echo "RUN: pkill -HUP -T \${daemon_rtable} -xf \\"\${pexp}\\""; }
rc_stop() { echo "RUN: pkill -TERM -T \${daemon_rtable} -xf \\"\${pexp}\\""; }
rc_cmd() {
	case "$1" in
	start)
		if type rc_pre >/dev/null 2>&1; then rc_pre || { echo "\${_name}(failed)"; exit 1; }; fi
		rc_start
		[ X"\${rc_bg}" = X"YES" ] && echo "(in the background)"
		echo "\${_name}(ok)"
		;;
	stop) rc_stop; echo "\${_name}(ok)" ;;
	reload) rc_reload; echo "\${_name}(ok)" ;;
	check) rc_check ;;
	*) echo "usage: $0 [-df] start|stop|restart|reload|check"; exit 1 ;;
	esac
}
`;

  function openbsd(t: TestContext, env: Record<string, string> = {}) {
    const dir = tmp(t);
    const bin = stubCarpd(dir);
    writeFileSync(join(dir, 'rc.subr'), OPENBSD_RC_SUBR);
    // rc.d scripts are named after the daemon.
    const script = join(dir, 'carpd');
    const text = renderServiceFile(readFileSync(join(RCD_DIR, 'carpd.openbsd'), 'utf8'), bin).replace('. /etc/rc.d/rc.subr', `. ${join(dir, 'rc.subr')}`);
    writeFileSync(script, text, { mode: 0o755 });
    return (arg: string, more: Record<string, string> = {}) => runScript(script, arg, { ...env, ...more }, bin);
  }

  it('OpenBSD start: rc_pre runs carpd check with the -c files of the flags, then carpd run under su with logger', (t) => {
    const rc = openbsd(t, { carpd_flags: '-c /etc/carpd.conf -c /etc/carpd.d/dmz.conf --log-level 6' });
    assert.deepEqual(rc('start'), {
      code: 0,
      trace: [],
      lines: [
        'carpd check -c /etc/carpd.conf -c /etc/carpd.d/dmz.conf',
        'configuration OK',
        'RUN: su -fl -c daemon -s /bin/sh root -c "set -o pipefail; /usr/local/bin/carpd run -c /etc/carpd.conf -c /etc/carpd.d/dmz.conf --log-level 6 2>&1 | logger -isp daemon.info -t carpd"',
        '(in the background)',
        'carpd(ok)',
      ],
    });
    const bad = rc('start', { CHECK_EXIT: '1' });
    assert.equal(bad.code, 1);
    assert.ok(!bad.lines.some((l) => l.startsWith('RUN:')), bad.lines.join('\n'));
  });

  it('OpenBSD default flags, and reload / stop / check match the node process by its full command line', (t) => {
    const rc = openbsd(t);
    assert.deepEqual(rc('start').lines.slice(0, 3), [
      'carpd check -c /etc/carpd.conf',
      'configuration OK',
      'RUN: su -fl -c daemon -s /bin/sh root -c "set -o pipefail; /usr/local/bin/carpd run -c /etc/carpd.conf 2>&1 | logger -isp daemon.info -t carpd"',
    ]);
    assert.deepEqual(rc('reload').lines, ['RUN: pkill -HUP -T 0 -xf "node /usr/local/bin/carpd run -c /etc/carpd.conf"', 'carpd(ok)']);
    assert.deepEqual(rc('stop').lines, ['RUN: pkill -TERM -T 0 -xf "node /usr/local/bin/carpd run -c /etc/carpd.conf"', 'carpd(ok)']);
    assert.deepEqual(rc('check').lines, ['RUN: pgrep -T 0 -q -xf "node /usr/local/bin/carpd run -c /etc/carpd.conf"']);
  });

  it('OpenBSD flags with --engine kernel (as the script documents): carpd check gets it too', (t) => {
    const rc = openbsd(t, { carpd_flags: '-c /etc/carpd.conf --engine kernel' });
    assert.deepEqual(rc('start').lines.slice(0, 3), [
      'carpd check -c /etc/carpd.conf --engine kernel',
      'configuration OK',
      'RUN: su -fl -c daemon -s /bin/sh root -c "set -o pipefail; /usr/local/bin/carpd run -c /etc/carpd.conf --engine kernel 2>&1 | logger -isp daemon.info -t carpd"',
    ]);
  });

  it('the systemd unit: check before start, HUP reload, restart on failure, only CAP_NET_RAW and CAP_NET_ADMIN', () => {
    const unit = readFileSync(join(RCD_DIR, 'carpd.service'), 'utf8');
    const keys = new Map<string, string[]>();
    let section = '';
    for (const line of unit.split('\n')) {
      const l = line.trim();
      if (!l || l.startsWith('#')) continue;
      const sec = /^\[(\w+)\]$/.exec(l);
      if (sec) {
        section = sec[1]!;
        continue;
      }
      const eq = l.indexOf('=');
      assert.ok(eq > 0, `not key=value: ${l}`);
      const k = `${section}.${l.slice(0, eq)}`;
      keys.set(k, [...(keys.get(k) ?? []), l.slice(eq + 1)]);
    }
    const one = (k: string) => {
      const v = keys.get(k);
      assert.equal(v?.length, 1, `${k}: ${JSON.stringify(v)}`);
      return v![0]!;
    };
    assert.equal(one('Service.ExecStartPre'), '/usr/local/bin/carpd check -c ${CARPD_CONFIG}');
    assert.match(one('Service.ExecStart'), /^\/usr\/local\/bin\/carpd run -c \$\{CARPD_CONFIG\} /);
    assert.deepEqual(keys.get('Service.ExecReload'), ['/usr/local/bin/carpd check -c ${CARPD_CONFIG}', '/bin/kill -HUP $MAINPID']);
    assert.equal(one('Service.Restart'), 'on-failure');
    assert.equal(one('Service.CapabilityBoundingSet'), 'CAP_NET_RAW CAP_NET_ADMIN');
    assert.equal(one('Service.NoNewPrivileges'), 'yes');
    assert.match(one('Service.ProtectSystem'), /^(yes|full|strict)$/);
    assert.equal(one('Service.EnvironmentFile'), '-/etc/default/carpd');
    assert.equal(one('Service.KillMode'), 'mixed');
    assert.equal(one('Install.WantedBy'), 'multi-user.target');
    const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (analyze.status === 0) {
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(RCD_DIR, 'carpd.service')], { encoding: 'utf8', timeout: 20_000 });
      // Only the unit's own syntax matters here, not whether /usr/local/bin/carpd exists.
      assert.ok(!/Unknown (key|section)|Invalid|Failed to parse/i.test(r.stderr), r.stderr);
    }
  });
});

describe('carpd install-service', () => {
  async function install(args: string[]): Promise<string[]> {
    const out: string[] = [];
    const code = await installServiceCommand(args, { out: (l) => out.push(l), err: (l) => out.push(`err: ${l}`) });
    assert.equal(code, 0, out.join('\n'));
    return out;
  }

  it('Debian without systemd: the LSB script and /etc/default/carpd, pointing at --bin, and the next command', async (t) => {
    const root = tmp(t);
    const out = await install(['--prefix', root, '--os', 'linux', '--init', 'sysv', '--bin', '/opt/carpd/bin']);
    const script = join(root, 'etc/init.d/carpd');
    assert.equal(statSync(script).mode & 0o777, 0o755);
    const text = readFileSync(script, 'utf8');
    assert.ok(text.includes('DAEMON=/opt/carpd/bin/carpd\n') && text.includes('CARPCTL=/opt/carpd/bin/carpctl\n'), 'binaries from --bin');
    assert.equal(statSync(join(root, 'etc/default/carpd')).mode & 0o777, 0o644);
    assert.deepEqual(out.slice(-3), ['next (linux, sysv):', '  update-rc.d carpd defaults', '  service carpd start']);

    // The admin's settings are never replaced; the script only with --force.
    writeFileSync(join(root, 'etc/default/carpd'), 'CARPD_OPTS="--log-level 7"\n');
    writeFileSync(script, '# edited\n');
    const again = await install(['--prefix', root, '--os', 'linux', '--init', 'sysv', '--bin', '/opt/carpd/bin']);
    assert.ok(
      again.some((l) => l.startsWith(`kept ${script}`)),
      again.join('\n'),
    );
    assert.equal(readFileSync(script, 'utf8'), '# edited\n');
    await install(['--prefix', root, '--os', 'linux', '--init', 'sysv', '--bin', '/opt/carpd/bin', '--force']);
    assert.notEqual(readFileSync(script, 'utf8'), '# edited\n');
    assert.equal(readFileSync(join(root, 'etc/default/carpd'), 'utf8'), 'CARPD_OPTS="--log-level 7"\n');
  });

  it('systemd, FreeBSD and OpenBSD put their files where each looks for them', async (t) => {
    const root = tmp(t);
    const sd = await install(['--prefix', root, '--os', 'linux', '--init', 'systemd']);
    assert.ok(existsSync(join(root, 'etc/systemd/system/carpd.service')));
    assert.ok(sd.includes('  systemctl enable --now carpd'), sd.join('\n'));
    const fb = await install(['--prefix', root, '--os', 'freebsd', '--bin', '/usr/local/bin']);
    assert.equal(statSync(join(root, 'usr/local/etc/rc.d/carpd')).mode & 0o777, 0o755);
    assert.deepEqual(fb.slice(-2), ['  sysrc carpd_enable=YES', '  service carpd start']);
    const ob = await install(['--prefix', root, '--os', 'openbsd', '--bin', '/usr/local/bin']);
    assert.equal(statSync(join(root, 'etc/rc.d/carpd')).mode & 0o777, 0o555);
    assert.deepEqual(ob.slice(-2), ['  rcctl enable carpd', '  rcctl start carpd']);
    chmodSync(join(root, 'etc/rc.d/carpd'), 0o755);
  });

  it('refuses an unknown OS or init system', async () => {
    await assert.rejects(installServiceCommand(['--os', 'plan9'], { out: () => undefined, err: () => undefined }), { code: 'CARPD_ERR_USAGE' });
    await assert.rejects(installServiceCommand(['--init', 'upstart', '--os', 'linux'], { out: () => undefined, err: () => undefined }), {
      code: 'CARPD_ERR_USAGE',
    });
  });
});
