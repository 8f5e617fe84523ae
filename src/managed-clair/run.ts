// `docker clair server up|import|status|logs|down`: reach the daemon, run the action, print what happened.
// Progress goes to stderr; stdout gets the one result (the ready line, the status, the logs).
import { homedir } from 'node:os';
import { configDir } from '../docker/endpoint.js';
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import { ExitCode, ManagedClairError, UsageError, type ExitCode as ExitCodeT } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { formatAge } from '../clair/v4/update-age.js';
import { connectManaged, isLocalDaemon, resolveManagedEndpoint } from './connect.js';
import { checkUpdatesFile, type UpdatesFile } from './import.js';
import type { ServerStatus } from './status.js';
import type { ManagedServer } from './managed-server.js';
import { NETWORK, VOLUME } from './names.js';
import { loadOrCreateSecrets, readSecrets, removeSecrets, secretsFile } from './secrets.js';
import type { ServerSettings } from './settings.js';

export interface ServerDeps {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  log: Logger;
  signal: AbortSignal;
  home?: string;
}

export async function runServer(options: Readonly<ServerSettings>, globals: DockerGlobalFlags, deps: ServerDeps): Promise<ExitCodeT> {
  const home = deps.home ?? homedir();
  const dockerConfig = configDir(globals, deps.env, home);
  // A file that cannot be read is said before the daemon is asked anything, and nothing is created for it.
  const importPath = options.action === 'import' ? options.file : options.action === 'up' ? options.importFile : undefined;
  const importFile = importPath === undefined ? undefined : await checkUpdatesFile(importPath);
  const endpoint = await resolveManagedEndpoint(globals, deps.env, deps.home, deps.log);
  const server = await connectManaged(endpoint, deps.signal);
  const out = (line: string) => deps.stdout.write(`${line}\n`);
  switch (options.action) {
    case 'up': {
      if (!isLocalDaemon(endpoint)) {
        throw new UsageError(`the managed Clair publishes its API on the daemon host's 127.0.0.1, which ${endpoint.host} is not`,
          'run "docker clair server up" on the daemon host itself, or run Clair there yourself and pass --clair');
      }
      out(await up(server, options, importFile, dockerConfig, deps));
      return ExitCode.Pass;
    }
    case 'import': {
      if (!importFile) throw new Error('unreachable: server import without a file');
      out(await importUpdatesFile(server, options, importFile, dockerConfig, deps));
      return ExitCode.Pass;
    }
    case 'status': {
      const status = await server.status(await readSecrets(dockerConfig), deps.signal);
      const code = statusExitCode(status);
      if (options.format === 'json') out(JSON.stringify({ ...status, ready: code === ExitCode.Pass }, null, 2));
      else for (const line of statusLines(status)) out(line);
      return code;
    }
    case 'logs': {
      await server.logs(options.postgres ? 'postgres' : 'clair', {
        follow: options.follow, ...(options.tail !== undefined ? { tail: options.tail } : {}),
      }, deps.stdout, deps.stderr, deps.signal);
      return ExitCode.Pass;
    }
    case 'down': {
      const removed = await server.down({ volumes: options.volumes });
      if (options.volumes) await removeSecrets(dockerConfig);
      if (removed.length === 0) out('nothing to remove: the managed Clair does not exist');
      else out(`removed ${removed.join(', ')}${options.volumes ? '' : ` (volume ${VOLUME} kept: --volumes removes it)`}`);
      return ExitCode.Pass;
    }
  }
}

/** Progress lines go to stderr, unless --quiet. */
function progressTo(deps: ServerDeps, quiet: boolean): (line: string) => void {
  return (line: string) => {
    if (!quiet) deps.stderr.write(`${line}\n`);
  };
}

