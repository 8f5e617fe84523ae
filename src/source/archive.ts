// How one image's `docker save` archive is read for a scan: exported by the daemon, from a file (--input
// PATH) or from a stream (--input -). scan-image-v4 reads layers through ImageArchive only.
//
// Passes per image (ImageArchive.passes):
//   daemon   1 `docker save` (0 when Clair already has the image). A legacy save whose v1 directories the
//            diffIDs do not name (LegacyLayerMappingError; e.g. v1 IDs kept from a pre-1.10 migration) costs
//            two more: a hash pass over a second save, then a read of a third with the digests it found. The
//            first pass cannot become the hash pass: it stopped where the mapping failed, and its layers
//            already went to Clair (which does not fetch them again).
//   file     the header walk, then 1 read of the layer bytes (none when Clair already has the image): see
//            docker/archive-source.ts for why a file never needs a hash pass.
//   stream   1 read, ever.
import type { ArchiveImage, SaveArchiveFile, SaveStreamHead } from './file.js';
import { refMatches } from './file.js';
import type { EngineDescription, ImageInfo, ImageSource } from './daemon.js';
import { readSaveArchive, type ArchiveEnd, type ArchiveEvent, type ReadSaveArchiveOptions } from '../save/reader.js';
import { hashSaveArchive } from '../save/hash-pass.js';
import {
  ArchiveFormatError,
  DaemonError,
  ImageNotFoundError,
  IncompleteArchiveError,
  UsageError,
  type LegacyLayerMappingError,
} from '../runtime/errors.js';

export type ArchiveEvents = AsyncGenerator<ArchiveEvent, void, undefined>;

export interface ReadOptions {
  /**
   * Which layer bodies the archive hashes itself (readSaveArchive's `verify`): 'guesses' when the reader of
   * the bodies verifies every digest (Clair v4), 'all' (the default) otherwise.
   */
  verify?: ReadSaveArchiveOptions['verify'];
}

