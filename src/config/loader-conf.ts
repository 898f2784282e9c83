/**
 * FreeBSD /boot/loader.conf: only whether the kernel's carp is loaded at boot, which would take
 * IP protocol 112 from carpd.
 */
import { Code, error, warning } from './errors.js';
import { append, emptyResult, type FormatResult } from './format.js';
import { parseRcConf, reassignWarnings } from './rc-conf.js';
import { parseRcBool } from './values.js';

/** `carp_load` (FreeBSD 10+) and `if_carp_load` (before). */
const KERNEL_CARP_VARS = ['carp_load', 'if_carp_load'];

/** Parses one loader.conf: no vhids, only a warning when it loads carp.ko. */
export function parseLoaderConf(text: string, file: string): FormatResult {
  const r = emptyResult();
  const rc = parseRcConf(text);
  for (const e of rc.errors) r.diagnostics.push(error({ file, line: e.line }, Code.CONFIG_SYNTAX, e.message));
  append(r.diagnostics, reassignWarnings(rc, file));
  for (const name of KERNEL_CARP_VARS) {
    const v = rc.vars.get(name);
    if (v === undefined) continue;
    const on = parseRcBool(v.value);
    if (on === undefined) {
      r.diagnostics.push(error({ file, line: v.line }, Code.CONFIG_VALUE, `${name} must be YES or NO, not "${v.value}"`));
    } else if (on) {
      r.diagnostics.push(
        warning(
          { file, line: v.line },
          Code.WARN_KERNEL_CARP,
          `${name}="YES" loads the kernel's carp, which would own IP protocol 112 and take the adverts from carpd; ` +
            'set it to "NO" (or net.inet.carp.allow=0) where carpd runs',
        ),
      );
    }
  }
  return r;
}
