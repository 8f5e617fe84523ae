// Recognising the managed Clair's containers: by name *and* label, so a user's own container of the same
// name is reported, never touched.
import type Dockerode from 'dockerode';
import { ManagedClairError } from '../runtime/errors.js';
import { inspectOrUndefined } from './daemon-ops.js';
import { LABEL_MANAGED, LABEL_ROLE, type Role } from './names.js';

/** A container of ours by name; one of the same name that is not ours is an error, not ours to touch. */
export async function inspectOurs(docker: Dockerode, name: string, role: Role): Promise<Dockerode.ContainerInspectInfo | undefined> {
  const info = await inspectOrUndefined(() => docker.getContainer(name).inspect());
  if (info && (info.Config.Labels?.[LABEL_MANAGED] !== 'true' || info.Config.Labels?.[LABEL_ROLE] !== role)) {
    throw new ManagedClairError(`a container named ${name} exists and was not created by docker-clair`,
      `remove or rename it (docker rm -f ${name}), or point scans at your own Clair with --clair`);
  }
  return info;
}
