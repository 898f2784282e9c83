import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Mustache from 'mustache';
import { escaperFor } from '../../src/render/escape.js';
import { renderString } from '../../src/render/template.js';
import { Templates } from '../../src/adapters/templates.js';

const none = escaperFor('none');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'carpd-tpl-'));
  dirs.push(root);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

describe('escapers', () => {
  it('shell-word quotes anything that is not a plain word, and quotes quotes', () => {
    const sh = escaperFor('shell-word');
    assert.equal(sh('eth0'), 'eth0');
    assert.equal(sh('192.168.1.1/24'), '192.168.1.1/24');
    assert.equal(sh('a b'), "'a b'");
    assert.equal(sh("it's; rm -rf /"), "'it'\\''s; rm -rf /'");
    assert.equal(sh('$(reboot)'), "'$(reboot)'");
    assert.equal(sh(''), "''");
    assert.equal(sh(42), '42');
  });

  it('conf-quoted backslashes quotes and backslashes and refuses line breaks', () => {
    const q = escaperFor('conf-quoted');
    assert.equal(q('web "prod"'), '"web \\"prod\\""');
    assert.equal(q('a\\b'), '"a\\\\b"');
    assert.throws(() => q('a\n}\nevil {'), { code: 'CARPD_ERR_TEMPLATE_ESCAPE' });
  });

  it('json writes JSON values; none refuses objects; an unknown escaper is an error', () => {
    assert.equal(escaperFor('json')('a"b'), '"a\\"b"');
    assert.equal(escaperFor('json')([1, 'x']), '[1,"x"]');
    assert.throws(() => none({ a: 1 }), { code: 'CARPD_ERR_TEMPLATE_ESCAPE' });
    assert.throws(() => escaperFor('html' as never), { code: 'CARPD_ERR_TEMPLATE_ESCAPE' });
  });
});

describe('renderString', () => {
  it('never HTML-escapes and leaves the global Mustache.escape alone', () => {
    const before = Mustache.escape;
    assert.equal(renderString('{{v}}', { v: `<a href="x">&'` }, none), `<a href="x">&'`);
    assert.equal(renderString('x={{v}}', { v: 'a b' }, escaperFor('shell-word')), "x='a b'");
    assert.equal(Mustache.escape, before);
    assert.equal(Mustache.render('{{v}}', { v: '<' }), '&lt;', 'other users of mustache still get its default');
  });

  it('a missing variable is an error naming every missing name, in sections and partials too', () => {
    assert.throws(
      () => renderString('{{a}} {{b.c}} {{#list}}{{x}}{{/list}}', { list: [{ y: 1 }], b: {} }, none),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'CARPD_ERR_TEMPLATE_VARIABLE');
        assert.match(e.message, /"a", "b\.c", "x"/);
        return true;
      },
    );
    assert.throws(() => renderString('{{#tls}}on{{/tls}}', {}, none), { code: 'CARPD_ERR_TEMPLATE_VARIABLE' });
    assert.throws(() => renderString('{{> inc}}', {}, none, () => '{{port}}'), { code: 'CARPD_ERR_TEMPLATE_VARIABLE' });
  });

  it('false, null, empty lists and outer names are values, not missing ones', () => {
    const t = '{{#tls}}tls{{/tls}}{{^tls}}plain{{/tls}}|{{none}}|{{#vips}}{{.}}@{{dev}} {{/vips}}|{{#empty}}{{nope}}{{/empty}}';
    assert.equal(renderString(t, { tls: false, none: null, vips: ['a', 'b'], dev: 'em0', empty: [] }, none), 'plain||a@em0 b@em0 |');
  });

  it('a secret value never appears in an error message', () => {
    assert.throws(
      () => renderString('{{pw}}\n{{x}}', { pw: 'hunter2\n' }, escaperFor('conf-quoted')),
      (e: Error) => !e.message.includes('hunter2'),
    );
    assert.throws(
      () => renderString('{{missing}}', { pw: 'hunter2' }, none),
      (e: Error) => !e.message.includes('hunter2'),
    );
  });

  it('a syntax error has its code', () => {
    assert.throws(() => renderString('{{#a}}', { a: 1 }, none), { code: 'CARPD_ERR_TEMPLATE_SYNTAX' });
  });
});

describe('Templates', () => {
  const builtin = tree({
    'web/site.conf.mustache': 'generic {{n}}\n',
    'web/site.conf.openbsd.mustache': 'openbsd {{n}}\n',
    'web/head.mustache': 'head\n',
    'web/page.mustache': '{{> head}}body {{n}}\n',
  });
  const override = tree({ 'web/site.conf.mustache': 'operator {{n}}\n' });

  it('prefers the OS variant, and the operator override directory over the built-in one', () => {
    assert.equal(new Templates({ builtin }, 'openbsd').render('web', 'site.conf', { n: 1 }, { escape: 'none' }), 'openbsd 1\n');
    assert.equal(new Templates({ builtin }, 'linux').render('web', 'site.conf', { n: 1 }, { escape: 'none' }), 'generic 1\n');
    assert.equal(new Templates({ builtin, override }, 'openbsd').render('web', 'site.conf', { n: 1 }, { escape: 'none' }), 'operator 1\n');
  });

  it('renders partials from the same plugin; a missing template or a path as name is an error', () => {
    const t = new Templates({ builtin }, 'linux');
    assert.equal(t.render('web', 'page', { n: 2 }, { escape: 'none' }), 'head\nbody 2\n');
    assert.throws(() => t.render('web', 'nope', {}, { escape: 'none' }), { code: 'CARPD_ERR_TEMPLATE_MISSING' });
    assert.throws(() => t.render('web', '../etc/passwd', {}, { escape: 'none' }), { code: 'CARPD_ERR_TEMPLATE_NAME' });
    assert.deepEqual(
      t.candidates('web', 'x', '/p/templates').map((p) => p.slice(p.indexOf('web') >= 0 && !p.startsWith('/p') ? p.indexOf('web') : 0)),
      ['web/x.linux.mustache', 'web/x.mustache', '/p/templates/x.linux.mustache', '/p/templates/x.mustache'],
    );
  });
});
