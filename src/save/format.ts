// What a `docker save` / `GET /images/{name}/get` archive is, in one place: its wire types, spelled as the
// producers write them, the entry names that tell the three formats apart, and the reading of manifest.json and
// image configs. Producers: moby's legacy exporter (Engine < 25, moby/moby image/tarexport/save.go at v24), its
// OCI layout + manifest.json (Engine >= 25, graphdriver store, moby/moby daemon/internal/image/tarexport/save.go),
// and containerd's exporter (containerd image store: moby/moby daemon/containerd/image_exporter.go, containerd
// core/images/archive/exporter.go):
//
//   legacy (Engine < 25)          `<v1id>/layer.tar`, sha256 = diffID; the v1 ID is computed (legacy-ids.ts)
//   OCI layout (Engine >= 25)     `blobs/sha256/<diffID>`, uncompressed
//   containerd image store        `blobs/sha256/<digest>` as stored (gzip, zstd or plain)
//
// The wire types are interfaces only; import them as a namespace: `import type * as Save from './format.js'`.
import { createHash } from 'node:crypto';
import { ArchiveFormatError, IncompleteArchiveError, MultiImageArchiveError } from '../runtime/errors.js';
import { METADATA_LIMIT, normalizeName } from './tar.js';

/** `manifest.json`: one item per saved image. */
export type Manifest = ManifestItem[];

export interface ManifestItem {
  /** Legacy: `<hex>.json`; OCI/containerd: `blobs/sha256/<hex>`. */
  Config: string;
  /** `null` when the image was saved by ID. */
  RepoTags: string[] | null;
  /** Base layer first. Legacy: `<v1id>/layer.tar`; OCI/containerd: `blobs/sha256/<hex>`. */
  Layers: string[];
  /** Engine >= 25: the parent image ID, when the saved set contains it. */
  Parent?: string;
  /** Foreign (non-distributable) layers, keyed by diffID. */
  LayerSources?: Record<string, Descriptor>;
}

/** `repositories` (legacy and Engine >= 25 graphdriver): name → tag → top layer v1 ID (hex). */
export type Repositories = Record<string, Record<string, string>>;

/** `oci-layout`. */
export interface OciLayout {
  imageLayoutVersion: string;
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

/** `index.json`, and image index blobs (the target of a multi-platform image in the containerd store). */
export interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
}

/** An OCI image manifest blob (or a Docker schema 2 manifest, which has the same shape). */
export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
}

/** The image config blob (`<hex>.json` in legacy saves): only what the archive reader looks at. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  rootfs: { type: string; diff_ids: string[] };
}

/**
 * The v1 image JSON of a legacy layer directory (`<v1id>/json`), also written as a blob by Engine >= 25.
 * Below the top layer it is the zero form: `id`, `parent`, `created` (the Unix epoch), a zero
 * `container_config` and `os`; the top layer carries the image's own fields as well.
 */
export interface V1Json {
  id: string;
  parent?: string;
  comment?: string;
  created?: string;
  container?: string;
  container_config?: ContainerConfig;
  docker_version?: string;
  author?: string;
  config?: ContainerConfig;
  architecture?: string;
  variant?: string;
  os?: string;
  Size?: number;
}

/** moby `api/types/container.Config`, as marshalled (fields after `Labels` are `omitempty`). */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[] | null;
  Cmd: string[] | null;
  Healthcheck?: object;
  ArgsEscaped?: boolean;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  NetworkDisabled?: boolean;
  MacAddress?: string;
  OnBuild: string[] | null;
  Labels: Record<string, string> | null;
  StopSignal?: string;
  StopTimeout?: number;
  Shell?: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Formats and entry names.

export type SaveFormat = 'legacy' | 'oci' | 'containerd';
export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** Total of JSON blobs kept until the end of the archive (to find the image in a multi-image containerd save). */
export const RETAINED_LIMIT = 8 * METADATA_LIMIT;
/** Bytes looked at to tell a layer blob from a JSON one: a tar header is 512 bytes. */
export const SNIFF_BYTES = 512;

