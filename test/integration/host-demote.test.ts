/**
 * A failing plugin with `on_failure = demote N` makes its node yield to the peer, for real: two
 * `carpd run` nodes in lab namespaces, the built-in `script` plugin, and an up-script that fails
 * on one node only.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { HeardAdvert } from '../../src/proto/heard.js';
import { CARPD_JS, currentMasters, labConfig, labNodes, labVip, spawnObserver, writePassfile } from '../../src/lab/lab.js';
import { waitFor, withLab, type Lab, type LabNode } from '../../src/lab/netns.js';

async function holdsVip(lab: Lab, node: LabNode): Promise<boolean> {
  const r = await lab.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return r.stdout.includes(`${labVip(1)}/`);
}

test('a plugin failing with on_failure = demote 100 makes its node yield the VIP to the peer', { timeout: 45_000 }, async () => {
  await withLab({ prefix: 'carpdhost', nodes: labNodes(['n1', 'n2', 'obs']) }, async (lab) => {
    const passfile = writePassfile(lab.dir);
    const heard: HeardAdvert[] = [];
    spawnObserver(lab, lab.node('obs'), heard);
    const logs: Record<string, string[]> = { n1: [], n2: [] };
    for (const [name, advskew, exit] of [
      ['n1', 0, 1],
      ['n2', 50, 0],
    ] as const) {
      const node = lab.node(name);
      const up = join(lab.dir, `${name}-up.sh`);
      const down = join(lab.dir, `${name}-down.sh`);
      writeFileSync(up, `#!/bin/sh\necho "up $*" >> ${join(lab.dir, `${name}.calls`)}\nexit ${exit}\n`, { mode: 0o700 });
      writeFileSync(down, `#!/bin/sh\necho "down $*" >> ${join(lab.dir, `${name}.calls`)}\nexit 0\n`, { mode: 0o700 });
      const conf = join(lab.dir, `${name}.conf`);
      const plugin = ['[plugin.script]', 'follow = v1', 'style = ucarp', `up = ${up}`, `down = ${down}`, 'on_failure = demote 100', 'timeout = 5s', ''];
      writeFileSync(conf, `${labConfig({ vhids: 1, advskew, passfile })}\n${plugin.join('\n')}`, { mode: 0o600 });
      const child = lab.spawn(node.ns, [process.execPath, CARPD_JS, 'run', '-c', conf, '--control', join(lab.dir, `${name}.sock`)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { STATE_DIRECTORY: join(lab.dir, `${name}-state`) },
      });
      for (const s of [child.stdout, child.stderr]) createInterface({ input: s! }).on('line', (l) => logs[name]!.push(l));
      // n1 first, so it is the master that then fails.
      if (name === 'n1') await waitFor(() => logs.n1!.some((l) => l.includes('-> MASTER')), { timeoutMs: 10_000, what: 'n1 MASTER' });
    }
    const n1 = lab.node('n1');
    const n2 = lab.node('n2');
    const context = () => `\nn1:\n${logs.n1!.join('\n')}\nn2:\n${logs.n2!.join('\n')}`;
    // n1's up-script fails → demote 100 → its adverts carry demote 100 → n2 takes over.
    await waitFor(async () => (await holdsVip(lab, n2)) && !(await holdsVip(lab, n1)), {
      timeoutMs: 15_000,
      what: `n2 to hold the VIP alone${context()}`,
    }).catch((e: Error) => {
      throw new Error(e.message + context());
    });
    const demoted = heard.find((h) => h.src === n1.address && h.demote >= 100);
    assert.ok(demoted, 'n1 advertised its demotion in the demote byte');
    assert.ok(demoted.advskew >= 100, 'and folded into advskew');
    assert.ok(
      logs.n2!.some((l) => l.includes('BACKUP -> MASTER (preempting a more demoted master)')),
      context(),
    );
    assert.ok(
      logs.n1!.some((l) => /script/.test(l) && /up/.test(l) && /exit|status|failed|error/i.test(l)),
      `n1 logged the hook failure${context()}`,
    );
    const m = await waitFor(() => currentMasters(heard, 1, Date.now(), 1500).get(1), { timeoutMs: 5000, what: 'one master on the wire' });
    assert.equal(m, n2.address);
  });
});
