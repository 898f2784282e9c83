import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Which layer (a folder under src/, or a file directly in src/) may import which. The direction is
 * cli → (lab, daemon) → (host, config, render) → (core, proto); ports are imported by anyone;
 * adapters implement ports and only composition roots import them.
 */
const LAYERS: Record<string, readonly string[]> = {
  core: ['core'],
  proto: ['proto'],
  ports: ['ports', 'core', 'proto'],
  // Pure parsers of the kernels' and keepalived's CARP state (devd, ifconfig, route monitor, notify fifo).
  sources: ['sources', 'ports', 'core', 'proto'],
  config: ['config', 'ports'],
  render: ['render', 'ports'],
  host: ['host', 'config', 'render', 'core', 'proto', 'ports'],
  daemon: ['daemon', 'host', 'config', 'render', 'sources', 'core', 'proto', 'ports'],
  lab: ['lab', 'host', 'config', 'render', 'core', 'proto', 'ports', 'adapters'],
  cli: ['cli', 'lab', 'daemon', 'host', 'config', 'render', 'sources', 'core', 'proto', 'ports', 'adapters'],
  // Adapters may use the pure layers' helpers and types, never the layers that use them.
  adapters: ['adapters', 'ports', 'config', 'render', 'sources', 'core', 'proto'],
  // src/plugin-api.ts: the plugin API types, and ucarp's script rules the script plugin shares.
  'plugin-api': ['plugin-api', 'host', 'proto'],
};

/** Composition roots outside cli/ and lab/: they wire adapters into the layers below them. */
const ROOTS: Record<string, readonly string[]> = {
  // The daemon's main.
  'src/daemon/run.ts': ['adapters'],
  // Starts the plugin host: forks its child process (or builds it in-process for tests).
  'src/daemon/plugins.ts': ['adapters'],
  // The plugin host child process's main.
  'src/host/child.ts': ['adapters'],
  // Finds the plugins and templates on disk for the child and for `carpd plan`.
  'src/host/load-model.ts': ['adapters'],
  // `carpd plan`: a one-shot dry run of the host in carpd's own process, on a relocatable root.
  'src/host/plan.ts': ['adapters'],
};

/** Packages that touch the OS: only src/adapters may import them. */
const ADAPTER_ONLY = ['raw-socket', 'koffi', 'execa', 'node-cron', 'node:fs', 'fs', 'node:child_process', 'child_process'];

interface Violation {
  file: string;
  module: string;
  rule: string;
}

/** Every module a source imports: `import … from`, `export … from`, bare `import '…'` and `import('…')`. */
function importsOf(source: string): string[] {
  // Comments may quote imports (usage examples); string contents are left alone.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The layer of a path under src/: its first folder, or a top-level file's name. */
function layerOf(srcPath: string): string {
  const parts = srcPath.split('/');
  return parts.length > 2 ? parts[1]! : parts[1]!.replace(/\.ts$/, '');
}

/** What the rules say about `file` (a path like src/config/load.ts) importing `module`. */
function checkImport(file: string, module: string): Violation | undefined {
  const layer = layerOf(file);
  if (module.startsWith('.')) {
    const target = posix.normalize(posix.join(posix.dirname(file), module));
    if (!target.startsWith('src/')) return { file, module, rule: `${layer} may import only under src/` };
    const to = layerOf(target);
    const allowed = [...(LAYERS[layer] ?? []), ...(ROOTS[file] ?? [])];
    if (!allowed.includes(to)) return { file, module, rule: `${layer} may import ${allowed.join(', ')}; not ${to}` };
    return undefined;
  }
  const pkg = module.startsWith('@') ? module.split('/').slice(0, 2).join('/') : module.split('/')[0]!;
  if (ADAPTER_ONLY.includes(pkg) && layer !== 'adapters') return { file, module, rule: `only src/adapters may import ${pkg}` };
  return undefined;
}

function check(file: string, source: string): Violation[] {
  if (!(layerOf(file) in LAYERS)) return [{ file, module: '', rule: `${layerOf(file)} is in no layer of the table` }];
  return importsOf(source).flatMap((m) => checkImport(file, m) ?? []);
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [relative(ROOT, p).split(sep).join('/')] : [];
  });
}

function scan(): Violation[] {
  return sources(join(ROOT, 'src')).flatMap((f) => check(f, readFileSync(join(ROOT, f), 'utf8')));
}

const describe = (vs: Violation[]) => vs.map((v) => `${v.file}: import '${v.module}': ${v.rule}`).join('\n');

test('every import under src/ follows the layer table', () => {
  const bad = scan();
  assert.equal(bad.length, 0, `layering violations:\n${describe(bad)}`);
});

test('a forbidden import is reported with its file, module and rule', () => {
  const source = [
    "import { Engine } from '../daemon/engine.js';",
    "export { x } from '../cli/args.js';",
    "const m = await import('node:child_process');",
    "import type { Logger } from '../ports/logger.js';",
    "// import { gone } from '../daemon/run.js';",
  ].join('\n');
  assert.deepEqual(check('src/config/new-parser.ts', source), [
    { file: 'src/config/new-parser.ts', module: '../daemon/engine.js', rule: 'config may import config, ports; not daemon' },
    { file: 'src/config/new-parser.ts', module: '../cli/args.js', rule: 'config may import config, ports; not cli' },
    { file: 'src/config/new-parser.ts', module: 'node:child_process', rule: 'only src/adapters may import node:child_process' },
  ]);
});

test('fs, execa, node-cron and raw-socket are refused outside src/adapters, accepted inside', () => {
  for (const m of ['node:fs', 'fs/promises', 'node:fs/promises', 'execa', 'node-cron', 'raw-socket', 'koffi', 'child_process']) {
    assert.equal(check('src/daemon/new.ts', `import x from '${m}';`).length, 1, m);
    assert.deepEqual(check('src/adapters/new.ts', `import x from '${m}';`), [], m);
  }
});

test('only composition roots import adapters', () => {
  const imp = "import { LinuxNet } from '../adapters/linux-net.js';";
  assert.deepEqual(check('src/daemon/run.ts', imp), []);
  assert.deepEqual(check('src/cli/new.ts', imp), []);
  assert.equal(check('src/daemon/engine.ts', imp).length, 1);
  assert.equal(check('src/host/host.ts', imp).length, 1);
});
