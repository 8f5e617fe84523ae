// `--input PATH|-`: a `docker save` archive as the source of images, without a daemon.
//
// What the scan needs BEFORE the layers stream by is the image's identity (the config digest: the manifest
// hash Clair is asked about first, so a warm rescan reads no layer) and, for a legacy archive, its diffIDs
// (a `<v1id>/layer.tar` only becomes a digest through them). Both live in entries that come late or anywhere:
// manifest.json is written last, and the config is `<hex>.json` or `blobs/sha256/<hex>`, placed by its hash.
//
//   A FILE is read at most twice per image, and its layer bytes once:
//     1. open(): a walk over the tar HEADERS only, seeking past every entry body, plus the few metadata
//        entries (manifest.json, image configs) read in place: some KB, whatever the image size. It gives
//        every image in the archive, its config digest, diffIDs and the exact layer digests (for legacy
//        archives straight from manifest.json, so the v1-ID mapping can neither be needed nor fail).
//     2. stream(): the one read of the layer bytes, done only when Clair does not have the image yet.
//     A hash pass (reading and hashing every layer first) is never needed for a file: seeking gives the
//     metadata for free. A file that cannot seek (a FIFO, /dev/stdin) is read as a stream.
//   A STREAM (stdin) is read once, and nothing is buffered beyond the metadata before its first layer
//   (probeSaveStream): the probed bytes are replayed in front of the rest.
//     - OCI layout (Engine >= 25) and containerd store: layer blobs are named by the digest of their bytes
//       and told from JSON blobs by their first bytes, so they can be served as they pass. The image's
//       identity comes from manifest.json, at the end; Clair cannot be asked first (a warm rescan reads
//       stdin through, and Clair, which already has every layer, fetches none).
//     - legacy (Engine < 25): works only when the image config sorts before the first layer directory (it
//       holds the diffIDs the directories are mapped with); otherwise the archive needs a file.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  BLOB,
  LEGACY_CONFIG,
  LEGACY_JSON,
  LEGACY_LAYER,
  METADATA_LIMIT,
  blobDigest,
  configDigest,
  linkTarget,
  missingFromArchive,
  normalizeName,
  parseJson,
  parseManifest,
  type SaveFormat,
} from '../save/reader.js';
import type * as Save from '../save/format.js';
import { ArchiveFormatError, DockerClairError, ImageNotFoundError, UsageError, errnoCode } from '../runtime/errors.js';

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

// ---------------------------------------------------------------------------------------------------------------
// Tar headers (POSIX ustar, PAX and GNU long names, as Go's archive/tar and containerd write them).

type EntryType = 'file' | 'link' | 'symlink' | 'directory' | 'other';

export interface TarHeader {
  name: string;
  type: EntryType;
  size: number;
  /** Offset of the entry's data in the archive. */
  offset: number;
  linkname?: string;
}

const BLOCK = 512;
const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;

function cString(block: Buffer, start: number, length: number): string {
  const end = block.indexOf(0, start);
  return block.toString('utf8', start, end < 0 || end > start + length ? start + length : end);
}

function numeric(block: Buffer, start: number, length: number): number {
  const first = block[start] ?? 0;
  if (first & 0x80) {
    // GNU base-256: big-endian, the top bit of the first byte is the marker and the next one the sign. No
    // negative number is a size or a checksum: -1 stands for all of them (exact near zero, unlike 2^95 - n).
    if (first & 0x40) return -1;
    let value = first & 0x3f;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + (block[i] ?? 0);
    return value;
  }
  // Octal, padded with NULs or spaces on either side: leading NULs are skipped as tar-stream, which reads the
  // archive afterwards, skips them (GNU tar reads such a field as 0).
  const text = block.toString('latin1', start, start + length).replace(/^[\0 ]+|[\0 ]+$/g, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return numeric(block, 148, 8) === sum;
}

/**
 * PAX records: `<length> <key>=<value>\n`, NULs allowed after the last one. undefined when malformed (a length
 * that does not end at a newline, no '=', a size that is not decimal): GNU tar and Go's archive/tar refuse such
 * a header, and a guess at it would misplace every entry after it.
 */
function paxRecords(data: Buffer): Map<string, string> | undefined {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length && data[pos] !== 0) {
    const space = data.indexOf(0x20, pos);
    const digits = space < 0 ? '' : data.toString('latin1', pos, space);
    const end = /^\d{1,9}$/.test(digits) ? pos + Number(digits) : Number.NaN;
    const eq = data.indexOf(0x3d, space + 1);
    if (!(end <= data.length) || data[end - 1] !== 0x0a || eq < 0 || eq >= end - 1) return undefined;
    out.set(data.toString('utf8', space + 1, eq), data.toString('utf8', eq + 1, end - 1));
    pos = end;
  }
  const size = out.get('size');
  return size === undefined || /^\d+$/.test(size) ? out : undefined;
}

/** Reads `length` bytes at `offset`; fewer at the end of the archive. */
export type ReadAt = (offset: number, length: number) => Promise<Buffer>;

