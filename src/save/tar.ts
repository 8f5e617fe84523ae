// The one tar module: `docker save` archives are read two ways, both on one header walk (walkTar).
//   - headers only, through reads at offsets, never an entry's data: an --input file is indexed by seeking past
//     every body, and the stream probe (source/stream.ts) looks at the first entries without consuming them.
//   - the entry stream (TarEntries): every entry in order, its data handed out as the chunks of the source
//     (views, never copies) or skipped; what the layer stream and the hash pass read. Its errors are
//     ArchiveFormatError.
// POSIX ustar, PAX and GNU long names, as Go's archive/tar and containerd write them; leading NULs in numbers and
// a directory's size are read as tar-stream reads them.
import { posix } from 'node:path';
import { ArchiveFormatError, DockerClairError } from '../runtime/errors.js';
import { drain, type Chunks } from './chunks.js';

/** Largest entry read into memory: metadata (manifest.json, `<v1id>/json`, JSON blobs) and tar extended headers. */
export const METADATA_LIMIT = 1024 * 1024;

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
  // Octal, padded with NULs or spaces on either side: leading NULs are skipped, as tar-stream skips them (GNU
  // tar reads such a field as 0).
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
    if (block.length === 0) return; // no end-of-archive blocks: tolerated, as tar-stream and Go's archive/tar do
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
      // A global header too: the walk skips it, but a stream would have to read past it, and not gigabytes.
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
    // A directory has no data, whatever its size field says: tar-stream and GNU tar read the next header right
    // after it.
    const data = type === 'directory' ? 0 : size;
    pos = offset + padded(data);
    if (total !== undefined && pos > total) throw truncatedError(rawName); // the padding too: a stream reads it
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

/** An entry of a tar stream: its header, and its data as chunks that are valid until the next read(). */
export interface TarEntry {
  header: TarHeader;
  data: Pick<Chunks, 'read'>;
}

const EMPTY = Buffer.alloc(0);

/**
 * The entries of a tar read once from `source`. Entry data comes as views of the source's chunks; whatever an
 * entry leaves unread is skipped when the next entry is asked for. Errors are ArchiveFormatError (the source's
 * own wrapped in one), or the signal's reason on abort.
 */
export class TarEntries {
  private readonly headers: AsyncGenerator<TarHeader>;
  private chunk: Buffer = EMPTY;
  private at = 0;
  /** Archive offset of chunk[at]. */
  private pos = 0;
  private eof = false;
  private sourceError: { error: unknown } | undefined;
  private last: string | undefined;
  private closed = false;
  private readonly onAbort = () => this.destroy(this.signal?.reason);

  constructor(
    private readonly source: Chunks,
    private readonly signal?: AbortSignal,
  ) {
    this.headers = walkTar((offset, length) => this.readAt(offset, length));
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The next entry, or undefined at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    let result: IteratorResult<TarHeader>;
    try {
      result = await this.headers.next();
    } catch (error) {
      throw this.explain(error);
    }
    if (result.done) return undefined;
    const header = result.value;
    this.last = header.name;
    let remaining = header.size;
    const data = {
      read: async (): Promise<Buffer | null> => {
        if (remaining === 0) return null;
        if (!(await this.fill())) throw this.explain(streamTruncated(header.name));
        const n = Math.min(remaining, this.chunk.length - this.at);
        const view = this.chunk.subarray(this.at, this.at + n);
        this.at += n;
        this.pos += n;
        remaining -= n;
        return view;
      },
    };
    return { header, data };
  }

  /** The error to report for one met while reading: the abort reason, ours, or an ArchiveFormatError. */
  explain(error: unknown): unknown {
    if (this.signal?.aborted) return this.signal.reason;
    if (error instanceof DockerClairError) return error;
    const message = error instanceof Error ? error.message : String(error);
    const at = this.last === undefined ? 'at its start' : `at entry "${this.last}"`;
    if (this.sourceError && error === this.sourceError.error) {
      return new ArchiveFormatError(`reading the save archive failed ${at}: ${message}`,
        'the export was interrupted: check the Docker daemon and its connection', { cause: error });
    }
    return new ArchiveFormatError(`the save archive is corrupt ${at}: ${message}`, undefined, { cause: error });
  }

  /** Stops the source: the daemon stops exporting. Idempotent. */
  destroy(reason?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.source.close(reason);
  }

  close(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.destroy();
  }

  /** Whether a byte is at hand (reading the next chunk of the source when needed); false at its end. */
  private async fill(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      if (this.eof) return false;
      if (this.closed) throw this.signal?.reason ?? new Error('the save archive was closed');
      let next: Buffer | null;
      try {
        next = await this.source.read();
      } catch (error) {
        this.sourceError ??= { error };
        throw error;
      }
      if (next === null) {
        this.eof = true;
        this.chunk = EMPTY;
      } else {
        this.chunk = next;
      }
      this.at = 0;
    }
    return true;
  }

  /** walkTar's reads: always forward; what lies before `offset` (unread entry data, padding) is skipped. */
  private async readAt(offset: number, length: number): Promise<Buffer> {
    if (offset < this.pos) throw new Error(`tar stream read backwards: at ${this.pos}, asked for ${offset}`);
    while (this.pos < offset) {
      // Running out here is running out inside the entry before (its data or padding).
      if (!(await this.fill())) throw streamTruncated(this.last);
      const n = Math.min(offset - this.pos, this.chunk.length - this.at);
      this.at += n;
      this.pos += n;
    }
    // A copy: headers outlive the chunk they came in.
    const out = Buffer.allocUnsafe(length);
    let have = 0;
    while (have < length && (await this.fill())) {
      const n = Math.min(length - have, this.chunk.length - this.at);
      this.chunk.copy(out, have, this.at, this.at + n);
      this.at += n;
      this.pos += n;
      have += n;
    }
    return have === length ? out : out.subarray(0, have);
  }
}

function streamTruncated(entry: string | undefined): ArchiveFormatError {
  return new ArchiveFormatError(`the save archive is truncated: it ends inside entry "${entry ?? '?'}"`,
    'the export was cut short: check the daemon log and the free space under its data root');
}

/** Reads up to `limit` bytes of an entry (the rest is drained): what metadata needs. */
export async function readSmall(data: Pick<Chunks, 'read'>, size: number, limit = METADATA_LIMIT): Promise<Buffer | undefined> {
  if (size > limit) {
    await drain(data);
    return undefined;
  }
  const out = Buffer.allocUnsafe(size);
  let have = 0;
  for (let chunk = await data.read(); chunk; chunk = await data.read()) {
    have += chunk.copy(out, have);
  }
  return have === size ? out : out.subarray(0, have);
}

/** Reads at least `want` bytes (or the whole entry, if shorter) as the first chunks of an entry, copied. */
export async function readHead(data: Pick<Chunks, 'read'>, want: number): Promise<Buffer[]> {
  const head: Buffer[] = [];
  let have = 0;
  while (have < want) {
    const chunk = await data.read();
    if (chunk === null) break;
    head.push(Buffer.from(chunk));
    have += chunk.length;
  }
  return head;
}
