import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const API = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src', 'plugin-api.js');

/** A plugin as an operator writes one: plain JS, typed through JSDoc. */
function plugin(optionRead: string): string {
  return `// @ts-check
const OPTIONS = { port: { default: '80' }, conf: { pattern: /\\/.+/ } };
/** @type {import(${JSON.stringify(API)}).PluginDeclaration<keyof typeof OPTIONS>} */
export default { name: 'x', apiVersion: 1, options: OPTIONS, hooks: { master: (ctx) => ctx.options.${optionRead} } };
`;
}

test('checkJs accepts a declared option name and rejects a misspelt one in ctx.options', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-plugin-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.js');
  const typo = join(dir, 'typo.js');
  writeFileSync(good, plugin('port'));
  writeFileSync(typo, plugin('prot'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  const program = ts.createProgram([good, typo], {
    allowJs: true,
    checkJs: true,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: ['node'],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
  });
  const messages = (file: string) =>
    ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(messages(good), []);
  const errors = messages(typo);
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0]!, /Property 'prot' does not exist/);
});
