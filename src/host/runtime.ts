/** The plugin host's running state of scopes and plugins, shared by its parts (host, scope queue, phases, health). */
import type { TransitionEvent } from '../ports/state-source.js';
import type { Hysteresis } from './health.js';
import type { LoadedPlugin } from './loader.js';
import type { ScopeDef } from './scope.js';
import type { CarpState, PluginLogger } from './types.js';

export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A request to drive a scope to a state. */
export interface Request {
  target: CarpState;
  ev?: TransitionEvent;
  reason: string;
  /** Resolved when the run's pre-phase is over (or the request is superseded): the VIP step may go. */
  pre: Deferred;
}

export interface ScopeRt {
  def: ScopeDef;
  plugins: PluginRt[];
  /** The state most recently asked for. */
  wanted?: CarpState;
  /** The state of the last completed run. */
  completed?: CarpState;
  pending?: Request;
  running?: Request;
}

export interface PluginRt {
  lp: LoadedPlugin;
  scope: ScopeRt;
  ready: boolean;
  state: Record<string, unknown>;
  log: PluginLogger;
  /** Demotion held by the failure policy or the health check (`plugin:NAME`). */
  held: number;
  /** Demotion the plugin asked for itself, per group (`plugin:NAME:self`). */
  self: Map<string, number>;
  health?: Hysteresis;
  healthBusy: boolean;
  failures: number;
  lastResult?: string;
}

/** Emitted as `run` when a scope's run completes. */
export interface RunRecord {
  scope: string;
  target: CarpState;
  seq: number;
  /** Plugins with a failed hook in this run. */
  failed: string[];
}
