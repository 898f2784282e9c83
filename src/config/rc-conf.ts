/**
 * A reader for shell-variable files (FreeBSD rc.conf and loader.conf, CentOS sysconfig files):
 * `NAME=value` assignments with sh quoting, `#` comments, backslash-newline continuations,
 * `$NAME`/`${NAME}` expansion of earlier assignments, and sysrc's `NAME+=value` (append with a
 * space). Later assignments override earlier ones. Nothing is ever executed.
 */
import { Code, MAX_DIAGNOSTICS, warning, type Diagnostic } from './errors.js';

export interface RcAssignment {
  name: string;
  /** The value after quote removal and expansion. */
  value: string;
  /** 1-based line of the variable name. */
  line: number;
  append: boolean;
}

export interface RcVar {
  value: string;
  /** Line of the assignment that gave the current value: the last `=`, which `+=` extends. */
  line: number;
  /** Lines of every assignment to the variable, in order. */
  lines: number[];
}

export interface RcSyntaxError {
  line: number;
  message: string;
}

/** A plain `NAME=` of a variable the file already set: sh keeps the later value, silently. */
export interface RcReassignment {
  name: string;
  /** The line of the new assignment. */
  line: number;
  /** The line of the assignment whose value it replaces. */
  previous: number;
}

export interface RcFile {
  assignments: RcAssignment[];
  vars: Map<string, RcVar>;
  errors: RcSyntaxError[];
  reassigned: RcReassignment[];
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/** Reads `text`; `env` supplies values for `$NAME` that the file itself has not set. */
export function parseRcConf(text: string, env: ReadonlyMap<string, string> = new Map()): RcFile {
  const s = text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
  const out: RcFile = { assignments: [], vars: new Map(), errors: [], reassigned: [] };
  let i = 0;
  let line = 1;

  const lookup = (name: string): string => out.vars.get(name)?.value ?? env.get(name) ?? '';
  const skipToEol = () => {
    while (i < s.length && s[i] !== '\n') i++;
  };

  /** `$…` at s[i]; appends the expansion to `acc`, or returns an error message. */
  const expand = (): { value: string } | { error: string } => {
    const next = s[i + 1];
    if (next === '(') return { error: 'command substitution is not supported' };
    if (next === '{') {
      const close = s.indexOf('}', i + 2);
      const name = close === -1 ? '' : s.slice(i + 2, close);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { error: 'only ${NAME} parameter expansion is supported' };
      i = close + 1;
      return { value: lookup(name) };
    }
    if (next !== undefined && NAME_START.test(next)) {
      let j = i + 1;
      while (j < s.length && NAME_CHAR.test(s[j]!)) j++;
      const name = s.slice(i + 1, j);
      i = j;
      return { value: lookup(name) };
    }
    i++;
    return { value: '$' };
  };

  /** One shell word at s[i] (the assignment's value), up to unquoted whitespace, `;` or end. */
  const readValue = (): { value: string } | { error: string; line: number } => {
    let v = '';
    while (i < s.length) {
      const c = s[i]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === ';') break;
      if (c === '\\') {
        if (s[i + 1] === '\n') line++;
        else if (i + 1 < s.length) v += s[i + 1];
        i += 2;
      } else if (c === "'") {
        const start = line;
        const end = s.indexOf("'", i + 1);
        if (end === -1) return { error: 'unterminated single quote', line: start };
        const chunk = s.slice(i + 1, end);
        line += chunk.split('\n').length - 1;
        v += chunk;
        i = end + 1;
      } else if (c === '"') {
        const start = line;
        i++;
        for (;;) {
          if (i >= s.length) return { error: 'unterminated double quote', line: start };
          const d = s[i]!;
          if (d === '"') {
            i++;
            break;
          }
          if (d === '\\' && '"\\$`\n'.includes(s[i + 1] ?? '')) {
            if (s[i + 1] === '\n') line++;
            else v += s[i + 1];
            i += 2;
          } else if (d === '$') {
            const r = expand();
            if ('error' in r) return { error: r.error, line };
            v += r.value;
          } else if (d === '`') {
            return { error: 'command substitution is not supported', line };
          } else {
            if (d === '\n') line++;
            v += d;
            i++;
          }
        }
      } else if (c === '$') {
        const r = expand();
        if ('error' in r) return { error: r.error, line };
        v += r.value;
      } else if (c === '`') {
        return { error: 'command substitution is not supported', line };
      } else {
        v += c;
        i++;
      }
    }
    return { value: v };
  };

  while (i < s.length) {
    const c = s[i]!;
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === ';') {
      i++;
      continue;
    }
    if (c === '\\' && s[i + 1] === '\n') {
      line++;
      i += 2;
      continue;
    }
    if (c === '#') {
      skipToEol();
      continue;
    }
    const startLine = line;
    let j = i;
    if (NAME_START.test(c)) while (j < s.length && NAME_CHAR.test(s[j]!)) j++;
    const name = s.slice(i, j);
    const append = s[j] === '+' && s[j + 1] === '=';
    if (name === '' || (s[j] !== '=' && !append)) {
      // Not echoed: the line might hold a secret.
      out.errors.push({ line: startLine, message: 'expected a variable assignment (NAME="value")' });
      skipToEol();
      continue;
    }
    i = j + (append ? 2 : 1);
    const r = readValue();
    if ('error' in r) {
      out.errors.push({ line: r.line, message: `${r.error} in the value of ${name}` });
      skipToEol();
      continue;
    }
    out.assignments.push({ name, value: r.value, line: startLine, append });
    const prev = out.vars.get(name);
    if (prev !== undefined && !append) out.reassigned.push({ name, line: startLine, previous: prev.line });
    const value = append && prev !== undefined && prev.value !== '' ? `${prev.value} ${r.value}` : r.value;
    const line0 = append && prev !== undefined ? prev.line : startLine;
    // The same array grows: copying it at each assignment was quadratic in a file of many copies.
    const lines = prev?.lines ?? [];
    lines.push(startLine);
    out.vars.set(name, { value, line: line0, lines });
    // After a value: more assignments, a `;`, or a comment; a `#` here starts a comment only
    // after whitespace (sh's rule), which the loop's whitespace skipping gives us.
  }
  return out;
}

/**
 * A warning at each re-assigned variable, naming the line it overrides. sh, and so rc(8), takes
 * the last value without a word; a FreeBSD how-to's second host that reuses `ifconfig_em0` for its
 * inside interface loses its first vhid that way, and only `carpd check --peer` noticed.
 */
export function reassignWarnings(rc: RcFile, file: string): Diagnostic[] {
  // No more than the loader prints: 250,000 copies of one assignment made 250,000 warnings first.
  const shown = rc.reassigned.slice(0, MAX_DIAGNOSTICS);
  const out = shown.map((a) =>
    warning(
      { file, line: a.line },
      Code.WARN_REASSIGNED,
      `${a.name} is assigned again; this value replaces the one at line ${a.previous} (the last assignment wins, as in sh)`,
    ),
  );
  const rest = rc.reassigned.length - shown.length;
  if (rest > 0) {
    const next = rc.reassigned[MAX_DIAGNOSTICS]!;
    out.push(warning({ file, line: next.line }, Code.WARN_REASSIGNED, `${rest} more assignments replace an earlier one, from here on`));
  }
  return out;
}
