// Which source a run's images come from, and the list of them: the Docker daemon or the registries (images named
// on the command line, --image-src), or a `docker save` archive given with --input (a regular file: every image it holds or those named; a
// stream: the one image it holds). Each target is opened (inspected, selected, probed) only when its turn comes.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createDockerClient } from '../docker/client.js';
import { resolveEndpoint } from '../docker/endpoint.js';
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import type { Logger } from '../runtime/log.js';
import type { ProgressSink } from '../runtime/progress.js';
import type { ArchiveGroup, ImageArchive } from './archive.js';
import type { RemoteImage } from '../registry/client.js';
import { normalizeArch } from '../registry/manifest.js';
import { DockerClairError, ImageNotFoundError, UsageError } from '../runtime/errors.js';
import type { ProxySettings } from '../runtime/proxy.js';
import type { InsecureRegistries } from '../registry/insecure.js';
import type { DaemonView, RemoteImages } from './remote.js';
import type { ImageSourceKind, SourceSettings } from './settings.js';
import { DaemonImageArchive, DockerImageSource, type DaemonInfo, type ImageInfo, type ImageSource } from './daemon.js';
import { FileImageArchive, SaveArchiveFile } from './file.js';
import { probeSaveStream, StreamImageArchive } from './stream.js';

/** What choosing the source needs: its settings from the command line, and how to reach the daemon. */
export interface SourceContext extends Readonly<SourceSettings> {
  /** How the docker CLI was told to reach the daemon (-H, --context, TLS flags). */
  globals: DockerGlobalFlags;
  env: Record<string, string | undefined>;
  home?: string | undefined;
  log: Logger;
  /** A daemon source built by the caller (tests count its exports); otherwise built from the endpoint. */
  source?: ImageSource | undefined;
  /** What `--input -` reads. */
  stdin?: Readable | undefined;
  /** HTTP(S)_PROXY/NO_PROXY for registries. */
  proxy?: ProxySettings | undefined;
}

/** The images of a run, each opened (inspected, selected, probed) when its turn comes. */
export interface ChosenSource {
  targets: { ref: string; open: (progress: ProgressSink) => Promise<ImageArchive | RemoteImage> }[];
  /** Passes over the archives so far (`docker save` calls, or reads of the input). */
  passes: () => number;
  /** Opened images read together in one pass, when the source can (a daemon: one `docker save` of them all). */
  group?: (archives: readonly ImageArchive[]) => ArchiveGroup | undefined;
  /** The daemon's answer to "which gateway reaches a container publishing this port" (Clair in Docker). */
  publishedPortGateway?: (port: number) => Promise<string | undefined>;
}

export async function chooseSource(settings: SourceContext, signal: AbortSignal): Promise<ChosenSource> {
  return settings.input === undefined
    ? namedImages(settings, signal)
    : inputImages(settings.input, settings, signal);
}

/**
 * The images named on the command line, from the sources in --image-src order: the daemon (inspected, exported with
 * `docker save`) and the registry the reference names (Clair fetches from it). With the default order an image the
 * daemon lacks comes from its registry.
 */