/** `server up`; returns the result line. */
async function up(server: ManagedServer, options: Extract<ServerSettings, { action: 'up' }>, importFile: UpdatesFile | undefined,
  dockerConfig: string, deps: ServerDeps): Promise<string> {
  const { secrets, created } = await loadOrCreateSecrets(dockerConfig);
  if (created) deps.log.debug(`new PSK and database password stored in ${secretsFile(dockerConfig)} (mode 0600)`);
  const result = await server.up({
    clairImage: options.clairImage, postgresImage: options.postgresImage, port: options.port,
    waitForUpdate: options.wait, timeoutMs: options.timeoutMs, secrets, progress: progressTo(deps, options.quiet), signal: deps.signal,
    ...(importFile ? { importFile } : {}),
  });
  const what = result.was === 'running' ? 'already running' : result.was === 'started' ? 'started again' : 'started';
  const db = result.update.kind === 'updated'
    ? `vulnerability database loaded (${result.update.updaters} updater(s), last update ${result.update.lastUpdate ?? 'unknown'})`
    : 'not waiting for the first vulnerability update (--no-wait): scans exit 3 until it finishes';
  return `Clair ${what} at ${result.url}${result.airGapped ? ' (air-gapped: updaters off)' : ''}; ${importFile ? `imported ${importFile.path}; ` : ''}${db}`;
}

/** `server import`; returns the result line. */
async function importUpdatesFile(server: ManagedServer, options: Extract<ServerSettings, { action: 'import' }>, importFile: UpdatesFile,
  dockerConfig: string, deps: ServerDeps): Promise<string> {
  const signal = AbortSignal.any([deps.signal, AbortSignal.timeout(options.timeoutMs)]);
  let result;
  try {
    result = await server.import(importFile, await readSecrets(dockerConfig), progressTo(deps, options.quiet), signal);
  } catch (error) {
    if (signal.aborted && !deps.signal.aborted) {
      throw new ManagedClairError(`the import of ${importFile.path} did not finish within --timeout ${Math.round(options.timeoutMs / 1000)}s`,
        'raise --timeout (clairctl may still be loading it: see "docker clair server status")', { cause: error });
    }
    throw error;
  }
  const db = result.update
    ? `; vulnerability database: ${result.update.updaters} updater(s), last update ${result.update.lastUpdate ?? 'unknown'}`
    : '';
  return `imported ${importFile.path}${db}`;
}

export function statusExitCode(status: ServerStatus): ExitCodeT {
  if (status.api !== 'ready' || !status.database) return ExitCode.Error;
  return status.database.empty ? ExitCode.Untrusted : ExitCode.Pass;
}

export function statusLines(status: ServerStatus): string[] {
  const lines: string[] = [];
  for (const c of status.containers) {
    const label = c.role === 'clair' ? 'Clair' : 'PostgreSQL';
    lines.push(`${`${label}:`.padEnd(12)}${c.state ?? 'absent'}  ${c.name}${c.image ? `  ${c.image}` : ''}${c.role === 'clair' && status.clairVersion ? `  (version ${status.clairVersion})` : ''}`);
  }
  lines.push(`${'Network:'.padEnd(12)}${status.network ? NETWORK : 'absent'}`);
  lines.push(`${'Volume:'.padEnd(12)}${status.volume ? VOLUME : 'absent'}`);
  const api = status.api === 'ready' ? 'ready' : status.api === 'down' ? 'down' : `not answering${status.apiError ? ` (${status.apiError})` : ''}`;
  lines.push(`${'API:'.padEnd(12)}${status.url ? `${status.url} ` : ''}${api}`);
  if (status.airGapped) lines.push(`${'Updaters:'.padEnd(12)}off (air-gapped: load data with "docker clair server import FILE")`);
  if (status.database) {
    const age = status.database.ageSeconds !== undefined ? ` (${formatAge(status.database.ageSeconds * 1000)} old)` : '';
    lines.push(`${'Database:'.padEnd(12)}${status.database.empty
      ? status.airGapped
        ? 'empty: no vulnerability data imported yet (scans exit 3)'
        : 'empty: the first vulnerability update has not finished (scans exit 3)'
      : `${status.database.updaters} updater(s), last update ${status.database.lastUpdate ?? 'unknown'}${age}`}`);
  }
  if (status.api !== 'ready') lines.push(`the managed Clair is not ready: ${status.containers.some((c) => c.state) ? `see "docker clair server logs"` : 'start it with "docker clair server up"'}`);
  return lines;
}
