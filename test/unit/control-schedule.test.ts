/**
 * Scheduled housekeeping with node-cron (six-field expressions, so the tests wait seconds, not
 * minutes): maintenance windows and the gratuitous ARP refresh.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CarpModel } from '../../src/config/model.js';
import { Maintenance } from '../../src/daemon/maintenance.js';
import type { IntentStore, MaintenanceIntent } from '../../src/ports/intent-store.js';
import { nodeCron } from '../../src/adapters/cron.js';
import { checkSchedules, SCHEDULE, Schedules } from '../../src/daemon/schedule.js';
import { waitFor } from '../../src/lab/netns.js';
import { silent } from '../helpers/fake-wire.js';

function memStore(): IntentStore & { stored?: MaintenanceIntent } {
  const s: IntentStore & { stored?: MaintenanceIntent } = {
    read: () => s.stored,
    write: (i) => {
      s.stored = i;
    },
  };
  return s;
}

function demoter(): { held: number; setDemotion(g: string, by: string, n: number): number } {
  const d = {
    held: 0,
    setDemotion(_g: string, _by: string, n: number) {
      d.held = n;
      return n;
    },
  };
  return d;
}

function model(over: Partial<CarpModel> = {}, global: Partial<CarpModel['global']> = {}): CarpModel {
  return { global: { allow: true, preempt: false, log: 2, ...global }, vhids: [], ...over };
}

test('a maintenance window enters at its cron time and leaves after its duration', async (t) => {
  const d = demoter();
  const changes: MaintenanceIntent[] = [];
  const mt = new Maintenance(d, memStore(), { logger: silent, onChange: (i) => changes.push(i) });
  const s = new Schedules({ engine: { refreshGarp: () => 0 }, cron: nodeCron, maintenance: mt, logger: silent });
  t.after(() => s.stop());
  s.start(model({ maintenance: { enter: '*/2 * * * * *', durationMs: 300, demote: 100, source: 'test:1' } }));
  await waitFor(() => changes.some((c) => c.on), { timeoutMs: 4_000, what: 'the window to begin' });
  const on = changes.find((c) => c.on)!;
  assert.equal(on.by, SCHEDULE);
  assert.ok(on.until, 'a duration window records its end');
  await waitFor(() => changes.some((c) => !c.on), { timeoutMs: 2_000, what: 'the window to end' });
  assert.equal(d.held, 0);
  s.stop();
});

test('a scheduled leave never ends maintenance the admin turned on', async (t) => {
  const d = demoter();
  const mt = new Maintenance(d, memStore(), { logger: silent });
  mt.set(true, 'carpctl');
  const s = new Schedules({ engine: { refreshGarp: () => 0 }, cron: nodeCron, maintenance: mt, logger: silent });
  t.after(() => s.stop());
  s.start(model({ maintenance: { enter: '0 0 1 1 *', leave: '* * * * * *', source: 'test:1' } }));
  await new Promise((r) => setTimeout(r, 1_300));
  assert.equal(mt.state.on, true);
  assert.equal(mt.state.by, 'carpctl');
  assert.equal(d.held, 240);
});

test('a window that began before a restart still ends on time', async (t) => {
  const d = demoter();
  const store = memStore();
  store.stored = { on: true, by: SCHEDULE, since: new Date().toISOString(), until: new Date(Date.now() + 200).toISOString() };
  const mt = new Maintenance(d, store, { logger: silent });
  mt.restore();
  assert.equal(d.held, 240);
  const s = new Schedules({ engine: { refreshGarp: () => 0 }, cron: nodeCron, maintenance: mt, logger: silent });
  t.after(() => s.stop());
  s.start(model({ maintenance: { enter: '0 0 1 1 *', durationMs: 1_000, source: 'test:1' } }));
  await waitFor(() => !mt.state.on, { timeoutMs: 2_000, what: 'the restored window to end' });
  assert.equal(d.held, 0);
});

test('the gratuitous ARP refresh runs every garp_refresh seconds and stops with the schedules', async () => {
  let runs = 0;
  const s = new Schedules({ engine: { refreshGarp: () => ++runs }, cron: nodeCron, logger: silent });
  s.start(model({}, { garpRefresh: 1 }));
  try {
    await waitFor(() => runs >= 2, { timeoutMs: 3_500, what: 'two refreshes' });
  } finally {
    s.stop();
  }
  const n = runs;
  await new Promise((r) => setTimeout(r, 1_200));
  assert.equal(runs, n, 'no refresh after stop');
});

test('bad schedule settings are reported, not thrown', () => {
  assert.deepEqual(
    checkSchedules(model({ maintenance: { enter: '* * * * *', leave: '* * *', source: 'carpd.conf:9' } }), (e) => nodeCron.valid(e)),
    ['carpd.conf:9: maintenance leave: not a cron expression: * * *'],
  );
  assert.equal(checkSchedules(model({ maintenance: { enter: '0 2 * * 0', durationMs: 3_600_000, source: 'x:1' } }), (e) => nodeCron.valid(e)).length, 0);
});
