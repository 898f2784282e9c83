/**
 * Scheduled housekeeping: maintenance windows and the gratuitous ARP refresh, on a simulated clock
 * and a cron that fires when the test says so. The last test checks the real node-cron adapter:
 * the expressions it accepts and one six-field job that fires within a second.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CarpModel } from '../../src/config/model.js';
import { Maintenance } from '../../src/daemon/maintenance.js';
import type { Cron } from '../../src/ports/cron.js';
import type { IntentStore, MaintenanceIntent } from '../../src/ports/intent-store.js';
import { nodeCron } from '../../src/adapters/cron.js';
import { checkSchedules, SCHEDULE, Schedules } from '../../src/daemon/schedule.js';
import { waitFor } from '../../src/lab/netns.js';
import { fakeTimers } from '../fixtures/plugins/kit.js';
import { FakeTime, silent } from '../helpers/fake-wire.js';

/** Wall-clock origin of the simulated time (the windows are recorded as dates). */
const EPOCH = Date.parse('2026-11-28T02:00:00Z');

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

/** A cron whose jobs run when `fire` names their expression; accepts what node-cron accepts. */
class ManualCron implements Cron {
  readonly jobs: { expression: string; fn: () => void; stopped: boolean }[] = [];
  valid(expression: string): boolean {
    return nodeCron.valid(expression);
  }
  schedule(expression: string, fn: () => void): () => void {
    const j = { expression, fn, stopped: false };
    this.jobs.push(j);
    return () => void (j.stopped = true);
  }
  setLogger(): void {}
  fire(expression: string): number {
    let n = 0;
    for (const j of this.jobs)
      if (!j.stopped && j.expression === expression) {
        j.fn();
        n++;
      }
    return n;
  }
}

function rig(): {
  time: FakeTime;
  cron: ManualCron;
  deps: { cron: ManualCron; timers: ReturnType<typeof fakeTimers>; now: () => number; logger: typeof silent };
} {
  const time = new FakeTime();
  const cron = new ManualCron();
  return { time, cron, deps: { cron, timers: fakeTimers(time), now: () => EPOCH + time.now, logger: silent } };
}

test('a maintenance window enters at its cron time and leaves after its duration', () => {
  const { time, cron, deps } = rig();
  const d = demoter();
  const changes: MaintenanceIntent[] = [];
  const mt = new Maintenance(d, memStore(), { logger: silent, demote: 100, onChange: (i) => changes.push(i) });
  const s = new Schedules({ ...deps, engine: { refreshGarp: () => 0 }, maintenance: mt });
  s.start(model({ maintenance: { enter: '0 2 * * 0', durationMs: 300_000, source: 'test:1' } }));
  time.advance(60_000);
  assert.equal(changes.length, 0, 'nothing before the cron time');
  assert.equal(cron.fire('0 2 * * 0'), 1);
  const on = changes.find((c) => c.on)!;
  assert.equal(on.by, SCHEDULE);
  assert.equal(on.until, new Date(EPOCH + 60_000 + 300_000).toISOString(), 'a duration window records its end');
  assert.equal(d.held, 100);
  time.advance(299_999);
  assert.equal(mt.state.on, true, 'still in the window 1 ms before its end');
  time.advance(1);
  assert.equal(mt.state.on, false);
  assert.equal(d.held, 0);
  s.stop();
});

test('a scheduled leave never ends maintenance the admin turned on', () => {
  const { cron, deps } = rig();
  const d = demoter();
  const mt = new Maintenance(d, memStore(), { logger: silent });
  mt.set(true, 'carpctl');
  const s = new Schedules({ ...deps, engine: { refreshGarp: () => 0 }, maintenance: mt });
  s.start(model({ maintenance: { enter: '0 0 1 1 *', leave: '30 2 * * *', source: 'test:1' } }));
  assert.equal(cron.fire('0 0 1 1 *'), 1, 'an entry while the admin holds maintenance changes nothing');
  assert.equal(cron.fire('30 2 * * *'), 1);
  assert.equal(mt.state.on, true);
  assert.equal(mt.state.by, 'carpctl');
  assert.equal(d.held, 240);
  s.stop();
});

