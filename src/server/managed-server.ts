// The managed local Clair: a private bridge network, a PostgreSQL container with a named volume, and Clair
// v4 in combo mode publishing its API on 127.0.0.1 only. Created, inspected and removed through dockerode
// alone (no `docker` binary), recognised by name *and* label so a user's own containers are never touched.
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import type { PskAuth } from '../clair/auth.js';
import { ClairV4Client } from '../clair/v4/client.js';
import type * as V4 from '../clair/v4/wire.js';
import { ClairAuthError, ClairUnreachableError, DockerClairError, ManagedClairError, ManagedClairNotUpdatedError } from '../runtime/errors.js';
import { packTar } from '../save/pack.js';
import { newestUpdate } from '../clair/v4/update-age.js';
import { EMPTY_MAPPING, clairConfig } from './config.js';
import { importUpdates, type UpdatesFile } from './import.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { daemonMessage } from '../docker/daemon-message.js';
import { ensureImage, execExitCode, inspectOrUndefined, statusOf, tailLogs } from './daemon-ops.js';
import {
  CLAIR_API_PORT,
  CLAIR_CONFIG_PATH,
  CLAIR_CONTAINER,
  CLAIR_MAPPING_PATH,
  LABEL_AIR_GAPPED,
  LABEL_MANAGED,
  LABEL_PORT,
  LABEL_ROLE,
  NETWORK,
  POSTGRES_CONTAINER,
  POSTGRES_DATA,
  POSTGRES_DB,
  POSTGRES_USER,
  PSK_ISSUER,
  VOLUME,
  labels,
  type Role,
} from './names.js';
import type { ManagedSecrets } from './secrets.js';

export interface UpOptions {
  clairImage: string;
  postgresImage: string;
  port: number;
  /** Wait for Clair's first vulnerability update (the default); false returns once the API answers. */
  waitForUpdate: boolean;
  /** For the whole `up`, image pulls included. */
  timeoutMs: number;
  secrets: ManagedSecrets;
  progress: (line: string) => void;
  signal: AbortSignal;
  /** How often readiness is polled (tests shorten it). */
  pollMs?: number;
  /**
   * Air-gapped: start Clair with its updaters off and the offline config (kept by every later start), then load
   * this `clairctl export-updaters` file instead of waiting for an updater run.
   */
  importFile?: UpdatesFile;
}

export interface UpResult {
  /** What `up` found: nothing (created), stopped containers (started) or a running server. */
  was: 'created' | 'started' | 'running';
  url: string;
  update: UpdateState;
  /** Updaters off: the data comes from imports only. */
  airGapped: boolean;
}

export type UpdateState =
  | { kind: 'updated'; lastUpdate: string | undefined; updaters: number }
  | { kind: 'empty' }
  | { kind: 'not-waited' };

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

/** What `scan` needs to use the managed Clair. */
export interface ManagedClairEndpoint {
  url: URL;
  psk: PskAuth;
  /** The gateway of the managed network: the host address Clair's container reaches the layer server on. */
  gateway?: string;
}

const POLL_MS = 1000;

export class ManagedServer {
  constructor(private readonly docker: Dockerode) {}

