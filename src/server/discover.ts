// `scan` without --clair or CLAIR_ADDR: the managed Clair of this machine's daemon, or a message saying
// how to get one.
import { homedir } from 'node:os';
import { configDir } from '../docker/endpoint.js';
import type { DockerGlobalFlags } from '../plugin/argv.js';
import { DaemonUnreachableError, UsageError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import type { ManagedClairEndpoint } from './managed-server.js';
import { connectManaged, isLocalDaemon } from './run.js';
import { readSecrets } from './secrets.js';

const HINT = 'start a local Clair with "docker clair server up", or pass --clair URL (or set CLAIR_ADDR), e.g. --clair http://clair:6060';

export async function findManagedClair(globals: DockerGlobalFlags, env: Record<string, string | undefined>, home: string | undefined,
  log: Logger, signal: AbortSignal): Promise<ManagedClairEndpoint> {
  let connected;
  try {
    connected = await connectManaged(globals, env, home, log, signal);
  } catch (error) {
    if (!(error instanceof DaemonUnreachableError)) throw error;
    throw new UsageError(`no Clair to scan with: no --clair or CLAIR_ADDR, and ${error.message}`, HINT, { cause: error });
  }
  if (!isLocalDaemon(connected.endpoint)) {
    throw new UsageError(`no Clair to scan with: no --clair or CLAIR_ADDR, and the daemon at ${connected.endpoint.host} is not on this machine`, HINT);
  }
  const found = await connected.server.find(await readSecrets(configDir(globals, env, home ?? homedir())));
  if (!found) throw new UsageError('no Clair to scan with: no --clair or CLAIR_ADDR, and the managed Clair is not running', HINT);
  return found;
}
