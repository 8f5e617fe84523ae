// Creating the managed Clair's network, volume and containers (each tracked for a rollback), and starting
// them with the daemon's errors turned into messages a user can act on.
import type Dockerode from 'dockerode';
import { daemonMessage } from '../docker/daemon-message.js';
import { ManagedClairError } from '../runtime/errors.js';
import { inspectOrUndefined, statusOf } from './daemon-ops.js';
import {
  CLAIR_API_PORT,
  CLAIR_CONFIG_PATH,
  CLAIR_CONTAINER,
  LABEL_AIR_GAPPED,
  LABEL_MANAGED,
  LABEL_PORT,
  NETWORK,
  POSTGRES_CONTAINER,
  POSTGRES_DATA,
  POSTGRES_DB,
  POSTGRES_USER,
  VOLUME,
  labels,
} from './names.js';
import { inspectOurs } from './ours.js';
import type { Rollback } from './rollback.js';
import type { ManagedSecrets } from './secrets.js';

export interface ContainerSpec {
  clairImage: string;
  postgresImage: string;
  port: number;
  secrets: ManagedSecrets;
}

export class Provisioner {
  constructor(private readonly docker: Dockerode, private readonly rollback: Rollback) {}

  async ensureNetwork(): Promise<void> {
    const network = await inspectOrUndefined(() => this.docker.getNetwork(NETWORK).inspect() as Promise<{ Labels?: Record<string, string> }>);
    if (network) {
      if (network.Labels?.[LABEL_MANAGED] !== 'true') {
        throw new ManagedClairError(`a network named ${NETWORK} exists and was not created by docker-clair`, `remove or rename it (docker network rm ${NETWORK})`);
      }
      return;
    }
    await this.docker.createNetwork({ Name: NETWORK, Driver: 'bridge', CheckDuplicate: true, Labels: { [LABEL_MANAGED]: 'true' } });
    this.rollback.track('network', NETWORK);
  }

  async ensureVolume(): Promise<void> {
    const volume = await inspectOrUndefined(() => this.docker.getVolume(VOLUME).inspect());
    if (volume) return;
    await this.docker.createVolume({ Name: VOLUME, Labels: { [LABEL_MANAGED]: 'true' } });
    this.rollback.track('volume', VOLUME);
  }

  /** PostgreSQL running: as it is, started again, or created and started. */
  async ensurePostgres(spec: ContainerSpec, progress: (line: string) => void): Promise<Dockerode.Container> {
    const existing = await inspectOurs(this.docker, POSTGRES_CONTAINER, 'postgres');
    if (existing?.State.Running) return this.docker.getContainer(POSTGRES_CONTAINER);
    const container = existing
      ? this.docker.getContainer(POSTGRES_CONTAINER)
      : await this.create(POSTGRES_CONTAINER, {
        Image: spec.postgresImage,
        Labels: labels('postgres'),
        Env: [`POSTGRES_USER=${POSTGRES_USER}`, `POSTGRES_PASSWORD=${spec.secrets.dbPassword}`, `POSTGRES_DB=${POSTGRES_DB}`],
        HostConfig: {
          Mounts: [{ Type: 'volume', Source: VOLUME, Target: POSTGRES_DATA }],
          RestartPolicy: { Name: 'unless-stopped' },
        },
        NetworkingConfig: { EndpointsConfig: { [NETWORK]: { Aliases: [POSTGRES_CONTAINER] } } },
      });
    progress(`starting PostgreSQL (${spec.postgresImage})`);
    await this.start(container, POSTGRES_CONTAINER, undefined);
    return container;
  }

  async createClair(spec: ContainerSpec, airGapped: boolean): Promise<Dockerode.Container> {
    return this.create(CLAIR_CONTAINER, {
      Image: spec.clairImage,
      Labels: labels('clair', { [LABEL_PORT]: String(spec.port), ...(airGapped ? { [LABEL_AIR_GAPPED]: 'true' } : {}) }),
      Env: [`CLAIR_CONF=${CLAIR_CONFIG_PATH}`, 'CLAIR_MODE=combo'],
      ExposedPorts: { [`${CLAIR_API_PORT}/tcp`]: {} },
      HostConfig: {
        // Loopback only: the API is for this machine's scans, never for the network.
        PortBindings: { [`${CLAIR_API_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(spec.port) }] },
        // Clair v4.9.0 needs O_TMPFILE in its temp dir or every layer fetch fails.
        Tmpfs: { '/var/tmp': 'rw,exec,mode=1777' },
        RestartPolicy: { Name: 'unless-stopped' },
      },
      NetworkingConfig: { EndpointsConfig: { [NETWORK]: { Aliases: [CLAIR_CONTAINER] } } },
    });
  }

  /** Starts a container, naming a taken port as such. */
  async start(container: Dockerode.Container, name: string, port: number | undefined): Promise<void> {
    try {
      await container.start();
    } catch (error) {
      const message = daemonMessage(error);
      if (port !== undefined && /port is already allocated|address already in use|bind/i.test(message)) {
        throw new ManagedClairError(`port ${port} on 127.0.0.1 is already in use, so Clair cannot publish its API there`,
          'pass --port with a free port, or stop what listens on it', { cause: error });
      }
      throw new ManagedClairError(`cannot start container ${name}: ${message}`, undefined, { cause: error });
    }
  }

  private async create(name: string, spec: Dockerode.ContainerCreateOptions): Promise<Dockerode.Container> {
    try {
      const container = await this.docker.createContainer({ name, ...spec });
      this.rollback.track('container', name);
      return container;
    } catch (error) {
      throw new ManagedClairError(`cannot create container ${name}: ${daemonMessage(error)}`,
        statusOf(error) === 409 ? `remove the container named ${name} (docker rm -f ${name})` : undefined, { cause: error });
    }
  }
}
