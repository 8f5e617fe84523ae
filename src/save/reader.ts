// Reads a `docker save` stream once and hands out its layers as they pass, for the layer server to pipe to
// Clair. The three formats are told apart by their entries (format.ts).
//
// Each layer's digest is known before its body is read (the entry's name, or the legacy v1-ID mapping), and the
// body is hashed while it streams: it ends only once the bytes hashed to that digest. With `verify: 'guesses'`
// only a digest that is a guess (a legacy top layer not yet confirmed) is hashed: the others are certain by the
// entry's name, and a consumer that hashes what it receives anyway (Clair v4's fetcher) catches corrupt bytes;
// hashing costs ~0.45 CPU-s per GB (docs/benchmarks.md). Nothing is written to disk and no layer is buffered;
// only metadata entries below METADATA_LIMIT are read into memory.
import { ArchiveFormatError } from '../runtime/errors.js';
import {
  BLOB,
  LEGACY_JSON,
  LEGACY_LAYER,
  RETAINED_LIMIT,
  SNIFF_BYTES,
  blobDigest,
  configDigest,
  detectFormat,
  isLegacyItem,
  isSaveEntry,
  missingFromArchive,
  noManifestError,
  parseJson,
  parseManifest,
  selectManifestItem,
  sniffBlob,
  type LayerCompression,
  type SaveFormat,
} from './format.js';
import type * as Save from './format.js';
import { LayerFeed, type LayerEntry } from './layer-feed.js';
import { LegacyMappings } from './legacy-mapping.js';
import { drain, type Chunks } from './chunks.js';
import { METADATA_LIMIT, TarEntries, normalizeName, readHead, readSmall, type TarEntry } from './tar.js';

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

/**
 * Reads a `docker save` archive once, yielding a `layer` event per layer entry in stream order, then one
 * `end` event. The consumer must finish with each layer's body before calling next() (see LayerEntry.body).
 * Errors: ArchiveFormatError (not a tar, truncated, no manifest.json, a digest mismatch, a layer never
 * delivered), LegacyLayerMappingError (a legacy directory that cannot be identified before its bytes), the
 * signal's reason on abort. Leaving the loop early (or an error) closes `source`; so does its end.
 */
export async function* readSaveArchive(
  source: Chunks,
  image: SaveImage,
  options: ReadSaveArchiveOptions = {},
): AsyncGenerator<ArchiveEvent, void, undefined> {
  yield* readSaveArchiveOf(source, [image], options);
}

/**
 * readSaveArchive for an export of several images (`GET /images/get?names=…`): each layer entry once, shared
 * layers included, then one `end` event per image, in the order of `images`.
 */
export async function* readSaveArchiveOf(
  source: Chunks,
  images: readonly SaveImage[],
  options: ReadSaveArchiveOptions = {},
): AsyncGenerator<ArchiveEvent, void, undefined> {
  const { signal } = options;
  const entries = new TarEntries(source, signal);
  const save = new SaveReader(images, options.digests, options.verify ?? 'all');
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
    for (let i = 0; i < images.length; i++) yield save.end(i);
  } catch (error) {
    throw entries.explain(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    feed?.abandon();
    entries.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The archive as a whole: what each entry is, and what the image is at the end.

class SaveReader {
  private readonly diffIds: ReadonlySet<string>;
  private readonly legacy: LegacyMappings;
  private manifest: Save.Manifest | undefined;
  private readonly retained = new Map<string, unknown>();
  private retainedBytes = 0;
  private readonly deliveredLayers = new Map<string, LayerCompression>();
  /** Whether any entry was one only a save has (for the error when manifest.json never comes). */
  private sawSave = false;

  constructor(
    private readonly images: readonly SaveImage[],
    private readonly known: ReadonlyMap<string, string> = new Map(),
    private readonly verify: 'all' | 'guesses' = 'all',
  ) {
    this.diffIds = new Set(images.flatMap((image) => image.diffIds));
    this.legacy = new LegacyMappings(images.map((image) => image.diffIds));
  }

  /** Reads or drains one entry; a layer comes back as a feed whose body the caller hands out. */
  async take(entry: TarEntry, entries: TarEntries): Promise<LayerFeed | undefined> {
    const { header } = entry;
    const { name, size, type } = header;
    const chunks = entry.data;
    this.sawSave ||= isSaveEntry(name);
    const explain = (error: unknown) => entries.explain(error);
    const feed = (digest: string, compression: LayerCompression, head: Buffer[], guess?: string) =>
      new LayerFeed(chunks, head, { digest, size, tarName: name, compression, checked: this.verify === 'all' || guess !== undefined },
        explain, guess);

    if (type !== 'file') {
      // Directories, and duplicate legacy layers as links to the first copy (possibly before it): skipped.
      await drain(chunks);
      return undefined;
    }
    let m: RegExpExecArray | null;
    if ((m = LEGACY_LAYER.exec(name))) {
      const known = this.known.get(name);
      const mapped = known === undefined ? this.legacy.digestOf(m[1] as string) : { digest: known };
      if (mapped !== undefined) return feed(mapped.digest, 'none', [], mapped.guess);
    } else if ((m = LEGACY_JSON.exec(name))) {
      const text = await readSmall(chunks, size);
      if (text && !this.known.size) this.legacy.json(m[1] as string, parseJson(text, name) as Save.V1Json, text.toString('utf8'));
      return undefined;
    } else if (name === 'manifest.json') {
      this.manifest = parseManifest(await readSmall(chunks, size));
      return undefined;
    } else if (BLOB.test(name)) {
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

  /** The end of image `n` (an index into the constructor's list). */
  end(n: number): ArchiveEnd {
    if (!this.manifest) throw noManifestError(this.sawSave);
    const image = this.images[n] as SaveImage;
    const item = selectManifestItem(this.manifest, image.id, this.retained);
    const diffIds = image.diffIds;
    if (diffIds.length > 0 && item.Layers.length !== diffIds.length) {
      throw new ArchiveFormatError(
        `manifest.json lists ${item.Layers.length} layers for the image, its RootFS has ${diffIds.length}`,
        'the image changed while it was exported: scan it again');
    }
    const legacy = isLegacyItem(item);
    const layers = item.Layers.map((path, i) => {
      const name = normalizeName(path);
      let digest: string | undefined;
      if (legacy) {
        const dir = LEGACY_LAYER.exec(name)?.[1];
        const index = dir === undefined ? undefined : this.legacy.indexOf(n, dir);
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
    const format = detectFormat(item, layers, diffIds, (d) => this.deliveredLayers.get(d) === 'none');
    const config = configDigest(item);
    return { kind: 'end', format, layers, ...(config ? { config } : {}), repoTags: item.RepoTags ?? [] };
  }
}
