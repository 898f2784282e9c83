/** A unified diff of two texts, for `carpd plan` (what a rendered file would change). */

const CONTEXT = 3;
/** Above this many line pairs the diff is one hunk replacing everything (files here are small). */
const MAX_CELLS = 4_000_000;

type Op = { kind: ' ' | '-' | '+'; line: string; a: number; b: number };

function lines(text: string): { lines: string[]; eol: boolean } {
  if (text === '') return { lines: [], eol: true };
  const eol = text.endsWith('\n');
  const ls = (eol ? text.slice(0, -1) : text).split('\n');
  return { lines: ls, eol };
}

/** Line edit script by longest common subsequence. */
function edits(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) {
    return [...a.map((line, i) => ({ kind: '-' as const, line, a: i, b: 0 })), ...b.map((line, j) => ({ kind: '+' as const, line, a: n, b: j }))];
  }
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] = a[i] === b[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
    }
  }
  const out: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) out.push({ kind: ' ', line: a[i]!, a: i++, b: j++ });
    else if (j < m && (i === n || lcs[i * w + j + 1]! > lcs[(i + 1) * w + j]!)) out.push({ kind: '+', line: b[j]!, a: i, b: j++ });
    else out.push({ kind: '-', line: a[i]!, a: i++, b: j });
  }
  return out;
}

/**
 * `diff -u` style output from `before` (undefined: no such file) to `after`; '' when equal.
 * Labels are the file names shown on the `---`/`+++` lines.
 */
export function unifiedDiff(before: string | undefined, after: string, labelA: string, labelB: string): string {
  if (before === after) return '';
  const A = lines(before ?? '');
  const B = lines(after);
  const ops = edits(A.lines, B.lines);
  // A changed final newline shows as the last line changing.
  if (A.eol !== B.eol && A.lines.length > 0 && B.lines.length > 0) {
    const lastA = A.lines.length - 1;
    const lastB = B.lines.length - 1;
    const k = ops.findIndex((o) => o.kind === ' ' && o.a === lastA && o.b === lastB);
    if (k >= 0) ops.splice(k, 1, { kind: '-', line: A.lines[lastA]!, a: lastA, b: lastB }, { kind: '+', line: B.lines[lastB]!, a: lastA + 1, b: lastB });
  }
  const out = [`--- ${before === undefined ? '/dev/null' : labelA}`, `+++ ${labelB}`];
  const changed = ops.map((o, k) => (o.kind !== ' ' ? k : -1)).filter((k) => k >= 0);
  let h = 0;
  while (h < changed.length) {
    const start = Math.max(0, changed[h]! - CONTEXT);
    let end = Math.min(ops.length, changed[h]! + CONTEXT + 1);
    while (h + 1 < changed.length && changed[h + 1]! - CONTEXT <= end) {
      h++;
      end = Math.min(ops.length, changed[h]! + CONTEXT + 1);
    }
    h++;
    const hunk = ops.slice(start, end);
    const aCount = hunk.filter((o) => o.kind !== '+').length;
    const bCount = hunk.filter((o) => o.kind !== '-').length;
    const aStart = aCount === 0 ? hunk[0]!.a : hunk.find((o) => o.kind !== '+')!.a + 1;
    const bStart = bCount === 0 ? hunk[0]!.b : hunk.find((o) => o.kind !== '-')!.b + 1;
    out.push(`@@ -${aStart},${aCount} +${bStart},${bCount} @@`);
    for (const o of hunk) {
      out.push(`${o.kind}${o.line}`);
      const lastA = o.kind !== '+' && o.a === A.lines.length - 1 && !A.eol;
      const lastB = o.kind !== '-' && o.b === B.lines.length - 1 && !B.eol;
      if ((o.kind === '-' && lastA) || (o.kind === '+' && lastB) || (o.kind === ' ' && lastA && lastB)) out.push('\\ No newline at end of file');
    }
  }
  return `${out.join('\n')}\n`;
}
