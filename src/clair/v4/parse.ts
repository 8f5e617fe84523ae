// Parse guards for Clair v4 response bodies: `unknown` JSON in, wire-typed values out. Each guard checks the
// fields docker-clair actually uses and throws ClairProtocolError naming the endpoint and the field path
// (e.g. `packages["42"].name`) when one is missing or mistyped.
//
// Tolerance rules (quay/claircore indexreport.go, package.go, repository.go, vulnerabilityreport.go,
// vulnerability.go; the recorded responses in test/fixtures/clair/README.md):
// - Fields Clair marks omitempty, or that the server codec drops when empty (`kind`, `source`,
//   `normalized_version`, `arch`, `cpe`, `module`, repository `id`/`name`/`key`/`uri`, vulnerability
//   `package`/`distribution`/`repository`/`range`/`arch_op`), may be absent.
// - Empty strings Clair might drop (`err`, a vulnerability's `description`, `links`, `severity`,
//   `fixed_in_version`, a package `version`) default to "".
// - Maps copied from the index report (`packages`, `distributions`, `repository`, `environments`) and
//   `enrichments` may be absent or null; they become {}. `repository_ids` may be null.
// - `vulnerabilities` and `package_vulnerabilities` are NOT optional in a vulnerability report: Clair always
//   sends them as objects, and a report without them would read as "no vulnerabilities", so their absence is
//   a protocol error rather than a clean result.
// Unknown fields are ignored. The returned values are fresh objects with the defaults filled in, so callers
// can rely on the wire types without re-checking.
import { lenientJson } from '../http.js';
import type * as V4 from './wire.js';
import { ClairProtocolError } from '../../runtime/errors.js';

const HINT = 'is the URL a Clair v4 server (indexer/matcher API)? rerun with -D to see the response';

type Json = Record<string, unknown>;

class Guard {
  constructor(readonly endpoint: string) {}

  fail(path: string, problem: string): never {
    return this.failWith(`${path} ${problem}`);
  }

  failWith(what: string): never {
    throw new ClairProtocolError(`unexpected response from Clair ${this.endpoint}: ${what}`, HINT);
  }

  object(value: unknown, path: string): Json {
    if (!isObject(value)) this.fail(path, value === undefined ? 'is missing' : `should be an object, got ${describe(value)}`);
    return value;
  }

  /** An object map; absent or null reads as {} (maps Clair may leave out or encode as null). */
  optionalMap(value: unknown, path: string): Json {
    if (value === undefined || value === null) return {};
    return this.object(value, path);
  }

  string(value: unknown, path: string): string {
    if (typeof value !== 'string') this.fail(path, value === undefined ? 'is missing' : `should be a string, got ${describe(value)}`);
    return value;
  }

  /** A string Clair may omit when empty: absent (or null) reads as "". */
  optionalString(value: unknown, path: string): string {
    if (value === undefined || value === null) return '';
    return this.string(value, path);
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.fail(path, value === undefined ? 'is missing' : `should be a boolean, got ${describe(value)}`);
    return value;
  }

