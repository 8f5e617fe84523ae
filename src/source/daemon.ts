// The Docker daemon as a source of images: reach the daemon, inspect images, export them
// (`GET /images/{name}/get`, what `docker save` does) as a stream that is never written to disk, and read an
// image's build steps from its history.
import type { Readable } from 'node:stream';
import { readableChunks, type Chunks } from '../save/chunks.js';
import type Dockerode from 'dockerode';
import {
  DaemonError,
  DaemonUnreachableError,
  ImageNotFoundError,
  IncompleteArchiveError,
  UsageError,
  errnoCode,
  type LegacyLayerMappingError,
} from '../runtime/errors.js';
import type { LayerStep } from '../findings/model.js';
import { daemonMessage } from '../docker/daemon-message.js';
import type { Endpoint } from '../docker/endpoint.js';
import { streamGet, type SocketTarget } from '../docker/stream-get.js';
import { hashSaveArchive } from '../save/hash-pass.js';
import { readSaveArchive, readSaveArchiveOf, type ArchiveEvent } from '../save/reader.js';
import type { ArchiveEvents, ArchiveGroup, ImageArchive, ReadOptions } from './archive.js';
import { layerSteps, type HistoryEntry } from './build-steps.js';
import { insecureRegistriesOf, type InsecureRegistries } from '../registry/insecure.js';

export interface DaemonInfo {
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
}

export interface ImageInfo {
  /** The reference the user gave. */
  ref: string;
  /** Image ID as the daemon reports it (the config digest on the classic image store). */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  os: string;
  architecture: string;
  size: number;
  /** RootFS.Layers: uncompressed layer digests, base first. */
  diffIds: string[];
}

export interface ImageSource {
  connect(options?: { signal?: AbortSignal }): Promise<DaemonInfo>;
  inspect(ref: string): Promise<ImageInfo>;
  /**
   * The `docker save` tar stream of one image, or of several in one archive (shared layers once); aborting the
   * signal closes it (the daemon stops exporting).
   */
  save(id: string | readonly string[], options?: { signal?: AbortSignal }): Promise<Chunks>;
  /** How many exports this source has started (benchmarks and tests assert on it). */
  readonly saveCount: number;
  /**
   * When a container of this daemon publishes `port` (Clair in Docker, reached on loopback), the gateway
   * address of its network: the host address that container can reach.
   */
  publishedPortGateway?(port: number): Promise<string | undefined>;
  /** The build step of each layer (for the report), when the daemon's history can be paired with the layers. */
  buildSteps?(image: ImageInfo): Promise<LayerStep[] | undefined>;
  /** The engine for messages about its exports: version and image store. */
  describeEngine?(): Promise<EngineDescription>;
  /** The registries the daemon reaches without TLS verification or over plain http (`insecure-registries`). */
  insecureRegistries?(): Promise<InsecureRegistries>;
}

export interface EngineDescription {
  /** As the daemon reports it, e.g. `26.1.5+dfsg1`; undefined when it did not answer. */
  version: string | undefined;
  /** containerd: the containerd image store (snapshotters), classic: graph drivers. Undefined when unknown. */
  store: 'classic' | 'containerd' | undefined;
}

/** The parts of `docker info` read here. */
interface DaemonInfoAnswer {
  ServerVersion?: string;
  DriverStatus?: [string, string][];
  RegistryConfig?: unknown;
}

interface SignalCalls {
  version(options: { abortSignal: AbortSignal }): Promise<Dockerode.DockerVersion>;
}

const CONNECT_TIMEOUT_MS = 35_000; // ssh's own ConnectTimeout is 30 s
// A reference, digest or ID: no spaces, query or fragment characters that would change the API path.
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$/;

export class DockerImageSource implements ImageSource {
  saveCount = 0;
  private info: Promise<DaemonInfoAnswer> | undefined;

  constructor(
    private readonly docker: Dockerode,
    private readonly endpoint: Endpoint,
  ) {}

