/** ucarp 1.5.2's command line (`carpd ucarp …`) into the normalized model, parsed like getopt_long. */
import { isIPv4 } from 'node:net';
import { defaultGlobal, CARP_GROUP } from './carpd-ini.js';
import { Code, ConfigError } from './errors.js';
import type { CarpModel, VhidConfig } from './model.js';
import type { PassfileResult } from '../ports/config-files.js';
import { MAX_PASSWORD_BYTES, validateModel } from './validate.js';

/** What ucarp's options mean beyond the model. Field names are ucarp's long options. */
export interface UcarpOptions {
  preempt: boolean;
  /** -n: no down script at start when going BACKUP. */
  neutral: boolean;
  /** -z: run the down script at exit. */
  shutdown: boolean;
  deadratio: number;
  daemonize: boolean;
  /** syslog facility name, lower case, or `none`. */
  facility: string;
  ignoreifstate: boolean;
  nomcast: boolean;
  /** Multicast group. */
  mcast: string;
  debug: boolean;
  /** The -o file the password came from, if it came from one. */
  passfile?: string;
  /** The password came from -p: visible in ps. The daemon should say so. */
  passOnArgv: boolean;
  /** ucarp's own warnings and validation warnings, for the daemon to log. */
  warnings: string[];
}

export type UcarpArgs = { kind: 'help'; usage: string } | { kind: 'run'; model: CarpModel; options: UcarpOptions };

export interface UcarpParseOptions {
  /** ucarp falls back to pcap_lookupdev() without -i; the caller supplies the equivalent. */
  defaultInterface?: () => string | undefined;
  /** Reads an -o file (the caller gives the real one). */
  readPassfile: (path: string) => PassfileResult;
}

export const UCARP_DEFAULT_MCAST = '224.0.0.18';
export const UCARP_DEFAULT_DEADRATIO = 3;
export const UCARP_SOURCE = 'argv';

/** ucarp's --help, worded for `carpd ucarp`. */
export const UCARP_USAGE = [
  'usage: carpd ucarp [options]   (ucarp 1.5.2 compatible)',
  '',
  '--interface=<if> (-i <if>): bind interface <if>',
  '--srcip=<ip> (-s <ip>): source (real) IP address of that host',
  '--mcast=<ip> (-m <ip>): multicast group IP address (default 224.0.0.18)',
  '--vhid=<id> (-v <id>): virtual IP identifier (1-255)',
  '--pass=<pass> (-p <pass>): password (visible in ps: prefer --passfile)',
  '--passfile=<file> (-o <file>): read password from file (must not be world-readable)',
  '--preempt (-P): becomes a master as soon as possible',
  "--neutral (-n): don't run downscript at start if backup",
  '--addr=<ip> (-a <ip>): virtual shared IP address',
  '--help (-h): summary of command-line options',
  '--advbase=<seconds> (-b <seconds>): advertisement frequency',
  '--advskew=<skew> (-k <skew>): advertisement skew (0-254)',
  '--upscript=<file> (-u <file>): run <file> to become a master',
  '--downscript=<file> (-d <file>): run <file> to become a backup',
  '--deadratio=<ratio> (-r <ratio>): ratio to consider a host as dead',
  '--debug (-D): enable debug output',
  '--shutdown (-z): call shutdown script at exit',
  '--daemonize (-B): run in background',
  '--ignoreifstate (-S): ignore interface state (down, no carrier)',
  '--nomcast (-M): use broadcast (instead of multicast) advertisements',
  '--facility=<facility> (-f): set syslog facility (default=daemon)',
  '--xparam=<value> (-x): extra parameter to send to up/down scripts',
  '',
  'carpd ucarp --interface=eth0 --srcip=10.1.1.1 --vhid=1 --passfile=/etc/ucarp/vip.pass \\',
  '      --addr=10.1.1.252 --upscript=/etc/vip-up.sh --downscript=/etc/vip-down.sh',
].join('\n');

