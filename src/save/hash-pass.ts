// A first pass over a `docker save` archive that hashes every layer entry and keeps none of it. For archives
// whose layer digests cannot be known before their bytes: `--input` files of images the daemon does not know,
// and legacy saves whose v1-ID mapping failed (LegacyLayerMappingError). Its result feeds readSaveArchive:
//
//   const pass = await hashSaveArchive(open());
//   for await (const event of readSaveArchive(open(), pass.image, { digests: pass.digests })) …
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ArchiveFormatError } from '../runtime/errors.js';
import {
  LEGACY_CONFIG,
  LEGACY_LAYER,
  METADATA_LIMIT,
  TarEntries,
  blobDigest,
  configDigest,
  drain,
  entryChunks,
  linkTarget,
  missingFromArchive,
  normalizeName,
  parseManifest,
  readSmall,
  selectManifestItem,
  sniffBlob,
  type SaveFormat,
} from './reader.js';
import type * as Save from './format.js';

export interface ArchiveDigests {
  format: SaveFormat;
  /** What readSaveArchive takes: `id` = the config digest, `diffIds` = the config's rootfs.diff_ids. */
  image: { id: string; diffIds: string[] };
  /** The image's layers, base first, as the digests of the bytes stored (and served). */
  layers: string[];
  /** Digest by tar name of every layer entry (links included, resolved): readSaveArchive's `digests` option. */
  digests: Map<string, string>;
  /** The config digest. */
  config: string;
  repoTags: string[];
}

export interface HashSaveArchiveOptions {
  signal?: AbortSignal;
  /** Which image, when the archive holds several: its config digest (or containerd target digest). */
  image?: string;
}

const RETAINED_LIMIT = 8 * METADATA_LIMIT;
const HEAD_BYTES = 512;

/**
 * Reads the whole archive once, hashing each layer entry (`<v1id>/layer.tar`, layer blobs) as it streams,
 * and checks every blob against its name. Throws ArchiveFormatError as readSaveArchive does.
 */
export async function hashSaveArchive(source: Readable, options: HashSaveArchiveOptions = {}): Promise<ArchiveDigests> {
  const entries = new TarEntries(source, options.signal);
  const digests = new Map<string, string>();
  const links = new Map<string, string>();
  const json = new Map<string, unknown>();
  let retained = 0;
  let manifest: Save.Manifest | undefined;
  let sawSave = false;
  try {
    for (let entry = await entries.next(); entry; entry = await entries.next()) {
      const { header } = entry;
      const name = normalizeName(header.name);
      const type = header.type ?? 'file';
      const size = header.size ?? 0;
      const chunks = entryChunks(entry);
      if ((type === 'symlink' || type === 'link') && header.linkname) {
        links.set(name, linkTarget(name, header.linkname, type));
        await drain(chunks);
        continue;
      }
      if (type !== 'file' && type !== 'contiguous-file') {
        await drain(chunks);
        continue;
      }
      if (name === 'manifest.json') {
        const text = await readSmall(chunks, size);
        if (!text) throw new ArchiveFormatError(`the save archive is corrupt: manifest.json is larger than ${METADATA_LIMIT} bytes`);
        manifest = parseManifest(text);
        continue;
      }
      const legacyLayer = LEGACY_LAYER.test(name);
      const legacyConfig = LEGACY_CONFIG.test(name);
      const blob = blobDigest(name);
      if (!legacyLayer && !legacyConfig && blob === undefined) {
        await drain(chunks);
        continue;
      }
      sawSave = true;
      const keep = !legacyLayer && size <= METADATA_LIMIT && retained + size <= RETAINED_LIMIT;
      const algorithm = blob === undefined ? 'sha256' : blob.slice(0, blob.indexOf(':'));
      const { digest, head, whole } = await hashEntry(chunks, algorithm, keep);
      if (blob !== undefined && digest !== blob) {
        throw new ArchiveFormatError(`blob ${name} does not match its name: its bytes hash to ${digest}`,
          'the archive is corrupt: save the image again');
      }
      const kind = legacyConfig ? 'json' : sniffBlob(head, size);
      if (legacyLayer || (blob !== undefined && kind !== undefined && kind !== 'json')) digests.set(name, digest);
      if (whole && kind === 'json') {
        try {
          json.set(digest, JSON.parse(whole.toString('utf8')));
          retained += size;
        } catch {
          // Not JSON after all: nothing the pass needs.
        }
      }
    }
  } catch (error) {
    throw await entries.failure(error);
  } finally {
    entries.close();
  }

  if (!manifest) {
    throw sawSave
      ? new ArchiveFormatError('the save archive has no manifest.json (truncated, or not written by docker save)')
      : new ArchiveFormatError('not a docker save archive: no manifest.json, no blobs/ and no <v1id>/layer.tar entries');
  }
  const item = selectManifestItem(manifest, options.image, json);
  const config = configDigest(item);
  const diffIds = (json.get(config ?? '') as Partial<Save.ImageConfig> | undefined)?.rootfs?.diff_ids;
  if (config === undefined || !Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string')) {
    throw new ArchiveFormatError(`the save archive has no usable image config (${item.Config}): no rootfs.diff_ids`);
  }
  const resolve = (name: string): string | undefined => {
    let current: string | undefined = name;
    for (let hops = 0; current !== undefined && hops < 8; hops++) {
      const digest = digests.get(current);
      if (digest !== undefined) return digest;
      current = links.get(current);
    }
    return undefined;
  };
  for (const name of links.keys()) {
    const digest = resolve(name);
    if (digest !== undefined) digests.set(name, digest);
  }
  const legacy = LEGACY_CONFIG.test(normalizeName(item.Config));
  const layers = item.Layers.map((path, i) => {
    const digest = resolve(normalizeName(path));
    if (digest === undefined) throw missingFromArchive(`layer ${i + 1} of ${item.Layers.length}`, path, blobDigest(normalizeName(path)));
    if (legacy && digest !== diffIds[i]) {
      throw new ArchiveFormatError(`layer ${path} hashes to ${digest}, the image config says ${diffIds[i] ?? '(nothing)'}`);
    }
    return digest;
  });
  const format: SaveFormat = legacy ? 'legacy'
    : layers.length === diffIds.length && layers.every((d, i) => d === diffIds[i]) ? 'oci' : 'containerd';
  return { format, image: { id: config, diffIds }, layers, digests, config, repoTags: item.RepoTags ?? [] };
}

/** Hashes an entry to its end, keeping its first bytes (and all of it when `keep`). */
async function hashEntry(chunks: AsyncIterator<Buffer>, algorithm: string, keep: boolean):
  Promise<{ digest: string; head: Buffer; whole?: Buffer }> {
  const hash = createHash(algorithm);
  const heads: Buffer[] = [];
  let headBytes = 0;
  const all: Buffer[] = [];
  for (let r = await chunks.next(); !r.done; r = await chunks.next()) {
    hash.update(r.value);
    if (headBytes < HEAD_BYTES) {
      heads.push(r.value.subarray(0, HEAD_BYTES - headBytes));
      headBytes += Math.min(r.value.length, HEAD_BYTES - headBytes);
    }
    if (keep) all.push(r.value);
  }
  return {
    digest: `${algorithm}:${hash.digest('hex')}`,
    head: Buffer.concat(heads),
    ...(keep ? { whole: Buffer.concat(all) } : {}),
  };
}
