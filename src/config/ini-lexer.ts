/**
 * The carpd.conf lexer: section headers and `key = value` entries with 1-based line numbers.
 *
 * We scan lines ourselves and use the `ini` package only to decode values (`ini.unsafe`:
 * double-quoted JSON strings, `\;` `\#` escapes, inline `;`/`#` comments). `ini.parse` would not
 * do here: it drops line numbers, keeps only the last of a repeated `address` key, splits
 * `[vhid.lan]` into nested objects, turns `true`/`false`/`null` into non-strings, and reads a
 * section header followed by an inline comment (as in DESIGN.md's sample) as a key.
 */
import ini from 'ini';

export type Token =
  | { kind: 'section'; name: string; line: number }
  | { kind: 'entry'; key: string; value: string; line: number }
  | { kind: 'error'; message: string; line: number };

/** Splits ini text into section headers and `key = value` entries, with 1-based line numbers. */
export function tokenizeIni(text: string): Token[] {
  const tokens: Token[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const s = raw.trim();
    if (s === '' || s.startsWith(';') || s.startsWith('#')) return;
    if (s.startsWith('[')) {
      const close = s.indexOf(']');
      if (close === -1) {
        tokens.push({ kind: 'error', line, message: 'unterminated section header' });
      } else if (!isBlankOrComment(s.slice(close + 1))) {
        tokens.push({ kind: 'error', line, message: 'unexpected text after section header' });
      } else {
        tokens.push({ kind: 'section', name: s.slice(1, close).trim(), line });
      }
      return;
    }
    const eq = s.indexOf('=');
    if (eq === -1) {
      // The line is not echoed: it might be a password written without `pass =`.
      tokens.push({ kind: 'error', line, message: 'expected "key = value"' });
      return;
    }
    const key = s.slice(0, eq).trim();
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(key)) {
      tokens.push({ kind: 'error', line, message: 'invalid key name' });
      return;
    }
    const decoded = decodeValue(s.slice(eq + 1));
    if (typeof decoded === 'string') tokens.push({ kind: 'entry', key, value: decoded, line });
    else tokens.push({ kind: 'error', line, message: `${decoded.error} for "${key}"` });
  });
  return tokens;
}

function isBlankOrComment(s: string): boolean {
  const t = s.trim();
  return t === '' || t.startsWith(';') || t.startsWith('#');
}

/** Decodes one value: `"json string"`, `'literal'`, or bare text up to an inline comment. */
function decodeValue(raw: string): string | { error: string } {
  const v = raw.trim();
  const q = v[0];
  if (q !== '"' && q !== "'") return ini.unsafe(v);
  let end = -1;
  for (let i = 1; i < v.length; i++) {
    if (q === '"' && v[i] === '\\') {
      i++;
    } else if (v[i] === q) {
      end = i;
      break;
    }
  }
  if (end === -1) return { error: 'unterminated quoted value' };
  if (!isBlankOrComment(v.slice(end + 1))) return { error: 'unexpected text after quoted value' };
  const quoted = v.slice(0, end + 1);
  // Single quotes are literal; ini.unsafe would JSON.parse their content ('12' → a number).
  if (q === "'") return quoted.slice(1, -1);
  const out: unknown = ini.unsafe(quoted);
  // ini.unsafe returns its input unchanged when JSON.parse fails.
  if (typeof out !== 'string' || out === quoted) return { error: 'invalid escape in quoted value' };
  return out;
}
