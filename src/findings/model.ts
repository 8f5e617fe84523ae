// The findings model: what one image's scan found, in the project's own words. Clair's wire shapes
// (v4 or v1) are translated into this by src/clair/*/normalise.ts; policy and the renderers consume
// only this, never Clair's JSON.
import type { Severity } from './severity.js';

export interface ImageRef {
  /** The reference the user gave (or the archive's RepoTags[0] for --input). */
  ref: string;
  /** Image ID as the daemon reports it; the manifest hash sent to Clair. */
  id: string;
  /** A repository digest when the daemon knows one (RepoDigests[0]); for a registry image, its manifest's. */
  digest?: string;
  /** Where the image was read from: the Docker daemon, a registry (Clair fetched it there), a `docker save` archive. */
  source?: ImageSourceName;
}

export type ImageSourceName = 'daemon' | 'registry' | 'archive';

export interface Distribution {
  /** Clair's distribution id, e.g. "debian", "alpine", "rhel" (v4 `did`; v1 namespace name before ':'). */
  id: string;
  /** Version id, e.g. "12", "3.7". */
  version: string;
  /** Human name, e.g. "Debian GNU/Linux 12 (bookworm)". */
  prettyName?: string;
}

export interface PackageRef {
  name: string;
  version: string;
  /** The source package (dpkg `Source:`, RPM source RPM), when Clair knows it and it differs from name. */
  source?: { name: string; version?: string };
}

export interface Finding {
  /** The vulnerability identifier as Clair names it, e.g. "CVE-2023-1234", "DSA-5555-1", "pyup.io-39606 (CVE-2020-36242)". */
  id: string;
  /** The scanner's full name for it when that says more than `id` (e.g. "RHSA-2023:5837: nghttp2 security update (Important)"). */
  title?: string;
  severity: Severity;
  /** Clair's own severity text before normalisation (e.g. "important", "Defcon1"); may be empty. */
  vendorSeverity?: string;
  package: PackageRef;
  /** The first version that fixes it; undefined when there is no fix. */
  fixedIn?: string;
  /** Digest of the layer that introduced the package (as sent to Clair). */
  layer?: string;
  description?: string;
  links: string[];
}

/**
 * Why a result cannot be trusted; any signal makes the verdict "untrusted" (exit 3), never "clean".
 * - empty-database: Clair has no vulnerability data at all (v4 matcher 202; v1 no vulnerabilities in the namespace)
 * - unsupported-os: Clair recognised no distribution it can match (v1 422)
 * - no-packages: nothing was indexed, so "no findings" says nothing
 * - no-updater: Clair's database has no updater for the detected distribution
 */
export interface TrustSignal {
  kind: 'empty-database' | 'unsupported-os' | 'no-packages' | 'no-updater';
  message: string;
}

export interface ImageScan {
  image: ImageRef;
  engine: { api: 'v4' | 'v1'; url: string };
  distribution?: Distribution;
  /** How many packages Clair indexed in the image. */
  packageCount: number;
  findings: Finding[];
  trust: TrustSignal[];
  /** The image's layers, base first, with the build step that made each when the image history tells. */
  layers?: LayerStep[];
}

export interface LayerStep {
  /** As in Finding.layer: the digest Clair was given. */
  digest: string;
  /** The build step (e.g. "RUN apt-get install …", "COPY dir:… in /app"); "" for an imported base layer. */
  createdBy: string;
}
