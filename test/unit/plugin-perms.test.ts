/**
 * The root daemon imports plugin.js and renders templates into root's service configs: a plugin
 * or template directory (or a file in it) that another user owns or that group or others can
 * write is refused at start-up and by `carpd check`. Private temp directories (mkdtemp, 0700, in
 * the sticky /tmp) and the repository's own plugin folders pass.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pluginFolders, untrustedPath, untrustedTree, UNSAFE_PATH } from '../../src/adapters/plugin-dirs.js';
import { Templates } from '../../src/adapters/templates.js';
import { checkCommand } from '../../src/cli/check.js';
import { PluginsInvalidError } from '../../src/host/errors.js';
import { loadPlugins } from '../../src/host/loader.js';
import { config, FIXTURES, modelOf, ROOT } from '../fixtures/plugins/kit.js';
import { vhidCfg } from '../helpers/fake-wire.js';
import { loaderPorts } from '../helpers/host-defaults.js';

const PLUGIN = `export default { name: 'rec', apiVersion: 1, hooks: { master() {} } };\n`;

/** A private plugin directory as the tests make them: mkdtemp (0700), folder 0755, plugin.js 0644. */
function pluginDir(t: TestContext): { tmp: string; dir: string; folder: string; file: string } {
  const tmp = mkdtempSync(join(tmpdir(), 'carpd-perms-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const dir = join(tmp, 'plugins');
  const folder = join(dir, 'rec');
  mkdirSync(folder, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  chmodSync(folder, 0o755);
  const file = join(folder, 'plugin.js');
  writeFileSync(file, PLUGIN, { mode: 0o644 });
  chmodSync(file, 0o644);
  return { tmp, dir, folder, file };
}

async function loadOperator(dir: string, templateDir?: string): Promise<string[]> {
  const model = modelOf([vhidCfg(1, 0)], { plugins: [config('rec', { kind: 'vhid', ref: '1@eth0' })] });
  try {
    const ps = await loadPlugins(model, {
      ...loaderPorts,
      dirs: { operator: dir },
      os: 'linux',
      templates: new Templates({ ...(templateDir ? { override: templateDir } : {}), builtin: join(FIXTURES, 'templates') }, 'linux'),
    });
    return ps.map((p) => `loaded ${p.name}`);
  } catch (e) {
    assert.ok(e instanceof PluginsInvalidError, String(e));
    return e.errors.map((x) => x.message);
  }
}

test('a private temp plugin directory (mkdtemp 0700 in the sticky /tmp) passes', async (t) => {
  const { tmp, dir } = pluginDir(t);
  chmodSync(tmp, 0o700);
  assert.equal(untrustedPath(dir), undefined);
  assert.deepEqual(pluginFolders(dir), ['rec']);
  assert.deepEqual(await loadOperator(dir), ['loaded rec']);
});

test('a plugin directory writable by others (0777) is refused, naming the directory and the fix', async (t) => {
  const { dir } = pluginDir(t);
  chmodSync(dir, 0o777);
  assert.throws(() => pluginFolders(dir), { code: UNSAFE_PATH, message: new RegExp(`${dir} is writable by group and others \\(mode 0777\\).*chmod go-w`) });
  // As for a directory that cannot be read: the directory is refused, so its plugins are not installed.
  const errs = await loadOperator(dir);
  assert.match(errs[0]!, /refusing plugin directory .* is writable by group and others \(mode 0777\)/);
  assert.ok(!errs.includes('loaded rec'));
});

test('a directory above the plugin directory that others can write is refused too', async (t) => {
  const { tmp, dir } = pluginDir(t);
  chmodSync(tmp, 0o777);
  assert.throws(() => pluginFolders(dir), { code: UNSAFE_PATH, message: new RegExp(`${tmp} is writable`) });
});

test('a plugin.js writable by group, or owned by another user, is refused', async (t) => {
  const { dir, file } = pluginDir(t);
  chmodSync(file, 0o664);
  assert.throws(() => pluginFolders(dir), { code: UNSAFE_PATH, message: /plugin\.js is writable by group \(mode 0664\)/ });
  chmodSync(file, 0o644);
  assert.deepEqual(pluginFolders(dir), ['rec']);
  if (process.geteuid?.() !== 0) return t.skip('chown needs root');
  chownSync(file, 4242, 4242);
  assert.throws(() => pluginFolders(dir), { code: UNSAFE_PATH, message: /plugin\.js is owned by uid 4242, not root/ });
});

test('a symlink in a plugin folder is judged by where it leads', async (t) => {
  const { tmp, dir, folder } = pluginDir(t);
  const loose = join(tmp, 'loose.js');
  writeFileSync(loose, 'export const x = 1;\n', { mode: 0o666 });
  chmodSync(loose, 0o666);
  symlinkSync(loose, join(folder, 'helper.js'));
  assert.throws(() => pluginFolders(dir), { code: UNSAFE_PATH, message: /loose\.js is writable by group and others \(mode 0666\)/ });
});

test('a template directory others can write is refused when a plugin looks up its templates', async (t) => {
  const { tmp } = pluginDir(t);
  const tdir = join(tmp, 'templates');
  mkdirSync(join(tdir, 'files'), { recursive: true });
  chmodSync(tdir, 0o757);
  const templates = new Templates({ override: tdir, builtin: join(FIXTURES, 'templates') }, 'linux');
  assert.throws(() => templates.resolve('files', 'conf'), { code: UNSAFE_PATH, message: /refusing template directory .* writable by others \(mode 0757\)/ });
  // Start-up reports it as the plugin's template error, with the others.
  const model = modelOf([vhidCfg(1, 0)], { plugins: [config('files', { kind: 'vhid', ref: '1@eth0' })] });
  await assert.rejects(
    loadPlugins(model, { ...loaderPorts, dirs: { builtin: join(FIXTURES, 'ok') }, os: 'linux', templates }),
    (e: Error) => e instanceof PluginsInvalidError && e.errors.some((x) => x.code === 'CARPD_ERR_PLUGIN_TEMPLATE' && /mode 0757/.test(x.message)),
  );
  chmodSync(tdir, 0o755);
  assert.doesNotThrow(() => templates.resolve('files', 'conf'));
});

test('carpd check refuses a world-writable plugin_dir, at the [plugin.NAME] line', async (t) => {
  const { tmp, dir } = pluginDir(t);
  chmodSync(dir, 0o777);
  const conf = join(tmp, 'carpd.conf');
  writeFileSync(
    conf,
    `[carpd]\nplugin_dir = ${dir}\n\n[vhid.lan]\nvhid = 1\ninterface = eth0\naddress = 198.18.1.1/16\npass = s3cret\n\n[plugin.rec]\nfollow = lan\n`,
    { mode: 0o600 },
  );
  const out: string[] = [];
  const err: string[] = [];
  const code = await checkCommand(['-c', conf], { out: (l) => out.push(l), err: (l) => err.push(l) });
  assert.equal(code, 1);
  assert.deepEqual(out, []);
  assert.ok(
    err.some((l) => l.startsWith(`${conf}:10: `) && l.includes(`refusing plugin directory ${dir}`) && l.includes('mode 0777')),
    err.join('\n'),
  );
});

test("the repository's plugin and template folders pass (a checkout is 0755/0644)", () => {
  for (const d of [join(ROOT, 'plugins'), join(FIXTURES, 'ok'), join(FIXTURES, 'bad'), join(FIXTURES, 'dup')]) assert.doesNotThrow(() => pluginFolders(d), d);
  for (const d of [join(ROOT, 'templates'), join(FIXTURES, 'templates')]) assert.equal(untrustedPath(d) ?? untrustedTree(d), undefined, d);
});