export interface ImageArchive {
  /** Where the bytes come from, for messages: `docker save`, the file's path, `stdin`. */
  readonly origin: string;
  /** The reference the report shows (for a stream, settled by identify()). */
  readonly ref: string;
  /** The manifest hash, when known before reading (a stream of blobs tells it only at its end). */
  readonly id: string | undefined;
  readonly repoDigests: readonly string[];
  /** The image's layers exactly as served, base first, when known before reading: other layers are skipped. */
  readonly layers: readonly string[] | undefined;
  /** The image order progress counts in: `layers`, else RootFS.Layers (what legacy and OCI saves serve). */
  readonly order: readonly string[];
  /** Passes over the archive so far: `docker save` calls, or reads of the input (the header walk included). */
  readonly passes: number;
  /** Starts one pass. */
  read(signal: AbortSignal, options?: ReadOptions): Promise<ArchiveEvents>;
  /** A pass failed with a LegacyLayerMappingError: make the next one unable to fail that way, or throw. */
  remap(error: LegacyLayerMappingError, signal: AbortSignal): Promise<void>;
  /** The archive's end: checks it is the image asked for; its manifest hash and reference. */
  identify(end: ArchiveEnd): { id: string; ref: string };
  /** What the passes were, for --debug. */
  describePasses(): string;
  /**
   * Clair already has the image, but the archive must still be read to its end (a stream: its producer is not
   * cut off, and its manifest.json gives the reference). Layers are drained and checked, not sent.
   */
  finishUnread?(signal: AbortSignal): Promise<void>;
}

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
    return this.explainIncomplete(readSaveArchive(stream, { id: this.image.id, diffIds: this.image.diffIds },
      { signal, ...options, ...(this.digests ? { digests: this.digests } : {}) }));
  }

  /** An export lacking what its own manifest lists is the daemon's doing: say so, and which engine it was. */
  private async *explainIncomplete(events: ArchiveEvents): ArchiveEvents {
    try {
      yield* events;
    } catch (error) {
      if (!(error instanceof IncompleteArchiveError)) throw error;
      throw incompleteExportError(this.image.ref, error, await this.source.describeEngine?.());
    }
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

/** An image of a `docker save` archive in a file: walked once for all its images, then read once per image. */
export class FileImageArchive implements ImageArchive {
  readonly repoDigests: readonly string[] = [];
  private reads = 0;

  constructor(
    private readonly file: SaveArchiveFile,
    private readonly image: ArchiveImage,
    readonly ref: string,
  ) {}

  get origin(): string {
    return this.file.path;
  }
  get id(): string {
    return this.image.id;
  }
  get layers(): readonly string[] {
    return this.image.layers;
  }
  get order(): readonly string[] {
    return this.image.layers;
  }
  /** The header walk (shared by the archive's images) and this image's reads. */
  get passes(): number {
    return 1 + this.reads;
  }

  async read(signal: AbortSignal, options: ReadOptions = {}): Promise<ArchiveEvents> {
    this.reads++;
    const { id, diffIds, format } = this.image;
    return readSaveArchive(this.file.stream(), { id, diffIds },
      { signal, ...options, ...(format === 'legacy' ? { digests: this.file.digests } : {}) });
  }

  async remap(error: LegacyLayerMappingError): Promise<void> {
    // The walk gave every legacy layer its digest: nothing left to map.
    throw error;
  }

  identify(end: ArchiveEnd): { id: string; ref: string } {
    if (end.config !== this.image.id) {
      throw new ArchiveFormatError(`${this.file.path} changed while it was read: its image is now ${end.config ?? 'unknown'}, not ${this.image.id}`,
        'do not rewrite the archive while it is being scanned');
    }
    return { id: this.image.id, ref: this.ref };
  }

  describePasses(): string {
    return `${this.passes} read${this.passes === 1 ? '' : 's'} of ${this.file.path} ` +
      `(tar headers and metadata: ${this.file.stats.walkBytes} bytes${this.reads ? `; then the layers${this.reads > 1 ? ` ${this.reads} times` : ''}` : ''})`;
  }
}

const STDIN_HINT = 'save the archive to a file and pass --input FILE (read twice: its headers, then its layers)';

/** A `docker save` archive on a stream (stdin): one pass, with what its first entries tell. */
export class StreamImageArchive implements ImageArchive {
  readonly repoDigests: readonly string[] = [];
  readonly id: string | undefined;
  readonly layers: readonly string[] | undefined;
  readonly order: readonly string[];
  ref: string;
  private reads = 0;

  /** Throws UsageError for what a single pass cannot do. */
  constructor(
    private readonly head: SaveStreamHead,
    readonly origin: string,
    private readonly wanted: string | undefined,
  ) {
    this.ref = wanted ?? origin;
    const [config, ...others] = head.configs;
    if (head.layout === 'legacy') {
      if (!config) {
        throw new UsageError(`cannot scan the legacy (Engine < 25) archive on ${origin} in one pass: its image config comes after its first layer, ` +
          'so the layers cannot be identified as they stream by', STDIN_HINT);
      }
      if (others.length > 0) {
        throw new UsageError(`the archive on ${origin} holds ${head.configs.length} images; from a stream, docker-clair scans one`, STDIN_HINT);
      }
    }
    this.id = config?.id;
    this.layers = config?.diffIds;
    this.order = config?.diffIds ?? [];
  }

  get passes(): number {
    return this.reads;
  }

  async read(signal: AbortSignal, options: ReadOptions = {}): Promise<ArchiveEvents> {
    if (this.reads++ > 0) throw new UsageError(`${this.origin} can be read only once`, STDIN_HINT);
    const events = readSaveArchive(this.head.stream, { id: this.id ?? '', diffIds: this.order }, { signal, ...options });
    const origin = this.origin;
    return (async function* explained(): ArchiveEvents {
      try {
        yield* events;
      } catch (error) {
        if (error instanceof ArchiveFormatError && /holds \d+ images/.test(error.message)) {
          throw new UsageError(`the archive on ${origin} holds several images; from a stream, docker-clair scans one`, STDIN_HINT, { cause: error });
        }
        throw error;
      }
    })();
  }

  async remap(error: LegacyLayerMappingError): Promise<void> {
    throw new UsageError(`cannot map the legacy layer directories of the archive on ${this.origin} in one pass: ${error.message}`,
      STDIN_HINT, { cause: error });
  }

  identify(end: ArchiveEnd): { id: string; ref: string } {
    const id = this.id ?? end.config;
    if (id === undefined) throw new ArchiveFormatError(`the archive on ${this.origin} names no image config`);
    if (this.id !== undefined && end.config !== this.id) {
      throw new ArchiveFormatError(`the archive on ${this.origin} is not the image whose config came first (${this.id}): manifest.json names ${end.config ?? 'another'}`);
    }
    if (this.wanted !== undefined && end.repoTags.length > 0 && !refMatches(this.wanted, { id, repoTags: end.repoTags })) {
      throw new ImageNotFoundError(`image "${this.wanted}" is not the one on ${this.origin} (${end.repoTags.join(', ')}, ${id})`,
        'name the image the archive holds, or omit IMAGE');
    }
    this.ref = this.wanted ?? end.repoTags[0] ?? id;
    return { id, ref: this.ref };
  }

  async finishUnread(signal: AbortSignal): Promise<void> {
    for await (const event of await this.read(signal)) {
      if (event.kind === 'end') this.identify(event);
    }
  }

  describePasses(): string {
    return `1 pass over ${this.origin} (${this.head.probed} bytes of metadata probed before the first layer, replayed)`;
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
