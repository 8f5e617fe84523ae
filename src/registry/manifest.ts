// The distribution API's manifests, in one place: their media types and wire shapes (Docker schema 2 and OCI:
// image manifests, manifest lists / image indexes), and choosing an index's manifest for a platform as the docker
// CLI does (os and architecture equal, the variant when one is asked or the index names one; arm64's default
// variant is v8). Attestation manifests (platform unknown/unknown) are never chosen.
import { RegistryError } from '../runtime/errors.js';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

/** What a manifest GET accepts, indexes first so a multi-platform image comes back as its index. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  urls?: string[];
  platform?: Platform;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export type Manifest = { kind: 'index'; index: ImageIndex } | { kind: 'image'; manifest: ImageManifest };

/** A manifest body as its media type (the Content-Type, else its own `mediaType`) says it is. */
export function parseManifest(body: Buffer, contentType: string | undefined, what: string): Manifest {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new RegistryError(`the manifest of ${what} is not JSON`);
  }
  const type = (contentType ?? '').split(';')[0]?.trim() || String(parsed.mediaType ?? '');
  if (parsed.schemaVersion === 1 || /^application\/vnd\.docker\.distribution\.manifest\.v1\+(prettyjws|json)$/.test(type)) {
    throw new RegistryError(`${what} has a Docker schema 1 manifest, which Clair v4 cannot index`, 'push the image again with a current docker or buildx');
  }
  if (type === MEDIA.ociIndex || type === MEDIA.dockerList || (type === '' && Array.isArray(parsed.manifests))) {
    if (!Array.isArray(parsed.manifests)) throw new RegistryError(`the index of ${what} lists no manifests`);
    return { kind: 'index', index: parsed as unknown as ImageIndex };
  }
  const config = parsed.config as Descriptor | undefined;
  if (typeof config?.digest !== 'string' || !Array.isArray(parsed.layers)) {
    throw new RegistryError(`the manifest of ${what} (${type || 'no media type'}) is neither an image manifest nor an index`);
  }
  return { kind: 'image', manifest: parsed as unknown as ImageManifest };
}

/** `os/arch[/variant]`, as --platform takes it. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, extra] = text.toLowerCase().split('/');
  if (!os || !architecture || extra !== undefined) {
    throw new RegistryError(`invalid platform "${text}"`, 'give os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8');
  }
  return { os, architecture: normalizeArch(architecture), ...(variant ? { variant } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Node's and Go's names for the same architectures. */
export function normalizeArch(arch: string): string {
  return ({ x64: 'amd64', x86_64: 'amd64', aarch64: 'arm64', ia32: '386', x32: '386' } as Record<string, string>)[arch] ?? arch;
}

/** The index's manifest for `want`; a clear error naming the platforms it has when none fits. */
export function choosePlatform(index: ImageIndex, want: Platform, what: string): Descriptor {
  const candidates = index.manifests.filter((m) => m.platform && m.platform.os !== 'unknown' && typeof m.digest === 'string');
  const variantOf = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  const fits = candidates.filter((m) => {
    const p = m.platform as Platform;
    if (p.os !== want.os || normalizeArch(p.architecture) !== want.architecture) return false;
    return want.variant === undefined || variantOf(p) === variantOf(want);
  });
  const chosen = fits[0];
  if (!chosen) {
    const has = candidates.map((m) => formatPlatform(m.platform as Platform));
    throw new RegistryError(`${what} has no manifest for ${formatPlatform(want)} (it has: ${has.join(', ') || 'none'})`,
      'choose one with --platform os/arch[/variant]');
  }
  return chosen;
}
