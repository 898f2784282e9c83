/**
 * Splitting a string into words the way sh does, without any expansion: whitespace separates
 * words, '…' is literal, "…" honours \" \\ \$ \` and \newline, a backslash outside quotes
 * escapes the next character. Used for command lines in configs (argv, never a shell).
 */

export type WordsResult = { ok: true; words: string[] } | { ok: false; message: string };

export interface SplitOptions {
  /** A `#` at the start of a word starts a comment to the end of the text (sh's rule). */
  comments?: boolean;
}

/** Splits `text` into words; an unterminated quote is an error. Messages never echo the text. */
export function splitShellWords(text: string, opts: SplitOptions = {}): WordsResult {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    if (c === '#' && !inWord && opts.comments) break;
    inWord = true;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) return { ok: false, message: 'unterminated single quote' };
      word += text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && j + 1 < text.length && '"\\$`\n'.includes(text[j + 1]!)) {
          if (text[j + 1] !== '\n') word += text[j + 1];
          j++;
        } else {
          word += text[j];
        }
      }
      if (j >= text.length) return { ok: false, message: 'unterminated double quote' };
      i = j;
    } else if (c === '\\') {
      if (i + 1 < text.length) {
        if (text[i + 1] !== '\n') word += text[i + 1];
        else if (word === '') inWord = false;
        i++;
      }
    } else {
      word += c;
    }
  }
  if (inWord) words.push(word);
  return { ok: true, words };
}

/** One word quoted for sh only when it needs it (single quotes; `'` as '\''). */
export function quoteShellWord(s: string): string {
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
