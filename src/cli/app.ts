// The command-line grammar: the only module that knows yargs. Parsing has no side effects: it returns
// what to run (an Invocation) or the text yargs produced for --help/--version.
import yargs, { type Argv } from 'yargs';
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import { splitArgv, ArgvError } from '../plugin/argv.js';
import { UsageError } from '../runtime/errors.js';
import { VERSION } from '../version.js';
import { toScanOptions, withScanOptions, type RawScanArgs, type ScanOptions } from './options/scan-options.js';
import {
  toServerOptions,
  withDownOptions,
  withImportOptions,
  withLogsOptions,
  withStatusOptions,
  withUpOptions,
  type RawServerArgs,
  type ServerOptions,
} from './options/server-options.js';

export type Invocation =
  | { kind: 'text'; text: string }
  | { kind: 'version' }
  | { kind: 'scan'; options: Readonly<ScanOptions> }
  | { kind: 'server'; options: Readonly<ServerOptions> };

export interface ParsedCommandLine {
  invocation: Invocation;
  globals: DockerGlobalFlags;
  pluginMode: boolean;
}

const COMMANDS = ['scan', 'server', 'version'];

/** docker's global flags, also accepted after the command for standalone use (`docker-clair scan -H …`). */
function withDockerOptions<T>(y: Argv<T>) {
  const group = 'Docker (as for docker itself; normally given before "clair"):';
  return y
    .option('host', { alias: 'H', type: 'string', describe: 'Daemon socket to connect to', group, requiresArg: true })
    .option('context', { alias: 'c', type: 'string', describe: 'Docker context to use', group, requiresArg: true })
    .option('config', { type: 'string', describe: 'Location of client config files', group, requiresArg: true })
    .option('debug', { alias: 'D', type: 'boolean', describe: 'Enable debug output', group })
    .option('log-level', { alias: 'l', type: 'string', describe: 'Set the logging level', group, requiresArg: true })
    .option('tls', { type: 'boolean', describe: 'Use TLS; implied by --tlsverify', group })
    .option('tlsverify', { type: 'boolean', describe: 'Use TLS and verify the remote', group })
    .option('tlscacert', { type: 'string', describe: 'Trust certs signed only by this CA', group, requiresArg: true })
    .option('tlscert', { type: 'string', describe: 'Path to TLS certificate file', group, requiresArg: true })
    .option('tlskey', { type: 'string', describe: 'Path to TLS key file', group, requiresArg: true });
}

interface RawDockerArgs {
  host?: string;
  context?: string;
  config?: string;
  debug?: boolean;
  'log-level'?: string;
  tls?: boolean;
  tlsverify?: boolean;
  tlscacert?: string;
  tlscert?: string;
  tlskey?: string;
}

/** Flags given after the command add to (and, being later, override) those given before it. */
function mergeGlobals(before: DockerGlobalFlags, after: RawDockerArgs): DockerGlobalFlags {
  const merged: DockerGlobalFlags = { ...before, hosts: [...before.hosts] };
  if (after.host !== undefined) merged.hosts.push(after.host);
  if (after.context !== undefined) merged.context = after.context;
  if (after.config !== undefined) merged.config = after.config;
  if (after.debug !== undefined) merged.debug = after.debug;
  if (after['log-level'] !== undefined) merged.logLevel = after['log-level'];
  if (after.tls !== undefined) merged.tls = after.tls;
  if (after.tlsverify !== undefined) merged.tlsVerify = after.tlsverify;
  if (after.tlscacert !== undefined) merged.tlsCaCert = after.tlscacert;
  if (after.tlscert !== undefined) merged.tlsCert = after.tlscert;
  if (after.tlskey !== undefined) merged.tlsKey = after.tlskey;
  return merged;
}

