// `server down`: removes the managed Clair's containers and network, and its database volume when asked.
import type Dockerode from 'dockerode';
import { inspectOrUndefined, statusOf } from './daemon-ops.js';
import { CLAIR_CONTAINER, LABEL_MANAGED, NETWORK, POSTGRES_CONTAINER, VOLUME } from './names.js';
import { inspectOurs } from './ours.js';

/** Removes what `up` created; returns the names removed. The volume (the database) only when asked. */
export async function down(docker: Dockerode, options: { volumes: boolean }): Promise<string[]> {
  const removed: string[] = [];
  for (const [name, role] of [[CLAIR_CONTAINER, 'clair'], [POSTGRES_CONTAINER, 'postgres']] as const) {
    const info = await inspectOurs(docker, name, role);
    if (!info) continue;
    const container = docker.getContainer(name);
    if (info.State.Running) await container.stop({ t: 10 }).catch((error: unknown) => {
      if (statusOf(error) !== 304 && statusOf(error) !== 404) throw error;
    });
    // v: the images' anonymous volumes (Clair's /config); the named database volume stays unless --volumes.
    await container.remove({ force: true, v: true });
    removed.push(`container ${name}`);
  }
  const network = await inspectOrUndefined(() => docker.getNetwork(NETWORK).inspect() as Promise<{ Labels?: Record<string, string> }>);
  if (network?.Labels?.[LABEL_MANAGED] === 'true') {
    await docker.getNetwork(NETWORK).remove();
    removed.push(`network ${NETWORK}`);
  }
  if (options.volumes) {
    const volume = await inspectOrUndefined(() => docker.getVolume(VOLUME).inspect());
    if (volume?.Labels?.[LABEL_MANAGED] === 'true') {
      await docker.getVolume(VOLUME).remove();
      removed.push(`volume ${VOLUME}`);
    }
  }
  return removed;
}