export const LEGACY_LAYER = /^([0-9a-f]{64})\/layer\.tar$/;
export const LEGACY_JSON = /^([0-9a-f]{64})\/json$/;
export const LEGACY_CONFIG = /^([0-9a-f]{64})\.json$/;
export const BLOB = /^blobs\/(sha256\/[0-9a-f]{64}|sha512\/[0-9a-f]{128})$/;

/** Whether an entry name is one only a save archive has: a blob, or a legacy layer directory's layer or json. */
export function isSaveEntry(name: string): boolean {
  return BLOB.test(name) || LEGACY_LAYER.test(name) || LEGACY_JSON.test(name);
}

/** `<alg>:<hex>` from `blobs/<alg>/<hex>`. */
export function blobDigest(name: string): string | undefined {
  const m = BLOB.exec(normalizeName(name));
  return m?.[1]?.replace('/', ':');
}

/** What the first bytes of a blob say it is: a layer (with its compression), JSON, or something else. */
export function sniffBlob(head: Buffer, size: number): LayerCompression | 'json' | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'none';
  // An empty layer: a tar holding nothing but its end-of-archive zero blocks.
  if (size >= 1024 && size % 512 === 0 && head.length >= 512 && head.subarray(0, 512).every((b) => b === 0)) return 'none';
  const first = head.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first === 0x7b || first === 0x5b) return 'json';
  return undefined;
}

/**
 * The format of a save by its image's manifest.json item: legacy by its config's name; OCI layout when the layers
 * are the diffIDs, uncompressed; otherwise the containerd store's blobs as stored.
 */
export function detectFormat(item: ManifestItem, layers: readonly string[], diffIds: readonly string[],
  uncompressed: (digest: string) => boolean = () => true): SaveFormat {
  if (isLegacyItem(item)) return 'legacy';
  return layers.length === diffIds.length && layers.every((d, i) => d === diffIds[i] && uncompressed(d)) ? 'oci' : 'containerd';
}

/** Whether a manifest.json item is a legacy save's (its config `<hex>.json`, its layers `<v1id>/layer.tar`). */
export function isLegacyItem(item: ManifestItem): boolean {
  return LEGACY_CONFIG.test(normalizeName(item.Config));
}

// ---------------------------------------------------------------------------------------------------------------
// manifest.json and image configs.

export function parseJson(buffer: Buffer, what: string): unknown {
  try {
    return JSON.parse(buffer.toString('utf8')) as unknown;
  } catch (error) {
    throw new ArchiveFormatError(`the save archive is corrupt: ${what} is not valid JSON`, undefined, { cause: error });
  }
}

/** A metadata entry larger than what is read into memory (METADATA_LIMIT). */
export function tooLargeError(what: string): ArchiveFormatError {
  return new ArchiveFormatError(`the save archive is corrupt: ${what} is larger than ${METADATA_LIMIT} bytes`);
}

/** manifest.json from its bytes (undefined: readSmall found it larger than METADATA_LIMIT). */
export function parseManifest(buffer: Buffer | undefined): Manifest {
  if (!buffer) throw tooLargeError('manifest.json');
  const json = parseJson(buffer, 'manifest.json');
  const items = Array.isArray(json) ? (json as unknown[]) : undefined;
  const bad = !items || items.length === 0 || items.some((item) => {
    const i = item as Partial<ManifestItem> | null;
    return typeof i !== 'object' || i === null || typeof i.Config !== 'string' || !Array.isArray(i.Layers) ||
      i.Layers.some((l) => typeof l !== 'string') || (i.RepoTags != null && !Array.isArray(i.RepoTags));
  });
  if (bad) throw new ArchiveFormatError('the save archive is corrupt: manifest.json is not a list of {Config, RepoTags, Layers}');
  return items as Manifest;
}

