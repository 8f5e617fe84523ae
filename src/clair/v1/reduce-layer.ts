// A layer reduced to what Clair v1 reads (clair-files.ts): a small, valid tar holding only the matching entries,
// each with its own header blocks (GNU long names and PAX records included), byte for byte as in the layer, then
// the end-of-archive blocks. The layer is walked header by header as it streams; the bodies of other entries are
// passed over without being copied, so memory is the kept entries only.
import { createGunzip } from 'node:zlib';
import { collectChunks } from '../../save/chunks.js';
import type { LayerCompression } from '../../save/format.js';
import type { LayerBody } from '../../save/layer-feed.js';

const BLOCK = 512;
/** GNU long-name/link and PAX records larger than this are not names: the layer is not a tar Clair reads. */
const META_LIMIT = 1024 * 1024;

export class NotATarError extends Error {}

/**
 * Reads `body` (the whole layer, to its end) and returns the reduced tar. A gzip layer is decompressed (Clair v1
 * reads gzip too); a zstd layer, which Clair v1 cannot read at all, is returned whole so that Clair answers for
 * it as it would for the full layer. Throws NotATarError for bytes that are not a tar.
 */
export async function reduceLayer(body: LayerBody, compression: LayerCompression, keep: (name: string) => boolean): Promise<Buffer> {
  if (compression === 'zstd') return collectChunks(body);
  const walker = new TarReducer(keep);
  if (compression === 'gzip') await gunzipInto(body, walker);
  else for (let chunk = await body.read(); chunk; chunk = await body.read()) walker.write(chunk);
  return walker.end();
}

/** Decompresses `body` into the walker; each chunk is read once gunzip has taken in the one before. */
async function gunzipInto(body: LayerBody, walker: TarReducer): Promise<void> {
  const gunzip = createGunzip();
  const ended = new Promise<void>((resolve, reject) => {
    gunzip.on('data', (chunk: Buffer) => {
      try {
        walker.write(chunk);
      } catch (error) {
        gunzip.destroy(error as Error);
      }
    });
    gunzip.once('end', resolve);
    gunzip.once('error', reject);
  });
  ended.catch(() => {}); // awaited below; a failure while still writing must not go unhandled meanwhile
  try {
    for (let chunk = await body.read(); chunk; chunk = await body.read()) {
      const view = chunk;
      const written = new Promise<void>((resolve, reject) => {
        gunzip.write(view, (error) => (error ? reject(error) : resolve()));
      });
      await Promise.race([written, ended]);
    }
    gunzip.end();
    await ended;
  } finally {
    gunzip.destroy();
  }
}

interface Meta {
  type: string;
  size: number;
  data: Buffer[];
}

class TarReducer {
  private readonly out: Buffer[] = [];
  private head: Buffer[] = [];
  private headLength = 0;
  /** Data bytes (with padding) of the current entry still to come, and where they go (undefined: passed over). */
  private remaining = 0;
  private target: Buffer[] | undefined;
  /** A GNU long name/link or PAX entry being read, and those read, waiting for the entry they describe. */
  private meta: Meta | undefined;
  private pending: Buffer[] = [];
  private longName: string | undefined;
  private paxPath: string | undefined;
  private done = false;

  constructor(private readonly keep: (name: string) => boolean) {}

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.done) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - at);
        // A copy: a kept slice must not hold the whole (large) chunk in memory.
        if (this.target) this.target.push(Buffer.from(chunk.subarray(at, at + n)));
        this.remaining -= n;
        at += n;
        if (this.remaining === 0) this.dataDone();
        continue;
      }
      const n = Math.min(BLOCK - this.headLength, chunk.length - at);
      // A copy: the chunk may be reused before the block is complete.
      this.head.push(Buffer.from(chunk.subarray(at, at + n)));
      this.headLength += n;
      at += n;
      if (this.headLength === BLOCK) {
        const block = Buffer.concat(this.head);
        this.head = [];
        this.headLength = 0;
        this.header(block);
      }
    }
  }

  end(): Buffer {
    if (!this.done && (this.headLength > 0 || this.remaining > 0 || this.meta)) throw new NotATarError('the tar ends inside an entry');
    return Buffer.concat([...this.out, Buffer.alloc(2 * BLOCK)]);
  }

  private header(block: Buffer): void {
    if (isZero(block)) {
      this.done = true;
      return;
    }
    if (!checksumOk(block)) throw new NotATarError('a tar header has a wrong checksum');
    const type = String.fromCharCode(block[156] ?? 0);
    const size = entrySize(block);
    this.remaining = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L' || type === 'K' || type === 'x') {
      if (size > META_LIMIT) throw new NotATarError(`a tar ${type} record of ${size} bytes`);
      this.pending.push(block);
      this.meta = { type, size, data: [] };
      this.target = this.meta.data;
      if (this.remaining === 0) this.dataDone();
      return;
    }
    if (type === 'g') {
      // Global PAX records apply to every later entry: always kept.
      this.out.push(block);
      this.target = this.out;
      return;
    }
    const name = this.paxPath ?? this.longName ?? ustarName(block);
    if (this.keep(name)) {
      this.out.push(...this.pending, block);
      this.target = this.out;
    } else {
      this.target = undefined;
    }
    this.pending = [];
    this.paxPath = undefined;
    this.longName = undefined;
  }

  private dataDone(): void {
    const meta = this.meta;
    this.target = undefined;
    if (!meta) return;
    this.meta = undefined;
    const raw = Buffer.concat(meta.data);
    this.pending.push(raw);
    const data = raw.subarray(0, meta.size);
    if (meta.type === 'L') this.longName = cString(data);
    else if (meta.type === 'x') this.paxPath = paxRecord(data, 'path') ?? this.paxPath;
  }
}

function isZero(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** The header checksum (the checksum field counted as spaces), unsigned or signed, as Go's tar reader accepts. */
function checksumOk(block: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  const stored = parseInt(cString(block.subarray(148, 156)).trim() || 'x', 8);
  return stored === unsigned || stored === signed;
}

/** The size field: octal text, or GNU base-256 (high bit set) for sizes beyond 8 GiB. */
function entrySize(block: Buffer): number {
  const field = block.subarray(124, 136);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    let n = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return n;
  }
  const text = cString(field).trim();
  const size = text === '' ? 0 : parseInt(text, 8);
  if (!Number.isSafeInteger(size) || size < 0) throw new NotATarError(`a tar header has the size "${text}"`);
  return size;
}

/** The name field, with the POSIX ustar prefix field when the header has one (not in GNU headers). */
function ustarName(block: Buffer): string {
  const name = cString(block.subarray(0, 100));
  if (block.subarray(257, 263).toString('latin1') !== 'ustar\0') return name;
  const prefix = cString(block.subarray(345, 500));
  return prefix === '' ? name : `${prefix}/${name}`;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

/** One value of a PAX extended header (`<length> <key>=<value>\n` records). */
function paxRecord(data: Buffer, key: string): string | undefined {
  let at = 0;
  let found: string | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = parseInt(data.subarray(at, space).toString('latin1'), 10);
    if (!(length > 0)) break;
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === key) found = record.slice(eq + 1);
    at += length;
  }
  return found;
}