  array(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) this.fail(path, value === undefined ? 'is missing' : `should be an array, got ${describe(value)}`);
    return value;
  }
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)?.slice(0, 40)}`;
}

function key(path: string, k: string): string {
  return `${path}[${JSON.stringify(k)}]`;
}

function assignIfString(target: Record<string, unknown>, source: Json, field: string, g: Guard, path: string): void {
  const value = source[field];
  if (value === undefined || value === null) return;
  target[field] = g.string(value, `${path}.${field}`);
}

function parsePackage(value: unknown, path: string, g: Guard, depth = 0): V4.Package {
  const o = g.object(value, path);
  const pkg: V4.Package = {
    name: g.string(o.name, `${path}.name`),
    version: g.optionalString(o.version, `${path}.version`),
  };
  for (const field of ['id', 'kind', 'normalized_version', 'module', 'arch', 'cpe'] as const) {
    assignIfString(pkg as unknown as Record<string, unknown>, o, field, g, path);
  }
  // `source` is a nested Package (omitted when nil). Its own `source` is never set by Clair; stop at one level.
  if (o.source !== undefined && o.source !== null && depth === 0) {
    const src = g.object(o.source, `${path}.source`);
    pkg.source = {
      name: g.optionalString(src.name, `${path}.source.name`),
      version: g.optionalString(src.version, `${path}.source.version`),
    };
    for (const field of ['id', 'kind'] as const) {
      assignIfString(pkg.source as unknown as Record<string, unknown>, src, field, g, `${path}.source`);
    }
  }
  return pkg;
}

function parseDistribution(value: unknown, path: string, g: Guard): V4.Distribution {
  const o = g.object(value, path);
  // Always present on the wire, but only did/version_id/version/pretty_name are used: default the rest.
  const s = (field: string) => g.optionalString(o[field], `${path}.${field}`);
  return {
    id: s('id'),
    did: s('did'),
    name: s('name'),
    version: s('version'),
    version_code_name: s('version_code_name'),
    version_id: s('version_id'),
    arch: s('arch'),
    cpe: s('cpe'),
    pretty_name: s('pretty_name'),
  };
}

function parseRepository(value: unknown, path: string, g: Guard): V4.Repository {
  const o = g.object(value, path);
  const repo: V4.Repository = {};
  for (const field of ['id', 'name', 'key', 'uri', 'cpe'] as const) {
    assignIfString(repo as Record<string, unknown>, o, field, g, path);
  }
  return repo;
}

function parseEnvironment(value: unknown, path: string, g: Guard): V4.Environment {
  const o = g.object(value, path);
  let repositoryIds: string[] | null = null;
  if (o.repository_ids !== undefined && o.repository_ids !== null) {
    repositoryIds = g.array(o.repository_ids, `${path}.repository_ids`).map((id, i) => g.string(id, `${path}.repository_ids[${i}]`));
  }
  return {
    package_db: g.optionalString(o.package_db, `${path}.package_db`),
    introduced_in: g.optionalString(o.introduced_in, `${path}.introduced_in`),
    distribution_id: g.optionalString(o.distribution_id, `${path}.distribution_id`),
    repository_ids: repositoryIds,
  };
}

function mapOf<T>(value: unknown, path: string, g: Guard, parse: (v: unknown, p: string, g: Guard) => T): Record<string, T> {
  const o = g.optionalMap(value, path);
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(o)) out[k] = parse(v, key(path, k), g);
  return out;
}

function parseEnvironments(value: unknown, g: Guard): Record<string, V4.Environment[]> {
  return mapOf(value, 'environments', g, (v, p) => {
    // A package with no environment could be null after a nil slice; read it as [].
    if (v === null) return [];
    return g.array(v, p).map((e, i) => parseEnvironment(e, `${p}[${i}]`, g));
  });
}

/** The members a vulnerability report copies from its index report. */
function parseIndexContents(o: Json, g: Guard) {
  return {
    packages: mapOf(o.packages, 'packages', g, (v, p) => parsePackage(v, p, g)),
    distributions: mapOf(o.distributions, 'distributions', g, parseDistribution),
    repository: mapOf(o.repository, 'repository', g, parseRepository),
    environments: parseEnvironments(o.environments, g),
  };
}

/** `POST` or `GET /indexer/api/v1/index_report[/{digest}]` (201/200). */
export function parseIndexReport(json: unknown, endpoint: string): V4.IndexReport {
  const g = new Guard(endpoint);
  const o = g.object(json, 'the body');
  const state = g.string(o.state, 'state');
  return {
    manifest_hash: g.string(o.manifest_hash, 'manifest_hash'),
    state,
    // `success` is true only in IndexFinished; if a server ever drops it, derive it from the state.
    success: o.success === undefined ? state === 'IndexFinished' : g.boolean(o.success, 'success'),
    err: g.optionalString(o.err, 'err'),
    ...parseIndexContents(o, g),
  };
}

function parseVulnerability(value: unknown, path: string, g: Guard): V4.Vulnerability {
  const o = g.object(value, path);
  const vuln: V4.Vulnerability = {
    id: g.optionalString(o.id, `${path}.id`),
    updater: g.optionalString(o.updater, `${path}.updater`),
    name: g.string(o.name, `${path}.name`),
    description: g.optionalString(o.description, `${path}.description`),
    links: g.optionalString(o.links, `${path}.links`),
    severity: g.optionalString(o.severity, `${path}.severity`),
    normalized_severity: g.optionalString(o.normalized_severity, `${path}.normalized_severity`),
    fixed_in_version: g.optionalString(o.fixed_in_version, `${path}.fixed_in_version`),
  };
  assignIfString(vuln as unknown as Record<string, unknown>, o, 'issued', g, path);
  assignIfString(vuln as unknown as Record<string, unknown>, o, 'arch_op', g, path);
  // The advisory's own scope: not used for matching here, kept when well-formed, dropped when null.
  if (isObject(o.package)) vuln.package = parsePackage(o.package, `${path}.package`, g, 1);
  if (isObject(o.distribution)) vuln.distribution = parseDistribution(o.distribution, `${path}.distribution`, g);
  if (isObject(o.repository)) vuln.repository = parseRepository(o.repository, `${path}.repository`, g);
  if (o.range !== undefined) vuln.range = o.range;
  return vuln;
}

/** `GET /matcher/api/v1/vulnerability_report/{digest}` (200). Cross-references are checked too. */
export function parseVulnerabilityReport(json: unknown, endpoint: string): V4.VulnerabilityReport {
  const g = new Guard(endpoint);
  const o = g.object(json, 'the body');
  const contents = parseIndexContents(o, g);
  const vulnerabilities = g.object(o.vulnerabilities, 'vulnerabilities');
  const parsedVulns: Record<string, V4.Vulnerability> = {};
  for (const [k, v] of Object.entries(vulnerabilities)) parsedVulns[k] = parseVulnerability(v, key('vulnerabilities', k), g);

  const packageVulns = g.object(o.package_vulnerabilities, 'package_vulnerabilities');
  const parsedPackageVulns: Record<string, string[]> = {};
  for (const [pkgId, ids] of Object.entries(packageVulns)) {
    const path = key('package_vulnerabilities', pkgId);
    if (!(pkgId in contents.packages)) g.failWith(`${path} refers to a package that is not in packages`);
    parsedPackageVulns[pkgId] = (ids === null ? [] : g.array(ids, path)).map((id, i) => {
      const vulnId = g.string(id, `${path}[${i}]`);
      if (!(vulnId in parsedVulns)) g.failWith(`${path}[${i}] refers to vulnerability ${JSON.stringify(vulnId)}, which is not in vulnerabilities`);
      return vulnId;
    });
  }

  const report: V4.VulnerabilityReport = {
    manifest_hash: g.string(o.manifest_hash, 'manifest_hash'),
    ...contents,
    vulnerabilities: parsedVulns,
    package_vulnerabilities: parsedPackageVulns,
  };
  if (o.enrichments !== undefined && o.enrichments !== null) {
    // Enrichments (CVSS, EPSS, KEV) are not used yet; only their outer shape is checked.
    const enrichments = g.object(o.enrichments, 'enrichments');
    report.enrichments = {};
    for (const [k, v] of Object.entries(enrichments)) report.enrichments[k] = v === null ? [] : g.array(v, key('enrichments', k));
  }
  return report;
}

/** `GET /matcher/api/v1/internal/update_operation` (200): updater name → operations, newest first. `{}` = none ran. */
export function parseUpdateOperations(json: unknown, endpoint: string): V4.UpdateOperations {
  const g = new Guard(endpoint);
  const o = g.object(json, 'the body');
  const out: V4.UpdateOperations = {};
  for (const [updater, ops] of Object.entries(o)) {
    const path = `[${JSON.stringify(updater)}]`;
    out[updater] = (ops === null ? [] : g.array(ops, path)).map((op, i) => {
      const p = `${path}[${i}]`;
      const u = g.object(op, p);
      return {
        ref: g.string(u.ref, `${p}.ref`),
        updater: g.optionalString(u.updater, `${p}.updater`) || updater,
        fingerprint: g.optionalString(u.fingerprint, `${p}.fingerprint`),
        date: g.string(u.date, `${p}.date`),
        kind: g.optionalString(u.kind, `${p}.kind`),
      };
    });
  }
  return out;
}

/**
 * The `{"code","message"}` body of a v4 error response, or undefined when the body is not one.
 *
 * Unlike the other guards this one never throws: it runs while an HTTP error is already being reported, where
 * the status line is the fallback, and Clair legitimately sends no body (401), an empty one, or a body cut off
 * mid-stream whose real error went into the `Clair-Error` trailer. Accepts the raw response text or parsed JSON.
 * `endpoint` is accepted for symmetry with the other guards.
 */
export function parseErrorBody(json: unknown, _endpoint?: string): V4.ErrorBody | undefined {
  const value = lenientJson(json);
  if (!isObject(value)) return undefined;
  const code = typeof value.code === 'string' ? value.code : undefined;
  const message = typeof value.message === 'string' && value.message.trim() !== '' ? value.message : undefined;
  if (code === undefined && message === undefined) return undefined;
  const body: V4.ErrorBody = { code: code ?? '' };
  if (message !== undefined) body.message = message;
  return body;
}
