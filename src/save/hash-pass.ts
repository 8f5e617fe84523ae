// A first pass over a `docker save` archive that hashes every layer entry and keeps none of it. For archives
// whose layer digests cannot be known before their bytes: `--input` files of images the daemon does not know,
// and legacy saves whose v1-ID mapping failed (LegacyLayerMappingError). Its result feeds readSaveArchive:
//
//   const pass = await hashSaveArchive(open());
//   for await (const event of readSaveArchive(open(), pass.image, { digests: pass.digests })) …
import { createHash } from 'node:crypto';
import { ArchiveFormatError } from '../runtime/errors.js';
import {
  LEGACY_CONFIG,
  LEGACY_LAYER,
  RETAINED_LIMIT,
  SNIFF_BYTES,
  blobDigest,
  configDigest,
  configFacts,
  detectFormat,
  isLegacyItem,
  isSaveEntry,
  missingFromArchive,
  noManifestError,
  parseManifest,
  selectManifestItem,
  sniffBlob,
  type SaveFormat,
} from './format.js';
import type * as Save from './format.js';
import { drain, type Chunks } from './chunks.js';
import { METADATA_LIMIT, TarEntries, linkTarget, normalizeName, readSmall } from './tar.js';

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

/** What one read of the archive found: layer digests by entry name, links, JSON blobs, manifest.json. */
interface HashedEntries {
  digests: Map<string, string>;
  /** Link entry → its target's name. */
  links: Map<string, string>;
  /** Parsed JSON blobs and legacy configs by digest (up to RETAINED_LIMIT bytes of them). */
  json: Map<string, unknown>;
  manifest: Save.Manifest | undefined;
  sawSave: boolean;
}

/**
 * Reads the whole archive once, hashing each layer entry (`<v1id>/layer.tar`, layer blobs) as it streams,
 * and checks every blob against its name. Throws ArchiveFormatError as readSaveArchive does.
 */
export async function hashSaveArchive(source: Chunks, options: HashSaveArchiveOptions = {}): Promise<ArchiveDigests> {
  const entries = new TarEntries(source, options.signal);
  let found: HashedEntries;
  try {
    found = await hashEntries(entries);
  } catch (error) {
    throw entries.explain(error);
  } finally {
    entries.close();
  }
  return describeImage(found, options.image);
}

async function hashEntries(entries: TarEntries): Promise<HashedEntries> {
  const found: HashedEntries = { digests: new Map(), links: new Map(), json: new Map(), manifest: undefined, sawSave: false };
  let retained = 0;
  for (let entry = await entries.next(); entry; entry = await entries.next()) {
    const { header } = entry;
    const { name, type, size } = header;
    const chunks = entry.data;
    found.sawSave ||= isSaveEntry(name);
    if ((type === 'symlink' || type === 'link') && header.linkname) {
      found.links.set(name, linkTarget(name, header.linkname, type));
      await drain(chunks);
      continue;
    }
    if (type !== 'file') {
      await drain(chunks);
      continue;
    }
    if (name === 'manifest.json') {
      found.manifest = parseManifest(await readSmall(chunks, size));
      continue;
    }
    const legacyLayer = LEGACY_LAYER.test(name);
    const legacyConfig = LEGACY_CONFIG.test(name);
    const blob = blobDigest(name);
    if (!legacyLayer && !legacyConfig && blob === undefined) {
      await drain(chunks);
      continue;
    }
    const keep = !legacyLayer && size <= METADATA_LIMIT && retained + size <= RETAINED_LIMIT;
    const algorithm = blob === undefined ? 'sha256' : blob.slice(0, blob.indexOf(':'));
    const { digest, head, whole } = await hashEntry(chunks, algorithm, keep);
    if (blob !== undefined && digest !== blob) {
      throw new ArchiveFormatError(`blob ${name} does not match its name: its bytes hash to ${digest}`,
        'the archive is corrupt: save the image again');
    }
    const kind = legacyConfig ? 'json' : sniffBlob(head, size);
    if (legacyLayer || (blob !== undefined && kind !== undefined && kind !== 'json')) found.digests.set(name, digest);
    if (whole && kind === 'json') {
      try {
        found.json.set(digest, JSON.parse(whole.toString('utf8')));
        retained += size;
      } catch {
        // Not JSON after all: nothing the pass needs.
      }
    }
  }
  return found;
}

/** The image (`imageId`, or the only one) as the hashed entries describe it. */
function describeImage(found: HashedEntries, imageId: string | undefined): ArchiveDigests {
  const { digests, links, json } = found;
  if (!found.manifest) throw noManifestError(found.sawSave);
  const item = selectManifestItem(found.manifest, imageId, json);
  // No config digest: nothing is found under '', and configFacts says the config is unusable.
  const config = configDigest(item) ?? '';
  const { diffIds } = configFacts(json.get(config), item.Config);
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
  const legacy = isLegacyItem(item);
  const layers = item.Layers.map((path, i) => {
    const digest = resolve(normalizeName(path));
    if (digest === undefined) throw missingFromArchive(`layer ${i + 1} of ${item.Layers.length}`, path, blobDigest(normalizeName(path)));
    if (legacy && digest !== diffIds[i]) {
      throw new ArchiveFormatError(`layer ${path} hashes to ${digest}, the image config says ${diffIds[i] ?? '(nothing)'}`);
    }
    return digest;
  });
  const format = detectFormat(item, layers, diffIds);
  return { format, image: { id: config, diffIds }, layers, digests, config, repoTags: item.RepoTags ?? [] };
}

/** Hashes an entry to its end, keeping its first bytes (and all of it when `keep`). */
async function hashEntry(chunks: Pick<Chunks, 'read'>, algorithm: string, keep: boolean):
  Promise<{ digest: string; head: Buffer; whole?: Buffer }> {
  const hash = createHash(algorithm);
  const heads: Buffer[] = [];
  let headBytes = 0;
  const all: Buffer[] = [];
  // Copies: a chunk is valid only until the next read.
  for (let chunk = await chunks.read(); chunk; chunk = await chunks.read()) {
    hash.update(chunk);
    if (headBytes < SNIFF_BYTES) {
      heads.push(Buffer.from(chunk.subarray(0, SNIFF_BYTES - headBytes)));
      headBytes += Math.min(chunk.length, SNIFF_BYTES - headBytes);
    }
    if (keep) all.push(Buffer.from(chunk));
  }
  return {
    digest: `${algorithm}:${hash.digest('hex')}`,
    head: Buffer.concat(heads),
    ...(keep ? { whole: Buffer.concat(all) } : {}),
  };
}
