// `--input PATH`: a `docker save` archive in a regular file as the source of images, without a daemon.
//
// What the scan needs BEFORE the layers stream by is the image's identity (the config digest: the manifest
// hash Clair is asked about first, so a warm rescan reads no layer) and, for a legacy archive, its diffIDs
// (a `<v1id>/layer.tar` only becomes a digest through them). Both live in entries that come late or anywhere:
// manifest.json is written last, and the config is `<hex>.json` or `blobs/sha256/<hex>`, placed by its hash.
//
// A file is read at most twice per image, and its layer bytes once:
//   1. open(): a walk over the tar HEADERS only, seeking past every entry body, plus the few metadata entries
//      (manifest.json, image configs) read in place: some KB, whatever the image size. It gives every image in
//      the archive, its config digest, diffIDs and the exact layer digests (for legacy archives straight from
//      manifest.json, so the v1-ID mapping can neither be needed nor fail).
//   2. stream(): the one read of the layer bytes, done only when Clair does not have the image yet.
// A hash pass (reading and hashing every layer first) is never needed for a file: seeking gives the metadata for
// free. A file that cannot seek (a FIFO, /dev/stdin) is read as a stream (stream.ts).
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Chunks } from '../save/chunks.js';
import { blobDigest, configDigest, configIdOf, detectFormat, isLegacyItem, isSaveEntry, type ManifestItem } from '../save/format.js';
import { missingFromArchive, noManifestError, parseManifest, readConfig, tooLargeError, type SaveFormat } from '../save/format.js';
import { readSaveArchive, type ArchiveEnd } from '../save/reader.js';
import { linkTarget, METADATA_LIMIT, normalizeName, truncatedError, walkTar, type ReadAt, type TarHeader } from '../save/tar.js';
import { ArchiveFormatError, DockerClairError, ImageNotFoundError, UsageError, errnoCode, type LegacyLayerMappingError } from '../runtime/errors.js';
import type { ArchiveEvents, ImageArchive, ReadOptions } from './archive.js';
import { describeImages, refMatches } from './image-ref.js';

/** One image of an archive, as its metadata describes it. */
export interface ArchiveImage {
  /** The config digest: the image ID outside the containerd store, and the manifest hash sent to Clair. */
  id: string;
  repoTags: string[];
  /** rootfs.diff_ids of the config, base first. */
  diffIds: string[];
  /** The digests of the layer entries as stored (and served), base first: diffIDs, or containerd blob digests. */
  layers: string[];
  format: SaveFormat;
  os: string;
  architecture: string;
  /** Bytes of the layer entries. */
  size: number;
}

export interface SaveArchiveFileStats {
  /** Times the file was opened: the header walk, then one per layer read. */
  reads: number;
  /** Bytes read by the header walk (headers and metadata entries). */
  walkBytes: number;
}

/** A `docker save` archive in a regular file: indexed by its headers, then streamed once per scanned image. */
export class SaveArchiveFile {
  readonly stats: SaveArchiveFileStats = { reads: 1, walkBytes: 0 };

  private constructor(
    readonly path: string,
    readonly images: readonly ArchiveImage[],
    /** Layer entry name → digest, for every legacy layer of the archive (readSaveArchive's `digests`). */
    readonly digests: ReadonlyMap<string, string>,
    walkBytes: number,
  ) {
    this.stats.walkBytes = walkBytes;
  }

  /** Walks the headers (read 1). Throws UsageError when the path cannot be read, ArchiveFormatError. */
  static async open(path: string, options: { signal?: AbortSignal } = {}): Promise<SaveArchiveFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (error) {
      throw unreadable(path, error);
    }
    try {
      const { size } = await fh.stat();
      let walkBytes = 0;
      const read: ReadAt = async (offset, length) => {
        options.signal?.throwIfAborted();
        const buffer = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
        if (buffer.length === 0) return buffer;
        const { bytesRead } = await fh.read(buffer, 0, buffer.length, offset);
        walkBytes += bytesRead;
        return buffer.subarray(0, bytesRead);
      };
      const entries = new Map<string, TarHeader>();
      for await (const header of walkTar(read, size)) entries.set(header.name, header);
      const { images, digests } = await indexImages(entries, read);
      return new SaveArchiveFile(path, images, digests, walkBytes);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (!(error instanceof DockerClairError) && errnoCode(error) !== undefined) throw unreadable(path, error);
      throw error;
    } finally {
      await fh.close();
    }
  }

  /** Whether `path` can be walked (a regular file), or has to be read as a stream (a FIFO, /dev/stdin). */
  static async isRegularFile(path: string): Promise<boolean> {
    try {
      return (await stat(path)).isFile(); // stat, not open: opening a FIFO would wait for its writer
    } catch (error) {
      throw unreadable(path, error);
    }
  }

  /** The image a reference names (tag, ID or ID prefix); ImageNotFoundError listing what the archive holds. */
  select(ref: string): ArchiveImage {
    const found = this.images.filter((image) => refMatches(ref, image));
    const [only] = found;
    if (only && found.length === 1) return only;
    if (found.length > 1) {
      throw new ImageNotFoundError(`"${ref}" names ${found.length} images in ${this.path}: ${describeImages(found)}`,
        'give a longer ID or a tag');
    }
    throw new ImageNotFoundError(`image "${ref}" is not in the archive ${this.path} (it holds ${describeImages(this.images)})`,
      'name one of the images it holds, or omit IMAGE to scan all of them');
  }

  /** One read of the whole archive, for readSaveArchive. */
  stream(): Chunks {
    this.stats.reads++;
    return fileChunks(this.path);
  }
}

