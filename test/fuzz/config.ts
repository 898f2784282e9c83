/**
 * The config fuzzer: every config parser gets garbage and mutations of the real fixtures
 * (test/fixtures/config/…, etc/*.sample), through the same path `carpd check` takes (loadConfig:
 * detection, parsing, sourced files, validation, the diagnostics cap), plus ucarp's argv and the
 * password file reader. A case fails when
 *   - it throws anything but ConfigError (the parsers' own error type: only ucarp's argv throws it);
 *   - a diagnostic is not `FILE:LINE: message` with FILE a file the case gave and LINE within it,
 *     or `FILE: message` (line 0) for a whole-file error (a file that cannot be read, no engine);
 *   - a message is not one printable line of at most MAX_MESSAGE characters, or a code is not a Code;
 *   - more than MAX_DIAGNOSTICS + 1 diagnostics come back;
 *   - it takes longer than the budget (CASE_BUDGET_MS).
 * Deterministic: case i of seed S is generated from its own PRNG seeded with (S, i), so a failure
 * line names what replays it (`configCase(S, i)`).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPassfile } from '../../src/adapters/config-files.js';
import { validCron } from '../../src/adapters/cron.js';
import { Code, ConfigError, formatDiagnostic, MAX_DIAGNOSTICS, type Diagnostic } from '../../src/config/errors.js';
import { loadConfig, type ConfigFormat } from '../../src/config/load.js';
import { parseUcarpArgs } from '../../src/config/ucarp-args.js';
import type { ParseContext, ReadResult } from '../../src/ports/config-files.js';
import type { FuzzOptions, FuzzReport, FuzzTarget } from './report.js';

/**
 * A case that takes more CPU than this is a failure (the largest inputs are 1 MiB lines, 50,000
 * continuations, 4 MiB of copies). CPU time, not wall time: the machine is shared, and a parser
 * is single-threaded, so its CPU time is what its input costs.
 */
export const CASE_BUDGET_MS = 3000;
/** The longest message a diagnostic may carry (errors.ts clips at 1000 plus the size note). */
const MAX_MESSAGE = 1100;
const MAX_FAILURES = 100;

/** The parsers: the seven file formats, ucarp's command line and the password file. */
export const PARSERS = ['carpd', 'rc.conf', 'loader.conf', 'sysctl.conf', 'hostname', 'interfaces', 'sysconfig', 'ucarp', 'passfile'] as const;
export type Parser = (typeof PARSERS)[number];

/** Where the fixture tree is mounted in the in-memory file system the cases see. */
const ROOT = '/fuzz';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

interface Seedfile {
  parser: Exclude<Parser, 'ucarp' | 'passfile'>;
  /** Path in the in-memory tree. */
  path: string;
}

/** The fixture each parser's mutations start from (its siblings stay in the tree beside it). */
const SEEDS: Seedfile[] = [
  { parser: 'carpd', path: `${ROOT}/etc/carpd.conf.sample` },
  { parser: 'rc.conf', path: `${ROOT}/freebsd/rc.conf` },
  { parser: 'rc.conf', path: `${ROOT}/etc/rc.conf.sample` },
  { parser: 'loader.conf', path: `${ROOT}/freebsd/loader.conf` },
  { parser: 'sysctl.conf', path: `${ROOT}/freebsd/sysctl.conf` },
  { parser: 'sysctl.conf', path: `${ROOT}/openbsd/sysctl.conf` },
  { parser: 'hostname', path: `${ROOT}/openbsd/hostname.carp0` },
  { parser: 'hostname', path: `${ROOT}/openbsd/hostname.carp1` },
  { parser: 'hostname', path: `${ROOT}/openbsd/hostname.carp3` },
  { parser: 'hostname', path: `${ROOT}/etc/hostname.carp0.sample` },
  { parser: 'interfaces', path: `${ROOT}/debian/interfaces` },
  { parser: 'interfaces', path: `${ROOT}/debian/interfaces.d/eth1` },
  { parser: 'sysconfig', path: `${ROOT}/centos/etc/sysconfig/carp/vip-001.conf` },
  { parser: 'sysconfig', path: `${ROOT}/centos/etc/ucarp/vip-002.conf` },
];

