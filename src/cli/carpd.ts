#!/usr/bin/env node
/** `carpd`: the daemon and its tools (DESIGN.md "User-facing contract"). */
import { guardStdio, writeStderr, writeStdout } from '../adapters/logger.js';
import { UsageError } from './args.js';

const USAGE = `usage: carpd <command> [options]

  run -c FILE [-c FILE]... [--control PATH] [--log-level 0-7] [--log-file F] [--run-dir DIR]
                           run the daemon in the foreground (one per network namespace: the
                           lock file is in DIR, default /run/carpd)
  check -c FILE...         validate configuration: prints "configuration OK" or FILE:LINE: errors
  config -c FILE... [--show-secrets]
                           print the normalized model as JSON
  inspect [--pass P | --passfile F] [--address A]... FILE.pcap
                           one JSON line per CARP packet in a capture
  ucarp [ucarp options] [--run-dir DIR]
                           drop-in for ucarp's command line (one per vhid and interface)
  monitor -i IF [--json] [--count N] [--seconds S]
                           print the CARP adverts heard on an interface
  lab [--nodes N] [--vhids N] [--with-ucarp] [--advskew-step S]
                           build a throwaway cluster in network namespaces, kill the master,
                           measure the failover, clean up
  install-service [--prefix DIR] [--os OS] [--init systemd|sysv] [--bin DIR] [--force]
                           install the rc.d / init.d / systemd files for this OS
`;

const io = {
  out: (line: string) => writeStdout(`${line}\n`),
  err: (line: string) => writeStderr(`${line}\n`),
};

/** Commands that run on when their stdout's reader goes away: the daemons, and the lab (it must clean up). */
const KEEP_RUNNING = new Set(['run', 'ucarp', 'lab']);

/**
 * The exit status of a command whose reader went away (`carpd inspect FILE | head`): 128 + SIGPIPE,
 * what cat(1) or grep(1) report there. Node ignores SIGPIPE, so the write's EPIPE is all we see.
 */
const EXIT_PIPE = 128 + 13;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case 'run':
      return (await import('./run.js')).runCommand(args, io);
    case 'check':
      return (await import('./check.js')).checkCommand(args, io);
    case 'config':
      return (await import('./check.js')).configCommand(args, io);
    case 'convert':
      return (await import('./convert.js')).convertCommand(args, io);
    case 'inspect':
      return (await import('./inspect.js')).inspectCommand(args, io.out);
    case 'ucarp':
      return (await import('./ucarp.js')).ucarpCommand(args, io);
    case 'monitor':
      return (await import('./monitor.js')).monitorCommand(args, io);
    case 'plan':
      return (await import('./plan.js')).planCommand(args, io);
    case 'lab':
      return (await import('./lab.js')).labCommand(args, io);
    case 'install-service':
      return (await import('./install-service.js')).installServiceCommand(args, io);
    case '-h':
    case '--help':
    case 'help':
      io.out(USAGE);
      return 0;
    case '-V':
    case '--version':
    case 'version':
      io.out('carpd 0.1.0');
      return 0;
    default:
      io.err(cmd ? `carpd: unknown command "${cmd}"` : 'carpd: a command is needed');
      io.err(USAGE);
      return 2;
  }
}

const argv = process.argv.slice(2);
// A closed stdout or stderr must not crash carpd (an uncaught EPIPE): see guardStdio.
guardStdio(KEEP_RUNNING.has(argv[0] ?? '') ? undefined : () => process.exit(EXIT_PIPE));

/**
 * How long a daemon that has finished its shutdown may wait for its event loop to drain. Its VIPs
 * are gone and its bow-outs sent by then; a handle left open by mistake (a timer, a child) must
 * not keep `service carpd stop` waiting for ever.
 */
const DRAIN_MS = 2000;

main(argv).then(
  (code) => {
    process.exitCode = code;
    if (argv[0] === 'run' || argv[0] === 'ucarp') {
      setTimeout(() => {
        io.err(`carpd: shut down, but something kept the process alive ${DRAIN_MS} ms later; exiting`);
        process.exit(code);
      }, DRAIN_MS).unref();
    }
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      io.err(`carpd: ${err.message}`);
      process.exitCode = 2;
      return;
    }
    io.err(`carpd: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
