/** The plugin host's real commands, files, timers and schedules, for tests that override only some of them. */
import { groupExec } from '../../src/adapters/exec.js';
import { realFs } from '../../src/adapters/host-fs.js';
import { realScheduler, realTimers, validCron } from '../../src/adapters/host-timers.js';
import { pluginFolders } from '../../src/adapters/plugin-dirs.js';
import type { LoaderPorts } from '../../src/host/loader.js';
import type { HostServiceDeps } from '../../src/host/host-service.js';

export function hostDefaults(): HostServiceDeps {
  return { exec: groupExec, fs: realFs(), timers: realTimers, scheduler: realScheduler };
}

/** The plugin loader's real folder listing and cron check. */
export const loaderPorts: LoaderPorts = { listFolders: pluginFolders, validCron };
