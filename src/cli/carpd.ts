#!/usr/bin/env node
/** `carpd`: the daemon and its tools (DESIGN.md "User-facing contract"). */
import { UsageError } from './args.js';

const USAGE = `usage: carpd <command> [options]

  run -c FILE [-c FILE]... [--control PATH] [--log-level 0-7] [--log-file F]
                           run the daemon in the foreground
  check -c FILE...         validate configuration: prints "configuration OK" or FILE:LINE: errors
  config -c FILE... [--show-secrets]
                           print the normalized model as JSON
  inspect [--pass P | --passfile F] [--address A]... FILE.pcap
                           one JSON line per CARP packet in a capture
  ucarp [ucarp options]    drop-in for ucarp's command line
  monitor -i IF [--json] [--count N] [--seconds S]
                           print the CARP adverts heard on an interface
  lab [--nodes N] [--vhids N] [--with-ucarp] [--advskew-step S]
                           build a throwaway cluster in network namespaces, kill the master,
                           measure the failover, clean up
  install-service [--prefix DIR] [--os OS] [--init systemd|sysv] [--bin DIR] [--force]
                           install the rc.d / init.d / systemd files for this OS
`;

const io = {
  out: (line: string) => process.stdout.write(`${line}\n`),
  err: (line: string) => process.stderr.write(`${line}\n`),
};

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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
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
