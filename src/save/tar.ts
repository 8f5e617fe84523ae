// The one tar module: `docker save` archives are read two ways, both here.
//   - the header walk (walkTar): headers only, through reads at offsets, never an entry's data. An --input file
//     is indexed by seeking past every body, and the stream probe (source/stream.ts) looks at the first entries
//     without consuming them. POSIX ustar, PAX and GNU long names, as Go's archive/tar and containerd write them.
//   - the entry stream (TarEntries, on tar-stream's extract): every entry in order, its data read or drained; what
//     the layer stream and the hash pass read. Its errors become ArchiveFormatError.
// Both agree with tar-stream on the edge cases (leading NULs, a directory's size), since a file walked first is
// then read by tar-stream.
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { ArchiveFormatError, DockerClairError } from '../runtime/errors.js';

/** Largest entry read into memory: metadata (manifest.json, `<v1id>/json`, JSON blobs) and tar extended headers. */
export const METADATA_LIMIT = 1024 * 1024;

/** A tar entry as tar-stream hands it out: a streamx Readable with its header. */
export type TarEntry = tar.ExtractEvents['entry'][1];

export function normalizeName(name: string): string {
  return name.replace(/^(?:\.?\/)+/, '');
}

/** The target of a (symbolic or hard) link entry, as a name in the archive. */
export function linkTarget(name: string, linkname: string, type: string): string {
  // Hard links name the target from the archive root, symlinks relative to their directory.
  return type === 'link' ? normalizeName(linkname) : normalizeName(posix.normalize(posix.join(posix.dirname(name), linkname)));
}

// ---------------------------------------------------------------------------------------------------------------
// The header walk.

type EntryType = 'file' | 'link' | 'symlink' | 'directory' | 'other';

export interface TarHeader {
  name: string;
  type: EntryType;
  size: number;
  /** Offset of the entry's data in the archive. */
  offset: number;
  linkname?: string;
}

/** A tar block: headers are one, data is padded to whole ones. */
export const BLOCK = 512;
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
    if (block.length < BLOCK) throw truncatedError(last);
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
      if (total !== undefined && pos > total) throw truncatedError(cString(block, 0, 100));
      // A global header too: the walk skips it, but tar-stream reads it, and not one of gigabytes.
      if (size > METADATA_LIMIT) throw new ArchiveFormatError(`the save archive is corrupt: a ${size}-byte tar extended header`);
      if (flag === 'g') continue;
      const data = await read(offset, size);
      if (data.length < size) throw truncatedError(last);
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
    if (total !== undefined && pos > total) throw truncatedError(rawName); // the padding too: tar-stream reads it
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

/** The archive ends inside `entry` (its data or the padding to the next block). */
export function truncatedError(entry: string | undefined): ArchiveFormatError {
  return new ArchiveFormatError(`the save archive is truncated: it ends inside entry "${entry ?? '?'}"`,
    'the archive was cut short: save the image again');
}

// ---------------------------------------------------------------------------------------------------------------
// The entry stream.

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
export async function readHead(chunks: AsyncIterator<Buffer>, want: number): Promise<Buffer[]> {
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
