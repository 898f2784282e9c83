/**
 * One attempt of one plugin hook: the event it sees, its narrow context, the run under a lease
 * (runner.ts), and the record of what happened. Retries and policies are the host's.
 */
import type { ExecPort } from '../ports/exec.js';
import type { HostFs } from '../ports/fs.js';
import type { HostTimers } from '../ports/timers.js';
import type { OsName } from '../render/os.js';
import type { TemplateSource as Templates } from '../render/template.js';
import { makeContext, type RunState } from './context.js';
import { HOST_CODES as C, HookError } from './errors.js';
import type { HookRecord } from './log.js';
import { runHook, type HookOutcome } from './runner.js';
import type { PluginRt, Request } from './runtime.js';
import type { CarpState, HookEvent, HookName, ScopeView, VhidView } from './types.js';

/** Emitted as `hook-start` before every hook attempt. */
export type HookStart = Pick<HookRecord, 'seq' | 'plugin' | 'hook' | 'key' | 'scope' | 'attempt' | 'startedAt'>;

export interface HookCallDeps {
  os: OsName;
  exec: ExecPort;
  fs: HostFs;
  templates: Templates;
  timers: HostTimers;
  dryRun: boolean;
  /** The host's signal (aborted when it stops). */
  signal: AbortSignal;
  /** ISO wall-clock time. */
  now(): string;
  scopeView(p: PluginRt, state: CarpState | undefined): ScopeView;
  vhidViews(): VhidView[];
  selfDemote(p: PluginRt, group: string, count: number): void;
  started(h: HookStart): void;
}

export interface HookCall {
  p: PluginRt;
  /** The hook as reported; `fnName` is the function run (init falls back to backup). */
  hook: HookName;
  fnName: HookName;
  req: Request | undefined;
  run: RunState;
  attempt: number;
  from?: CarpState;
}

/** Runs the attempt; never rejects. */
export async function callHook(c: HookCall, d: HookCallDeps): Promise<{ out: HookOutcome; rec: HookRecord }> {
  const { p, hook, req, attempt } = c;
  const fn = p.lp.decl.hooks[c.fnName]!;
  const ev = req?.ev;
  const target = req?.target;
  const event: HookEvent = Object.freeze({
    hook,
    seq: ev?.seq ?? 0,
    reason: req?.reason ?? hook,
    time: ev?.time ?? d.now(),
    scope: d.scopeView(p, target),
    attempt,
    ...(target ? { target } : {}),
    ...(c.from ? { from: c.from } : {}),
    ...(ev ? { key: ev.key, vhid: ev.vhid, interface: ev.interface } : {}),
  });
  const tag = { plugin: p.lp.name, hook, seq: event.seq, ...(ev ? { vhid: ev.vhid, key: ev.key } : {}) };
  const startedAt = d.now();
  d.started({ seq: event.seq, plugin: p.lp.name, hook, key: ev?.key ?? '', scope: p.scope.def.key, attempt, startedAt });
  const out = await runHook(
    (lease) =>
      fn(
        makeContext({
          plugin: p.lp,
          os: d.os,
          event,
          lease,
          tag,
          exec: d.exec,
          fs: d.fs,
          templates: d.templates,
          timers: d.timers,
          log: p.log,
          dryRun: d.dryRun,
          run: c.run,
          state: p.state,
          demote: (count, group) => d.selfDemote(p, group ?? p.lp.scope.group, count),
          undemote: (group) => {
            for (const g of group ? [group] : [...p.self.keys()]) d.selfDemote(p, g, 0);
          },
          vhids: () => d.vhidViews(),
        }),
      ),
    { timeoutMs: p.lp.timeoutMs, timers: d.timers, tag, parent: d.signal },
  );
  if (hook === 'checkHealth' && out.result === 'ok' && out.value === false) {
    out.result = 'error';
    out.error = new HookError(C.HEALTH_FAILED, tag, 'health check failed');
  }
  const rec: HookRecord = {
    seq: event.seq,
    plugin: p.lp.name,
    hook,
    key: ev?.key ?? '',
    scope: p.scope.def.key,
    attempt,
    startedAt,
    durationMs: Math.round(out.durationMs * 1000) / 1000,
    result: out.result,
    ...(out.error ? { error: { code: out.error.code, message: out.error.message, ...(out.error.causeCode ? { causeCode: out.error.causeCode } : {}) } } : {}),
  };
  return { out, rec };
}
