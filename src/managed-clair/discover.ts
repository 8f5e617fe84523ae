// `scan` without --clair or CLAIR_ADDR: the managed Clair of this machine's daemon, or a message saying
// how to get one.
import { homedir } from 'node:os';
import { configDir } from '../docker/endpoint.js';
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import { DaemonUnreachableError, UsageError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import type { ManagedClairEndpoint } from './endpoint.js';
import { connectManaged, isLocalDaemon, resolveManagedEndpoint } from './connect.js';
import { readSecrets } from './secrets.js';

const HINT = 'start a local Clair with "docker clair server up", or pass --clair URL (or set CLAIR_ADDR), e.g. --clair http://clair:6060';

export async function findManagedClair(globals: DockerGlobalFlags, env: Record<string, string | undefined>, home: string | undefined,
  log: Logger, signal: AbortSignal): Promise<ManagedClairEndpoint> {
  // A remote daemon's loopback is not this machine's: said before any connection is made.
  const endpoint = await resolveManagedEndpoint(globals, env, home, log);
  if (!isLocalDaemon(endpoint)) {
    throw new UsageError(`no Clair to scan with: no --clair or CLAIR_ADDR, and the daemon at ${endpoint.host} is not on this machine`, HINT);
  }
  let server;
  try {
    server = await connectManaged(endpoint, signal);
  } catch (error) {
    if (!(error instanceof DaemonUnreachableError)) throw error;
    throw new UsageError(`no Clair to scan with: no --clair or CLAIR_ADDR, and ${error.message}`, HINT, { cause: error });
  }
  const found = await server.find(await readSecrets(configDir(globals, env, home ?? homedir())));
  if (!found) throw new UsageError('no Clair to scan with: no --clair or CLAIR_ADDR, and the managed Clair is not running', HINT);
  return found;
}