  /**
   * Reads the daemon's version: the first call, so "unreachable" is reported once, clearly. `/version` answers
   * whether the daemon is there as `/_ping` would, so there is no ping first: each round trip delays the export.
   */
  async connect(options: { signal?: AbortSignal } = {}): Promise<DaemonInfo> {
    const signal = options.signal
      ? AbortSignal.any([options.signal, AbortSignal.timeout(CONNECT_TIMEOUT_MS)])
      : AbortSignal.timeout(CONNECT_TIMEOUT_MS);
    try {
      // dockerode takes abortSignal on these calls; its type declarations do not say so.
      const docker = this.docker as unknown as SignalCalls;
      const v = await docker.version({ abortSignal: signal });
      return { version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw this.unreachable(error, signal.aborted);
    }
  }

  /** `docker info`, asked once: both what describes the engine and its insecure registries come from it. */
  private daemonInfo(): Promise<DaemonInfoAnswer> {
    this.info ??= this.docker.info() as Promise<DaemonInfoAnswer>;
    return this.info;
  }

  async describeEngine(): Promise<EngineDescription> {
    try {
      const info = await this.daemonInfo();
      // `docker info` shows the containerd store as a driver whose status names a snapshotter.
      const snapshotter = (info.DriverStatus ?? []).some(([key, value]) => key === 'driver-type' && /snapshotter/.test(value));
      return { version: info.ServerVersion, store: snapshotter ? 'containerd' : 'classic' };
    } catch {
      return { version: undefined, store: undefined };
    }
  }

  async insecureRegistries(): Promise<InsecureRegistries> {
    try {
      return insecureRegistriesOf((await this.daemonInfo()).RegistryConfig);
    } catch {
      return { cidrs: [], hosts: [] }; // best effort: every registry is then reached over verified https
    }
  }

  async inspect(ref: string): Promise<ImageInfo> {
    if (!IMAGE_REF.test(ref)) {
      throw new UsageError(`invalid image reference "${ref}"`, 'give an image name[:tag], name@digest or image ID');
    }
    let info: Dockerode.ImageInspectInfo;
    try {
      info = await this.docker.getImage(ref).inspect();
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 404) {
        throw new ImageNotFoundError(
          `image "${ref}" not found in the Docker daemon at ${this.endpoint.host}`,
          `pull or build it first (docker pull ${ref}), or scan it in its registry (--image-src remote)`,
          { cause: error },
        );
      }
      if (status !== undefined) {
        throw new DaemonError(`the Docker daemon at ${this.endpoint.host} failed to inspect "${ref}": ${daemonMessage(error)}`,
          undefined, { cause: error });
      }
      throw this.unreachable(error, false);
    }
    return {
      ref,
      id: info.Id,
      repoTags: info.RepoTags ?? [],
      repoDigests: info.RepoDigests ?? [],
      os: info.Os,
      architecture: info.Architecture,
      size: info.Size,
      diffIds: info.RootFS?.Layers ?? [],
    };
  }