/**
 * Walks the headers of a tar through `read`, never reading an entry's data (the consumer reads what it
 * wants). `total` (the archive's size, when known) lets it detect an archive cut short inside an entry (its
 * data or the padding to the next block).
 */
export async function* walkTar(read: ReadAt, total?: number): AsyncGenerator<TarHeader> {
  let pos = 0;
  let last: string | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  let paxData: Buffer | undefined;
  for (;;) {
    const block = await read(pos, BLOCK);
    if (block.length === 0) return; // no end-of-archive blocks: tolerated, as tar-stream does
    if (block.length < BLOCK) throw truncated(last);
    if (block.every((b) => b === 0)) return;
    if (!checksumOk(block)) {
      if (last === undefined) {
        throw block[0] === 0x1f && block[1] === 0x8b
          ? new ArchiveFormatError('not a docker save archive: the input is gzip-compressed',
              'give the archive uncompressed: gunzip it first (docker save writes a plain tar)')
          : new ArchiveFormatError('not a docker save archive: the input is not a tar file',
              'give an archive made by `docker save` (uncompressed; gunzip it first if needed)');
      }
      throw new ArchiveFormatError(`the save archive is corrupt: invalid tar header after entry "${last}"`);
    }
    const flag = String.fromCharCode(block[156] ?? 0);
    const offset = pos + BLOCK;
    if (flag === 'x' || flag === 'L' || flag === 'K' || flag === 'g') {
      const size = entrySize(numeric(block, 124, 12), last);
      pos = offset + padded(size);
      if (total !== undefined && pos > total) throw truncated(cString(block, 0, 100));
      // A global header too: the walk skips it, but tar-stream reads it, and not one of gigabytes.
      if (size > METADATA_LIMIT) throw new ArchiveFormatError(`the save archive is corrupt: a ${size}-byte tar extended header`);
      if (flag === 'g') continue;
      const data = await read(offset, size);
      if (data.length < size) throw truncated(last);
      if (flag === 'x') paxData = data;
      else if (flag === 'L') longName = cString(data, 0, data.length);
      else longLink = cString(data, 0, data.length);
      continue;
    }
    // Read only for the entry it applies to: GNU tar ignores one with no entry after it.
    const pax = paxData === undefined ? new Map<string, string>() : paxRecords(paxData);
    if (!pax) throw new ArchiveFormatError(`the save archive is corrupt: a malformed PAX header ${after(last)}`);
    // The prefix field is POSIX ustar's ("ustar\0"): GNU headers ("ustar  ") keep atime and ctime there.
    const ustar = block.toString('latin1', 257, 263) === 'ustar\0';
    const prefix = ustar ? cString(block, 345, 155) : '';
    const rawName = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${cString(block, 0, 100)}` : cString(block, 0, 100));
    const linkname = pax.get('linkpath') ?? longLink ?? cString(block, 157, 100);
    // A PAX size record stands for the size field (whose octal stops short of 8 GiB).
    const paxSize = pax.get('size');
    const size = entrySize(paxSize !== undefined ? Number(paxSize) : numeric(block, 124, 12), last);
    const type: EntryType = flag === '0' || flag === '\0' || flag === '7' ? 'file'
      : flag === '1' ? 'link' : flag === '2' ? 'symlink' : flag === '5' ? 'directory' : 'other';
    // A directory has no data, whatever its size field says: tar-stream (which reads the archive afterwards)
    // and GNU tar read the next header right after it.
    const data = type === 'directory' ? 0 : size;
    pos = offset + padded(data);
    if (total !== undefined && pos > total) throw truncated(rawName); // the padding too: tar-stream reads it
    paxData = undefined;
    longName = undefined;
    longLink = undefined;
    const name = normalizeName(rawName);
    last = name;
    yield { name, type, size: type === 'file' ? size : 0, offset, ...(linkname ? { linkname } : {}) };
  }
}

/**
 * `size`, when it is one: not NaN (no octal digits), not negative (a '-' or a negative base-256 number), and
 * exact (below 2^53). Past such a size no reader agrees on where the next header is.
 */
function entrySize(size: number, last: string | undefined): number {
  if (Number.isSafeInteger(size) && size >= 0) return size;
  throw new ArchiveFormatError(`the save archive is corrupt: a tar header ${after(last)} has no valid size`);
}

const after = (last: string | undefined) => (last === undefined ? 'at its start' : `after entry "${last}"`);

function truncated(entry: string | undefined): ArchiveFormatError {
  return new ArchiveFormatError(`the save archive is truncated: it ends inside entry "${entry ?? '?'}"`,
    'the archive was cut short: save the image again');
}

const sha256Of = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface ConfigFacts {
  diffIds: string[];
  os: string;
  architecture: string;
}

/** rootfs.diff_ids, os and architecture of an image config; `what` names it in errors. */
function readConfig(data: Buffer, what: string): ConfigFacts {
  const config = parseJson(data, what) as Partial<Save.ImageConfig> | null;
  const diffIds = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string')) {
    throw new ArchiveFormatError(`the save archive has no usable image config (${what}): no rootfs.diff_ids`);
  }
  return { diffIds, os: config?.os ?? '', architecture: config?.architecture ?? '' };
}

// ---------------------------------------------------------------------------------------------------------------
// Images by reference.

/** `name[:tag]` with the docker CLI's defaults spelled out: `docker.io/library/debian:latest`. */
function fullRef(ref: string): string {
  const at = ref.indexOf('@');
  const name = at < 0 ? ref : ref.slice(0, at);
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  const tagged = colon > slash ? name : `${name}:latest`;
  const first = tagged.split('/')[0] ?? '';
  const domain = tagged.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (domain) return tagged;
  return `docker.io/${tagged.includes('/') ? tagged : `library/${tagged}`}`;
}

/** Whether `ref` (a tag, an image ID or an ID prefix) names `image`. */
export function refMatches(ref: string, image: Pick<ArchiveImage, 'id' | 'repoTags'>): boolean {
  const id = /^(?:sha256:)?([0-9a-f]{4,64})$/.exec(ref);
  if (id && image.id.startsWith(`sha256:${id[1]}`)) return true;
  const want = fullRef(ref);
  return image.repoTags.some((tag) => fullRef(tag) === want);
}

function describeImages(images: readonly ArchiveImage[]): string {
  return images.map((i) => `${i.repoTags[0] ?? '(untagged)'} ${i.id.slice(0, 19)}`).join(', ');
}

// ---------------------------------------------------------------------------------------------------------------
// Files

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
  stream(): Readable {
    this.stats.reads++;
    return createReadStream(this.path);
  }
}

function unreadable(path: string, error: unknown): UsageError {
  return new UsageError(`cannot read --input ${path} (${errnoCode(error) ?? String(error)})`,
    'give the path of an archive written by `docker save`, or - to read it from stdin', { cause: error });
}

/** Every image manifest.json lists, from the entries of the walk. */
async function indexImages(entries: ReadonlyMap<string, TarHeader>, read: ReadAt):
  Promise<{ images: ArchiveImage[]; digests: Map<string, string> }> {
  const resolve = (name: string): TarHeader | undefined => {
    let entry = entries.get(name);
    for (let hops = 0; entry && entry.type !== 'file' && hops < 8; hops++) {
      if ((entry.type !== 'symlink' && entry.type !== 'link') || !entry.linkname) return undefined;
      entry = entries.get(linkTarget(entry.name, entry.linkname, entry.type));
    }
    return entry?.type === 'file' ? entry : undefined;
  };
  const content = async (entry: TarHeader, what: string): Promise<Buffer> => {
    if (entry.size > METADATA_LIMIT) throw new ArchiveFormatError(`the save archive is corrupt: ${what} is larger than ${METADATA_LIMIT} bytes`);
    const data = await read(entry.offset, entry.size);
    if (data.length < entry.size) throw truncated(entry.name);
    return data;
  };

  const manifestEntry = resolve('manifest.json');
  if (!manifestEntry) {
    const save = [...entries.keys()].some((n) => BLOB.test(n) || LEGACY_LAYER.test(n));
    throw save
      ? new ArchiveFormatError('the save archive has no manifest.json (not written by docker save, or repacked)',
          'save the image again with docker save')
      : new ArchiveFormatError('not a docker save archive: no manifest.json, no blobs/ and no <v1id>/layer.tar entries',
          'give an archive made by `docker save`');
  }
  const manifest = parseManifest(await content(manifestEntry, 'manifest.json'));
  const digests = new Map<string, string>();
  const images: ArchiveImage[] = [];
  for (const item of manifest) {
    const configName = normalizeName(item.Config);
    const configEntry = resolve(configName);
    if (!configEntry) throw missingFromArchive('the image config', item.Config, blobDigest(configName));
    const configData = await content(configEntry, item.Config);
    const id = sha256Of(configData);
    const named = configDigest(item);
    if (named !== undefined && named !== id) {
      throw new ArchiveFormatError(`the image config ${item.Config} does not match its name: its bytes hash to ${id}`,
        'the archive is corrupt: save the image again');
    }
    const facts = readConfig(configData, item.Config);
    const legacy = LEGACY_CONFIG.test(configName);
    if (legacy && item.Layers.length !== facts.diffIds.length) {
      throw new ArchiveFormatError(`manifest.json lists ${item.Layers.length} layers for ${item.Config}, its rootfs has ${facts.diffIds.length}`);
    }
    let size = 0;
    const layers = item.Layers.map((path, i) => {
      const name = normalizeName(path);
      const entry = resolve(name);
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
    const format: SaveFormat = legacy ? 'legacy'
      : layers.length === facts.diffIds.length && layers.every((d, i) => d === facts.diffIds[i]) ? 'oci' : 'containerd';
    images.push({ id, repoTags: item.RepoTags ?? [], diffIds: facts.diffIds, layers, format,
      os: facts.os, architecture: facts.architecture, size });
  }
  return { images, digests };
}

// ---------------------------------------------------------------------------------------------------------------
// Streams (stdin)

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
        const id = sha256Of(data);
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