interface OptionSpec {
  short: string;
  long: string[];
  arg: boolean;
}

// ucarp's long_options, plus `mcast` (ucarp reaches `mcastip` through getopt's prefix matching)
// and short `-m`, which ucarp documents but leaves out of its optstring.
const OPTIONS: OptionSpec[] = [
  { short: 'i', long: ['interface'], arg: true },
  { short: 's', long: ['srcip'], arg: true },
  { short: 'm', long: ['mcastip', 'mcast'], arg: true },
  { short: 'v', long: ['vhid'], arg: true },
  { short: 'p', long: ['pass'], arg: true },
  { short: 'o', long: ['passfile'], arg: true },
  { short: 'P', long: ['preempt'], arg: false },
  { short: 'n', long: ['neutral'], arg: false },
  { short: 'a', long: ['addr'], arg: true },
  { short: 'h', long: ['help'], arg: false },
  { short: 'b', long: ['advbase'], arg: true },
  { short: 'k', long: ['advskew'], arg: true },
  { short: 'u', long: ['upscript'], arg: true },
  { short: 'd', long: ['downscript'], arg: true },
  { short: 'r', long: ['deadratio'], arg: true },
  { short: 'D', long: ['debug'], arg: false },
  { short: 'z', long: ['shutdown'], arg: false },
  { short: 'f', long: ['facility'], arg: true },
  { short: 'B', long: ['daemonize'], arg: false },
  { short: 'S', long: ['ignoreifstate'], arg: false },
  { short: 'M', long: ['nomcast'], arg: false },
  { short: 'x', long: ['xparam'], arg: true },
];

/** glibc's facilitynames, which ucarp matches case-insensitively. */
export const FACILITIES: ReadonlySet<string> = new Set([
  'auth',
  'authpriv',
  'cron',
  'daemon',
  'ftp',
  'kern',
  'lpr',
  'mail',
  'mark',
  'news',
  'security',
  'syslog',
  'user',
  'uucp',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
]);

function usage(message: string): ConfigError {
  return new ConfigError(Code.USAGE, message, { file: UCARP_SOURCE });
}

/** One option occurrence as getopt_long would return it. */
interface Occurrence {
  spec: OptionSpec;
  value?: string;
}

/**
 * getopt_long over `argv` (without the program name): bundled and attached short options (`-Pz`,
 * `-v42`), `--opt=value` and `--opt value`, unambiguous long prefixes, `--` to end options.
 * Messages name options, never their values.
 */
function* getopt(argv: string[]): Generator<Occurrence> {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      if (i + 1 < argv.length) throw usage(`unexpected argument ${i + 2}: ucarp takes options only`);
      return;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const spec = findLong(name);
      if (!spec.arg) {
        if (eq !== -1) throw usage(`option '--${name}' doesn't allow an argument`);
        yield { spec };
      } else if (eq !== -1) {
        yield { spec, value: arg.slice(eq + 1) };
      } else {
        if (i + 1 >= argv.length) throw usage(`option '--${name}' requires an argument`);
        yield { spec, value: argv[++i]! };
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const spec = OPTIONS.find((o) => o.short === arg[j]);
        if (spec === undefined) throw usage(`invalid option -- '${arg[j]}'`);
        if (!spec.arg) {
          yield { spec };
          continue;
        }
        if (j + 1 < arg.length) {
          yield { spec, value: arg.slice(j + 1) };
        } else {
          if (i + 1 >= argv.length) throw usage(`option requires an argument -- '${spec.short}'`);
          yield { spec, value: argv[++i]! };
        }
        break;
      }
      continue;
    }
    // ucarp (through getopt's permutation) silently ignores operands; a stray word is more likely
    // a mistake, and it is not echoed because it could be a password.
    throw usage(`unexpected argument ${i + 1}: ucarp takes options only`);
  }
}

/** One ucarp option as getopt_long returns it: its short letter and its argument, if any. */
export interface UcarpOption {
  short: string;
  value?: string;
}

