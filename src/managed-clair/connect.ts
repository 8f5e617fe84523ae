// The daemon that runs (or would run) the managed Clair: resolved as every docker command resolves it.
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import { createDockerClient } from '../docker/client.js';
import { resolveEndpoint, type Endpoint } from '../docker/endpoint.js';
import { DockerImageSource } from '../source/daemon.js';
import type { Logger } from '../runtime/log.js';
import { ManagedServer } from './managed-server.js';

/** The endpoint of the managed Clair's daemon, chosen by the docker CLI's rules (warnings logged). */
export async function resolveManagedEndpoint(globals: DockerGlobalFlags, env: Record<string, string | undefined>,
  home: string | undefined, log: Logger): Promise<Endpoint> {
  const endpoint = await resolveEndpoint(globals, env, home);
  for (const warning of endpoint.warnings) log.warn(warning);
  log.debug(`docker endpoint: ${endpoint.host} (context "${endpoint.contextName}", chosen by ${endpoint.source})`);
  return endpoint;
}

/** The managed server on a reachable daemon (unreachable: DaemonUnreachableError, said once and clearly). */
export async function connectManaged(endpoint: Endpoint, signal: AbortSignal): Promise<ManagedServer> {
  const docker = await createDockerClient(endpoint);
  await new DockerImageSource(docker, endpoint).connect({ signal });
  return new ManagedServer(docker);
}

/** Clair's API is published on the daemon host's loopback: reachable from here only when that host is this one. */
export function isLocalDaemon(endpoint: Endpoint): boolean {
  const t = endpoint.transport;
  if (t.kind === 'unix' || t.kind === 'npipe') return true;
  if (t.kind === 'tcp') return t.hostname === 'localhost' || t.hostname === '::1' || t.hostname.startsWith('127.');
  return false;
}