  // ---------------------------------------------------------------------------------------------------- up
  async up(options: UpOptions): Promise<UpResult> {
    const deadline = AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]);
    const timeoutSeconds = Math.round(options.timeoutMs / 1000);
    try {
      return await this.upWithin(options, deadline);
    } catch (error) {
      if (options.signal.aborted) throw options.signal.reason;
      if (deadline.aborted && !(error instanceof DockerClairError)) {
        throw new ManagedClairError(`docker clair server up did not finish within --timeout ${timeoutSeconds}s`,
          'raise --timeout, or pass --no-wait and check "docker clair server status" later', { cause: error });
      }
      throw error;
    }
  }

  /** What this `up` created, newest last: removed again when it fails (a timed-out first update excepted). */
  private created: { kind: 'container' | 'network' | 'volume'; name: string }[] = [];
  /** Set once Clair answers (and its import, if any, is done): from then on a failure keeps what runs. */
  private keepOnFailure = false;

  private async upWithin(options: UpOptions, signal: AbortSignal): Promise<UpResult> {
    this.created = [];
    this.keepOnFailure = false;
    try {
      return await this.bringUp(options, signal);
    } catch (error) {
      // Once Clair answers, the server is up: a slow first update (or Ctrl-C while waiting for it) leaves it
      // running, and `status` tells when the update is done. Before that, and while `--import` loads its file
      // into a Clair this `up` created, nothing half-made is left behind.
      if (!this.keepOnFailure) await this.rollBack();
      throw error;
    }
  }

  private async rollBack(): Promise<void> {
    for (const { kind, name } of this.created.reverse()) {
      const remove = kind === 'container'
        ? this.docker.getContainer(name).remove({ force: true, v: true })
        : kind === 'network' ? this.docker.getNetwork(name).remove() : this.docker.getVolume(name).remove();
      await remove.catch(() => undefined);
    }
    this.created = [];
  }

  private async bringUp(options: UpOptions, signal: AbortSignal): Promise<UpResult> {
    const { progress } = options;
    const existing = await this.inspectContainer(CLAIR_CONTAINER, 'clair');
    let was: UpResult['was'] = 'created';
    // Once air-gapped, always: the label makes every later `up` write the offline config again.
    const airGapped = existing ? existing.Config.Labels?.[LABEL_AIR_GAPPED] === 'true' : options.importFile !== undefined;
    if (existing) {
      const port = existing.Config.Labels?.[LABEL_PORT];
      const image = existing.Config.Image;
      if (image !== options.clairImage || port !== String(options.port)) {
        throw new ManagedClairError(`the managed Clair already exists with image ${image} on port ${port ?? '?'}`,
          'run "docker clair server down" first to change its image or port (the database volume is kept)');
      }
      if (options.importFile && !airGapped) {
        throw new ManagedClairError('the managed Clair already exists with its updaters on, and --import sets up an air-gapped one',
          'load the file into it with "docker clair server import FILE", or run "docker clair server down" first (the database volume is kept)');
      }
      was = existing.State.Running ? 'running' : 'started';
    }
    if (was === 'running') {
      progress(`the managed Clair is already running (${CLAIR_CONTAINER}, ${options.clairImage})`);
    }

    await ensureImage(this.docker, options.postgresImage, progress, signal);
    await ensureImage(this.docker, options.clairImage, progress, signal);
    await this.ensureNetwork();
    await this.ensureVolume();
    const postgres = await this.ensurePostgres(options, progress);
    await this.waitForPostgres(postgres, options, signal);
    if (was !== 'running') {
      const clair = existing ? this.docker.getContainer(CLAIR_CONTAINER) : await this.createClair(options, airGapped);
      // A fresh config on every start: the secrets file is the source of truth.
      await putFiles(clair, [
        { path: CLAIR_CONFIG_PATH, content: clairConfig({ ...options.secrets, airGapped }) },
        ...(airGapped ? [{ path: CLAIR_MAPPING_PATH, content: EMPTY_MAPPING }] : []),
      ]);
      progress(`starting Clair (${options.clairImage}) on 127.0.0.1:${options.port}`);
      await this.start(clair, CLAIR_CONTAINER, options.port);
    }
    const url = `http://127.0.0.1:${options.port}`;
    const client = await clientFor(new URL(url), options.secrets);
    await this.waitForApi(client, options, signal);
    // A Clair this `up` did not create stays whatever happens next; a new one only once its import is done.
    this.keepOnFailure = was !== 'created' || !options.importFile;
    progress(`Clair answers on ${url}${airGapped ? ' (air-gapped: updaters off)' : ''}`);
    if (airGapped) {
      if (options.importFile) await importUpdates(this.docker.getContainer(CLAIR_CONTAINER), options.importFile, progress, signal);
      this.keepOnFailure = true;
      return { was, url, airGapped, update: await this.loadedData(client, options.importFile, signal) };
    }
    if (!options.waitForUpdate) return { was, url, airGapped, update: { kind: 'not-waited' } };
    const update = await this.waitForUpdate(client, options, signal);
    return { was, url, airGapped, update };
  }

  /** Air-gapped, no updater will ever fill the database: what it holds now is all there is. */
  private async loadedData(client: ClairV4Client, imported: UpdatesFile | undefined, signal: AbortSignal): Promise<UpdateState> {
    const state = updateState(await client.updateOperations(signal));
    if (state.updaters === 0) {
      throw new ManagedClairNotUpdatedError(imported
        ? `imported ${imported.path}, but the managed Clair still holds no vulnerability data (the file has none)`
        : 'the managed Clair runs air-gapped (updaters off) and holds no vulnerability data yet',
      'load a "clairctl export-updaters" file with "docker clair server import FILE"; scans exit 3 until then');
    }
    return { kind: 'updated', ...state };
  }

  // ---------------------------------------------------------------------------------------------- import
  /** `server import`: loads an updates file into the running managed Clair; its data afterwards when it answers. */
  async import(file: UpdatesFile, secrets: ManagedSecrets | undefined, progress: (line: string) => void,
    signal: AbortSignal): Promise<{ airGapped: boolean; update?: { lastUpdate: string | undefined; updaters: number } }> {
    const info = await this.inspectContainer(CLAIR_CONTAINER, 'clair');
    if (!info?.State.Running) {
      throw new ManagedClairError(`the managed Clair is not running${info ? ` (container ${CLAIR_CONTAINER} is ${info.State.Status})` : ''}, so ${file.path} cannot be imported`,
        'start it with "docker clair server up --import FILE", which imports the file too');
    }
    await importUpdates(this.docker.getContainer(CLAIR_CONTAINER), file, progress, signal);
    const airGapped = info.Config.Labels?.[LABEL_AIR_GAPPED] === 'true';
    const port = info.Config.Labels?.[LABEL_PORT];
    if (!secrets || !port) return { airGapped };
    try {
      const client = await clientFor(new URL(`http://127.0.0.1:${port}`), secrets);
      return { airGapped, update: updateState(await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(15_000)]))) };
    } catch {
      signal.throwIfAborted();
      return { airGapped };
    }
  }

  private async ensureNetwork(): Promise<void> {
    const network = await inspectOrUndefined(() => this.docker.getNetwork(NETWORK).inspect() as Promise<{ Labels?: Record<string, string> }>);
    if (network) {
      if (network.Labels?.[LABEL_MANAGED] !== 'true') {
        throw new ManagedClairError(`a network named ${NETWORK} exists and was not created by docker-clair`, `remove or rename it (docker network rm ${NETWORK})`);
      }
      return;
    }
    await this.docker.createNetwork({ Name: NETWORK, Driver: 'bridge', CheckDuplicate: true, Labels: { [LABEL_MANAGED]: 'true' } });
    this.created.push({ kind: 'network', name: NETWORK });
  }

  private async ensureVolume(): Promise<void> {
    const volume = await inspectOrUndefined(() => this.docker.getVolume(VOLUME).inspect());
    if (volume) return;
    await this.docker.createVolume({ Name: VOLUME, Labels: { [LABEL_MANAGED]: 'true' } });
    this.created.push({ kind: 'volume', name: VOLUME });
  }

  private async ensurePostgres(options: UpOptions, progress: (line: string) => void): Promise<Dockerode.Container> {
    const existing = await this.inspectContainer(POSTGRES_CONTAINER, 'postgres');
    if (existing?.State.Running) return this.docker.getContainer(POSTGRES_CONTAINER);
    const container = existing
      ? this.docker.getContainer(POSTGRES_CONTAINER)
      : await this.create(POSTGRES_CONTAINER, {
        Image: options.postgresImage,
        Labels: labels('postgres'),
        Env: [`POSTGRES_USER=${POSTGRES_USER}`, `POSTGRES_PASSWORD=${options.secrets.dbPassword}`, `POSTGRES_DB=${POSTGRES_DB}`],
        HostConfig: {
          Mounts: [{ Type: 'volume', Source: VOLUME, Target: POSTGRES_DATA }],
          RestartPolicy: { Name: 'unless-stopped' },
        },
        NetworkingConfig: { EndpointsConfig: { [NETWORK]: { Aliases: [POSTGRES_CONTAINER] } } },
      });
    progress(`starting PostgreSQL (${options.postgresImage})`);
    await this.start(container, POSTGRES_CONTAINER, undefined);
    return container;
  }

  private async createClair(options: UpOptions, airGapped: boolean): Promise<Dockerode.Container> {
    return this.create(CLAIR_CONTAINER, {
      Image: options.clairImage,
      Labels: labels('clair', { [LABEL_PORT]: String(options.port), ...(airGapped ? { [LABEL_AIR_GAPPED]: 'true' } : {}) }),
      Env: [`CLAIR_CONF=${CLAIR_CONFIG_PATH}`, 'CLAIR_MODE=combo'],
      ExposedPorts: { [`${CLAIR_API_PORT}/tcp`]: {} },
      HostConfig: {
        // Loopback only: the API is for this machine's scans, never for the network.
        PortBindings: { [`${CLAIR_API_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(options.port) }] },
        // Clair v4.9.0 needs O_TMPFILE in its temp dir or every layer fetch fails (quay/clair#2362).
        Tmpfs: { '/var/tmp': 'rw,exec,mode=1777' },
        RestartPolicy: { Name: 'unless-stopped' },
      },
      NetworkingConfig: { EndpointsConfig: { [NETWORK]: { Aliases: [CLAIR_CONTAINER] } } },
    });
  }

  private async create(name: string, spec: Dockerode.ContainerCreateOptions): Promise<Dockerode.Container> {
    try {
      const container = await this.docker.createContainer({ name, ...spec });
      this.created.push({ kind: 'container', name });
      return container;
    } catch (error) {
      throw new ManagedClairError(`cannot create container ${name}: ${daemonMessage(error)}`,
        statusOf(error) === 409 ? `remove the container named ${name} (docker rm -f ${name})` : undefined, { cause: error });
    }
  }

  /** Starts a container, naming a taken port as such. */
  private async start(container: Dockerode.Container, name: string, port: number | undefined): Promise<void> {
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

  private async waitForPostgres(container: Dockerode.Container, options: UpOptions, signal: AbortSignal): Promise<void> {
    const poll = options.pollMs ?? POLL_MS;
    const started = Date.now();
    for (;;) {
      const info = await container.inspect();
      // A crashing container under the restart policy shows as Restarting, never as stopped.
      if (!info.State.Running || info.State.Restarting) throw await this.exited(container, POSTGRES_CONTAINER, info);
      try {
        const code = await execExitCode(container, ['pg_isready', '-q', '-h', '127.0.0.1', '-U', POSTGRES_USER, '-d', POSTGRES_DB], signal);
        if (code === 0) {
          options.progress(`PostgreSQL accepts connections (${((Date.now() - started) / 1000).toFixed(1)} s)`);
          return;
        }
      } catch (error) {
        if (signal.aborted) throw await this.notReady(container, POSTGRES_CONTAINER, 'PostgreSQL did not accept connections', options);
        // 409: the container stopped between inspect and exec; the next inspect says how.
        if (statusOf(error) !== 409) throw error;
      }
      await sleep(poll, undefined, { signal }).catch(async () => {
        if (options.signal.aborted) throw options.signal.reason;
        throw await this.notReady(container, POSTGRES_CONTAINER, 'PostgreSQL did not accept connections', options);
      });
    }
  }

  private async waitForApi(client: ClairV4Client, options: UpOptions, signal: AbortSignal): Promise<void> {
    const container = this.docker.getContainer(CLAIR_CONTAINER);
    const poll = options.pollMs ?? POLL_MS;
    let lastError = '';
    for (;;) {
      const info = await container.inspect();
      // A crashing container under the restart policy shows as Restarting, never as stopped.
      if (!info.State.Running || info.State.Restarting) throw await this.exited(container, CLAIR_CONTAINER, info);
      try {
        await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(10_000)]));
        return;
      } catch (error) {
        if (options.signal.aborted) throw options.signal.reason;
        if (error instanceof ClairAuthError) {
          throw new ManagedClairError('the managed Clair rejects the stored PSK (its secrets file was replaced since it started)',
            'run "docker clair server down" and then "docker clair server up" (the database volume is kept)', { cause: error });
        }
        // Starting up: refused connections, resets, 5xx while migrations run. Keep polling until the deadline.
        lastError = (error as Error).message;
      }
      await sleep(poll, undefined, { signal }).catch(async () => {
        if (options.signal.aborted) throw options.signal.reason;
        throw await this.notReady(container, CLAIR_CONTAINER, `Clair's API did not answer (${lastError})`, options);
      });
    }
  }

  private async waitForUpdate(client: ClairV4Client, options: UpOptions, signal: AbortSignal): Promise<UpdateState> {
    const poll = Math.max(options.pollMs ?? POLL_MS, 1);
    const started = Date.now();
    let lastReport = started;
    options.progress("waiting for Clair's first vulnerability update (Clair downloads every distribution's security data: tens of minutes on a first start)");
    for (;;) {
      let operations: V4.UpdateOperations | undefined;
      try {
        operations = await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(30_000)]));
      } catch (error) {
        if (options.signal.aborted) throw options.signal.reason;
        if (!signal.aborted && !(error instanceof ClairUnreachableError)) throw error;
      }
      if (operations && Object.keys(operations).length > 0) {
        const state = updateState(operations);
        options.progress(`vulnerability database loaded: ${state.updaters} updater(s), last update ${state.lastUpdate ?? '?'}`);
        return { kind: 'updated', ...state };
      }
      const now = Date.now();
      if (now - lastReport >= 30_000) {
        lastReport = now;
        options.progress(`still waiting for the first vulnerability update (${Math.round((now - started) / 1000)} s)`);
      }
      try {
        await sleep(poll, undefined, { signal });
      } catch {
        if (options.signal.aborted) throw options.signal.reason;
        const container = this.docker.getContainer(CLAIR_CONTAINER);
        const tail = await tailLogs(container, 5);
        throw new ManagedClairNotUpdatedError(
          `Clair is running but its first vulnerability update did not finish within --timeout ${Math.round(options.timeoutMs / 1000)}s` +
          (tail.length ? `; its last log lines: ${tail.join(' | ')}` : ''),
          'scans report exit 3 until it finishes: wait and check "docker clair server status", or raise --timeout');
      }
    }
  }

  private async exited(container: Dockerode.Container, name: string, info: Dockerode.ContainerInspectInfo): Promise<ManagedClairError> {
    const tail = await tailLogs(container, 10);
    return new ManagedClairError(
      `container ${name} stopped (exit code ${info.State.ExitCode})${tail.length ? `; its last log lines: ${tail.join(' | ')}` : ''}`,
      `see "docker clair server logs${name === POSTGRES_CONTAINER ? ' --postgres' : ''}"; "docker clair server down" removes it`);
  }

  private async notReady(container: Dockerode.Container, name: string, what: string, options: UpOptions): Promise<ManagedClairError> {
    const tail = await tailLogs(container, 10);
    return new ManagedClairError(
      `${what} within --timeout ${Math.round(options.timeoutMs / 1000)}s (container ${name})${tail.length ? `; its last log lines: ${tail.join(' | ')}` : '; it logged nothing'}`,
      `check the image (${name === CLAIR_CONTAINER ? options.clairImage : options.postgresImage}) and "docker clair server logs${name === POSTGRES_CONTAINER ? ' --postgres' : ''}"; raise --timeout if it is only slow`);
  }

  /** A container of ours by name; one of the same name that is not ours is an error, not ours to touch. */
  private async inspectContainer(name: string, role: Role): Promise<Dockerode.ContainerInspectInfo | undefined> {
    const info = await inspectOrUndefined(() => this.docker.getContainer(name).inspect());
    if (info && (info.Config.Labels?.[LABEL_MANAGED] !== 'true' || info.Config.Labels?.[LABEL_ROLE] !== role)) {
      throw new ManagedClairError(`a container named ${name} exists and was not created by docker-clair`,
        `remove or rename it (docker rm -f ${name}), or point scans at your own Clair with --clair`);
    }
    return info;
  }

  // ---------------------------------------------------------------------------------------------- status
  async status(secrets: ManagedSecrets | undefined, signal: AbortSignal): Promise<ServerStatus> {
    const containers: ContainerStatus[] = [];
    let clairInfo: Dockerode.ContainerInspectInfo | undefined;
    for (const [name, role] of [[POSTGRES_CONTAINER, 'postgres'], [CLAIR_CONTAINER, 'clair']] as const) {
      const info = await this.inspectContainer(name, role);
      if (role === 'clair') clairInfo = info;
      containers.push({
        role, name,
        ...(info ? { state: info.State.Status, image: info.Config.Image } : {}),
        ...(info?.State.Health?.Status ? { health: info.State.Health.Status } : {}),
      });
    }
    const network = Boolean(await inspectOrUndefined(() => this.docker.getNetwork(NETWORK).inspect()));
    const volume = Boolean(await inspectOrUndefined(() => this.docker.getVolume(VOLUME).inspect()));
    const status: ServerStatus = { containers, network, volume, api: 'down' };
    if (!clairInfo) return status;
    const port = clairInfo.Config.Labels?.[LABEL_PORT];
    if (port) status.url = `http://127.0.0.1:${port}`;
    const version = await this.imageVersion(clairInfo.Config.Image);
    if (version) status.clairVersion = version;
    status.airGapped = clairInfo.Config.Labels?.[LABEL_AIR_GAPPED] === 'true';
    if (!clairInfo.State.Running || !status.url) return status;
    if (!secrets) {
      status.api = 'unreachable';
      status.apiError = 'no stored PSK to authenticate with (run "docker clair server up" again)';
      return status;
    }
    try {
      const client = await clientFor(new URL(status.url), secrets, { retries: 0 });
      const operations = await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(15_000)]));
      status.api = 'ready';
      const state = updateState(operations);
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
    return status;
  }

  /** The image's own version label, else its tag. */
  private async imageVersion(image: string): Promise<string | undefined> {
    const info = await inspectOrUndefined(() => this.docker.getImage(image).inspect()).catch(() => undefined);
    const label = info?.Config?.Labels?.['org.opencontainers.image.version'] ?? info?.Config?.Labels?.version;
    if (label) return label;
    const tag = /:([^/:@]+)$/.exec(image)?.[1];
    return tag;
  }

  // ------------------------------------------------------------------------------------------------ logs
  /**
   * Copies a container's logs, its stdout and stderr to ours (docker-modem demultiplexes the frames, as
   * `docker logs` does); with `follow`, until the container stops or the signal aborts.
   */
  async logs(role: Role, options: { follow: boolean; tail?: number }, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream,
    signal: AbortSignal): Promise<void> {
    const name = role === 'clair' ? CLAIR_CONTAINER : POSTGRES_CONTAINER;
    const info = await this.inspectContainer(name, role);
    if (!info) {
      throw new ManagedClairError(`there is no ${name} container`, 'start the managed Clair with "docker clair server up"');
    }
    const container = this.docker.getContainer(name);
    const base = { stdout: true, stderr: true, ...(options.tail !== undefined ? { tail: options.tail } : {}) };
    // Without follow the daemon's answer arrives whole, as a Buffer; one path for both.
    const stream = options.follow
      ? (await container.logs({ ...base, follow: true })) as unknown as Readable
      : Readable.from([(await container.logs({ ...base, follow: false })) as unknown as Buffer]);
    this.docker.modem.demuxStream(stream, stdout, stderr);
    await finished(stream, { signal }).catch((error: unknown) => {
      stream.destroy();
      if (signal.aborted) throw signal.reason;
      throw new ManagedClairError(`the log stream of ${name} failed: ${(error as Error).message}`, undefined, { cause: error });
    });
  }

  // ------------------------------------------------------------------------------------------------ down
  /** Removes what `up` created; returns the names removed. The volume (the database) only when asked. */
  async down(options: { volumes: boolean }): Promise<string[]> {
    const removed: string[] = [];
    for (const [name, role] of [[CLAIR_CONTAINER, 'clair'], [POSTGRES_CONTAINER, 'postgres']] as const) {
      const info = await this.inspectContainer(name, role);
      if (!info) continue;
      const container = this.docker.getContainer(name);
      if (info.State.Running) await container.stop({ t: 10 }).catch((error: unknown) => {
        if (statusOf(error) !== 304 && statusOf(error) !== 404) throw error;
      });
      // v: the images' anonymous volumes (Clair's /config); the named database volume stays unless --volumes.
      await container.remove({ force: true, v: true });
      removed.push(`container ${name}`);
    }
    const network = await inspectOrUndefined(() => this.docker.getNetwork(NETWORK).inspect() as Promise<{ Labels?: Record<string, string> }>);
    if (network?.Labels?.[LABEL_MANAGED] === 'true') {
      await this.docker.getNetwork(NETWORK).remove();
      removed.push(`network ${NETWORK}`);
    }
    if (options.volumes) {
      const volume = await inspectOrUndefined(() => this.docker.getVolume(VOLUME).inspect());
      if (volume?.Labels?.[LABEL_MANAGED] === 'true') {
        await this.docker.getVolume(VOLUME).remove();
        removed.push(`volume ${VOLUME}`);
      }
    }
    return removed;
  }

  // ------------------------------------------------------------------------------------------------ scan
  /** The managed Clair, when its container runs; undefined otherwise. */
  async find(secrets: ManagedSecrets | undefined): Promise<ManagedClairEndpoint | undefined> {
    const info = await inspectOrUndefined(() => this.docker.getContainer(CLAIR_CONTAINER).inspect());
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
}