/**
 * ucarp's options in `argv` (e.g. a CentOS vip-NNN.conf `OPTIONS`), parsed exactly as
 * `carpd ucarp` parses them. Throws ConfigError (CARPD_ERR_USAGE) on an unknown or malformed one.
 */
export function ucarpOptions(argv: string[]): UcarpOption[] {
  const out: UcarpOption[] = [];
  for (const o of getopt(argv)) out.push(o.value === undefined ? { short: o.spec.short } : { short: o.spec.short, value: o.value });
  return out;
}

function findLong(name: string): OptionSpec {
  const exact = OPTIONS.find((o) => o.long.includes(name));
  if (exact !== undefined) return exact;
  const matches = new Set(OPTIONS.filter((o) => name !== '' && o.long.some((l) => l.startsWith(name))));
  if (matches.size === 1) return [...matches][0]!;
  if (matches.size > 1) {
    const names = [...matches].flatMap((o) => o.long.filter((l) => l.startsWith(name)).map((l) => `'--${l}'`));
    throw usage(`option '--${name}' is ambiguous; possibilities: ${names.join(' ')}`);
  }
  throw usage(`unrecognized option '--${name}'`);
}

/** strtoul(s, NULL, 0) as ucarp calls it, minus the silent acceptance of trailing garbage. */
function parseCNumber(s: string): number | undefined {
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  if (/^0[0-7]*$/.test(s)) return parseInt(s, 8);
  if (/^[1-9]\d*$/.test(s)) return Number(s);
  return undefined;
}

function numberOption(value: string, name: string, code: string): number {
  const n = parseCNumber(value);
  if (n === undefined) throw new ConfigError(code, `${name} must be a number, not "${value}"`, { file: UCARP_SOURCE });
  return n;
}

function ipv4Option(value: string, code: string): string {
  // ucarp's inet_pton(AF_INET) check, and its message.
  if (!isIPv4(value)) throw new ConfigError(code, `Invalid address: [${value}]`, { file: UCARP_SOURCE });
  return value;
}

/**
 * Parses ucarp's options into a one-vhid model. Throws ConfigError: CARPD_ERR_USAGE for bad or
 * missing options, the passfile codes for -o, CARPD_ERR_PASSWORD_LENGTH beyond 19 bytes.
 */