/** The archive ended without manifest.json: `sawSaveEntries` (isSaveEntry) tells a cut-short save from no save. */
export function noManifestError(sawSaveEntries: boolean): ArchiveFormatError {
  return sawSaveEntries
    ? new ArchiveFormatError('the save archive has no manifest.json (truncated, or not written by docker save)',
        'the export was cut short, or the archive was repacked: save the image again')
    : new ArchiveFormatError('not a docker save archive: no manifest.json, no blobs/ and no <v1id>/layer.tar entries',
        'give an archive made by `docker save`');
}

/** The config digest a manifest.json item names: `<hex>.json` (legacy) or `blobs/<alg>/<hex>`. */
export function configDigest(item: ManifestItem): string | undefined {
  const legacy = LEGACY_CONFIG.exec(normalizeName(item.Config));
  return legacy ? `sha256:${legacy[1]}` : blobDigest(item.Config);
}

/**
 * The manifest.json item of `imageId`: the one whose config is the image ID, the only one, or (containerd
 * store, where the image ID is an index or manifest digest) the one reached from that blob.
 */
export function selectManifestItem(manifest: Manifest, imageId: string | undefined,
  blobs: ReadonlyMap<string, unknown>): ManifestItem {
  const byConfig = imageId === undefined ? undefined : manifest.find((item) => configDigest(item) === imageId);
  if (byConfig) return byConfig;
  if (manifest.length === 1 && manifest[0]) return manifest[0];
  if (imageId !== undefined) {
    const configs = new Set<string>();
    const visit = (digest: string, depth: number) => {
      const blob = blobs.get(digest) as Partial<Index & ImageManifest> | undefined;
      if (!blob || depth > 4) return;
      if (typeof blob.config?.digest === 'string') configs.add(blob.config.digest);
      for (const m of Array.isArray(blob.manifests) ? blob.manifests : []) {
        if (typeof m?.digest === 'string') visit(m.digest, depth + 1);
      }
    };
    visit(imageId, 0);
    const reached = manifest.find((item) => configs.has(configDigest(item) ?? ''));
    if (reached) return reached;
  }
  throw new MultiImageArchiveError(`the save archive holds ${manifest.length} images and none of them is ${imageId ?? 'named'}`,
    'save one image per archive', manifest.length);
}

/** What the scan needs of an image config. */
export interface ConfigFacts {
  /** rootfs.diff_ids, base first. */
  diffIds: string[];
  os: string;
  architecture: string;
}

/** rootfs.diff_ids, os and architecture of a parsed image config; `what` names it in errors. */
export function configFacts(config: unknown, what: string): ConfigFacts {
  const parsed = config as Partial<ImageConfig> | null | undefined;
  const diffIds = parsed?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string')) {
    throw new ArchiveFormatError(`the save archive has no usable image config (${what}): no rootfs.diff_ids`);
  }
  return { diffIds, os: parsed?.os ?? '', architecture: parsed?.architecture ?? '' };
}

/** rootfs.diff_ids, os and architecture of an image config's bytes; `what` names it in errors. */
export function readConfig(data: Buffer, what: string): ConfigFacts {
  return configFacts(parseJson(data, what), what);
}

/** The digest of an image config's bytes: the image ID outside the containerd store. */
export function configIdOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * An entry that manifest.json lists is not in the archive. The archive is well-formed, so it was written without
 * the entry: saving it again the same way gives the same archive.
 */
export function missingFromArchive(what: string, path: string, digest?: string): IncompleteArchiveError {
  return new IncompleteArchiveError(`the archive lacks ${what} (${digest ?? path}), which its own manifest.json lists`,
    'the export that made it was incomplete; Docker\'s containerd image store exports images that way when they were pulled '
    + 'while it already had their layers: remove those images, pull again, then save', digest, path);
}
