// Reads a `docker save` stream once and hands out its layers as they pass, for the layer server to pipe to
// Clair. Three formats (moby/moby image/tarexport/save.go, now under daemon/internal/; containerd
// core/images/archive/exporter.go), recognised by their entries:
//
//   legacy (Engine < 25)          `<v1id>/layer.tar`, sha256 = diffID; the v1 ID is computed (legacy-ids.ts)
//   OCI layout (Engine >= 25)     `blobs/sha256/<diffID>`, uncompressed
//   containerd image store        `blobs/sha256/<digest>` as stored (gzip, zstd or plain)
//
// Each layer's digest is known before its body is read (the entry's name, or the legacy v1-ID mapping), and the
// body is hashed while it streams: it ends only once the bytes hashed to that digest. With `verify: 'guesses'`
// only a digest that is a guess (a legacy top layer not yet confirmed) is hashed: the others are certain by the
// entry's name, and a consumer that hashes what it receives anyway (Clair v4's fetcher) catches corrupt bytes;
// hashing costs ~0.45 CPU-s per GB (docs/benchmarks.md). Nothing is written to disk and no layer is buffered;
// only metadata entries below METADATA_LIMIT are read into memory.
import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { ArchiveFormatError, DockerClairError, IncompleteArchiveError, LegacyLayerMappingError } from '../runtime/errors.js';
import { LEGACY_EPOCH_CREATED, legacyV1Ids } from './legacy-ids.js';
import type * as Save from './format.js';

export type SaveFormat = 'legacy' | 'oci' | 'containerd';
/** A tar entry as tar-stream hands it out: a streamx Readable with its header. */
export type TarEntry = tar.ExtractEvents['entry'][1];
export type LayerCompression = 'none' | 'gzip' | 'zstd';

export interface LayerEntry {
  /** `sha256:<hex>` of the bytes exactly as stored: the hash Clair is given and verifies. */
  digest: string;
  /** Size of the body in bytes (the tar entry's size). */
  size: number;
  /** Name of the entry in the archive: `<v1id>/layer.tar` or `blobs/sha256/<hex>`. */
  tarName: string;
  compression: LayerCompression;
  /**
   * Whether the body is hashed against `digest` as it streams (always, unless `verify: 'guesses'` and the
   * digest is certain by the entry's name or a previous pass): unchecked bytes are checked by the consumer.
   */
  checked: boolean;
  /**
   * The bytes as stored. It ends only after they hashed to `digest` (when `checked`; otherwise once `size`
   * bytes arrived); on a mismatch, a truncated archive or an abort it is destroyed with the error
   * (ArchiveFormatError, or the signal's reason), which the iterator also throws. Read it to its end, or
   * destroy it, before asking the iterator for the next event: the tar stream cannot move on meanwhile. A body
   * still unread at that point is drained (and checked, when `checked`) by the iterator and then destroyed.
   */
  body: Readable;
}

export interface ArchiveEnd {
  kind: 'end';
  format: SaveFormat;
  /** The image's layers, base first, as the digests served (diffIDs, or blob digests in the containerd store). */
  layers: string[];
  /** The config digest (the image ID outside the containerd store). */
  config?: string;
  /** From manifest.json; empty when the image was saved by ID. */
  repoTags: string[];
}

export type ArchiveEvent = { kind: 'layer'; layer: LayerEntry } | ArchiveEnd;

export interface SaveImage {
  /** Image ID as the daemon reports it: the config digest, or the target digest in the containerd store. */
  id: string;
  /** RootFS.Layers, base first. */
  diffIds: readonly string[];
}

export interface ReadSaveArchiveOptions {
  signal?: AbortSignal;
  /**
   * Digests of layer entries by tar name, from a previous hash pass (hash-pass.ts). Used before the legacy
   * v1-ID computation: the way to read a legacy archive whose mapping failed (LegacyLayerMappingError).
   */
  digests?: ReadonlyMap<string, string>;
  /**
   * Which layer bodies are hashed while they stream: 'all' (the default), or only 'guesses' (the digest of a
   * legacy top layer not yet confirmed by the layers below it: a mismatch there is a LegacyLayerMappingError).
   * Use 'guesses' only when whoever reads the bodies verifies the digest itself, as Clair v4 does.
   */
  verify?: 'all' | 'guesses';
}

