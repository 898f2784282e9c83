/** Shared helpers for the config unit tests: private temp dirs, fixture copies, diagnostic summaries. */
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatDiagnostic, type Diagnostic } from '../../src/config/errors.js';
import type { CarpModel } from '../../src/config/model.js';

/** test/fixtures/config/ in the source tree (this file runs from dist/test/helpers/). */
export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));

/** What the helpers need of a node:test context: somewhere to register clean-up. */
export interface Cleanup {
  after(fn: () => void): void;
}

export interface TempDir {
  dir: string;
  /** Writes `text` to `name` inside the dir, then sets `mode` (0600 unless told otherwise); returns the path. */
  write(name: string, text: string, mode?: number): string;
}

/**
 * Temp-dir and fixture helpers whose directories are named `prefix`XXXXXX and removed after the test.
 * With `makeParents`, `write` also creates the missing directories of a nested `name` (a/b/file);
 * without it, `name` must be directly inside the dir.
 */
export function configFiles(prefix: string, { makeParents = false }: { makeParents?: boolean } = {}) {
  function privateDir(t: Cleanup): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A private temp dir; `write` creates files with mode 0600 unless told otherwise. */
  function tempDir(t: Cleanup): TempDir {
    const dir = privateDir(t);
    return {
      dir,
      write(name: string, text: string, mode = 0o600): string {
        const path = join(dir, name);
        if (makeParents) mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, text);
        chmodSync(path, mode);
        return path;
      },
    };
  }

  /** A private copy of the fixtures (or of their `sub` directory), every file mode 0600 (git does not keep modes). */
  function fixtures(t: Cleanup, sub?: string): string {
    const dir = privateDir(t);
    cpSync(sub === undefined ? FIXTURES : join(FIXTURES, sub), dir, { recursive: true });
    const walk = (d: string) => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else chmodSync(p, 0o600);
      }
    };
    walk(dir);
    return dir;
  }

  return { tempDir, fixtures };
}

/** The model without each vhid's fieldSources, for comparing with a literal. */
export function withoutFieldSources(m: CarpModel): CarpModel {
  return { ...m, vhids: m.vhids.map(({ fieldSources: _ignored, ...v }) => v) };
}

/** [severity, code, file, line] of each diagnostic. */
export function brief(diags: Diagnostic[]): [string, string, string, number][] {
  return diags.map((d) => [d.severity, d.code, d.file, d.line]);
}

export function errorsOf(diags: Diagnostic[]): Diagnostic[] {
  return diags.filter((d) => d.severity === 'error');
}

/** Asserts exactly one error, and its code, file and line. */
export function assertOneError(diags: Diagnostic[], code: string, file: string, line: number): Diagnostic {
  const errs = errorsOf(diags);
  assert.equal(errs.length, 1, `expected one error, got: ${diags.map(formatDiagnostic).join(' | ')}`);
  const d = errs[0]!;
  assert.deepEqual({ code: d.code, file: d.file, line: d.line }, { code, file, line });
  return d;
}

export type Command = (args: string[], io: { out(l: string): void; err(l: string): void }) => Promise<number>;

/** Runs a CLI command, collecting its stdout and stderr lines. */
export async function capture(cmd: Command, args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await cmd(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}
