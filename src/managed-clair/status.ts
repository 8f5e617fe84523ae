// `server status`: what exists of the managed Clair, whether its API answers, and how old its data is.
import type Dockerode from 'dockerode';
import { clientFor, updateSummary } from './clair-client.js';
import { inspectOrUndefined } from './daemon-ops.js';
import { CLAIR_CONTAINER, LABEL_AIR_GAPPED, LABEL_PORT, NETWORK, POSTGRES_CONTAINER, VOLUME, type Role } from './names.js';
import { inspectOurs } from './ours.js';
import type { ManagedSecrets } from './secrets.js';

export interface ContainerStatus {
  role: Role;
  name: string;
  /** undefined: no such container. */
  state?: string;
  image?: string;
  health?: string;
}

export interface ServerStatus {
  containers: ContainerStatus[];
  network: boolean;
  volume: boolean;
  url?: string;
  clairVersion?: string;
  /** The Clair container runs with its updaters off (created by `up --import`). */
  airGapped?: boolean;
  /** Clair's API answered (with the stored PSK). */
  api: 'ready' | 'unreachable' | 'down';
  apiError?: string;
  /** ageSeconds: since the newest update operation (an updater run or an import). */
  database?: { empty: boolean; lastUpdate?: string; ageSeconds?: number; updaters: number };
}

export async function serverStatus(docker: Dockerode, secrets: ManagedSecrets | undefined, signal: AbortSignal): Promise<ServerStatus> {
  const containers: ContainerStatus[] = [];
  let clairInfo: Dockerode.ContainerInspectInfo | undefined;
  for (const [name, role] of [[POSTGRES_CONTAINER, 'postgres'], [CLAIR_CONTAINER, 'clair']] as const) {
    const info = await inspectOurs(docker, name, role);
    if (role === 'clair') clairInfo = info;
    containers.push({
      role, name,
      ...(info ? { state: info.State.Status, image: info.Config.Image } : {}),
      ...(info?.State.Health?.Status ? { health: info.State.Health.Status } : {}),
    });
  }
  const network = Boolean(await inspectOrUndefined(() => docker.getNetwork(NETWORK).inspect()));
  const volume = Boolean(await inspectOrUndefined(() => docker.getVolume(VOLUME).inspect()));
  const status: ServerStatus = { containers, network, volume, api: 'down' };
  if (!clairInfo) return status;
  const port = clairInfo.Config.Labels?.[LABEL_PORT];
  if (port) status.url = `http://127.0.0.1:${port}`;
  const version = await imageVersion(docker, clairInfo.Config.Image);
  if (version) status.clairVersion = version;
  status.airGapped = clairInfo.Config.Labels?.[LABEL_AIR_GAPPED] === 'true';
  if (!clairInfo.State.Running || !status.url) return status;
  if (!secrets) {
    status.api = 'unreachable';
    status.apiError = 'no stored PSK to authenticate with (run "docker clair server up" again)';
    return status;
  }
  await askApi(status, status.url, secrets, signal);
  return status;
}

/** Fills in the API's and the database's state from Clair's update operations. */
async function askApi(status: ServerStatus, url: string, secrets: ManagedSecrets, signal: AbortSignal): Promise<void> {
  try {
    const client = await clientFor(new URL(url), secrets, { retries: 0 });
    const operations = await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(15_000)]));
    status.api = 'ready';
    const state = updateSummary(operations);
    const age = state.lastUpdate ? Math.max(0, Math.floor((Date.now() - Date.parse(state.lastUpdate)) / 1000)) : undefined;
    status.database = {
      empty: state.updaters === 0, updaters: state.updaters,
      ...(state.lastUpdate ? { lastUpdate: state.lastUpdate } : {}), ...(age !== undefined ? { ageSeconds: age } : {}),
    };
  } catch (error) {
    signal.throwIfAborted();
    status.api = 'unreachable';
    status.apiError = (error as Error).message;
  }
}

/** The image's own version label, else its tag. */
async function imageVersion(docker: Dockerode, image: string): Promise<string | undefined> {
  const info = await inspectOrUndefined(() => docker.getImage(image).inspect()).catch(() => undefined);
  const label = info?.Config?.Labels?.['org.opencontainers.image.version'] ?? info?.Config?.Labels?.version;
  if (label) return label;
  const tag = /:([^/:@]+)$/.exec(image)?.[1];
  return tag;
}