async function namedImages(settings: SourceContext, signal: AbortSignal): Promise<ChosenSource> {
  const { log } = settings;
  const order = settings.imageSources ?? ['daemon', 'remote'];
  // The registry client is loaded the first time an image is looked for in a registry, not on every run.
  let remoteImages: Promise<RemoteImages> | undefined;
  const remote = order.includes('remote')
    ? { open: async (ref: string, view?: DaemonView) => (await (remoteImages ??= import('./remote.js').then((m) => new m.RemoteImages(settings)))).open(ref, signal, view) }
    : undefined;
  const daemon = order.includes('daemon')
    ? await connectDaemon(settings, signal, order[0] === 'daemon' ? settings.images : [])
    : undefined;
  const from = daemon?.source;
  let insecure: Promise<InsecureRegistries> | undefined;
  // What a registry lookup takes from the daemon: its platform (from /version, which may still be on its way).
  const daemonView = async (): Promise<DaemonView | undefined> => {
    if (!daemon) return undefined;
    const info = await daemon.info.catch(() => undefined);
    if (!info) return undefined;
    return {
      platform: { os: info.os, architecture: normalizeArch(info.arch) },
      insecure: () => (insecure ??= daemon.source.insecureRegistries?.() ?? Promise.resolve({ cidrs: [], hosts: [] })),
    };
  };
  const fromDaemon = async (ref: string, progress: ProgressSink, source: ImageSource): Promise<ImageArchive> => {
    const image = await (daemon?.inspecting.get(ref) ?? source.inspect(ref));
    // The history is asked for now and awaited only for the report: it never delays the export.
    const steps = source.buildSteps?.(image);
    log.debug(`image ${ref}: ${image.id}, ${image.diffIds.length} layer(s), ${image.os}/${image.architecture}`);
    progress({ stage: 'inspect', image: ref, layers: image.diffIds.length, bytes: image.size });
    return new DaemonImageArchive(source, image, steps);
  };
  return {
    targets: settings.images.map((ref) => ({
      ref,
      open: async (progress) => {
        // Each source in order: one that fails (not found, unreachable) hands over to the next; when none has the
        // image, one message names what each said. A malformed reference is malformed for all of them.
        const missed: { kind: ImageSourceKind; error: DockerClairError }[] = [];
        for (const kind of order) {
          try {
            if (kind === 'daemon' && from) return await fromDaemon(ref, progress, from);
            if (kind === 'remote' && remote && !isImageId(ref)) return await remote.open(ref, await daemonView());
          } catch (error) {
            if (signal.aborted || !(error instanceof DockerClairError) || error instanceof UsageError) throw error;
            missed.push({ kind, error });
          }
        }
        const [first, ...rest] = missed;
        if (!first) {
          throw new ImageNotFoundError(`image "${ref}" is an image ID, which names an image in a daemon, not in a registry`,
            'scan it through the daemon that has it (--image-src daemon)');
        }
        if (rest.length === 0) throw first.error;
        const also = rest.map(({ kind, error }) => `, nor ${kind === 'remote' ? 'in its registry' : 'in the daemon'}: ${error.message}`).join('');
        throw new ImageNotFoundError(`${first.error.message}${also}`, 'pull or build it first, or check the name; --image-src chooses where to look',
          { cause: rest.at(-1)?.error });
      },
    })),
    passes: () => from?.saveCount ?? 0,
    ...(from ? { group: (archives: readonly ImageArchive[]) => DaemonImageArchive.group(archives) } : {}),
    ...(from?.publishedPortGateway ? { publishedPortGateway: (port: number) => from.publishedPortGateway!(port) } : {}),
  };
}

/** At most this many images are inspected while the daemon is first reached. */
const EARLY_INSPECTIONS = 8;

/**
 * The daemon, reached once. One that does not answer is an error even before a registry: --image-src remote skips it.
 * The images to `inspect` are asked for in the same round trip as the daemon's version (their answers, or errors,
 * are taken when each image's turn comes): on a cold scan every round trip before the export is wall time. The
 * first image's inspection, answered by the daemon (found or not), shows the daemon is there as well as /version
 * does, so the version is not waited for (Engine 20.10 asks containerd and runc for theirs: ~8 ms, twice the
 * inspection); any other outcome waits for it, and its failure is the one reported.
 */
