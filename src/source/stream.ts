// `--input -` (and any input that cannot seek, a FIFO): a `docker save` archive on a stream, read once, with
// nothing buffered beyond the metadata before its first layer (probeSaveStream): the probed bytes are replayed in
// front of the rest.
//   - OCI layout (Engine >= 25) and containerd store: layer blobs are named by the digest of their bytes and told
//     from JSON blobs by their first bytes, so they can be served as they pass. The image's identity comes from
//     manifest.json, at the end; Clair cannot be asked first (a warm rescan reads stdin through, and Clair, which
//     already has every layer, fetches none).
//   - legacy (Engine < 25): works only when the image config sorts before the first layer directory (it holds the
//     diffIDs the directories are mapped with); otherwise the archive needs a file.
import { Readable } from 'node:stream';
import { BLOB, LEGACY_CONFIG, LEGACY_JSON, LEGACY_LAYER, configIdOf, readConfig, type ConfigFacts } from '../save/format.js';
import { readableChunks } from '../save/chunks.js';
import { readSaveArchive, type ArchiveEnd } from '../save/reader.js';
import { BLOCK, METADATA_LIMIT, walkTar, type ReadAt } from '../save/tar.js';
import {
  ArchiveFormatError,
  ImageNotFoundError,
  MultiImageArchiveError,
  UsageError,
  type LegacyLayerMappingError,
} from '../runtime/errors.js';
import type { ArchiveEvents, ImageArchive, ReadOptions } from './archive.js';
import { refMatches } from './image-ref.js';

/** The most a probe reads before giving up on finding the first layer (legacy metadata is a few KB). */
const PROBE_LIMIT = 4 * 1024 * 1024;

export interface SaveStreamHead {
  /** The whole stream from its first byte: the probed bytes, then the rest. Read it once. */
  stream: Readable;
  /** What the first entries say: legacy directories, OCI/containerd blobs, or nothing recognisable yet. */
  layout: 'legacy' | 'blobs' | 'unknown';
  /** Legacy: the image configs (`<hex>.json`) that came before the first layer.tar. */
  configs: (ConfigFacts & { id: string })[];
  /** Bytes held back by the probe (and replayed). */
  probed: number;
}

/** The bytes read from a stream so far, kept to be replayed. */
class StreamHead {
  readonly chunks: Buffer[] = [];
  length = 0;
  private joined = Buffer.alloc(0);
  private ended = false;

  constructor(private readonly iterator: AsyncIterator<unknown>) {}

  read: ReadAt = async (offset, length) => {
    while (this.length < offset + length && !this.ended && this.length < PROBE_LIMIT + BLOCK) {
      const r = await this.iterator.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const end = Math.min(offset + length, this.length);
    if (this.joined.length < end) this.joined = Buffer.concat(this.chunks, this.length);
    return this.joined.subarray(Math.min(offset, end), end);
  };
}

/**
 * Reads the first entries of a `docker save` stream, up to its first layer, without consuming it: the
 * returned stream replays them. Never throws on a malformed archive (readSaveArchive reports that).
 */
export async function probeSaveStream(source: Readable, options: { signal?: AbortSignal } = {}): Promise<SaveStreamHead> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<unknown>;
  const head = new StreamHead(iterator);
  let layout: SaveStreamHead['layout'] = 'unknown';
  const configs: SaveStreamHead['configs'] = [];
  try {
    for await (const entry of walkTar(head.read)) {
      options.signal?.throwIfAborted();
      if (BLOB.test(entry.name)) {
        layout = 'blobs';
        break;
      }
      if (LEGACY_LAYER.test(entry.name) || LEGACY_JSON.test(entry.name)) layout = 'legacy';
      if (LEGACY_LAYER.test(entry.name) && entry.type === 'file') break;
      if (LEGACY_CONFIG.test(entry.name) && entry.type === 'file' && entry.size <= METADATA_LIMIT) {
        const data = await head.read(entry.offset, entry.size);
        const id = configIdOf(data);
        if (data.length === entry.size && id === `sha256:${entry.name.slice(0, 64)}`) {
          try {
            configs.push({ id, ...readConfig(data, entry.name) });
          } catch {
            // Not an image config after all: readSaveArchive will say what is wrong.
          }
        }
      }
      if (head.length > PROBE_LIMIT) break;
    }
  } catch (error) {
    if (options.signal?.aborted) {
      await iterator.return?.();
      throw options.signal.reason;
    }
    // A malformed archive: handed over as it is, for readSaveArchive to report.
  }
  const replayed = head.chunks;
  async function* replay(): AsyncGenerator<Buffer> {
    try {
      // Handed out one by one and let go of: the probed bytes are not kept for the whole scan.
      for (let chunk = replayed.shift(); chunk !== undefined; chunk = replayed.shift()) yield chunk;
      for (let r = await iterator.next(); !r.done; r = await iterator.next()) {
        yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
      }
    } finally {
      await iterator.return?.();
    }
  }
  return { stream: Readable.from(replay(), { objectMode: false }), layout, configs, probed: head.length };
}

// ---------------------------------------------------------------------------------------------------------------

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
    const events = readSaveArchive(readableChunks(this.head.stream), { id: this.id ?? '', diffIds: this.order }, { signal, ...options });
    const origin = this.origin;
    return (async function* explained(): ArchiveEvents {
      try {
        yield* events;
      } catch (error) {
        if (error instanceof MultiImageArchiveError) {
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
