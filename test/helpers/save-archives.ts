// `docker save` archives for tests.
//
// The test daemon (Engine 20.10) only writes the legacy format. These builders turn a REAL legacy save stream
// into the two other formats, shaped as their producers write them:
//   - buildOciLayoutSave: Engine >= 25 with the graphdriver store (moby daemon/internal/image/tarexport/save.go):
//     blobs/sha256/<hex> for the config, the per-layer v1 json, the uncompressed layers (named by diffID) and
//     the OCI manifest; index.json, manifest.json, oci-layout, repositories; a lexical walk of the export dir.
//   - buildContainerdSave: the containerd image store (containerd core/images/archive/exporter.go): layers as
//     stored (gzip, one zstd), named by their compressed digest; the image target is an OCI index (with an
//     attestation manifest beside the image manifest, as BuildKit pushes them); entries sorted by name.
// The layers are spilled to a temp dir (tests only: the product never touches disk) and the tarball is written
// to a file, which can be opened as many times as needed.
//
// Also: packTar() for small synthetic archives, tarFileWriter() for large ones (bodies from files), chunked() to
// feed a buffer in N-byte chunks, and zstdFrame(), a zstd encoder that emits raw (stored) blocks: valid zstd,
// which Node 20's zlib cannot write. legacy-order.ts writes legacy saves with their layers in a chosen order.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import type * as Save from '../../src/save/format.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  inToto: 'application/vnd.in-toto+json',
} as const;

export const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const hex = (digest: string): string => digest.slice(digest.indexOf(':') + 1);

// ---------------------------------------------------------------------------------------------------------------
// Small archives

export interface TarSpec {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  linkname?: string;
}

const MTIME = new Date('2026-01-02T03:04:05Z');

/** A tar (ustar, as Go's archive/tar writes for small entries) of the given entries, in the given order. */
export async function packTar(entries: readonly TarSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const collected = (async () => {
    const parts: Buffer[] = [];
    for await (const chunk of pack as AsyncIterable<Buffer>) parts.push(chunk);
    return Buffer.concat(parts);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644,
      mtime: MTIME,
      uname: 'root',
      gname: 'root',
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
    };
    if (type === 'file') {
      const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
      await new Promise<void>((resolve, reject) => pack.entry(header, data, (err) => (err ? reject(err) : resolve())));
    } else {
      await new Promise<void>((resolve, reject) => pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
    }
  }
  pack.finalize();
  return collected;
}

/** A byte-mode Readable giving `data` in chunks of `size` bytes (tar-stream's own tests feed 1-byte chunks). */
export function chunked(data: Buffer, size = data.length): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= data.length) {
        this.push(null);
        return;
      }
      const end = Math.min(offset + Math.max(1, size), data.length);
      this.push(data.subarray(offset, end));
      offset = end;
    },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// zstd with raw blocks (RFC 8878 §3.1.1): magic, a frame header with only a window descriptor (2^17 = 128 KiB,
// the largest block), then Raw_Block(s), the last one flagged.

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const ZSTD_FRAME_HEADER = Buffer.from([0x00, (17 - 10) << 3]);
const ZSTD_BLOCK = 128 * 1024;

function zstdBlockHeader(size: number, last: boolean): Buffer {
  const value = (size << 3) | (0 << 1) | (last ? 1 : 0); // Block_Type 0 = Raw_Block
  return Buffer.from([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff]);
}

/** Encodes `data` as one zstd frame of raw blocks. */
export function zstdFrame(data: Buffer): Buffer {
  const parts: Buffer[] = [ZSTD_MAGIC, ZSTD_FRAME_HEADER];
  let offset = 0;
  do {
    const block = data.subarray(offset, offset + ZSTD_BLOCK);
    offset += block.length;
    parts.push(zstdBlockHeader(block.length, offset >= data.length), block);
  } while (offset < data.length);
  return Buffer.concat(parts);
}

