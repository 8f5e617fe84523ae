/**
 * The v4 indexer's stored data and its wire encoding. Ids are stable decimal strings, allocated like database
 * sequence values: one sequence per table, the same row always gets the same id.
 *
 * Encoding follows a Clair server (ugorji codec, see test/fixtures/clair/README.md): a package omits empty
 * `kind`, `normalized_version`, `module`, `arch` and `cpe`, and always carries `source` (an empty shared row
 * when it has none); distributions always carry every field; `repository_ids` is `null` when empty.
 */
import type { DistributionFields } from './os-release.js';

export interface PackageRow {
  id: string;
  name: string;
  version: string;
  kind: string;
  arch: string;
  source: SourceRow;
}

export interface SourceRow {
  id: string;
  name: string;
  version: string;
  kind: string;
}

export interface DistributionRow extends DistributionFields {
  id: string;
}

export interface EnvironmentRow {
  package_db: string;
  introduced_in: string;
  distribution_id: string;
  repository_ids: string[] | null;
}

export interface IndexReportRecord {
  manifest_hash: string;
  state: string;
  packages: Map<string, PackageRow>;
  distributions: Map<string, DistributionRow>;
  environments: Map<string, EnvironmentRow[]>;
  success: boolean;
  err: string;
}

/** Sequence-like id allocation: the same key always maps to the same id. */
export class IdTable {
  private readonly ids = new Map<string, string>();
  private nextId: number;

  constructor(start: number) {
    this.nextId = start;
  }

  idFor(key: string): string {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = String(this.nextId++);
      this.ids.set(key, id);
    }
    return id;
  }
}

export function encodeSource(s: SourceRow): Record<string, unknown> {
  const out: Record<string, unknown> = { id: s.id, name: s.name, version: s.version };
  if (s.kind !== '') out['kind'] = s.kind;
  return out;
}

export function encodePackage(p: PackageRow): Record<string, unknown> {
  const out: Record<string, unknown> = { id: p.id, name: p.name, version: p.version };
  if (p.kind !== '') out['kind'] = p.kind;
  out['source'] = encodeSource(p.source);
  if (p.arch !== '') out['arch'] = p.arch;
  return out;
}

export function encodeDistribution(d: DistributionRow): Record<string, unknown> {
  return {
    id: d.id, did: d.did, name: d.name, version: d.version, version_code_name: d.version_code_name,
    version_id: d.version_id, arch: d.arch, cpe: d.cpe, pretty_name: d.pretty_name,
  };
}

function mapObject<T>(m: Map<string, T>, f: (v: T) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of m) out[k] = f(v);
  return out;
}

/** The members an IndexReport and a VulnerabilityReport share, in wire order. */
export function encodeIndexBody(r: IndexReportRecord): Record<string, unknown> {
  return {
    manifest_hash: r.manifest_hash,
    packages: mapObject(r.packages, encodePackage),
    distributions: mapObject(r.distributions, encodeDistribution),
    repository: {},
    environments: mapObject(r.environments, (envs) => envs.map((e) => ({ ...e }))),
  };
}

export function encodeIndexReport(r: IndexReportRecord): Record<string, unknown> {
  const body = encodeIndexBody(r);
  return {
    manifest_hash: body['manifest_hash'], state: r.state, packages: body['packages'],
    distributions: body['distributions'], repository: body['repository'], environments: body['environments'],
    success: r.success, err: r.err,
  };
}