/** ucarp command lines to mutate (ucarp's README and the CentOS vip file's OPTIONS). */
const UCARP_ARGVS = [
  ['-i', 'eth0', '-s', '10.0.0.2', '-v', '1', '-p', 'secret', '-a', '10.0.0.1', '-u', '/etc/ucarp/vip-up.sh', '-d', '/etc/ucarp/vip-down.sh'],
  [
    '--interface=eth0',
    '--srcip=10.0.0.2',
    '--vhid=3',
    '--pass=pw',
    '--addr=10.0.0.1',
    '--shutdown',
    '--preempt',
    '--advskew=50',
    '-b',
    '2',
    '-z',
    '-k',
    '10',
    '-r',
    '3',
    '-f',
    'daemon',
    '-x',
    'lan',
  ],
  ['-i', 'eth1', '-s', '10.0.1.2', '-v', '255', '-o', '/etc/ucarp/pass', '-a', '10.0.1.1', '-P', '-n', '-m', '224.0.0.18', '-M', '-S', '-B'],
];

/** Words every format cares about, and punctuation that trips quoting (from config-garbage.test.ts). */
const WORDS = [
  'inet',
  'inet6',
  'alias',
  'vhid',
  '1',
  '0',
  '256',
  '-1',
  '99999999999999999999',
  'advskew',
  'advbase',
  'pass',
  'carpdev',
  'em0',
  'vlan42',
  'netmask',
  '0xffffff00',
  '255.255.255.0',
  'prefixlen',
  '64',
  '10.0.0.1',
  '10.0.0.1/24',
  '10.0.0.1-3',
  '2001:db8::1',
  'up',
  'peer',
  'state',
  'master',
  'group',
  '"',
  "'",
  '\\',
  '\\\n',
  '$',
  '${',
  '${X',
  '$(x)',
  '`',
  '#',
  ';',
  '=',
  '+=',
  '[',
  ']',
  '[vhid.a]',
  '[carpd]',
  '[plugin.x]',
  '[health.h]',
  '[maintenance]',
  '[group.g]',
  'follow',
  'iface',
  'eth0',
  'static',
  'ucarp-vid',
  'ucarp-vip',
  'source',
  'source-directory',
  'ifconfig_em0_alias0=',
  'ifconfig_carp0=',
  'cloned_interfaces=',
  'ucarp_vhid=',
  'carpd_engine=',
  'BIND_INTERFACE=',
  'VIP_INTERFACE=',
  'OPTIONS=',
  'net.inet.carp.preempt=',
  'carp_load=',
  '# ==> hostname.carp0 <==',
  '!cmd',
  'passfile = /fuzz/pass',
  'engine = kernel',
  '\n',
  '\n',
  '\t',
  ' ',
  '\r\n',
  '\r',
  '\u00e9',
  '\u0000',
  '\ufeff',
  '\u2028',
  'source *',
  'source /fuzz/debian/*',
  'source ../../../../*',
];

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fixture tree, read once: in-memory path → bytes. */
let tree: Map<string, Buffer> | undefined;
function fixtureTree(): Map<string, Buffer> {
  if (tree) return tree;
  tree = new Map();
  const add = (dir: string, at: string) => {
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) add(p, `${at}/${n}`);
      else tree!.set(`${at}/${n}`, readFileSync(p));
    }
  };
  add(join(REPO, 'test/fixtures/config'), ROOT);
  for (const n of ['carpd.conf.sample', 'rc.conf.sample', 'hostname.carp0.sample']) tree.set(`${ROOT}/etc/${n}`, readFileSync(join(REPO, 'etc', n)));
  return tree;
}

