// Clair v4 indexer/matcher wire shapes, spelled as Clair spells them (claircore's JSON encoding),
// including where the OpenAPI spec (quay/clair httptransport/api/v1/openapi.yaml) is wrong: package `kind` is
// lowercase and omitempty (quay/claircore package.go), the repository map key is singular `repository`,
// vulnerability_report answers 200 (quay/clair httptransport/matcher_v1.go). Interfaces only; parse guards
// live in parse.ts.

/** POST /indexer/api/v1/index_report body. */
export interface Manifest {
  hash: string;
  layers: ManifestLayer[];
}

export interface ManifestLayer {
  hash: string;
  uri: string;
  /** Sent verbatim on the layer GET: header name → array of values. */
  headers?: Record<string, string[]>;
}

export type IndexState =
  | 'CheckManifest'
  | 'FetchLayers'
  | 'ScanLayers'
  | 'Coalesce'
  | 'IndexManifest'
  | 'IndexFinished'
  | 'IndexError'
  | string;

export interface Package {
  id?: string;
  name: string;
  version: string;
  kind?: 'binary' | 'source' | string;
  source?: Package;
  normalized_version?: string;
  module?: string;
  arch?: string;
  cpe?: string;
}

export interface Distribution {
  id: string;
  did: string;
  name: string;
  version: string;
  version_code_name: string;
  version_id: string;
  arch: string;
  cpe: string;
  pretty_name: string;
}

export interface Repository {
  id?: string;
  name?: string;
  key?: string;
  uri?: string;
  cpe?: string;
}

export interface Environment {
  package_db: string;
  /** The layer digest as submitted in the manifest. */
  introduced_in: string;
  distribution_id: string;
  repository_ids: string[] | null;
}

export interface IndexReport {
  manifest_hash: string;
  state: IndexState;
  success: boolean;
  err: string;
  packages?: Record<string, Package>;
  distributions?: Record<string, Distribution>;
  repository?: Record<string, Repository>;
  environments?: Record<string, Environment[]>;
}

export interface Vulnerability {
  id: string;
  updater: string;
  name: string;
  description: string;
  issued?: string;
  links: string;
  severity: string;
  normalized_severity: 'Unknown' | 'Negligible' | 'Low' | 'Medium' | 'High' | 'Critical' | string;
  package?: Package;
  distribution?: Partial<Distribution>;
  repository?: Repository;
  fixed_in_version: string;
  range?: unknown;
  arch_op?: string;
}

export interface VulnerabilityReport {
  manifest_hash: string;
  packages: Record<string, Package>;
  distributions: Record<string, Distribution>;
  repository?: Record<string, Repository>;
  environments: Record<string, Environment[]>;
  vulnerabilities: Record<string, Vulnerability>;
  /** package id → vulnerability ids */
  package_vulnerabilities: Record<string, string[]>;
  enrichments?: Record<string, unknown[]>;
}

/** GET /indexer/api/v1/index_state */
export interface IndexStateResponse {
  state: string;
}

/** GET /matcher/api/v1/internal/update_operation: updater name → operations, newest first. `{}` = none ever ran. */
export type UpdateOperations = Record<string, UpdateOperation[]>;

export interface UpdateOperation {
  ref: string;
  updater: string;
  fingerprint: string;
  date: string;
  kind: 'vulnerability' | 'enrichment' | string;
}

/** Error body of every v4 endpoint except auth failures (401 has no body). */
export interface ErrorBody {
  code: string;
  message?: string;
}