/** The streaming form of zstdFrame: holds at most one block. */
export class ZstdRawEncoder extends Transform {
  private pending = Buffer.alloc(0);
  private started = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.started) {
      this.push(Buffer.concat([ZSTD_MAGIC, ZSTD_FRAME_HEADER]));
      this.started = true;
    }
    this.pending = Buffer.concat([this.pending, chunk]);
    // Keep the last block back: only the final one carries Last_Block.
    while (this.pending.length > ZSTD_BLOCK) {
      this.push(zstdBlockHeader(ZSTD_BLOCK, false));
      this.push(this.pending.subarray(0, ZSTD_BLOCK));
      this.pending = this.pending.subarray(ZSTD_BLOCK);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (!this.started) this.push(Buffer.concat([ZSTD_MAGIC, ZSTD_FRAME_HEADER]));
    this.push(zstdBlockHeader(this.pending.length, true));
    this.push(this.pending);
    callback();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A real legacy save, exploded into its parts (layers spilled to workDir).

export interface LegacyParts {
  config: Buffer;
  configDigest: string;
  repoTags: string[];
  /** RootFS.Layers, from the config. */
  diffIds: string[];
  /** Per layer (image order): its v1 directory and the `json` bytes of that directory. */
  v1: { dir: string; json: Buffer }[];
  /** The uncompressed layer files by diffID. */
  files: Map<string, { path: string; size: number }>;
}

export async function explodeLegacySave(save: Readable, workDir: string): Promise<LegacyParts> {
  await mkdir(workDir, { recursive: true });
  const extract = tar.extract();
  save.on('error', (error) => extract.destroy(error));
  save.pipe(extract);
  const layerFiles = new Map<string, { path: string; size: number; digest: string }>();
  const links = new Map<string, string>();
  const jsons = new Map<string, Buffer>();
  const configs = new Map<string, Buffer>();
  let manifest: Save.Manifest | undefined;
  for await (const entry of extract) {
    const name = entry.header.name.replace(/^\.?\//, '');
    const dir = posix.dirname(name);
    if (entry.header.type === 'symlink' && name.endsWith('/layer.tar')) {
      links.set(dir, posix.basename(posix.dirname(posix.normalize(posix.join(dir, entry.header.linkname)))));
    }
    if (entry.header.type === 'file' && name.endsWith('/layer.tar')) {
      const path = join(workDir, `legacy-${dir}.tar`);
      const hash = createHash('sha256');
      let size = 0;
      await pipeline(
        entry as AsyncIterable<Buffer>,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            hash.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(path),
      );
      layerFiles.set(dir, { path, size, digest: `sha256:${hash.digest('hex')}` });
      continue;
    }
    const parts: Buffer[] = [];
    for await (const chunk of entry as AsyncIterable<Buffer>) parts.push(chunk);
    const data = Buffer.concat(parts);
    if (entry.header.type !== 'file') continue;
    if (name.endsWith('/json')) jsons.set(dir, data);
    else if (/^[0-9a-f]{64}\.json$/.test(name)) configs.set(`sha256:${name.slice(0, 64)}`, data);
    else if (name === 'manifest.json') manifest = JSON.parse(data.toString('utf8')) as Save.Manifest;
  }
  const item = manifest?.[0];
  if (!item || manifest?.length !== 1) throw new Error('explodeLegacySave: expected a legacy save of exactly one image');
  const configDigest = `sha256:${item.Config.slice(0, 64)}`;
  const config = configs.get(configDigest);
  if (!config) throw new Error(`explodeLegacySave: config ${item.Config} missing`);
  const diffIds = (JSON.parse(config.toString('utf8')) as Save.ImageConfig).rootfs.diff_ids;
  const files = new Map<string, { path: string; size: number }>();
  const v1 = item.Layers.map((layer, i) => {
    const dir = posix.dirname(layer);
    const file = layerFiles.get(links.get(dir) ?? dir);
    if (!file || file.digest !== diffIds[i]) throw new Error(`explodeLegacySave: ${layer} is not diffID ${diffIds[i]}`);
    files.set(file.digest, { path: file.path, size: file.size });
    const json = jsons.get(dir);
    if (!json) throw new Error(`explodeLegacySave: ${dir}/json missing`);
    return { dir, json };
  });
  return { config, configDigest, repoTags: item.RepoTags ?? [], diffIds, v1, files };
}

// ---------------------------------------------------------------------------------------------------------------
// Writing an archive: blobs sorted by name, then the top-level files, as a lexical walk of the export gives them.

interface Blob {
  digest: string;
  size: number;
  data?: Buffer;
  path?: string;
}

function blobOf(data: Buffer): Blob {
  return { digest: sha256(data), size: data.length, data };
}

export type TarEntryHeader = Parameters<tar.Pack['entry']>[0];

/** A tar written to the file `out` entry by entry, each body from a buffer, a file (a spilled layer) or none. */
export function tarFileWriter(out: string): {
  add(header: TarEntryHeader, body?: Buffer | { path: string }): Promise<void>;
  finish(): Promise<void>;
} {
  const pack = tar.pack();
  const written = pipeline(Readable.from(pack as AsyncIterable<Buffer>), createWriteStream(out));
  const add = (header: TarEntryHeader, body?: Buffer | { path: string }) =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body === undefined || Buffer.isBuffer(body)) {
        pack.entry(header, body ?? Buffer.alloc(0), done);
        return;
      }
      const sink = pack.entry(header, done);
      const file = createReadStream(body.path);
      file.on('error', reject);
      file.pipe(sink as unknown as NodeJS.WritableStream);
    });
  const finish = async () => {
    pack.finalize();
    await written;
  };
  return { add, finish };
}