test('a scheduled leave ends a window the schedule began', () => {
  const { cron, deps } = rig();
  const d = demoter();
  const mt = new Maintenance(d, memStore(), { logger: silent });
  const s = new Schedules({ ...deps, engine: { refreshGarp: () => 0 }, maintenance: mt });
  s.start(model({ maintenance: { enter: '0 2 * * 0', leave: '0 4 * * 0', source: 'test:1' } }));
  cron.fire('0 2 * * 0');
  assert.equal(mt.state.on, true);
  cron.fire('0 4 * * 0');
  assert.equal(mt.state.on, false);
  assert.equal(d.held, 0);
  s.stop();
});

test('a window that began before a restart still ends on time', () => {
  const { time, deps } = rig();
  const d = demoter();
  const store = memStore();
  store.stored = { on: true, by: SCHEDULE, since: new Date(EPOCH - 60_000).toISOString(), until: new Date(EPOCH + 200).toISOString() };
  const mt = new Maintenance(d, store, { logger: silent });
  mt.restore();
  assert.equal(d.held, 240);
  const s = new Schedules({ ...deps, engine: { refreshGarp: () => 0 }, maintenance: mt });
  s.start(model({ maintenance: { enter: '0 0 1 1 *', durationMs: 1_000, source: 'test:1' } }));
  time.advance(199);
  assert.equal(mt.state.on, true);
  time.advance(1);
  assert.equal(mt.state.on, false);
  assert.equal(d.held, 0);
  s.stop();
});

test('a window whose end passed while carpd was down ends at start', () => {
  const { deps } = rig();
  const d = demoter();
  const store = memStore();
  store.stored = { on: true, by: SCHEDULE, since: new Date(EPOCH - 60_000).toISOString(), until: new Date(EPOCH - 1).toISOString() };
  const mt = new Maintenance(d, store, { logger: silent });
  mt.restore();
  const s = new Schedules({ ...deps, engine: { refreshGarp: () => 0 }, maintenance: mt });
  s.start(model({ maintenance: { enter: '0 0 1 1 *', durationMs: 1_000, source: 'test:1' } }));
  assert.equal(mt.state.on, false);
  s.stop();
});

test('the gratuitous ARP refresh runs every garp_refresh seconds and stops with the schedules', () => {
  const { time, deps } = rig();
  let runs = 0;
  const s = new Schedules({ ...deps, engine: { refreshGarp: () => ++runs } });
  s.start(model({}, { garpRefresh: 30 }));
  time.advance(29_999);
  assert.equal(runs, 0);
  time.advance(1);
  assert.equal(runs, 1);
  time.advance(60_000);
  assert.equal(runs, 3);
  s.stop();
  time.advance(600_000);
  assert.equal(runs, 3, 'no refresh after stop');
});

test('bad schedule settings are reported, not thrown', () => {
  assert.deepEqual(
    checkSchedules(model({ maintenance: { enter: '* * * * *', leave: '* * *', source: 'carpd.conf:9' } }), (e) => nodeCron.valid(e)),
    ['carpd.conf:9: maintenance leave: not a cron expression: * * *'],
  );
  assert.equal(checkSchedules(model({ maintenance: { enter: '0 2 * * 0', durationMs: 3_600_000, source: 'x:1' } }), (e) => nodeCron.valid(e)).length, 0);
});

test('the node-cron adapter: five and six fields accepted, garbage refused, a six-field job fires and stops', async () => {
  assert.equal(nodeCron.valid('0 2 * * 0'), true);
  assert.equal(nodeCron.valid('*/2 * * * * *'), true);
  assert.equal(nodeCron.valid('* * *'), false);
  assert.equal(nodeCron.valid('61 * * * *'), false);
  let runs = 0;
  const stop = nodeCron.schedule('* * * * * *', () => runs++);
  try {
    await waitFor(() => runs >= 1, { timeoutMs: 2_500, what: 'a every-second cron job' });
  } finally {
    stop();
  }
});
