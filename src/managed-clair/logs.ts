// `server logs`: a managed container's logs copied to our stdout and stderr.
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import { ManagedClairError } from '../runtime/errors.js';
import { CLAIR_CONTAINER, POSTGRES_CONTAINER, type Role } from './names.js';
import { inspectOurs } from './ours.js';

/**
 * Copies a container's logs, its stdout and stderr to ours (docker-modem demultiplexes the frames, as
 * `docker logs` does); with `follow`, until the container stops or the signal aborts.
 */
export async function copyLogs(docker: Dockerode, role: Role, options: { follow: boolean; tail?: number },
  stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  const name = role === 'clair' ? CLAIR_CONTAINER : POSTGRES_CONTAINER;
  const info = await inspectOurs(docker, name, role);
  if (!info) {
    throw new ManagedClairError(`there is no ${name} container`, 'start the managed Clair with "docker clair server up"');
  }
  const container = docker.getContainer(name);
  const base = { stdout: true, stderr: true, ...(options.tail !== undefined ? { tail: options.tail } : {}) };
  // Without follow the daemon's answer arrives whole, as a Buffer; one path for both.
  const stream = options.follow
    ? (await container.logs({ ...base, follow: true })) as unknown as Readable
    : Readable.from([(await container.logs({ ...base, follow: false })) as unknown as Buffer]);
  docker.modem.demuxStream(stream, stdout, stderr);
  await finished(stream, { signal }).catch((error: unknown) => {
    stream.destroy();
    if (signal.aborted) throw signal.reason;
    throw new ManagedClairError(`the log stream of ${name} failed: ${(error as Error).message}`, undefined, { cause: error });
  });
}