export function parseUcarpArgs(argv: string[], opts: UcarpParseOptions): UcarpArgs {
  if (argv.length === 0) return { kind: 'help', usage: UCARP_USAGE };

  let ifname: string | undefined;
  let srcip: string | undefined;
  let vhid: number | undefined;
  let addr: string | undefined;
  let advbase = 1;
  let advskew = 0;
  let pass: { from: 'argv'; value: string } | { from: 'file'; path: string } | undefined;
  let upscript: string | undefined;
  let downscript: string | undefined;
  let xparam: string | undefined;
  const options: UcarpOptions = {
    preempt: false,
    neutral: false,
    shutdown: false,
    deadratio: UCARP_DEFAULT_DEADRATIO,
    daemonize: false,
    facility: 'daemon',
    ignoreifstate: false,
    nomcast: false,
    mcast: UCARP_DEFAULT_MCAST,
    debug: false,
    passOnArgv: false,
    warnings: [],
  };

  for (const { spec, value = '' } of getopt(argv)) {
    switch (spec.short) {
      case 'h':
        return { kind: 'help', usage: UCARP_USAGE };
      case 'i':
        ifname = value;
        break;
      case 's':
        srcip = ipv4Option(value, Code.SRCIP);
        break;
      case 'm':
        options.mcast = ipv4Option(value, Code.ADDRESS);
        break;
      case 'v': {
        const n = numberOption(value, 'vhid', Code.VHID);
        if (n < 1 || n > 255) throw new ConfigError(Code.VHID, 'vhid must be between 1 and 255.', { file: UCARP_SOURCE });
        vhid = n;
        break;
      }
      case 'p':
        pass = { from: 'argv', value };
        // Even when a later -o wins, this secret sat in argv.
        options.passOnArgv = true;
        break;
      case 'o':
        pass = { from: 'file', path: value };
        break;
      case 'P':
        options.preempt = true;
        break;
      case 'n':
        options.neutral = true;
        break;
      case 'a':
        addr = ipv4Option(value, Code.ADDRESS);
        break;
      case 'b':
        advbase = numberOption(value, 'advbase', Code.ADVBASE);
        break;
      case 'k':
        advskew = numberOption(value, 'advskew', Code.ADVSKEW);
        break;
      case 'u':
        upscript = value;
        break;
      case 'd':
        downscript = value;
        break;
      case 'r':
        options.deadratio = numberOption(value, 'deadratio', Code.USAGE);
        break;
      case 'D':
        options.debug = true;
        break;
      case 'z':
        options.shutdown = true;
        break;
      case 'B':
        options.daemonize = true;
        break;
      case 'S':
        options.ignoreifstate = true;
        break;
      case 'M':
        options.nomcast = true;
        break;
      case 'x':
        xparam = value;
        break;
      case 'f': {
        const f = value.toLowerCase();
        // ucarp logs an unknown facility and carries on with `daemon`; a typo should not go unseen.
        if (f !== 'none' && !FACILITIES.has(f)) throw usage(`Unknown syslog facility: [${value}]`);
        options.facility = f;
        break;
      }
    }
  }

  // ucarp's checks, in ucarp's order and words.
  if (ifname === undefined || ifname === '') ifname = opts.defaultInterface?.();
  if (ifname === undefined || ifname === '') throw usage('You must supply a network interface');
  if (vhid === undefined) throw usage('You must supply a valid virtual host id');

  let password = '';
  if (pass?.from === 'argv') {
    password = pass.value;
  } else if (pass?.from === 'file') {
    const r = opts.readPassfile(pass.path);
    if (!r.ok) throw new ConfigError(r.code, r.message, { file: UCARP_SOURCE });
    password = r.password;
    options.passfile = pass.path;
  }
  if (password === '') throw usage('You must supply a password');
  if (options.passOnArgv) {
    options.warnings.push('the password was given with -p/--pass and is visible in ps; use -o/--passfile');
  }
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new ConfigError(
      Code.PASSWORD_LENGTH,
      `password is longer than ${MAX_PASSWORD_BYTES} bytes; ucarp and the kernels use at most ` +
        `${MAX_PASSWORD_BYTES} bytes, so peers would not interoperate`,
      { file: UCARP_SOURCE },
    );
  }
  if (advbase === 0 && advskew === 0) throw usage('You must supply an advertisement time base');
  if (srcip === undefined || srcip === '0.0.0.0') throw usage('You must supply a persistent source address');
  if (addr === undefined || addr === '0.0.0.0') throw usage('You must supply a virtual host address');
  if (options.deadratio <= 0) throw usage("Dead ratio can't be zero");
  if (upscript === undefined) options.warnings.push('Warning: no script called when going up');
  if (downscript === undefined) options.warnings.push('Warning: no script called when going down');

  const v: VhidConfig = {
    key: `${vhid}@${ifname}`,
    vhid,
    interface: ifname,
    addresses: [`${addr}/32`],
    advbase,
    advskew,
    password,
    source: UCARP_SOURCE,
    groups: [CARP_GROUP],
    srcip,
    deadRatio: options.deadratio,
  };
  if (upscript !== undefined) v.upscript = upscript;
  if (downscript !== undefined) v.downscript = downscript;
  if (xparam !== undefined) v.xparam = xparam;

  const model: CarpModel = {
    global: { ...defaultGlobal(), preempt: options.preempt, ...(options.debug ? { log: 7 } : {}) },
    vhids: [v],
  };
  for (const d of validateModel(model)) {
    if (d.severity === 'error') throw ConfigError.fromDiagnostic(d);
    options.warnings.push(d.message);
  }
  return { kind: 'run', model, options };
}
