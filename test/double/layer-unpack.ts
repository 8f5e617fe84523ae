/**
 * Layer bodies: compression sniffing (claircore's zreader rules) and a streaming tar reader that keeps only
 * the files a scanner asked for, plus the layer's directory tree, symlinks and whiteouts.
 */
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import * as tar from 'tar-stream';

/** zreader's Compression names, spelled as Clair's error messages print them. */
export type Compression = 'KindGzip' | 'KindZstd' | 'KindBzip2' | 'KindNone';

/** gzip `1f 8b 08`, zstd `28 b5 2f fd`, bzip2 `BZh[1-9]`, anything else (or too short) is plain. */
export function sniffCompression(head: Uint8Array): Compression {
  const b = (i: number): number => head[i] ?? -1;
  if (head.length >= 3 && b(0) === 0x1f && b(1) === 0x8b && b(2) === 0x08) return 'KindGzip';
  if (head.length >= 4 && b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return 'KindZstd';
  if (head.length >= 4 && b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68 && b(3) >= 0x31 && b(3) <= 0x39) {
    return 'KindBzip2';
  }
  return 'KindNone';
}

/** A decompressing Transform for a sniffed kind (bzip2 is never accepted, so it has none). */
export function decompressor(kind: Compression): Transform {
  switch (kind) {
    case 'KindGzip': return createGunzip();
    case 'KindZstd': return new ZstdDecompressStream();
    case 'KindNone': return new Transform({ transform: (c: Buffer, _e, cb) => cb(null, c) });
    case 'KindBzip2': throw new Error('bzip2 layers are not supported');
  }
}

class ZstdDecompressStream extends Transform {
  private readonly inner = new Decompress((data) => {
    this.push(Buffer.from(data));
  });

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.inner.push(chunk);
      cb();
    } catch (err) {
      cb(asError(err, 'zstd: corrupt input'));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.inner.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(asError(err, 'zstd: unexpected EOF'));
    }
  }
}

function asError(err: unknown, fallback: string): Error {
  return err instanceof Error ? err : new Error(fallback);
}

export interface LayerContents {
  /** Regular files the caller wanted, by normalised path (no leading `/` or `./`). */
  files: Map<string, Buffer>;
  symlinks: Map<string, string>;
  /** Every directory in the layer, explicit or implied by an entry below it. */
  dirs: Set<string>;
  /** Paths removed from lower layers by `.wh.<name>` entries. */
  whiteouts: string[];
  /** Directories marked opaque by `.wh..wh..opq`: everything below them in lower layers is hidden. */
  opaqueDirs: string[];
  /** Every non-whiteout entry path, in archive order. */
  paths: string[];
}

export function normalisePath(name: string): string {
  let p = name.replace(/\\/g, '/');
  while (p.startsWith('./')) p = p.slice(2);
  p = p.replace(/^\/+/, '').replace(/\/+$/, '');
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return parts.join('/');
}

function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function basename(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}

/**
 * A Writable that feeds decompressed bytes into a tar parser. A tar error does not fail the stream: it is
 * recorded and the rest is drained, because Clair finishes (and hashes) the download before it reads the tar.
 */
export class TarSink extends Writable {
  private readonly extract = tar.extract();
  private tarFailure: Error | undefined;
  private readonly done: Promise<void>;
  readonly contents: LayerContents = {
    files: new Map(), symlinks: new Map(), dirs: new Set(), whiteouts: [], opaqueDirs: [], paths: [],
  };

  constructor(private readonly wanted: (path: string) => boolean) {
    super();
    this.extract.on('entry', (header, stream, next) => {
      this.onEntry(header, stream, next);
    });
    this.done = new Promise<void>((resolve) => {
      this.extract.on('finish', () => resolve());
      this.extract.on('close', () => resolve());
      this.extract.on('error', (err: Error) => {
        this.tarFailure ??= err;
        resolve();
      });
    });
  }

  /** The tar error, if the archive could not be read. */
  get tarError(): Error | undefined {
    return this.tarFailure;
  }

  private addDirs(path: string): void {
    for (let d = path; d !== ''; d = dirname(d)) {
      if (this.contents.dirs.has(d)) break;
      this.contents.dirs.add(d);
    }
  }

  private onEntry(header: tar.Header, stream: tar.ExtractEvents['entry'][1], next: (err?: Error | null) => void): void {
    const path = normalisePath(header.name);
    const base = basename(path);
    const dir = dirname(path);
    if (dir !== '') this.addDirs(dir);
    const drain = (): void => {
      stream.on('end', () => next());
      stream.resume();
    };
    if (base === '.wh..wh..opq') {
      this.contents.opaqueDirs.push(dir);
      drain();
      return;
    }
    if (base.startsWith('.wh.')) {
      this.contents.whiteouts.push(dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`);
      drain();
      return;
    }
    if (path !== '') this.contents.paths.push(path);
    switch (header.type) {
      case 'directory':
        if (path !== '') this.addDirs(path);
        drain();
        return;
      case 'symlink':
        this.contents.symlinks.set(path, header.linkname ?? '');
        drain();
        return;
      case 'link': {
        const target = this.contents.files.get(normalisePath(header.linkname ?? ''));
        if (target !== undefined && this.wanted(path)) this.contents.files.set(path, target);
        drain();
        return;
      }
      case 'file':
      case 'contiguous-file':
        if (this.wanted(path)) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: unknown) => { chunks.push(c as Buffer); });
          stream.on('end', () => {
            this.contents.files.set(path, Buffer.concat(chunks));
            next();
          });
          return;
        }
        drain();
        return;
      default:
        drain();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (this.tarFailure !== undefined) {
      cb();
      return;
    }
    if (this.extract.write(chunk)) {
      cb();
      return;
    }
    let called = false;
    const go = (): void => {
      if (called) return;
      called = true;
      this.extract.off('drain', go);
      this.extract.off('error', go);
      cb();
    };
    this.extract.on('drain', go);
    this.extract.on('error', go);
  }

  override _final(cb: (error?: Error | null) => void): void {
    if (this.tarFailure === undefined) this.extract.end(undefined);
    void this.done.then(() => cb());
  }
}

/** Follows symlinks inside one layer (at most 16 hops); returns the path of the regular file it ends on. */
export function resolveInLayer(contents: LayerContents, path: string): string | undefined {
  let p = path;
  for (let hops = 0; hops < 16; hops++) {
    if (contents.files.has(p)) return p;
    const target = contents.symlinks.get(p);
    if (target === undefined) return undefined;
    p = target.startsWith('/') ? normalisePath(target) : normalisePath(`${dirname(p)}/${target}`);
  }
  return undefined;
}