/** Largest metadata entry (manifest.json, `<v1id>/json`, JSON blobs) read into memory. */
export const METADATA_LIMIT = 1024 * 1024;
/** Total of JSON blobs kept until the end of the archive (to find the image in a multi-image containerd save). */
const RETAINED_LIMIT = 8 * METADATA_LIMIT;
/** Bytes looked at to tell a layer blob from a JSON one: a tar header is 512 bytes. */
const SNIFF_BYTES = 512;

export const LEGACY_LAYER = /^([0-9a-f]{64})\/layer\.tar$/;
export const LEGACY_JSON = /^([0-9a-f]{64})\/json$/;
export const LEGACY_CONFIG = /^([0-9a-f]{64})\.json$/;
export const BLOB = /^blobs\/(sha256\/[0-9a-f]{64}|sha512\/[0-9a-f]{128})$/;

/**
 * Reads a `docker save` archive once, yielding a `layer` event per layer entry in stream order, then one
 * `end` event. The consumer must finish with each layer's body before calling next() (see LayerEntry.body).
 * Errors: ArchiveFormatError (not a tar, truncated, no manifest.json, a digest mismatch, a layer never
 * delivered), LegacyLayerMappingError (a legacy directory that cannot be identified before its bytes), the
 * signal's reason on abort. Leaving the loop early (or an error) destroys `source`.
 */
export function readSaveArchive(
  source: Readable,
  image: SaveImage,
  options: ReadSaveArchiveOptions = {},
): AsyncGenerator<ArchiveEvent, void, undefined> {
  // Nothing is read before the first next(); an error the source emits meanwhile is kept for it (unheard, it
  // would crash the process).
  const early: { error?: unknown } = {};
  const onEarlyError = (error: unknown) => {
    early.error ??= error;
  };
  source.on('error', onEarlyError);
  return readEvents(source, image, options, () => {
    source.off('error', onEarlyError);
    return early.error;
  });
}