async function writeArchive(out: string, blobs: Blob[], topLevel: [string, Buffer][], mtime: Date): Promise<void> {
  const { add, finish } = tarFileWriter(out);
  await add({ name: 'blobs/', type: 'directory', mode: 0o755, mtime });
  await add({ name: 'blobs/sha256/', type: 'directory', mode: 0o755, mtime });
  const unique = new Map(blobs.map((b) => [b.digest, b]));
  for (const blob of [...unique.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1))) {
    const body = blob.data ?? (blob.path === undefined ? undefined : { path: blob.path });
    await add({ name: `blobs/sha256/${hex(blob.digest)}`, size: blob.size, mode: 0o644, mtime }, body);
  }
  for (const [name, data] of topLevel.sort(([a], [b]) => (a < b ? -1 : 1))) {
    await add({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data);
  }
  await finish();
}

function familiarToFull(tag: string): { name: string; tag: string; repo: string } {
  const at = tag.lastIndexOf(':');
  const repo = at > tag.lastIndexOf('/') ? tag.slice(0, at) : tag;
  const t = at > tag.lastIndexOf('/') ? tag.slice(at + 1) : 'latest';
  const first = repo.split('/')[0] ?? '';
  const domain = repo.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  const full = domain ? repo : `docker.io/${repo.includes('/') ? repo : `library/${repo}`}`;
  return { name: `${full}:${t}`, tag: t, repo };
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

// ---------------------------------------------------------------------------------------------------------------
// The builders

export interface BuiltSave {
  format: 'oci' | 'containerd';
  /** The tarball. */
  path: string;
  /** What the daemon would report: `id` = config digest (OCI) or the target index digest (containerd store). */
  image: { id: string; diffIds: string[] };
  /** The image's layers as served: diffIDs (OCI) or compressed blob digests (containerd). */
  layers: string[];
  config: string;
  repoTags: string[];
  /** Per served layer digest: its compression and its diffID. */
  compression: Map<string, 'none' | 'gzip' | 'zstd'>;
  diffIdOf: Map<string, string>;
  /** The tarball as a stream, in chunks of `chunkSize` bytes if given. */
  open(chunkSize?: number): Readable;
}

function opener(path: string): (chunkSize?: number) => Readable {
  return (chunkSize) => createReadStream(path, chunkSize ? { highWaterMark: chunkSize } : {});
}

/** An Engine >= 25 (graphdriver store) save of the image in `legacySave`. */
export async function buildOciLayoutSave(legacySave: Readable, workDir: string): Promise<BuiltSave> {
  const parts = await explodeLegacySave(legacySave, join(workDir, 'parts'));
  const layerBlobs: Blob[] = parts.diffIds.map((d) => {
    const file = parts.files.get(d);
    if (!file) throw new Error(`no file for ${d}`);
    return { digest: d, size: file.size, path: file.path };
  });
  const config = blobOf(parts.config);
  const manifest = blobOf(json({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: config.digest, size: config.size },
    layers: layerBlobs.map((b) => ({ mediaType: MEDIA.layerTar, digest: b.digest, size: b.size })),
  } satisfies Save.ImageManifest));
  const untagged = { mediaType: MEDIA.ociManifest, digest: manifest.digest, size: manifest.size };
  const refs = parts.repoTags.map(familiarToFull);
  const index: Save.Index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: refs.length === 0 ? [untagged] : refs.map((r) => ({
      ...untagged,
      annotations: { 'io.containerd.image.name': r.name, 'org.opencontainers.image.ref.name': r.tag },
    })),
  };
  const top = hex(parts.diffIds[parts.diffIds.length - 1] ?? '');
  const repositories: Save.Repositories = {};
  for (const r of refs) (repositories[r.repo] ??= {})[r.tag] = top;
  const saveManifest: Save.Manifest = [{
    Config: `blobs/sha256/${hex(config.digest)}`,
    RepoTags: parts.repoTags.length ? parts.repoTags : null,
    Layers: parts.diffIds.map((d) => `blobs/sha256/${hex(d)}`),
  }];
  const topLevel: [string, Buffer][] = [
    ['index.json', json(index)],
    ['manifest.json', Buffer.from(`${JSON.stringify(saveManifest)}\n`)],
    ['oci-layout', Buffer.from('{"imageLayoutVersion": "1.0.0"}')],
  ];
  if (refs.length) topLevel.push(['repositories', Buffer.from(`${JSON.stringify(repositories)}\n`)]);
  const path = join(workDir, 'oci-save.tar');
  const created = new Date((JSON.parse(parts.config.toString('utf8')) as Save.ImageConfig).created ?? 0);
  await writeArchive(path, [config, ...parts.v1.map((v) => blobOf(v.json)), ...layerBlobs, manifest], topLevel, created);
  return {
    format: 'oci',
    path,
    image: { id: parts.configDigest, diffIds: parts.diffIds },
    layers: [...parts.diffIds],
    config: config.digest,
    repoTags: parts.repoTags,
    compression: new Map(parts.diffIds.map((d) => [d, 'none'])),
    diffIdOf: new Map(parts.diffIds.map((d) => [d, d])),
    open: opener(path),
  };
}

