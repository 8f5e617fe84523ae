// Where `scan` finds the managed Clair: its URL, its PSK, and the host address its container reaches us on.
import type Dockerode from 'dockerode';
import type { PskAuth } from '../clair/auth.js';
import { ManagedClairError } from '../runtime/errors.js';
import { inspectOrUndefined } from './daemon-ops.js';
import { CLAIR_CONTAINER, LABEL_MANAGED, LABEL_PORT, NETWORK, PSK_ISSUER } from './names.js';
import type { ManagedSecrets } from './secrets.js';

/** What `scan` needs to use the managed Clair. */
export interface ManagedClairEndpoint {
  url: URL;
  psk: PskAuth;
  /** The gateway of the managed network: the host address Clair's container reaches the layer server on. */
  gateway?: string;
}

/** The managed Clair, when its container runs; undefined otherwise. */
export async function runningEndpoint(docker: Dockerode, secrets: ManagedSecrets | undefined): Promise<ManagedClairEndpoint | undefined> {
  const info = await inspectOrUndefined(() => docker.getContainer(CLAIR_CONTAINER).inspect());
  if (!info || info.Config.Labels?.[LABEL_MANAGED] !== 'true' || !info.State.Running) return undefined;
  const port = info.Config.Labels?.[LABEL_PORT];
  if (!port) return undefined;
  if (!secrets) {
    throw new ManagedClairError(`the managed Clair runs, but its PSK is not stored in this Docker config directory`,
      'run "docker clair server up" with the same --config/DOCKER_CONFIG as when it was created, or pass --clair');
  }
  const gateway = info.NetworkSettings.Networks?.[NETWORK]?.Gateway;
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    psk: { key: secrets.pskKey, issuer: PSK_ISSUER },
    ...(gateway ? { gateway } : {}),
  };
}