const READ_SIZE = 256 * 1024;

/** A file read once from its start into one reused buffer (chunks.ts: why reused). */
function fileChunks(path: string): Chunks {
  const buffer = Buffer.allocUnsafe(READ_SIZE);
  let handle: Promise<FileHandle> | undefined;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    // FileHandle.close() waits for a read in progress.
    void handle?.then((h) => h.close()).catch(() => {});
  };
  return {
    async read() {
      if (closed) throw new Error(`${path} was closed`);
      handle ??= open(path, 'r');
      const { bytesRead } = await (await handle).read(buffer, 0, READ_SIZE, null);
      if (bytesRead > 0) return buffer.subarray(0, bytesRead);
      close();
      return null;
    },
    close,
  };
}

function unreadable(path: string, error: unknown): UsageError {
  return new UsageError(`cannot read --input ${path} (${errnoCode(error) ?? String(error)})`,
    'give the path of an archive written by `docker save`, or - to read it from stdin', { cause: error });
}

/** Every image manifest.json lists, from the entries of the walk. */
async function indexImages(entries: ReadonlyMap<string, TarHeader>, read: ReadAt):
  Promise<{ images: ArchiveImage[]; digests: Map<string, string> }> {
  const walked = new WalkedEntries(entries, read);
  const manifestEntry = walked.resolve('manifest.json');
  if (!manifestEntry) throw noManifestError([...entries.keys()].some(isSaveEntry));
  const manifest = parseManifest(await walked.content(manifestEntry, 'manifest.json'));
  const digests = new Map<string, string>();
  const images: ArchiveImage[] = [];
  for (const item of manifest) images.push(await indexImage(item, walked, digests));
  return { images, digests };
}

/** The entries of the walk, by name, and the content of the small ones. */
class WalkedEntries {
  constructor(
    private readonly entries: ReadonlyMap<string, TarHeader>,
    private readonly read: ReadAt,
  ) {}

  /** The file an entry name stands for, through links. */
  resolve(name: string): TarHeader | undefined {
    let entry = this.entries.get(name);
    for (let hops = 0; entry && entry.type !== 'file' && hops < 8; hops++) {
      if ((entry.type !== 'symlink' && entry.type !== 'link') || !entry.linkname) return undefined;
      entry = this.entries.get(linkTarget(entry.name, entry.linkname, entry.type));
    }
    return entry?.type === 'file' ? entry : undefined;
  }

  /** A metadata entry's bytes, read in place. */
  async content(entry: TarHeader, what: string): Promise<Buffer> {
    if (entry.size > METADATA_LIMIT) throw tooLargeError(what);
    const data = await this.read(entry.offset, entry.size);
    if (data.length < entry.size) throw truncatedError(entry.name);
    return data;
  }
}

/** One image of manifest.json; adds the digests of its legacy layers to `digests`. */
async function indexImage(item: ManifestItem, walked: WalkedEntries, digests: Map<string, string>): Promise<ArchiveImage> {
  const configName = normalizeName(item.Config);
  const configEntry = walked.resolve(configName);
  if (!configEntry) throw missingFromArchive('the image config', item.Config, blobDigest(configName));
  const configData = await walked.content(configEntry, item.Config);
  const id = configIdOf(configData);
  const named = configDigest(item);
  if (named !== undefined && named !== id) {
    throw new ArchiveFormatError(`the image config ${item.Config} does not match its name: its bytes hash to ${id}`,
      'the archive is corrupt: save the image again');
  }
  const facts = readConfig(configData, item.Config);
  const legacy = isLegacyItem(item);
  if (legacy && item.Layers.length !== facts.diffIds.length) {
    throw new ArchiveFormatError(`manifest.json lists ${item.Layers.length} layers for ${item.Config}, its rootfs has ${facts.diffIds.length}`);
  }
  let size = 0;
  const layers = item.Layers.map((path, i) => {
    const name = normalizeName(path);
    const entry = walked.resolve(name);
    if (!entry) throw missingFromArchive(`layer ${i + 1} of ${item.Layers.length}`, path, blobDigest(name));
    size += entry.size;
    if (!legacy) {
      const digest = blobDigest(entry.name);
      if (digest === undefined) throw new ArchiveFormatError(`manifest.json names layer "${path}", which is not a blob`);
      return digest;
    }
    const digest = facts.diffIds[i] as string;
    digests.set(name, digest);
    digests.set(entry.name, digest);
    return digest;
  });
  const format = detectFormat(item, layers, facts.diffIds);
  return { id, repoTags: item.RepoTags ?? [], diffIds: facts.diffIds, layers, format, os: facts.os, architecture: facts.architecture, size };
}

// ---------------------------------------------------------------------------------------------------------------

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