/**
 * A containerd-image-store save of the image in `legacySave`: every layer gzip-compressed, except those whose
 * index (image order) is in `zstdLayers` (default: the top layer, when there are several).
 */
export async function buildContainerdSave(legacySave: Readable, workDir: string,
  options: { zstdLayers?: number[] } = {}): Promise<BuiltSave> {
  const parts = await explodeLegacySave(legacySave, join(workDir, 'parts'));
  const n = parts.diffIds.length;
  const zstdLayers = new Set(options.zstdLayers ?? (n > 1 ? [n - 1] : []));
  const compressed = new Map<string, Blob & { compression: 'gzip' | 'zstd' }>();
  const layerBlobs: (Blob & { compression: 'gzip' | 'zstd' })[] = [];
  for (const [i, diffId] of parts.diffIds.entries()) {
    const done = compressed.get(diffId);
    if (done) {
      layerBlobs.push(done);
      continue;
    }
    const file = parts.files.get(diffId);
    if (!file) throw new Error(`no file for ${diffId}`);
    const compression = zstdLayers.has(i) ? 'zstd' : 'gzip';
    const path = join(workDir, `${hex(diffId)}.${compression}`);
    const hash = createHash('sha256');
    await pipeline(
      createReadStream(file.path),
      compression === 'zstd' ? new ZstdRawEncoder() : createGzip({ level: 1 }),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(path),
    );
    const blob = { digest: `sha256:${hash.digest('hex')}`, size: (await stat(path)).size, path, compression } as const;
    compressed.set(diffId, blob);
    layerBlobs.push(blob);
  }
  const imageConfig = JSON.parse(parts.config.toString('utf8')) as Save.ImageConfig;
  const config = blobOf(parts.config);
  const manifest = blobOf(json({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: config.digest, size: config.size },
    layers: layerBlobs.map((b) => ({
      mediaType: b.compression === 'zstd' ? MEDIA.layerZstd : MEDIA.layerGzip, digest: b.digest, size: b.size,
    })),
  } satisfies Save.ImageManifest));
  // A BuildKit-style attestation manifest: JSON "layers" that are not layers.
  const statement = blobOf(json({
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://slsa.dev/provenance/v0.2',
    subject: [{ name: 'pkg:docker/image', digest: { sha256: hex(manifest.digest) } }],
    predicate: { builder: { id: '' }, buildType: 'https://mobyproject.org/buildkit@v1' },
  }));
  const attestationConfig = blobOf(json({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
  const attestation = blobOf(json({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: attestationConfig.digest, size: attestationConfig.size },
    layers: [{ mediaType: MEDIA.inToto, digest: statement.digest, size: statement.size,
      annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } }],
  } satisfies Save.ImageManifest));
  const target = blobOf(json({
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [
      { mediaType: MEDIA.ociManifest, digest: manifest.digest, size: manifest.size,
        platform: { architecture: imageConfig.architecture ?? 'amd64', os: imageConfig.os ?? 'linux' } },
      { mediaType: MEDIA.ociManifest, digest: attestation.digest, size: attestation.size,
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: { 'vnd.docker.reference.digest': manifest.digest, 'vnd.docker.reference.type': 'attestation-manifest' } },
    ],
  } satisfies Save.Index));
  const refs = parts.repoTags.map(familiarToFull);
  const index: Save.Index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: (refs.length ? refs : [undefined]).map((r) => ({
      mediaType: MEDIA.ociIndex, digest: target.digest, size: target.size,
      ...(r ? { annotations: { 'io.containerd.image.name': r.name, 'org.opencontainers.image.ref.name': r.tag } } : {}),
    })),
  };
  const saveManifest: Save.Manifest = [{
    Config: `blobs/sha256/${hex(config.digest)}`,
    RepoTags: parts.repoTags.length ? parts.repoTags : null,
    Layers: layerBlobs.map((b) => `blobs/sha256/${hex(b.digest)}`),
  }];
  const path = join(workDir, 'containerd-save.tar');
  await writeArchive(path, [config, manifest, statement, attestationConfig, attestation, target, ...layerBlobs], [
    ['index.json', json(index)],
    ['manifest.json', Buffer.from(`${JSON.stringify(saveManifest)}\n`)],
    ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
  ], new Date(imageConfig.created ?? 0));
  return {
    format: 'containerd',
    path,
    image: { id: target.digest, diffIds: parts.diffIds },
    layers: layerBlobs.map((b) => b.digest),
    config: config.digest,
    repoTags: parts.repoTags,
    compression: new Map(layerBlobs.map((b) => [b.digest, b.compression])),
    diffIdOf: new Map(layerBlobs.map((b, i) => [b.digest, parts.diffIds[i] as string])),
    open: opener(path),
  };
}