function updateState(operations: V4.UpdateOperations): { lastUpdate: string | undefined; updaters: number } {
  return { lastUpdate: newestUpdate(operations)?.toISOString(), updaters: Object.keys(operations).length };
}

async function clientFor(url: URL, secrets: ManagedSecrets, extra: { retries?: number } = {}): Promise<ClairV4Client> {
  return ClairV4Client.create({
    indexerUrl: url, matcherUrl: url, psk: { key: secrets.pskKey, issuer: PSK_ISSUER },
    retries: extra.retries ?? 0, requestTimeoutMs: 10_000,
  });
}

/** Writes files into a (created, not necessarily started) container: works with any daemon, local or not. */
async function putFiles(container: Dockerode.Container, files: { path: string; content: string }[]): Promise<void> {
  const directories = new Set<string>();
  const entries = files.flatMap(({ path, content }) => {
    const parts = path.replace(/^\//, '').split('/');
    const parents = parts.slice(1).map((_, i) => `${parts.slice(0, i + 1).join('/')}/`).filter((d) => !directories.has(d));
    for (const d of parents) directories.add(d);
    return [
      ...parents.map((name) => ({ header: { name, type: 'directory' as const, mode: 0o755 } })),
      { header: { name: parts.join('/'), mode: 0o644 }, content },
    ];
  });
  await container.putArchive(Readable.from([await packTar(entries)]), { path: '/' });
}