/** The in-memory disk a case sees: the fixtures with its mutated file(s), decoded as the adapter decodes. */
function memoryContext(files: Map<string, Buffer>): ParseContext {
  return {
    readText(path): ReadResult {
      const b = files.get(path);
      if (b !== undefined) return { ok: true, text: b.toString('utf8'), mode: 0o600, id: path };
      for (const k of files.keys()) if (k.startsWith(`${path}/`)) return { ok: false, message: 'is a directory' };
      return { ok: false, message: 'no such file' };
    },
    listDir(path) {
      const names = new Set<string>();
      for (const k of files.keys()) if (k.startsWith(`${path}/`)) names.add(k.slice(path.length + 1).split('/')[0]!);
      return names.size === 0 ? undefined : [...names].sort();
    },
    readPassfile: () => ({ ok: true, password: 'fuzzpass' }),
    validCron,
    // Absolute paths inside configs (`source /etc/…`, network-scripts) are looked up in the centos tree.
    hostPath: (p) => (p.startsWith(ROOT) ? p : `${ROOT}/centos${p}`),
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** Bytes that are not UTF-8: a lone continuation byte, a truncated sequence, an overlong `/`, a surrogate, 0xff. */
const BAD_UTF8 = [[0x80], [0xc3], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xff], [0xfe, 0xff], [0xf4, 0x90, 0x80, 0x80]];

function splitLines(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0a) {
      out.push(b.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (start < b.length) out.push(b.subarray(start));
  return out;
}

/** One mutation of `b`, and its name for the failure line. */
function mutate(r: Rand, b: Buffer): [string, Buffer] {
  const kind = int(r, 0, 12);
  switch (kind) {
    case 0: {
      const n = int(r, 0, 4096);
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = int(r, 0, 255);
      return ['random-bytes', out];
    }
    case 1: {
      const n = int(r, 1, 200);
      return ['words', Buffer.from(Array.from({ length: n }, () => pick(r, WORDS)).join(r() < 0.5 ? ' ' : ''))];
    }
    case 2: {
      const lines = splitLines(b);
      for (let i = lines.length - 1; i > 0; i--) {
        const j = int(r, 0, i);
        [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      }
      return ['shuffle-lines', Buffer.concat(lines)];
    }
    case 3:
      return ['truncate', b.subarray(0, int(r, 0, b.length))];
    case 4: {
      const out = Buffer.from(b);
      const n = int(r, 1, 16);
      for (let i = 0; i < n && out.length > 0; i++) out[int(r, 0, out.length - 1)] ^= 1 << int(r, 0, 7);
      return ['flip-bits', out];
    }
    case 5: {
      // A huge line: one word repeated, or one long value, up to 1 MiB.
      const size = int(r, 1, 1024) * 1024;
      const word = pick(r, ['x', 'a"b', "'", '\\', '1', '10.0.0.1 ', 'vhid ', '$x', '#', '=']);
      const huge = Buffer.from(word.repeat(Math.ceil(size / word.length)).slice(0, size));
      const lines = splitLines(b);
      const at = int(r, 0, lines.length);
      const prefix = Buffer.from(
        pick(r, ['', 'ifconfig_em0_alias0="', 'address = ', ' address ', 'OPTIONS="', 'net.inet.carp.log=', '10.0.0.1/24 ', 'vhid = ']),
      );
      lines.splice(at, 0, Buffer.concat([prefix, huge, Buffer.from('\n')]));
      return ['huge-line', Buffer.concat(lines)];
    }
    case 6: {
      // Deep continuation: thousands of backslash-newlines, inside a value or not.
      const n = int(r, 1000, 50_000);
      const piece = pick(r, ['x \\\n', '\\\n', ' 10.0.0.54 \\\n', '"\\\n']);
      const lines = splitLines(b);
      const at = int(r, 0, lines.length);
      const head = pick(r, ['', 'ifconfig_em0="inet ', ' dns-nameservers ', 'OPTIONS="-b ', 'address = ']);
      lines.splice(at, 0, Buffer.from(head + piece.repeat(n) + 'end"\n'));
      return ['deep-continuation', Buffer.concat(lines)];
    }
    case 7: {
      const out = Buffer.from(b);
      const n = int(r, 1, 8);
      for (let i = 0; i < n && out.length > 0; i++) out[int(r, 0, out.length - 1)] = 0;
      return ['nul-bytes', out];
    }
    case 8: {
      const parts: Buffer[] = [];
      let last = 0;
      const cuts = Array.from({ length: int(r, 1, 6) }, () => int(r, 0, b.length)).sort((x, y) => x - y);
      for (const c of cuts) {
        parts.push(b.subarray(last, c), Buffer.from(pick(r, BAD_UTF8)));
        last = c;
      }
      parts.push(b.subarray(last));
      return ['invalid-utf8', Buffer.concat(parts)];
    }
    case 9: {
      // Lines repeated: re-assignments, duplicate keys and sections, the same vhid twice.
      const lines = splitLines(b);
      const out = [...lines];
      const n = int(r, 1, 10);
      for (let i = 0; i < n && lines.length > 0; i++) out.splice(int(r, 0, out.length), 0, pick(r, lines));
      return ['repeat-lines', Buffer.concat(out)];
    }
    case 10: {
      // Many copies of the whole file: thousands of diagnostics.
      const copies = int(r, 10, Math.max(10, Math.floor(200_000 / Math.max(1, b.length))));
      return ['many-copies', Buffer.concat(Array.from({ length: copies }, () => b))];
    }
    case 11: {
      // Lines of another format's fixture spliced in.
      const other = fixtureTree().get(pick(r, SEEDS).path)!;
      const lines = splitLines(b);
      const theirs = splitLines(other);
      for (let i = 0; i < int(r, 1, 8) && theirs.length > 0; i++) lines.splice(int(r, 0, lines.length), 0, pick(r, theirs));
      return ['splice-format', Buffer.concat(lines)];
    }
    default: {
      // Line endings: CR only, CRLF, a BOM, no final newline.
      const s = b.toString('latin1');
      const ending = pick(r, ['\r', '\r\n', '\n\r', '']);
      return ['line-endings', Buffer.from((r() < 0.5 ? '\ufeff' : '') + s.replace(/\n/g, ending), 'latin1')];
    }
  }
}

/** 1 to 3 mutations in a row. */
function mutateSome(r: Rand, b: Buffer): [string, Buffer] {
  const names: string[] = [];
  let out = b;
  for (let i = int(r, 1, 3); i > 0; i--) {
    const [name, next] = mutate(r, out);
    names.push(name);
    // The adapter refuses more than 4 MiB before any parser sees it.
    out = next.length > 4 * 1024 * 1024 ? next.subarray(0, 4 * 1024 * 1024) : next;
  }
  return [names.join('+'), out];
}

/** Lines of a text as the parsers count them (a `\n` ends a line; a lone `\r` may too). */
const lineCounts = new WeakMap<Buffer, number>();
function lineCount(b: Buffer): number {
  const known = lineCounts.get(b);
  if (known !== undefined) return known;
  let n = 1;
  let cr = 1;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0a) n++;
    if (b[i] === 0x0a || b[i] === 0x0d) cr++;
  }
  lineCounts.set(b, Math.max(n, cr));
  return Math.max(n, cr);
}

const CODES = new Set<string>(Object.values(Code));
/** Whole-file errors, printed `FILE: message`: the file as such, not a line of it. */
const WHOLE_FILE = new Set<string>([Code.CONFIG_READ, Code.ENGINE]);
// A control character in a message would break the one-line `FILE:LINE: message` output.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f\u2028\u2029]/;

/** Problems with one diagnostic, given the files of the case (exported for its own unit test). */
export function checkDiagnostic(d: Diagnostic, files: Map<string, Buffer>): string | undefined {
  if (typeof d.message !== 'string' || d.message === '') return `empty message (${d.code})`;
  if (CONTROL.test(d.message)) return `message with a control character: ${JSON.stringify(d.message.slice(0, 120))}`;
  if (d.message.length > MAX_MESSAGE) return `a ${d.message.length}-character message (${d.code})`;
  if (!CODES.has(d.code)) return `unknown code ${d.code}`;
  if (d.severity !== 'error' && d.severity !== 'warning') return `severity ${String(d.severity)}`;
  const body = files.get(d.file);
  if (body === undefined) return `diagnostic names a file the case did not give: ${JSON.stringify(d.file)} (${d.code}: ${d.message.slice(0, 80)})`;
  if (!Number.isInteger(d.line) || d.line < 0) return `line ${d.line}`;
  if (d.line === 0 && !WHOLE_FILE.has(d.code)) return `no line for a ${d.code}: ${formatDiagnostic(d).slice(0, 160)}`;
  if (d.line > lineCount(body)) return `line ${d.line} past the end (${lineCount(body)} lines): ${formatDiagnostic(d).slice(0, 160)}`;
  const text = formatDiagnostic(d);
  const prefix = d.line > 0 ? `${d.file}:${d.line}: ` : `${d.file}: `;
  if (!text.startsWith(prefix)) return `not FILE:LINE: message: ${text.slice(0, 160)}`;
  return undefined;
}

/** Problems with a thrown value: only ConfigError, with a one-line message and a Code. */
function checkThrown(e: unknown): string | undefined {
  if (!(e instanceof ConfigError)) return `crash: ${(e as Error)?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(e)}`;
  if (CONTROL.test(e.message)) return `ConfigError message with a control character: ${JSON.stringify(e.message.slice(0, 120))}`;
  if (e.message.length > MAX_MESSAGE) return `a ${e.message.length}-character ConfigError message`;
  if (!CODES.has(e.code)) return `ConfigError with unknown code ${e.code}`;
  return undefined;
}

export interface CaseResult {
  parser: Parser;
  mutation: string;
  /** CPU milliseconds (user + system) the parser took. */
  ms: number;
  errors: number;
  crashed: boolean;
  problems: string[];
}

/** CPU milliseconds since `from` (a process.cpuUsage()). */
function cpuMs(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1000;
}

/** Temp dir for the passfile cases (created on first use, removed at the end of the run). */
let passDir: string | undefined;

/** Case `i` of seed `seed`: what it fed which parser, and what was wrong. */
export function configCase(seed: number, i: number): CaseResult {
  const r = rng((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  const parser = PARSERS[i % PARSERS.length]!;
  if (parser === 'ucarp') return ucarpCase(r);
  if (parser === 'passfile') return passfileCase(r);
  const seedFile = pick(
    r,
    SEEDS.filter((s) => s.parser === parser),
  );
  const files = new Map(fixtureTree());
  const [mutation, bytes] = mutateSome(r, files.get(seedFile.path)!);
  files.set(seedFile.path, bytes);
  // Now and then a file it reads (a sourced file, a sibling, vip-common.conf) is garbage too.
  let also = '';
  if (r() < 0.2) {
    const others = [...files.keys()].filter((k) => k !== seedFile.path && k.startsWith(dirname(dirname(seedFile.path))));
    if (others.length > 0) {
      const o = pick(r, others);
      const [m, b] = mutateSome(r, files.get(o)!);
      files.set(o, b);
      also = ` and ${relative(ROOT, o)} ${m}`;
    }
  }
  const forced = r() < 0.75;
  const out: CaseResult = {
    parser,
    mutation: `${relative(ROOT, seedFile.path)} ${mutation}${also}${forced ? '' : ' (detected)'}`,
    ms: 0,
    errors: 0,
    crashed: false,
    problems: [],
  };
  const started = process.cpuUsage();
  try {
    const res = loadConfig(
      [seedFile.path],
      { ...(forced ? { format: parser as ConfigFormat } : {}), platform: pick(r, ['linux', 'freebsd', 'openbsd']) },
      memoryContext(files),
    );
    out.ms = cpuMs(started);
    if (res.diagnostics.length > MAX_DIAGNOSTICS + 1) out.problems.push(`${res.diagnostics.length} diagnostics (cap ${MAX_DIAGNOSTICS} + 1)`);
    for (const d of res.diagnostics) {
      if (d.severity === 'error') out.errors++;
      const p = checkDiagnostic(d, files);
      if (p !== undefined && !out.problems.includes(p)) out.problems.push(p);
    }
  } catch (e) {
    out.ms = cpuMs(started);
    const p = checkThrown(e);
    if (p !== undefined) {
      out.crashed = !(e instanceof ConfigError);
      out.problems.push(p);
    } else out.errors++;
  }
  if (out.ms > CASE_BUDGET_MS) out.problems.push(`took ${out.ms.toFixed(0)} ms of CPU (budget ${CASE_BUDGET_MS})`);
  return out;
}

function ucarpCase(r: Rand): CaseResult {
  const base = [...pick(r, UCARP_ARGVS)];
  const names: string[] = [];
  for (let k = int(r, 1, 4); k > 0; k--) {
    const m = int(r, 0, 5);
    const at = int(r, 0, Math.max(0, base.length - 1));
    if (m === 0) {
      base.splice(at, 1);
      names.push('drop');
    } else if (m === 1) {
      base.splice(at, 0, base[int(r, 0, base.length - 1)] ?? '-v');
      names.push('repeat');
    } else if (m === 2) {
      base[at] = pick(r, WORDS);
      names.push('word');
    } else if (m === 3) {
      base[at] = pick(r, ['x', '1', '"', '\u0000', '\ufffd']).repeat(int(r, 1, 1 << 20));
      names.push('huge');
    } else if (m === 4) {
      const [, b] = mutate(r, Buffer.from(base[at] ?? ''));
      base[at] = b.toString('utf8').slice(0, 1 << 20);
      names.push('mutated');
    } else {
      base.splice(at, 0, pick(r, ['-p', '-o', '-v', '-a', '-s', '-k', '-b', '-r', '-m', '-f', '--vhid', '--pass=', '--', '-', '-PzBn', '-h']));
      names.push('option');
    }
  }
  const out: CaseResult = { parser: 'ucarp', mutation: names.join('+'), ms: 0, errors: 0, crashed: false, problems: [] };
  const started = process.cpuUsage();
  try {
    const res = parseUcarpArgs(base, { defaultInterface: () => (r() < 0.5 ? 'eth0' : undefined), readPassfile: () => ({ ok: true, password: 'fuzzpass' }) });
    if (res.kind === 'run') {
      for (const w of res.options.warnings) {
        if (CONTROL.test(w) || w.length > MAX_MESSAGE) out.problems.push(`warning not one short line: ${JSON.stringify(w.slice(0, 120))}`);
      }
    }
  } catch (e) {
    const p = checkThrown(e);
    if (p !== undefined) {
      out.crashed = !(e instanceof ConfigError);
      out.problems.push(p);
    } else out.errors++;
  }
  out.ms = cpuMs(started);
  if (out.ms > CASE_BUDGET_MS) out.problems.push(`took ${out.ms.toFixed(0)} ms of CPU (budget ${CASE_BUDGET_MS})`);
  return out;
}

/** The password file reader on garbage: the first line or a PASSFILE error naming the path, never the content. */
function passfileCase(r: Rand): CaseResult {
  passDir ??= mkdtempSync(join(tmpdir(), 'carpd-fuzz-config-'));
  const [mutation, bytes] = mutateSome(r, Buffer.from(pick(r, ['lanpass\n', 's3cr3t#2\r\n', 'x\n\nsecond line\n', ''])));
  const path = join(passDir, 'pass');
  writeFileSync(path, bytes);
  chmodSync(path, r() < 0.9 ? 0o600 : 0o644);
  const out: CaseResult = { parser: 'passfile', mutation, ms: 0, errors: 0, crashed: false, problems: [] };
  const started = process.cpuUsage();
  try {
    const res = readPassfile(path);
    if (!res.ok) {
      out.errors++;
      if (!res.message.includes(path) || CONTROL.test(res.message) || !CODES.has(res.code))
        out.problems.push(`passfile error not "passfile PATH …": ${res.message.slice(0, 160)}`);
    } else if (res.password.includes('\n')) {
      out.problems.push('password holds a newline');
    }
  } catch (e) {
    out.crashed = true;
    out.problems.push(`crash: ${(e as Error)?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(e)}`);
  }
  out.ms = cpuMs(started);
  if (out.ms > CASE_BUDGET_MS) out.problems.push(`took ${out.ms.toFixed(0)} ms of CPU (budget ${CASE_BUDGET_MS})`);
  return out;
}

/** The fuzz target: `count` cases, round-robin over the parsers. */
export const config: FuzzTarget = async (opts: FuzzOptions): Promise<FuzzReport> => {
  const failures: string[] = [];
  const cases: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let crashes = 0;
  let slowest = { ms: 0, what: '' };
  try {
    for (let i = 0; i < opts.count; i++) {
      const c = configCase(opts.seed, i);
      cases[c.parser] = (cases[c.parser] ?? 0) + 1;
      errors[c.parser] = (errors[c.parser] ?? 0) + c.errors;
      if (c.crashed) crashes++;
      if (c.ms > slowest.ms) slowest = { ms: c.ms, what: `${c.parser} ${c.mutation}` };
      for (const p of c.problems) {
        if (failures.length < MAX_FAILURES) failures.push(`config: ${c.parser} case configCase(${opts.seed}, ${i}) [${c.mutation}]: ${p}`);
      }
      if ((i + 1) % 500 === 0) opts.log(`config: ${i + 1}/${opts.count} cases, ${crashes} crashes, slowest ${slowest.ms.toFixed(0)} ms`);
      // Let the event loop breathe between cases (the runner may time us out).
      if (i % 50 === 49) await new Promise((res) => setImmediate(res));
    }
  } finally {
    if (passDir !== undefined) rmSync(passDir, { recursive: true, force: true });
    passDir = undefined;
  }
  const figures: Record<string, number | string> = {
    crashes,
    'slowest case ms': Math.round(slowest.ms),
    'slowest case': slowest.what,
    failures: failures.length,
  };
  for (const p of PARSERS) {
    figures[`cases ${p}`] = cases[p] ?? 0;
    figures[`errors ${p}`] = errors[p] ?? 0;
  }
  return { name: 'config', cases: opts.count, failures, figures };
};