  async save(id: string | readonly string[], options: { signal?: AbortSignal } = {}): Promise<Chunks> {
    options.signal?.throwIfAborted();
    this.saveCount++;
    const ids = typeof id === 'string' ? [id] : id;
    const what = ids.join(', ');
    try {
      const target = plainSocket(this.endpoint);
      // What dockerode's getImage(id).get() and getImages({ names }) ask; over a plain socket, read into one
      // reused buffer (stream-get.ts).
      const path = ids.length === 1 ? `/images/${ids[0]}/get` : `/images/get?${ids.map((i) => `names=${encodeURIComponent(i)}`).join('&')}`;
      if (target) return await streamGet(target, path, options.signal);
      return await this.saveThroughDockerode(ids, options.signal);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 404) {
        throw new ImageNotFoundError(`image ${what} disappeared from the Docker daemon at ${this.endpoint.host} before it could be exported`,
          'do not remove or retag the image while it is being scanned', { cause: error });
      }
      if (status !== undefined) {
        throw new DaemonError(`the Docker daemon at ${this.endpoint.host} failed to export ${what}: ${daemonMessage(error)}`,
          'the daemon stages exports on its own disk: check free space under its data root', { cause: error });
      }
      throw this.unreachable(error, false);
    }
  }

  /** TLS and ssh: dockerode's response stream. */
  private async saveThroughDockerode(ids: readonly string[], signal: AbortSignal | undefined): Promise<Chunks> {
    // dockerode's get() takes no signal: the response is destroyed on abort instead.
    const stream = (ids.length === 1
      ? await this.docker.getImage(ids[0] as string).get()
      // getImages (GET /images/get?names=…) is in dockerode, not in its type declarations.
      : await (this.docker as unknown as { getImages(opts: { names: string[] }): Promise<unknown> }).getImages({ names: [...ids] })) as unknown as Readable;
    if (signal) {
      const onAbort = () => stream.destroy(signal.reason as Error);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        stream.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    return readableChunks(stream);
  }

  async buildSteps(image: ImageInfo): Promise<LayerStep[] | undefined> {
    try {
      return layerSteps((await this.docker.getImage(image.id).history()) as HistoryEntry[], image.diffIds);
    } catch {
      return undefined; // decoration only: a scan never fails for want of it
    }
  }

  async publishedPortGateway(port: number): Promise<string | undefined> {
    let containers: Dockerode.ContainerInfo[];
    try {
      containers = await this.docker.listContainers({ filters: JSON.stringify({ publish: [String(port)] }) });
    } catch {
      return undefined; // best effort: the caller falls back to loopback
    }
    for (const container of containers) {
      for (const network of Object.values(container.NetworkSettings?.Networks ?? {})) {
        if (network.Gateway) return network.Gateway;
      }
    }
    return undefined;
  }

  private unreachable(error: unknown, timedOut: boolean): DaemonUnreachableError {
    const where = this.endpoint.host;
    const code = errnoCode(error);
    const status = (error as { statusCode?: number }).statusCode;
    const tcp = this.endpoint.transport.kind === 'tcp';
    let reason = timedOut ? 'timed out' : (code ?? (error as Error)?.message ?? String(error));
    let hint = `start dockerd, or point -H, DOCKER_HOST or --context at a running daemon (endpoint chosen by ${this.endpoint.source})`;
    if (status === 400 && tcp && !this.endpoint.tls) {
      reason = 'the daemon expects TLS';
      hint = 'set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or pass --tlsverify with --tlscacert/--tlscert/--tlskey';
    } else if (code === 'EACCES') {
      hint = 'permission denied on the socket: run as a member of the docker group, or as root';
    } else if (code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(code)) {
      reason = `TLS handshake failed: ${(error as Error).message}`;
      hint = 'check the CA, client certificate and key (--tlscacert/--tlscert/--tlskey or DOCKER_CERT_PATH)';
    } else if (status !== undefined) {
      reason = `HTTP ${status}: ${daemonMessage(error)}`;
    }
    return new DaemonUnreachableError(`cannot reach the Docker daemon at ${where} (${reason})`, hint, { cause: error });
  }
}