async function connectDaemon(
  settings: SourceContext, signal: AbortSignal, inspect: readonly string[],
): Promise<{ source: ImageSource; info: Promise<DaemonInfo>; inspecting: Map<string, Promise<ImageInfo>> }> {
  const { log } = settings;
  let source = settings.source;
  if (!source) {
    const endpoint = await resolveEndpoint(settings.globals, settings.env, settings.home);
    for (const warning of endpoint.warnings) log.warn(warning);
    log.debug(`docker endpoint: ${endpoint.host} (context "${endpoint.contextName}", chosen by ${endpoint.source}${endpoint.tls ? `, TLS${endpoint.tls.verify ? '' : ' without verification'}` : ''})`);
    source = new DockerImageSource(await createDockerClient(endpoint), endpoint);
  }
  const connected = source.connect({ signal });
  const inspecting = new Map<string, Promise<ImageInfo>>();
  for (const ref of inspect.slice(0, EARLY_INSPECTIONS)) {
    if (inspecting.has(ref)) continue;
    const inspected = source.inspect(ref);
    inspected.catch(() => undefined); // taken (and reported) when the image's turn comes, if the daemon answered
    inspecting.set(ref, inspected);
  }
  const [first] = inspecting.values();
  const answered = first ? first.then(() => true, (error: unknown) => error instanceof ImageNotFoundError) : Promise.resolve(false);
  if (!(await Promise.race([answered, connected.then(() => true)]))) await connected;
  const info = connected.then((i) => {
    log.debug(`docker daemon: Engine ${i.version}, API ${i.apiVersion}, ${i.os}/${i.arch}`);
    return i;
  });
  info.catch(() => undefined); // a daemon that answered the inspection but not /version: the platform is this machine's
  return { source, info, inspecting };
}

/**
 * `--input PATH|-`: the images of a `docker save` archive, no daemon involved. A regular file is walked once
 * (headers and metadata) and read once more per image Clair does not have yet; anything else (stdin, a FIFO)
 * is read once, and holds one image.
 */
async function inputImages(input: string, settings: SourceContext, signal: AbortSignal): Promise<ChosenSource> {
  const { log, images: refs } = settings;
  const stream = input === '-' || !(await SaveArchiveFile.isRegularFile(input));
  if (!stream) {
    const file = await SaveArchiveFile.open(input, { signal });
    log.debug(`--input ${input}: ${file.images.length} image(s), ${file.stats.walkBytes} bytes of headers and metadata read`);
    const targets = refs.length > 0
      ? refs.map((ref) => ({ ref, select: () => file.select(ref) }))
      : file.images.map((image) => ({ ref: image.repoTags[0] ?? image.id, select: () => image }));
    return {
      targets: targets.map(({ ref, select }) => ({
        ref,
        open: async (progress) => {
          const image = select();
          log.debug(`image ${ref}: ${image.id} in ${input} (${image.format}), ${image.layers.length} layer(s), ${image.os}/${image.architecture}`);
          progress({ stage: 'inspect', image: ref, layers: image.layers.length, bytes: image.size });
          return new FileImageArchive(file, image, ref);
        },
      })),
      passes: () => file.stats.reads,
    };
  }
  if (refs.length > 1) {
    throw new UsageError(`--input ${input} is read once and holds one image, but ${refs.length} images were named`,
      'name at most one IMAGE, or save the archive to a file and pass --input FILE');
  }
  const origin = input === '-' ? 'stdin' : input;
  let archive: StreamImageArchive | undefined;
  return {
    targets: [{
      ref: refs[0] ?? origin,
      open: async () => {
        const source = input === '-' ? stdinOf(settings.stdin) : createReadStream(input);
        const head = await probeSaveStream(source, { signal });
        log.debug(`--input ${input}: ${head.layout} layout, ${head.probed} bytes probed before the first layer`);
        archive = new StreamImageArchive(head, origin, refs[0]);
        return archive;
      },
    }],
    passes: () => archive?.passes ?? 0,
  };
}

function stdinOf(stdin: Readable | undefined): Readable {
  if (!stdin) throw new UsageError('--input - needs a standard input', 'give --input a file path instead');
  if ((stdin as { isTTY?: boolean }).isTTY) {
    throw new UsageError('--input - reads a `docker save` archive from stdin, which is a terminal',
      'pipe one in (docker save IMAGE | docker clair scan --input - …), or pass --input FILE');
  }
  return stdin;
}

/** An image ID (or its short form) names an image in a daemon, never one in a registry. */
function isImageId(ref: string): boolean {
  return /^(sha256:)?[0-9a-f]{12,64}$/.test(ref);
}
