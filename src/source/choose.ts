// Which source a run's images come from, and the list of them: the Docker daemon (images named on the command
// line), or a `docker save` archive given with --input (a regular file: every image it holds or those named; a
// stream: the one image it holds). Each target is opened (inspected, selected, probed) only when its turn comes.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createDockerClient } from '../docker/client.js';
import { resolveEndpoint } from '../docker/endpoint.js';
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import { UsageError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import type { ProgressSink } from '../runtime/progress.js';
import type { ArchiveGroup, ImageArchive } from './archive.js';
import type { SourceSettings } from './settings.js';
import { DaemonImageArchive, DockerImageSource, type ImageSource } from './daemon.js';
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
}

/** The images of a run, each opened (inspected, selected, probed) when its turn comes. */
export interface ChosenSource {
  targets: { ref: string; open: (progress: ProgressSink) => Promise<ImageArchive> }[];
  /** Passes over the archives so far (`docker save` calls, or reads of the input). */
  passes: () => number;
  /** Opened images read together in one pass, when the source can (a daemon: one `docker save` of them all). */
  group?: (archives: readonly ImageArchive[]) => ArchiveGroup | undefined;
  /** The daemon's answer to "which gateway reaches a container publishing this port" (Clair in Docker). */
  publishedPortGateway?: (port: number) => Promise<string | undefined>;
}

export async function chooseSource(settings: SourceContext, signal: AbortSignal): Promise<ChosenSource> {
  return settings.input === undefined
    ? daemonImages(settings, signal)
    : inputImages(settings.input, settings, signal);
}

/** The images named on the command line, from the Docker daemon. */
async function daemonImages(settings: SourceContext, signal: AbortSignal): Promise<ChosenSource> {
  const { log } = settings;
  let source = settings.source;
  if (!source) {
    const endpoint = await resolveEndpoint(settings.globals, settings.env, settings.home);
    for (const warning of endpoint.warnings) log.warn(warning);
    log.debug(`docker endpoint: ${endpoint.host} (context "${endpoint.contextName}", chosen by ${endpoint.source}${endpoint.tls ? `, TLS${endpoint.tls.verify ? '' : ' without verification'}` : ''})`);
    source = new DockerImageSource(await createDockerClient(endpoint), endpoint);
  }
  const daemon = await source.connect({ signal });
  log.debug(`docker daemon: Engine ${daemon.version}, API ${daemon.apiVersion}, ${daemon.os}/${daemon.arch}`);
  const from = source;
  return {
    targets: settings.images.map((ref) => ({
      ref,
      open: async (progress) => {
        const image = await from.inspect(ref);
        const steps = await from.buildSteps?.(image);
        log.debug(`image ${ref}: ${image.id}, ${image.diffIds.length} layer(s), ${image.os}/${image.architecture}`);
        progress({ stage: 'inspect', image: ref, layers: image.diffIds.length, bytes: image.size });
        return new DaemonImageArchive(from, image, steps);
      },
    })),
    passes: () => from.saveCount,
    group: (archives) => DaemonImageArchive.group(archives),
    ...(from.publishedPortGateway ? { publishedPortGateway: (port: number) => from.publishedPortGateway!(port) } : {}),
  };
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