/** Where a plain (unix or tcp without TLS) endpoint listens; undefined for TLS, ssh and named pipes. */
function plainSocket(endpoint: Endpoint): SocketTarget | undefined {
  const t = endpoint.transport;
  if (t.kind === 'unix') return { path: t.path };
  if (t.kind === 'tcp' && !endpoint.tls) return { host: t.hostname, port: t.port };
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------

/** An image in the Docker daemon, exported with `docker save`. */
export class DaemonImageArchive implements ImageArchive {
  readonly origin = 'docker save';
  private digests: ReadonlyMap<string, string> | undefined;
  private exact: string[] | undefined;
  private saves = 0;
  private readonly notes: string[] = [];

  constructor(
    private readonly source: ImageSource,
    private readonly image: ImageInfo,
    readonly buildSteps?: Promise<readonly LayerStep[] | undefined>,
  ) {}

  get ref(): string {
    return this.image.ref;
  }
  get id(): string {
    return this.image.id;
  }
  get repoDigests(): readonly string[] {
    return this.image.repoDigests;
  }
  get layers(): readonly string[] | undefined {
    return this.exact;
  }
  get order(): readonly string[] {
    return this.exact ?? this.image.diffIds;
  }
  get passes(): number {
    return this.saves;
  }

  async read(signal: AbortSignal, options: ReadOptions = {}): Promise<ArchiveEvents> {
    this.saves++;
    const stream = await this.source.save(this.image.id, { signal });
    return explainIncomplete(this.source, this.image.ref, readSaveArchive(stream, { id: this.image.id, diffIds: this.image.diffIds },
      { signal, ...options, ...(this.digests ? { digests: this.digests } : {}) }));
  }

  /**
   * The images of one daemon exported together: one `docker save` of all of them (`GET /images/get?names=…`),
   * shared layers once. Undefined when they are not all from one source, or one needed a hash pass (remap).
   */
  static group(archives: readonly ImageArchive[]): ArchiveGroup | undefined {
    const daemon = archives.filter((a): a is DaemonImageArchive => a instanceof DaemonImageArchive);
    const source = daemon[0]?.source;
    if (!source || daemon.length !== archives.length || daemon.some((a) => a.source !== source || a.digests)) return undefined;
    // One image under two names is exported and ended once.
    const images = [...new Map(daemon.map((a) => [a.image.id, a.image])).values()];
    return {
      archives,
      async read(signal, options = {}) {
        for (const archive of daemon) archive.saves++;
        const stream = await source.save(images.map((image) => image.id), { signal });
        const ends = readSaveArchiveOf(stream, images.map(({ id, diffIds }) => ({ id, diffIds })), { signal, ...options });
        return explainIncomplete(source, images.map((image) => image.ref).join(', '), byArchive(ends, images.map((i) => i.id), daemon.map((a) => a.image.id)));
      },
    };
  }

  async remap(error: LegacyLayerMappingError, signal: AbortSignal): Promise<void> {
    if (this.digests) throw error;
    this.notes.push(`pass ${this.saves} stopped (${error.message})`);
    this.saves++;
    const pass = await hashSaveArchive(await this.source.save(this.image.id, { signal }), { signal, image: this.image.id });
    this.digests = pass.digests;
    this.exact = pass.layers;
    this.notes.push(`pass ${this.saves} hashed every layer to map them`);
  }

  identify(): { id: string; ref: string } {
    return { id: this.image.id, ref: this.image.ref };
  }

  describePasses(): string {
    const what = `${this.saves} docker save pass${this.saves === 1 ? '' : 'es'}`;
    return this.notes.length ? `${what}: ${this.notes.join('; ')}; pass ${this.saves} served the layers` : what;
  }
}

/** An export lacking what its own manifest lists is the daemon's doing: say so, and which engine it was. */
async function* explainIncomplete(source: ImageSource, ref: string, events: ArchiveEvents): ArchiveEvents {
  try {
    yield* events;
  } catch (error) {
    if (!(error instanceof IncompleteArchiveError)) throw error;
    throw incompleteExportError(ref, error, await source.describeEngine?.());
  }
}

/** The events of an export of `exported` (distinct IDs), with one `end` per entry of `wanted` (IDs, repeats allowed). */
async function* byArchive(events: ArchiveEvents, exported: readonly string[], wanted: readonly string[]): ArchiveEvents {
  const ends = new Map<string, ArchiveEvent & { kind: 'end' }>();
  for await (const event of events) {
    if (event.kind === 'layer') yield event;
    else ends.set(exported[ends.size] as string, event);
  }
  for (const id of wanted) {
    const end = ends.get(id);
    if (end) yield end;
  }
}

function incompleteExportError(ref: string, error: IncompleteArchiveError, engine: EngineDescription | undefined): DaemonError {
  const name = `Docker Engine ${engine?.version ?? '(version unknown)'}${engine?.store ? ` (${engine.store} image store)` : ''}`;
  const hint = engine?.store === 'containerd'
    ? `a daemon defect, not a damaged image: the containerd image store skips downloading the blobs of layers it already has `
      + `when it pulls, and then cannot export them; remove ${ref} and the images that share its layers (docker image rm), `
      + 'pull it again and rescan, or scan it on a daemon with the classic image store'
    : 'a daemon defect, not a damaged image: every export of this image will lack it; scan the image on another daemon';
  return new DaemonError(`the Docker daemon's export of ${ref} is incomplete: ${name} left out ${error.missing ?? error.path}, `
    + 'which the export\'s own manifest.json lists', hint, { cause: error });
}
