import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scriptArgv } from '../../src/daemon/scripts.js';
import { ucarpScriptFor as scriptFor } from '../../src/proto/ucarp-scripts.js';
import type { TransitionEvent } from '../../src/daemon/engine.js';
import { vhidCfg } from '../helpers/fake-wire.js';

const ev = (from: TransitionEvent['from'], to: TransitionEvent['to'], reason = 'x'): TransitionEvent => ({
  seq: 1,
  time: '',
  vhid: 1,
  interface: 'eth0',
  key: '1@eth0',
  from,
  to,
  reason,
});
const plain = { neutral: false, shutdown: false };

describe('ucarp script rules', () => {
  it('runs up on MASTER and down on BACKUP, including the first INIT → BACKUP', () => {
    assert.equal(scriptFor(ev('BACKUP', 'MASTER'), plain), 'up');
    assert.equal(scriptFor(ev('MASTER', 'BACKUP'), plain), 'down');
    assert.equal(scriptFor(ev('INIT', 'BACKUP'), plain), 'down');
  });

  it('-n skips the initial down script only', () => {
    const n = { neutral: true, shutdown: false };
    assert.equal(scriptFor(ev('INIT', 'BACKUP'), n), undefined);
    assert.equal(scriptFor(ev('MASTER', 'BACKUP'), n), 'down');
  });

  it('runs down at shutdown of a MASTER only with -z; always on link loss', () => {
    assert.equal(scriptFor(ev('MASTER', 'INIT', 'shutdown'), plain), undefined);
    assert.equal(scriptFor(ev('MASTER', 'INIT', 'shutdown'), { neutral: false, shutdown: true }), 'down');
    assert.equal(scriptFor(ev('MASTER', 'INIT', 'hardware interface down'), plain), 'down');
    assert.equal(scriptFor(ev('BACKUP', 'INIT', 'shutdown'), { neutral: false, shutdown: true }), undefined);
  });

  it('calls scripts as `script <interface> <vip> [xparam]` with the bare VIP', () => {
    const v = vhidCfg(1, 0, { upscript: '/up', downscript: '/down', xparam: 'lab', addresses: ['198.18.1.1/16'] });
    assert.deepEqual(scriptArgv(v, ev('BACKUP', 'MASTER'), plain), ['/up', 'eth0', '198.18.1.1', 'lab']);
    const { xparam: _x, ...noX } = v;
    assert.deepEqual(scriptArgv(noX, ev('MASTER', 'BACKUP'), plain), ['/down', 'eth0', '198.18.1.1']);
    assert.equal(scriptArgv({ ...v, upscript: undefined }, ev('BACKUP', 'MASTER'), plain), undefined);
  });
});
