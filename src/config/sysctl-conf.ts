/**
 * sysctl.conf(5), FreeBSD and OpenBSD: the `net.inet.carp.*` knobs become carpd's globals.
 * Other sysctls are the kernel's business and are left alone.
 */
import { Code, error, warning, type SourceRef } from './errors.js';
import { emptyResult, setGlobal, type FormatResult } from './format.js';
import { parseUint } from './values.js';

const PREFIX = 'net.inet.carp.';

/** Parses one sysctl.conf. Lines are `name=value`; `#` starts a comment. */
export function parseSysctlConf(text: string, file: string): FormatResult {
  const r = emptyResult();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const setAt = new Map<string, number>();
  lines.forEach((raw, i) => {
    const where: SourceRef = { file, line: i + 1 };
    const s = raw.replace(/(^|\s)#.*$/, '').trim();
    if (s === '' || s.startsWith(';')) return;
    const eq = s.indexOf('=');
    if (eq === -1) {
      r.diagnostics.push(error(where, Code.CONFIG_SYNTAX, 'expected "name=value"'));
      return;
    }
    const name = s.slice(0, eq).trim();
    const value = s
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    if (!name.startsWith(PREFIX)) return;
    const knob = name.slice(PREFIX.length);
    // sysctl(8) applies the lines in order: the last one wins, as for a re-assigned rc.conf variable.
    const previous = setAt.get(name);
    if (previous !== undefined) {
      r.diagnostics.push(warning(where, Code.WARN_REASSIGNED, `${name} is set again; this value replaces the one at line ${previous} (the last one wins)`));
    }
    setAt.set(name, i + 1);
    const n = parseUint(value);
    const bad = (expected: string) => r.diagnostics.push(error(where, Code.CONFIG_VALUE, `${name} must be ${expected}, not "${value}"`));
    switch (knob) {
      case 'allow':
      case 'preempt':
        if (n === 0 || n === 1) setGlobal(r, knob, n === 1, where);
        else bad('0 or 1');
        if (knob === 'allow' && n === 0) {
          r.diagnostics.push(
            warning(
              where,
              Code.WARN_KERNEL_CARP,
              `${name}=0 keeps the kernel's carp off, as carpd needs, but read by carpd it turns carpd off too; ` +
                'leave this file out of -c, or give a carpd.conf with "allow = yes" after it',
            ),
          );
        }
        break;
      case 'log':
        // The number is taken in OpenBSD's sense (a syslog priority, 0..7).
        if (n !== undefined && n <= 7) setGlobal(r, 'log', n, where);
        else bad('0..7');
        break;
      case 'demotion':
        if (n !== undefined && n <= 255) setGlobal(r, 'demotion', n, where);
        else bad('0..255');
        break;
      case 'ifdown_demotion_factor':
        if (n !== undefined && n <= 255) setGlobal(r, 'ifdownDemotion', n, where);
        else bad('0..255');
        break;
      case 'senderr_demotion_factor':
        if (n !== undefined && n <= 255) setGlobal(r, 'senderrDemotion', n, where);
        else bad('0..255');
        break;
      case 'dscp':
        r.diagnostics.push(warning(where, Code.WARN_IGNORED, `carpd ignores ${name}: its adverts carry TOS 0x10`));
        break;
      default:
        r.diagnostics.push(error(where, Code.CONFIG_KEY, `unknown CARP sysctl "${name}"`));
    }
  });
  return r;
}
