/**
 * The plugin host as a service behind messages: what runs in the plugin-host child process.
 * It builds the PluginHost from the `init` message (loadPlugins as the daemon used to), feeds it
 * the daemon's transitions, and answers with pre-phase completions, demotions, hook records and
 * log lines. The engine it sees is a stand-in made of those messages (HostEngine).
 */
import type { Logger } from '../ports/logger.js';
import type { ExecPort } from '../ports/exec.js';
import type { HostFs } from '../ports/fs.js';
import type { CarpState } from '../ports/state-source.js';
import type { HostTimers, Scheduler } from '../ports/timers.js';
import { messageOf, PluginsInvalidError } from './errors.js';
import { PluginHost, type HostEngine } from './host.js';
import { loadModelPlugins } from './load-model.js';
import type { HookRecord } from './log.js';
import { parseToChild, type FromChild, type ToChild } from './messages.js';

/** Messages queued while the plugins load: a bound, not a limit anyone should reach. */
const MAX_QUEUED = 10_000;

/** The real commands, files, timers and schedules (src/host/child.ts passes the adapters), or fakes. */
export interface HostServiceDeps {
  exec: ExecPort;
  fs: HostFs;
  timers: HostTimers;
  scheduler: Scheduler;
}

export class HostService {
  private host: PluginHost | undefined;
  private initializing = false;
  private stopped = false;
  private readonly queue: ToChild[] = [];
  private readonly states = new Map<string, CarpState>();
  /** Per vhid key: the newest transition seen, and the newest whose VIP step the daemon reported done. */
  private readonly lastSeq = new Map<string, number>();
  private readonly settledSeq = new Map<string, number>();
  private readonly waiters = new Map<string, { seq: number; resolve: () => void }[]>();

  /** Resolves once `stop` has been handled (teardown done, `stopped` sent), or loading failed. */
  readonly done: Promise<void>;
  private finish!: () => void;

  constructor(
    private readonly send: (m: FromChild) => void,
    private readonly deps: HostServiceDeps,
  ) {
    this.done = new Promise((r) => (this.finish = r));
  }

  private readonly logger: Logger = { log: (level, message) => this.send({ type: 'log', level, message }) };

  /** One message from the daemon; anything malformed is reported and dropped. */
  receive(raw: unknown): void {
    const m = parseToChild(raw);
    if (!m) {
      this.logger.log(2, 'carpd: plugin host: dropped a malformed message from the daemon');
      return;
    }
    if (m.type === 'init') {
      void this.init(m);
      return;
    }
    if (m.type === 'ping') {
      this.send({ type: 'pong', n: m.n });
      return;
    }
    if (!this.host && m.type !== 'stop') {
      if (this.queue.length < MAX_QUEUED) this.queue.push(m);
      return;
    }
    if (this.initializing && m.type === 'stop') {
      this.queue.push(m);
      return;
    }
    this.dispatch(m);
  }

  private engine(): HostEngine {
    return {
      status: () => [...this.states].map(([key, state]) => ({ key, state })),
      setDemotion: (group, by, count) => {
        this.send({ type: 'demote', group, by, count });
        return count;
      },
      netSettled: (key) => this.settled(key),
    };
  }

  private settled(key: string): Promise<void> {
    const want = this.lastSeq.get(key) ?? 0;
    if ((this.settledSeq.get(key) ?? 0) >= want) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(key) ?? [];
      list.push({ seq: want, resolve });
      this.waiters.set(key, list);
    });
  }

  private async init(m: Extract<ToChild, { type: 'init' }>): Promise<void> {
    if (this.host || this.initializing) return;
    this.initializing = true;
    for (const s of m.states) this.states.set(s.key, s.state);
    try {
      const { os, templates, plugins } = await loadModelPlugins(m.model, {
        ...(m.os ? { os: m.os } : {}),
        ...(m.builtinPluginDir ? { builtinPluginDir: m.builtinPluginDir } : {}),
        ...(m.builtinTemplateDir ? { builtinTemplateDir: m.builtinTemplateDir } : {}),
      });
      const host = new PluginHost({
        model: m.model,
        plugins,
        engine: this.engine(),
        logger: this.logger,
        templates,
        os,
        ...this.deps,
        ...m.options,
      });
      host.on('hook', (record: HookRecord) => this.send({ type: 'hook', record }));
      this.host = host;
      host.start();
      this.send({ type: 'ready', plugins: plugins.map((p) => p.name), gated: host.gatedKeys() });
      void host.whenBooted().then((ok) => ok && !this.stopped && this.send({ type: 'setup-done' }));
    } catch (e) {
      const errors =
        e instanceof PluginsInvalidError
          ? e.errors.map((x) => ({ code: x.code, plugin: x.plugin, message: x.message }))
          : [{ code: 'CARPD_ERR_PLUGIN_LOAD', plugin: '*', message: messageOf(e) }];
      this.send({ type: 'load-failed', errors });
      this.stopped = true;
      this.finish();
      return;
    } finally {
      this.initializing = false;
    }
    for (const q of this.queue.splice(0)) this.dispatch(q);
  }

  private dispatch(m: ToChild): void {
    switch (m.type) {
      case 'transition': {
        for (const s of m.states) this.states.set(s.key, s.state);
        this.states.set(m.ev.key, m.ev.to);
        this.lastSeq.set(m.ev.key, Math.max(this.lastSeq.get(m.ev.key) ?? 0, m.ev.seq));
        const seq = m.ev.seq;
        const gate = this.host?.handle(m.ev);
        if (!gate) this.send({ type: 'pre-phase-done', seq });
        else void gate.then(() => this.send({ type: 'pre-phase-done', seq }));
        return;
      }
      case 'vip-settled': {
        const s = Math.max(this.settledSeq.get(m.key) ?? 0, m.seq);
        this.settledSeq.set(m.key, s);
        const list = this.waiters.get(m.key) ?? [];
        const keep = list.filter((w) => w.seq > s);
        for (const w of list) if (w.seq <= s) w.resolve();
        if (keep.length > 0) this.waiters.set(m.key, keep);
        else this.waiters.delete(m.key);
        return;
      }
      case 'stop':
        void this.stop();
        return;
      case 'init':
      case 'ping':
        return;
    }
  }

  private async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.host?.stop();
    } catch (e) {
      this.logger.log(1, `carpd: plugin host: stop: ${messageOf(e)}`);
    }
    // Nothing waits for a VIP step any more.
    for (const list of this.waiters.values()) for (const w of list) w.resolve();
    this.waiters.clear();
    this.send({ type: 'stopped' });
    this.finish();
  }
}
