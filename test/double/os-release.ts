/**
 * os-release(5) parsing and the distribution records both Clair generations derive from it.
 */

export type OsRelease = Map<string, string>;

/** Parses `KEY=value` lines; values may be single- or double-quoted (with backslash escapes in double quotes). */
export function parseOsRelease(text: string): OsRelease {
  const out: OsRelease = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    } else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      value = value.slice(1, -1);
    }
    out.set(key, value);
  }
  return out;
}

/** claircore's Distribution, as its JSON names the fields. `id` is assigned by the store. */
export interface DistributionFields {
  did: string;
  name: string;
  version: string;
  version_code_name: string;
  version_id: string;
  arch: string;
  cpe: string;
  pretty_name: string;
}

/** The v4 distribution for an os-release file, or undefined when it has no ID. */
export function toDistribution(os: OsRelease): DistributionFields | undefined {
  const did = os.get('ID') ?? '';
  if (did === '') return undefined;
  return {
    did,
    name: os.get('NAME') ?? '',
    version: os.get('VERSION') ?? '',
    version_code_name: os.get('VERSION_CODENAME') ?? '',
    version_id: os.get('VERSION_ID') ?? '',
    arch: '',
    cpe: os.get('CPE_NAME') ?? '',
    pretty_name: os.get('PRETTY_NAME') ?? '',
  };
}

/**
 * Clair 2's namespace name: `alpine:vX.Y` for Alpine, `<ID>:<VERSION_ID>` otherwise
 * (`debian:unstable` for a Debian without VERSION_ID).
 */
export function toV1Namespace(os: OsRelease): string | undefined {
  const id = os.get('ID') ?? '';
  if (id === '') return undefined;
  const versionId = os.get('VERSION_ID') ?? '';
  if (id === 'alpine') {
    const m = /^(\d+)\.(\d+)/.exec(versionId);
    return m === null ? undefined : `alpine:v${m[1]}.${m[2]}`;
  }
  if (versionId === '') return id === 'debian' ? 'debian:unstable' : undefined;
  return `${id}:${versionId}`;
}

/** Every namespace alias a v4 distribution answers to in the --vulns file (`did:version_id`, Alpine's `vX.Y`). */
export function namespaceAliases(d: Pick<DistributionFields, 'did' | 'version_id'>): string[] {
  const out = [`${d.did}:${d.version_id}`];
  if (d.did === 'alpine') {
    const m = /^(\d+)\.(\d+)/.exec(d.version_id);
    if (m !== null) out.push(`alpine:v${m[1]}.${m[2]}`, `alpine:${m[1]}.${m[2]}`);
  }
  return out;
}
