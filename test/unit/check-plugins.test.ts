import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkCommand } from '../../src/cli/check.js';

function run(conf: string): Promise<{ code: number; out: string[]; err: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-check-plugins-'));
  const file = join(dir, 'carpd.conf');
  writeFileSync(file, conf, { mode: 0o600 });
  const out: string[] = [];
  const err: string[] = [];
  return checkCommand(['-c', file], { out: (l) => out.push(l), err: (l) => err.push(l.replace(file, 'carpd.conf')) }).then((code) => {
    rmSync(dir, { recursive: true, force: true });
    return { code, out, err };
  });
}

const VHID = '[vhid.lan]\nvhid = 1\ninterface = eth0\naddress = 198.18.1.1/16\npass = s3cret\n';

test('carpd check validates plugins on the start-up path and points at the [plugin.NAME] line', async () => {
  const bad = await run(`${VHID}\n[plugin.nosuch]\nfollow = lan\n`);
  assert.equal(bad.code, 1);
  assert.equal(bad.out.length, 0);
  assert.equal(bad.err.length, 1);
  assert.match(bad.err[0]!, /^carpd\.conf:7: plugin nosuch: /);

  const good = await run(`${VHID}\n[plugin.script]\nfollow = lan\nstyle = ucarp\nup = /bin/true\ndown = /bin/true\n`);
  assert.deepEqual(good.err, []);
  assert.deepEqual(good.out, ['configuration OK']);
});

test('carpd check reports a plugin option that start-up would refuse', async () => {
  const r = await run(`${VHID}\n[plugin.script]\nfollow = lan\nstyle = sideways\n`);
  assert.equal(r.code, 1);
  assert.match(r.err.join('\n'), /^carpd\.conf:7: plugin script: .*style/m);
});