export async function parseCommandLine(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  columns = 100,
): Promise<ParsedCommandLine> {
  let split;
  try {
    split = splitArgv(argv, env);
  } catch (error) {
    if (error instanceof ArgvError) throw new UsageError(error.message, "see 'docker --help'");
    throw error;
  }
  const name = split.pluginMode ? 'docker clair' : 'docker-clair';
  let invocation: Invocation | undefined;
  let rawDocker: RawDockerArgs = {};

  const parser = withDockerOptions(yargs())
    .scriptName(name)
    .usage(`Usage:  ${name} COMMAND\n\nScan container images for known vulnerabilities with Clair.`)
    .command(
      'scan [images..]',
      'Scan images for known vulnerabilities',
      (y) =>
        withScanOptions(y, env)
          .usage(
            `Usage:  ${name} scan [OPTIONS] IMAGE [IMAGE...]\n\n` +
              'Scan images for known vulnerabilities with Clair. Exit status: 0 no finding at or above\n' +
              '--fail-on, 1 findings at or above it, 2 error, 3 the result cannot be trusted (for example\n' +
              "Clair's vulnerability database is empty or the OS is not supported), 130 cancelled.",
          )
          .example(`${name} scan --clair http://clair:6060 app:1.2`, 'Fail on High or Critical findings')
          .example(`${name} scan --format junit=clair.xml app:1.2`, 'Also write JUnit for Jenkins'),
      (args) => {
        rawDocker = args as RawDockerArgs;
        invocation = { kind: 'scan', options: toScanOptions(args as RawScanArgs, env) };
      },
    )
    .command('server', 'Run a local Clair in Docker for scans (up, import, status, logs, down)', (y) =>
      withServerCommands(y, name, (action) => (args: unknown) => {
        rawDocker = args as RawDockerArgs;
        invocation = { kind: 'server', options: toServerOptions(action, args as RawServerArgs) };
      }))
    .command('version', 'Show the docker-clair version information', {}, (args) => {
      rawDocker = args as RawDockerArgs;
      invocation = { kind: 'version' };
    })
    .demandCommand(1, `"${name}" requires a command`)
    .strict()
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .exitProcess(false)
    .showHelpOnFail(false)
    .wrap(Math.max(60, Math.min(columns, 120)))
    .fail((message, error) => {
      if (error instanceof UsageError) throw error;
      const text = message ?? error?.message ?? 'invalid command line';
      const first = split.args.find((a) => !a.startsWith('-'));
      if (first !== undefined && !COMMANDS.includes(first) && /^Unknown argument/.test(text)) {
        throw new UsageError(`unknown command "${first}" for "${name}"`, `see '${name} --help'`);
      }
      throw new UsageError(text.replace(/^Unknown arguments?/, 'unknown flag'), `see '${name} --help'`);
    });

  skipHelpCache(parser);
  let output = '';
  await parser.parseAsync(split.args, {}, (_error, _argv, text) => {
    output = text;
  });
  const globals = mergeGlobals(split.globals, rawDocker);
  if (!invocation) return { invocation: { kind: 'text', text: output }, globals, pluginMode: split.pluginMode };
  return { invocation, globals, pluginMode: split.pluginMode };
}

/**
 * yargs renders a command's whole help text once its handler has run, in case the handler shows it later. Ours only
 * record what to run, so the text (~12 ms of cliui layout and string widths, before the scan can start) is never
 * used: --help renders its own.
 */
function skipHelpCache(parser: Argv): void {
  const internal = parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } };
  const usage = internal.getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

/** `server up|import|status|logs|down`, each calling `run(action)` with its parsed arguments. */
function withServerCommands(y: Argv, name: string, run: (action: ServerOptions['action']) => (args: unknown) => void): Argv {
  return y
    .usage(`Usage:  ${name} server COMMAND\n\nA local Clair v4 with PostgreSQL, managed by docker-clair; scans use it when no --clair is given.`)
    .command('up', 'Create and start the local Clair, then wait for its first vulnerability update', (yy) =>
      withUpOptions(yy).usage(
        `Usage:  ${name} server up [OPTIONS]\n\nStart Clair v4 and PostgreSQL in containers (network ${'docker-clair'}, API on 127.0.0.1 only).\n` +
          'Exit status: 0 ready, 2 error, 3 running but the first vulnerability update has not finished.',
      ), run('up'))
    .command('import <file>', 'Load a "clairctl export-updaters" file into the local Clair (air-gapped use)', (yy) =>
      withImportOptions(yy).usage(
        `Usage:  ${name} server import [OPTIONS] FILE\n\nLoad vulnerability data exported on a connected machine (clairctl export-updaters) into the\n` +
          'running local Clair with clairctl import-updaters. Exit status: 0 imported, 2 error.',
      ), run('import'))
    .command('status', 'Show the local Clair (exit 0 ready, 3 database still empty, 2 down)', (yy) => withStatusOptions(yy), run('status'))
    .command('logs', "Show Clair's logs", (yy) => withLogsOptions(yy), run('logs'))
    .command('down', 'Stop and remove the local Clair (the database volume is kept unless --volumes)', (yy) => withDownOptions(yy), run('down'))
    .demandCommand(1, `"${name} server" requires a command: up, import, status, logs or down`);
}