async function* readEvents(
  source: Readable,
  image: SaveImage,
  options: ReadSaveArchiveOptions,
  takeEarlyError: () => unknown,
): AsyncGenerator<ArchiveEvent, void, undefined> {
  const { signal } = options;
  const entries = new TarEntries(source, signal, takeEarlyError());
  const save = new SaveReader(image, options.digests, options.verify ?? 'all');
  let feed: LayerFeed | undefined;
  const onAbort = () => feed?.fail(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (let entry = await entries.next(); entry; entry = await entries.next()) {
      feed = await save.take(entry, entries);
      if (!feed) continue;
      yield { kind: 'layer', layer: feed.layer };
      await feed.settle();
      save.delivered(feed.layer);
      feed = undefined;
    }
    yield save.end();
  } catch (error) {
    throw await entries.failure(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    feed?.abandon();
    entries.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
/**
 * An entry that manifest.json lists is not in the archive. The archive is well-formed, so it was written without
 * the entry: saving it again the same way gives the same archive.
 */
export function missingFromArchive(what: string, path: string, digest?: string): IncompleteArchiveError {
  return new IncompleteArchiveError(`the archive lacks ${what} (${digest ?? path}), which its own manifest.json lists`,
    'the export that made it was incomplete; Docker\'s containerd image store exports images that way when they were pulled '
    + 'while it already had their layers: remove those images, pull again, then save', digest, path);
}

// Tar plumbing, shared with hash-pass.ts.

/** The entries of a tar stream (tar-stream's extract), with its errors turned into ArchiveFormatError. */
export class TarEntries {
  private readonly extract = tar.extract();
  private readonly iterator: AsyncIterator<TarEntry>;
  private sourceError: unknown;
  private parseError: unknown;
  private last: string | undefined;
  private readonly onAbort = () => this.destroy(this.signal?.reason);

  constructor(
    private readonly source: Readable,
    private readonly signal?: AbortSignal,
    earlyError?: unknown,
  ) {
    this.iterator = this.extract[Symbol.asyncIterator]();
    this.extract.on('error', (error: unknown) => {
      this.parseError ??= error;
    });
    const onSourceError = (error: unknown) => {
      this.sourceError ??= error;
      this.extract.destroy(error as Error);
    };
    source.on('error', onSourceError);
    if (earlyError !== undefined) onSourceError(earlyError);
    source.pipe(this.extract);
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The next entry, or undefined at the end of the archive. Every entry must be read to its end first. */
  async next(): Promise<TarEntry | undefined> {
    let result: IteratorResult<TarEntry>;
    try {
      result = await this.iterator.next();
    } catch (error) {
      throw await this.failure(error);
    }
    if (result.done) return undefined;
    this.last = normalizeName(result.value.header.name);
    const size = result.value.header.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      // tar-stream hands out a size it cannot decode (some base-256 forms) as null and then waits for data
      // forever: stop here instead.
      const error = new ArchiveFormatError(`the save archive is corrupt: entry "${this.last}" has no valid size`);
      this.destroy(error);
      throw error;
    }
    return result.value;
  }

  /**
   * explain(), once the parser has said why it stopped: an entry can be seen destroyed (streamx's "Stream was
   * destroyed") a moment before the parser's own error is emitted.
   */
  async failure(error: unknown): Promise<unknown> {
    if (isStreamDestroyed(error) && this.parseError === undefined) await new Promise((resolve) => setImmediate(resolve));
    return this.explain(error);
  }

  /** The error to report for one met while reading: the abort reason, ours, or an ArchiveFormatError. */
  explain(error: unknown): unknown {
    if (this.signal?.aborted) return this.signal.reason;
    if (error instanceof DockerClairError) return error;
    if (isStreamDestroyed(error) && this.parseError !== undefined) error = this.parseError;
    const message = error instanceof Error ? error.message : String(error);
    const at = this.last === undefined ? 'at its start' : `at entry "${this.last}"`;
    if (error === this.sourceError) {
      return new ArchiveFormatError(`reading the save archive failed ${at}: ${message}`,
        'the export was interrupted: check the Docker daemon and its connection', { cause: error });
    }
    if (/unexpected end of data/i.test(message)) {
      return new ArchiveFormatError(`the save archive is truncated: it ends inside entry "${this.last ?? '?'}"`,
        'the export was cut short: check the daemon log and the free space under its data root', { cause: error });
    }
    if (/invalid tar header|unknown format|invalid header/i.test(message)) {
      return this.last === undefined
        ? new ArchiveFormatError('not a docker save archive: the input is not a tar file',
            'give an archive made by `docker save` (uncompressed; gunzip it first if needed)', { cause: error })
        : new ArchiveFormatError(`the save archive is corrupt: invalid tar header after entry "${this.last}"`,
            undefined, { cause: error });
    }
    return new ArchiveFormatError(`the save archive is corrupt ${at}: ${message}`, undefined, { cause: error });
  }

  /** Destroys the source and the parser: the daemon stops exporting. Idempotent. */
  destroy(reason?: unknown): void {
    this.source.unpipe(this.extract);
    if (!this.source.destroyed) this.source.destroy(reason as Error | undefined);
    this.extract.destroy(reason as Error | undefined);
  }

  close(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.destroy();
  }
}

/** The chunks of an entry's data: read them all (drain()), or the archive cannot move on. */
export function entryChunks(entry: TarEntry): AsyncIterator<Buffer> {
  return entry[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
}

function isStreamDestroyed(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'STREAM_DESTROYED';
}

export function normalizeName(name: string): string {
  return name.replace(/^(?:\.?\/)+/, '');
}

/** `<alg>:<hex>` from `blobs/<alg>/<hex>`. */
export function blobDigest(name: string): string | undefined {
  const m = BLOB.exec(normalizeName(name));
  return m?.[1]?.replace('/', ':');
}

/** The target of a (symbolic or hard) link entry, as a name in the archive. */
export function linkTarget(name: string, linkname: string, type: string): string {
  // Hard links name the target from the archive root, symlinks relative to their directory.
  return type === 'link' ? normalizeName(linkname) : normalizeName(posix.normalize(posix.join(posix.dirname(name), linkname)));
}

/** Reads the rest of an entry and throws it away. */
export async function drain(chunks: AsyncIterator<Buffer>): Promise<void> {
  for (let r = await chunks.next(); !r.done; r = await chunks.next());
}

/** Reads up to `limit` bytes of an entry (the rest is drained): what metadata needs. */
export async function readSmall(chunks: AsyncIterator<Buffer>, size: number, limit = METADATA_LIMIT): Promise<Buffer | undefined> {
  if (size > limit) {
    await drain(chunks);
    return undefined;
  }
  const parts: Buffer[] = [];
  for (let r = await chunks.next(); !r.done; r = await chunks.next()) parts.push(r.value);
  return Buffer.concat(parts);
}

/** Reads at least `want` bytes (or the whole entry, if shorter) as the first chunks of an entry. */
async function readHead(chunks: AsyncIterator<Buffer>, want: number): Promise<Buffer[]> {
  const head: Buffer[] = [];
  let have = 0;
  while (have < want) {
    const r = await chunks.next();
    if (r.done) break;
    head.push(r.value);
    have += r.value.length;
  }
  return head;
}

/** What the first bytes of a blob say it is: a layer (with its compression), JSON, or something else. */
export function sniffBlob(head: Buffer, size: number): LayerCompression | 'json' | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'none';
  // An empty layer: a tar holding nothing but its end-of-archive zero blocks.
  if (size >= 1024 && size % 512 === 0 && head.length >= 512 && head.subarray(0, 512).every((b) => b === 0)) return 'none';
  const first = head.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first === 0x7b || first === 0x5b) return 'json';
  return undefined;
}

export function parseJson(buffer: Buffer, what: string): unknown {
  try {
    return JSON.parse(buffer.toString('utf8')) as unknown;
  } catch (error) {
    throw new ArchiveFormatError(`the save archive is corrupt: ${what} is not valid JSON`, undefined, { cause: error });
  }
}

export function parseManifest(buffer: Buffer): Save.Manifest {
  const json = parseJson(buffer, 'manifest.json');
  const items = Array.isArray(json) ? (json as unknown[]) : undefined;
  const bad = !items || items.length === 0 || items.some((item) => {
    const i = item as Partial<Save.ManifestItem> | null;
    return typeof i !== 'object' || i === null || typeof i.Config !== 'string' || !Array.isArray(i.Layers) ||
      i.Layers.some((l) => typeof l !== 'string') || (i.RepoTags != null && !Array.isArray(i.RepoTags));
  });
  if (bad) throw new ArchiveFormatError('the save archive is corrupt: manifest.json is not a list of {Config, RepoTags, Layers}');
  return items as Save.Manifest;
}

/** The config digest a manifest.json item names: `<hex>.json` (legacy) or `blobs/<alg>/<hex>`. */
export function configDigest(item: Save.ManifestItem): string | undefined {
  const legacy = LEGACY_CONFIG.exec(normalizeName(item.Config));
  return legacy ? `sha256:${legacy[1]}` : blobDigest(item.Config);
}

/**
 * The manifest.json item of `imageId`: the one whose config is the image ID, the only one, or (containerd
 * store, where the image ID is an index or manifest digest) the one reached from that blob.
 */
export function selectManifestItem(manifest: Save.Manifest, imageId: string | undefined,
  blobs: ReadonlyMap<string, unknown>): Save.ManifestItem {
  const byConfig = imageId === undefined ? undefined : manifest.find((item) => configDigest(item) === imageId);
  if (byConfig) return byConfig;
  if (manifest.length === 1 && manifest[0]) return manifest[0];
  if (imageId !== undefined) {
    const configs = new Set<string>();
    const visit = (digest: string, depth: number) => {
      const blob = blobs.get(digest) as Partial<Save.Index & Save.ImageManifest> | undefined;
      if (!blob || depth > 4) return;
      if (typeof blob.config?.digest === 'string') configs.add(blob.config.digest);
      for (const m of Array.isArray(blob.manifests) ? blob.manifests : []) {
        if (typeof m?.digest === 'string') visit(m.digest, depth + 1);
      }
    };
    visit(imageId, 0);
    const reached = manifest.find((item) => configs.has(configDigest(item) ?? ''));
    if (reached) return reached;
  }
  throw new ArchiveFormatError(`the save archive holds ${manifest.length} images and none of them is ${imageId ?? 'named'}`,
    'save one image per archive');
}

// ---------------------------------------------------------------------------------------------------------------
// One layer in flight: its body, hashed as it streams.

class LayerFeed {
  readonly layer: LayerEntry;
  private readonly body: Readable;
  /** Undefined when the layer is not checked here (LayerEntry.checked). */
  private readonly hash: Hash | undefined;
  /** Bytes read from the tar entry, and those of them pushed into the body. */
  private bytes = 0;
  private pushed = 0;
  /** The tar entry was read to its end. */
  private ended = false;
  /** ...and hashed to the announced digest. */
  private verified = false;
  private failure: unknown;
  /** settle() took over: nothing more goes into the body. */
  private detached = false;
  private wanted = false;
  private running = false;
  private pumped: Promise<void> = Promise.resolve();

  constructor(
    private readonly chunks: AsyncIterator<Buffer>,
    private readonly head: Buffer[],
    info: Omit<LayerEntry, 'body'>,
    private readonly explain: (error: unknown) => Promise<unknown>,
    /** Why the digest is only a guess (a legacy top layer not confirmed yet): a mismatch is then a mapping error. */
    private readonly guess?: string,
  ) {
    this.hash = info.checked ? createHash(info.digest.slice(0, info.digest.indexOf(':'))) : undefined;
    this.body = new Readable({
      read: () => {
        this.wanted = true;
        this.pump();
      },
    });
    // Failures also reach the caller through the iterator: a consumer that let go of the body must not crash.
    this.body.on('error', () => {});
    this.layer = { ...info, body: this.body };
  }

  private pump(): void {
    if (this.running || this.detached) return;
    this.running = true;
    this.pumped = this.pumpLoop();
  }

  private async pumpLoop(): Promise<void> {
    try {
      while (this.wanted && !this.detached && !this.ended && !this.body.destroyed) {
        this.wanted = false;
        const chunk = await this.pull();
        if (chunk === null) break;
        if (!this.detached && !this.body.destroyed) {
          this.pushed += chunk.length;
          this.body.push(chunk);
        }
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.running = false;
    }
  }

  /** The next chunk (hashed), or null at the end of the entry once its digest has been checked. */
  private async pull(): Promise<Buffer | null> {
    let chunk = this.head.shift();
    if (chunk === undefined) {
      let r: IteratorResult<Buffer>;
      try {
        r = await this.chunks.next();
      } catch (error) {
        throw await this.explain(error);
      }
      if (r.done) {
        this.finish();
        return null;
      }
      chunk = r.value;
    }
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    return chunk;
  }

  private finish(): void {
    this.ended = true;
    const { digest, tarName, size } = this.layer;
    const actual = this.hash ? `${digest.slice(0, digest.indexOf(':'))}:${this.hash.digest('hex')}` : digest;
    if (actual !== digest || this.bytes !== size) {
      const mismatch = this.hash
        ? `expected ${digest}, the ${this.bytes} bytes read hash to ${actual}`
        : `expected ${size} bytes, read ${this.bytes}`;
      this.fail(this.guess
        ? new LegacyLayerMappingError(`legacy directory ${posix.dirname(tarName)} was taken for ${this.guess}, but it is not: ${mismatch}`,
            'save the image by ID, one image per archive; a hashing pass can map the layers instead')
        : new ArchiveFormatError(`layer ${tarName} does not match its digest: ${mismatch}`,
            'the archive is corrupt, or the image changed while it was exported'));
      return;
    }
    this.verified = true;
    // Only a body that got every byte ends; one the consumer let go of is destroyed by settle().
    if (!this.body.destroyed && this.pushed === this.bytes) this.body.push(null);
  }

  fail(error: unknown): void {
    this.failure ??= error;
    if (!this.body.destroyed) this.body.destroy(error instanceof Error ? error : new Error(String(error)));
  }

  /** Waits until the entry is read to its end, draining what the consumer left; throws what went wrong. */
  async settle(): Promise<void> {
    this.detached = true;
    await this.pumped;
    try {
      while (!this.ended && this.failure === undefined) {
        if ((await this.pull()) === null) break;
      }
    } catch (error) {
      this.fail(error);
    }
    if (this.failure !== undefined) throw this.failure;
    const complete = this.verified && this.pushed === this.bytes && this.body.readableLength === 0;
    if (!complete && !this.body.destroyed) this.body.destroy();
  }

  /** The iterator is going away (early return, error): a body not yet complete ends with an error. */
  abandon(): void {
    if (!(this.verified && this.pushed === this.bytes) && !this.body.destroyed) {
      this.body.destroy(new ArchiveFormatError(`reading the save archive stopped before layer ${this.layer.tarName} was complete`));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Legacy saves: which layer a `<v1id>/` directory holds.

class LegacyMapping {
  /** The computed directories (all but the top layer) → layer index. */
  private byDir = new Map<string, number>();
  private computed: string[] = [];
  private created = LEGACY_EPOCH_CREATED;
  /** The top layer's directory; confirmed once its parent is the computed v1 ID below it. */
  private top: { dir: string; parent: string | undefined; confirmed: boolean } | undefined;
  /** Directories whose json was read: parent, and whether it is the top-layer form (with the image config). */
  private readonly seen = new Map<string, { parent: string | undefined; topForm: boolean }>();
  /** Directories of other images (recognised only once the top layer confirmed the computed IDs). */
  private readonly foreign = new Set<string>();

  constructor(private readonly diffIds: readonly string[]) {
    this.compute();
  }

  private compute(): void {
    this.computed = this.diffIds.length > 0 ? legacyV1Ids(this.diffIds, { created: this.created }) : [];
    this.byDir = new Map(this.computed.map((id, i) => [id, i]));
  }

  /** The parent the top layer's json must name. */
  private get topParent(): string | undefined {
    return this.diffIds.length >= 2 ? this.computed[this.diffIds.length - 2] : undefined;
  }

  /** The layer index of a directory, if known. */
  indexOf(dir: string): number | undefined {
    return this.byDir.get(dir) ?? (this.top?.dir === dir ? this.diffIds.length - 1 : undefined);
  }

  /** `<dir>/json` was read: confirm a computed ID, find the top layer, or learn the daemon's epoch. */
  json(dir: string, v1: Save.V1Json): void {
    if (typeof v1 !== 'object' || v1 === null || (v1.id !== undefined && v1.id !== dir)) {
      throw new ArchiveFormatError(`the save archive is corrupt: ${dir}/json does not describe layer ${dir}`);
    }
    const parent = typeof v1.parent === 'string' && v1.parent !== '' ? v1.parent : undefined;
    const topForm = v1.config !== undefined && v1.config !== null;
    this.seen.set(dir, { parent, topForm });
    if (this.diffIds.length === 0) return;
    if (this.byDir.has(dir)) return this.checkParent(dir, parent);
    if (parent === this.topParent) {
      if (this.top?.confirmed && this.top.dir !== dir) throw this.unknown(dir, parent, 'a second directory on top of the same parent');
      if (this.top) this.foreign.add(this.top.dir); // an unconfirmed guess, now disproved
      this.top = { dir, parent, confirmed: true };
      return;
    }
    // time.Unix(0, 0) marshals in the daemon's time zone: learn it from a layer below the top, compute again.
    if (!topForm && typeof v1.created === 'string' && v1.created !== this.created) {
      this.created = v1.created;
      this.compute();
      for (const [d, s] of this.seen) if (this.byDir.has(d)) this.checkParent(d, s.parent);
      if (this.top) this.top.confirmed = this.top.parent === this.topParent;
      if (this.byDir.has(dir)) return;
    }
    // The top layer's json may come before those of the layers below: tentatively, the hash will tell.
    if (topForm && this.top === undefined) {
      this.top = { dir, parent, confirmed: false };
      return;
    }
    if (this.top?.confirmed) {
      this.foreign.add(dir);
      return;
    }
    throw this.unknown(dir, parent);
  }

  private checkParent(dir: string, parent: string | undefined): void {
    const index = this.byDir.get(dir) as number;
    const expected = index === 0 ? undefined : this.computed[index - 1];
    if (parent !== expected) {
      throw new LegacyLayerMappingError(
        `legacy layer directory ${dir} names parent ${parent ?? '(none)'}, but the v1 IDs computed from RootFS.Layers say ${expected ?? '(none)'}`,
        'save the image by ID, one image per archive');
    }
    if (this.top && !this.top.confirmed && this.top.parent === this.topParent) this.top.confirmed = true;
  }

  private unknown(dir: string, parent: string | undefined, why?: string): LegacyLayerMappingError {
    return new LegacyLayerMappingError(
      `cannot tell which layer legacy directory ${dir} holds (parent ${parent ?? '(none)'}): ` +
        (why ?? `its v1 ID is neither computed from the ${this.diffIds.length} RootFS layers nor the top layer's`),
      'save the image by ID, one image per archive; a hashing pass can map the layers instead');
  }

  /**
   * The digest of `<dir>/layer.tar` before its bytes are read (undefined: another image's layer), and whether
   * it is a guess: a top layer not yet confirmed by the IDs below it.
   */
  digestOf(dir: string): { digest: string; guess?: string } | undefined {
    const guess = 'the top layer';
    const index = this.indexOf(dir);
    if (index !== undefined) {
      const digest = this.diffIds[index] as string;
      return this.top?.dir === dir && !this.top.confirmed ? { digest, guess } : { digest };
    }
    if (this.foreign.has(dir)) return undefined;
    // No json before it (moby always writes one): the directory left over is the top layer; the hash will tell.
    if (!this.seen.has(dir) && this.top === undefined && this.diffIds.length > 0) {
      this.top = { dir, parent: undefined, confirmed: false };
      return { digest: this.diffIds[this.diffIds.length - 1] as string, guess };
    }
    throw this.unknown(dir, this.seen.get(dir)?.parent);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The archive as a whole: what each entry is, and what the image is at the end.

class SaveReader {
  private readonly diffIds: ReadonlySet<string>;
  private readonly legacy: LegacyMapping;
  private manifest: Save.Manifest | undefined;
  private readonly retained = new Map<string, unknown>();
  private retainedBytes = 0;
  private readonly deliveredLayers = new Map<string, LayerCompression>();
  private sawLegacy = false;
  private sawBlobs = false;

  constructor(
    private readonly image: SaveImage,
    private readonly known: ReadonlyMap<string, string> = new Map(),
    private readonly verify: 'all' | 'guesses' = 'all',
  ) {
    this.diffIds = new Set(image.diffIds);
    this.legacy = new LegacyMapping(image.diffIds);
  }

  /** Reads or drains one entry; a layer comes back as a feed whose body the caller hands out. */
  async take(entry: TarEntry, entries: TarEntries): Promise<LayerFeed | undefined> {
    const { header } = entry;
    const name = normalizeName(header.name);
    const size = header.size ?? 0;
    const type = header.type ?? 'file';
    const chunks = entryChunks(entry);
    const explain = (error: unknown) => entries.failure(error);
    const feed = (digest: string, compression: LayerCompression, head: Buffer[], guess?: string) =>
      new LayerFeed(chunks, head, { digest, size, tarName: name, compression, checked: this.verify === 'all' || guess !== undefined },
        explain, guess);

    if (type !== 'file' && type !== 'contiguous-file') {
      // Directories, and duplicate legacy layers as links to the first copy (possibly before it): skipped.
      if (LEGACY_LAYER.test(name)) this.sawLegacy = true;
      await drain(chunks);
      return undefined;
    }
    let m: RegExpExecArray | null;
    if ((m = LEGACY_LAYER.exec(name))) {
      this.sawLegacy = true;
      const known = this.known.get(name);
      const mapped = known === undefined ? this.legacy.digestOf(m[1] as string) : { digest: known };
      if (mapped !== undefined) return feed(mapped.digest, 'none', [], mapped.guess);
    } else if ((m = LEGACY_JSON.exec(name))) {
      this.sawLegacy = true;
      const text = await readSmall(chunks, size);
      if (text && !this.known.size) this.legacy.json(m[1] as string, parseJson(text, name) as Save.V1Json);
      return undefined;
    } else if (name === 'manifest.json') {
      const text = await readSmall(chunks, size);
      if (!text) throw new ArchiveFormatError(`the save archive is corrupt: manifest.json is larger than ${METADATA_LIMIT} bytes`);
      this.manifest = parseManifest(text);
      return undefined;
    } else if (BLOB.test(name)) {
      this.sawBlobs = true;
      const digest = blobDigest(name) as string;
      if (this.diffIds.has(digest) || this.known.get(name) === digest) return feed(digest, 'none', []);
      const head = await readHead(chunks, Math.min(SNIFF_BYTES, size));
      const kind = sniffBlob(Buffer.concat(head), size);
      if (kind === 'json' && size <= METADATA_LIMIT && this.retainedBytes + size <= RETAINED_LIMIT) {
        const rest = await readSmall(chunks, size);
        this.retainedBytes += size;
        try {
          this.retained.set(digest, JSON.parse(Buffer.concat([...head, rest ?? Buffer.alloc(0)]).toString('utf8')));
        } catch {
          // Not JSON after all: nothing the reader needs.
        }
        return undefined;
      }
      if (kind !== undefined && kind !== 'json') return feed(digest, kind, head);
    }
    await drain(chunks);
    return undefined;
  }

  delivered(layer: LayerEntry): void {
    this.deliveredLayers.set(layer.digest, layer.compression);
  }

  end(): ArchiveEnd {
    if (!this.manifest) {
      if (!this.sawLegacy && !this.sawBlobs) {
        throw new ArchiveFormatError('not a docker save archive: no manifest.json, no blobs/ and no <v1id>/layer.tar entries',
          'give an archive made by `docker save`');
      }
      throw new ArchiveFormatError('the save archive has no manifest.json (truncated, or not written by docker save)',
        'the export was cut short, or the archive was repacked: save the image again');
    }
    const item = selectManifestItem(this.manifest, this.image.id, this.retained);
    const diffIds = this.image.diffIds;
    if (diffIds.length > 0 && item.Layers.length !== diffIds.length) {
      throw new ArchiveFormatError(
        `manifest.json lists ${item.Layers.length} layers for the image, its RootFS has ${diffIds.length}`,
        'the image changed while it was exported: scan it again');
    }
    const legacy = LEGACY_CONFIG.test(normalizeName(item.Config));
    const layers = item.Layers.map((path, i) => {
      const name = normalizeName(path);
      let digest: string | undefined;
      if (legacy) {
        const dir = LEGACY_LAYER.exec(name)?.[1];
        const index = dir === undefined ? undefined : this.legacy.indexOf(dir);
        digest = this.known.get(name) ?? (index === undefined ? diffIds[i] : diffIds[index]);
      } else {
        digest = blobDigest(name);
      }
      if (digest === undefined) throw new ArchiveFormatError(`manifest.json names layer "${path}", which is not a layer entry`);
      if (legacy && diffIds[i] !== undefined && digest !== diffIds[i]) {
        throw new ArchiveFormatError(`manifest.json layer ${i + 1} (${path}) is ${digest}, RootFS.Layers says ${diffIds[i]}`);
      }
      if (!this.deliveredLayers.has(digest)) throw missingFromArchive(`layer ${i + 1} of ${item.Layers.length}`, path, digest);
      return digest;
    });
    const format: SaveFormat = legacy ? 'legacy'
      : layers.every((d, i) => d === diffIds[i] && this.deliveredLayers.get(d) === 'none') ? 'oci' : 'containerd';
    const config = configDigest(item);
    return { kind: 'end', format, layers, ...(config ? { config } : {}), repoTags: item.RepoTags ?? [] };
  }
}
