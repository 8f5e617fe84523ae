/**
 * The `--vulns` file: the double's vulnerability database, shared by the v4 matcher and the v1 API.
 *
 * ```json
 * { "vulnerabilities": [ {
 *     "id": "CVE-2099-0001",           // required: v4 `name`, v1 `Name`
 *     "namespace": "debian:12",        // required: <os-release ID>:<VERSION_ID> (Alpine: alpine:vX.Y also works)
 *     "package": "bash",               // required: a source or binary package name
 *     "fixed": "5.2.15-2+deb12u9",     // first fixed version; omit or null for "no fix"
 *     "severity": "High",              // Unknown | Negligible | Low | Medium | High | Critical | Defcon1
 *     "vendorSeverity": "high",        // optional: v4 `severity` text (default: severity)
 *     "description": "…", "links": ["https://…"], "issued": "RFC 3339",   // optional
 *     "updater": "debian/updater",     // optional: default "<ID>/updater"
 *     "cvssV2": { "score": 7.5, "vectors": "AV:N/AC:L/Au:N/C:P/I:P" }     // optional: v1 Metadata.NVD.CVSSv2
 * } ] }
 * ```
 *
 * Matching (both APIs): an entry hits a package when its namespace is the package's distribution, its `package`
 * equals the package name (v4: the binary name, or the source name with any "(version)" suffix dropped or the
 * apk origin; v1: the feature name, which is the source name), and either `fixed` is absent or the installed
 * version (v4: the binary's, v1: the feature's) is lower than `fixed` by dpkg ordering.
 */
import { readFileSync } from 'node:fs';
import { compareDebVersions, parseDebVersion } from './dpkg-version.js';
import { parseSourceField } from './dpkg.js';

export const SEVERITIES = ['Unknown', 'Negligible', 'Low', 'Medium', 'High', 'Critical', 'Defcon1'] as const;
export type Severity = (typeof SEVERITIES)[number];
export type NormalizedSeverity = Exclude<Severity, 'Defcon1'>;

export interface VulnEntry {
  id: string;
  namespace: string;
  package: string;
  fixed?: string;
  severity: Severity;
  vendorSeverity?: string;
  description?: string;
  links?: string[];
  issued?: string;
  updater?: string;
  cvssV2?: { score: number; vectors: string };
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function normalizedSeverity(s: Severity): NormalizedSeverity {
  return s === 'Defcon1' ? 'Critical' : s;
}

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

export function defaultUpdater(namespace: string): string {
  const did = namespace.split(':')[0] ?? namespace;
  return `${did}/updater`;
}

function fail(where: string, msg: string): never {
  throw new Error(`vulnerabilities file: ${where}: ${msg}`);
}

/** Validates one entry (from the file or a v1 insert). */
export function parseVulnEntry(raw: unknown, where: string): VulnEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(where, 'not an object');
  const o = raw as Record<string, unknown>;
  const str = (k: string, required: boolean): string | undefined => {
    const v = o[k];
    if (v === undefined || v === null) {
      if (required) fail(where, `missing "${k}"`);
      return undefined;
    }
    if (typeof v !== 'string' || (required && v === '')) fail(where, `"${k}" must be a non-empty string`);
    return v;
  };
  const severity = str('severity', true) as string;
  if (!(SEVERITIES as readonly string[]).includes(severity)) fail(where, `unknown severity ${JSON.stringify(severity)}`);
  const entry: VulnEntry = {
    id: str('id', true) as string,
    namespace: str('namespace', true) as string,
    package: str('package', true) as string,
    severity: severity as Severity,
  };
  const fixed = str('fixed', false);
  if (fixed !== undefined && fixed !== '') {
    if (parseDebVersion(fixed) === undefined) fail(where, `"fixed" is not a dpkg version: ${JSON.stringify(fixed)}`);
    entry.fixed = fixed;
  }
  for (const k of ['vendorSeverity', 'description', 'issued', 'updater'] as const) {
    const v = str(k, false);
    if (v !== undefined) entry[k] = v;
  }
  if (entry.issued !== undefined && Number.isNaN(Date.parse(entry.issued))) fail(where, '"issued" is not RFC 3339');
  if (o['links'] !== undefined) {
    if (!Array.isArray(o['links']) || !o['links'].every((l) => typeof l === 'string')) fail(where, '"links" must be strings');
    entry.links = o['links'] as string[];
  }
  if (o['cvssV2'] !== undefined) {
    const c = o['cvssV2'] as Record<string, unknown>;
    if (typeof c !== 'object' || c === null || typeof c['score'] !== 'number' || typeof c['vectors'] !== 'string') {
      fail(where, '"cvssV2" must be {score: number, vectors: string}');
    }
    entry.cvssV2 = { score: c['score'] as number, vectors: c['vectors'] as string };
  }
  return entry;
}

export function parseVulnFile(json: unknown): VulnEntry[] {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { vulnerabilities?: unknown }).vulnerabilities)) {
    fail('top level', 'expected {"vulnerabilities": [...]}');
  }
  return (json as { vulnerabilities: unknown[] }).vulnerabilities.map((v, i) => parseVulnEntry(v, `vulnerabilities[${i}]`));
}

export function loadVulnFile(path: string): VulnEntry[] {
  return parseVulnFile(JSON.parse(readFileSync(path, 'utf8')));
}

/** True when `installed` is affected by an entry fixed in `fixed` (absent = every version). */
export function isAffected(installed: string, fixed: string | undefined): boolean {
  if (fixed === undefined) return true;
  if (parseDebVersion(installed) === undefined) return false;
  return compareDebVersions(installed, fixed) < 0;
}

/** The names a v4 package answers to: its binary name and its source name (version suffix dropped). */
export function v4PackageNames(binary: string, sourceName: string): string[] {
  const names = [binary];
  const src = sourceName === '' ? undefined : parseSourceField(sourceName);
  if (src !== undefined && src.name !== binary) names.push(src.name);
  return names;
}
