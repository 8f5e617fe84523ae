/**
 * dpkg's `var/lib/dpkg/status` database.
 *
 * Two readers exist because the two Clair generations read it differently:
 * - v4 (claircore): every stanza whose `Status` has both `ok` and `installed`; the binary package keeps its
 *   name and version; a `Source:` field becomes the source package **verbatim** (so `gcc-12 (12.2.0-14)` stays
 *   one string) with the binary's version.
 * - v1 (Clair 2): every stanza, status ignored; the feature is named after the source package, and a version in
 *   `Source: name (version)` replaces the binary version. Features are keyed `name#version`.
 */
import { field, parseStanzas } from './control-file.js';
import { parseDebVersion } from './dpkg-version.js';

export interface DpkgRecord {
  name: string;
  version: string;
  architecture: string;
  status: string;
  /** The `Source:` field as written, or "" when absent. */
  sourceField: string;
}

export interface SourceRef {
  name: string;
  /** The version in parentheses, when the field had one. */
  version?: string;
}

/** Every stanza that names a package and a version. */
export function parseDpkgStatus(text: string): DpkgRecord[] {
  const out: DpkgRecord[] = [];
  for (const s of parseStanzas(text)) {
    const name = field(s, 'Package');
    const version = field(s, 'Version');
    if (name === undefined || name === '' || version === undefined || version === '') continue;
    out.push({
      name,
      version,
      architecture: field(s, 'Architecture') ?? '',
      status: field(s, 'Status') ?? '',
      sourceField: field(s, 'Source') ?? '',
    });
  }
  return out;
}

/** claircore's installed check: the Status field holds both the words `ok` and `installed`. */
export function isInstalled(record: DpkgRecord): boolean {
  const words = record.status.split(/\s+/);
  return words.includes('ok') && words.includes('installed');
}

/** Splits `Source: name (version)`; the version part is optional. */
export function parseSourceField(text: string): SourceRef | undefined {
  const m = /^(\S*)(?: \((.*)\))?/.exec(text.trim());
  if (m === null || m[1] === undefined || m[1] === '') return undefined;
  const version = m[2]?.trim();
  return version !== undefined && version !== '' ? { name: m[1], version } : { name: m[1] };
}

export interface V1Feature {
  name: string;
  version: string;
}

/** Clair 2's dpkg features: source-named, deduplicated on name#version, in first-seen order. */
export function dpkgFeaturesV1(records: DpkgRecord[]): V1Feature[] {
  const seen = new Map<string, V1Feature>();
  for (const r of records) {
    let name = r.name;
    let version = r.version;
    const src = r.sourceField === '' ? undefined : parseSourceField(r.sourceField);
    if (src !== undefined) {
      name = src.name;
      if (src.version !== undefined && parseDebVersion(src.version) !== undefined) version = src.version;
    }
    if (parseDebVersion(version) === undefined) continue;
    const key = `${name}#${version}`;
    if (!seen.has(key)) seen.set(key, { name, version });
  }
  return [...seen.values()];
}
