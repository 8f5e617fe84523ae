/**
 * What each Clair generation extracts from one layer. Scans are per layer and cached by digest (v4) or by
 * layer Name (v1); combining layers is coalesce.ts's job (v4) or v1.ts's (parent inheritance).
 */
import { parseApkInstalled } from './apk.js';
import { dpkgFeaturesV1, isInstalled, parseDpkgStatus, type V1Feature } from './dpkg.js';
import { resolveInLayer, type LayerContents } from './layer-unpack.js';
import { parseOsRelease, toDistribution, toV1Namespace, type DistributionFields } from './os-release.js';

export const APK_DB = 'lib/apk/db/installed';
export const DPKG_STATUS = 'var/lib/dpkg/status';

/** The files a scan reads; everything else in a layer is only listed, never buffered. */
export function wantedPath(path: string): boolean {
  return path === 'etc/os-release' || path === 'usr/lib/os-release' || path === 'etc/alpine-release' ||
    path === APK_DB || path === 'status' || path.endsWith('/status');
}

/**
 * The files Clair 1.x/2.x extract from a layer, and nothing else: the union of every detector's required files
 * (quay/clair v1.2.x worker/detectors/{namespace,feature}/*, v2.0.x–v2.1.x ext/featurens/* and ext/featurefmt/*
 * RequiredFilenames), matched at the start of the entry name as pkg/tarutil ExtractFiles does.
 */
const V1_FILES = /^(?:var\/lib\/dpkg\/status|var\/lib\/rpm\/Packages|lib\/apk\/db\/installed|(?:etc|usr\/lib)\/os-release|etc\/lsb-release|etc\/apt\/sources.list|etc\/(?:oracle|centos|redhat|system)-release|etc\/alpine-release)/;

export function wantedPathV1(path: string): boolean {
  return V1_FILES.test(path);
}

export interface ScannedPackage {
  name: string;
  version: string;
  kind: 'binary';
  arch: string;
  /** claircore's source package: the raw `Source:` text (dpkg) or `o:` origin (apk), with the binary's version. */
  source?: { name: string; version: string; kind: 'source' };
  packageDb: string;
}

export interface V4LayerArtifacts {
  digest: string;
  distribution?: DistributionFields;
  /** Package databases present in this layer, by path (`var/lib/dpkg/status`, `lib/apk/db/installed`). */
  packageDbs: Map<string, ScannedPackage[]>;
  whiteouts: string[];
  opaqueDirs: string[];
}

function text(contents: LayerContents, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  return contents.files.get(path)?.toString('utf8');
}

/** claircore's os-release scanner: `etc/os-release`, then `usr/lib/os-release`, symlinks followed in-layer. */
function scanDistribution(contents: LayerContents): DistributionFields | undefined {
  for (const p of ['etc/os-release', 'usr/lib/os-release']) {
    const body = text(contents, resolveInLayer(contents, p));
    if (body === undefined) continue;
    const dist = toDistribution(parseOsRelease(body));
    if (dist !== undefined) return dist;
  }
  return undefined;
}

/** claircore's dpkg scanner: a directory holding both a `status` file and an `info` directory is a database. */
function scanDpkg(contents: LayerContents, into: Map<string, ScannedPackage[]>): void {
  for (const [path, body] of contents.files) {
    if (!(path === 'status' || path.endsWith('/status'))) continue;
    const dir = path === 'status' ? '' : path.slice(0, -'/status'.length);
    if (!contents.dirs.has(dir === '' ? 'info' : `${dir}/info`)) continue;
    const pkgs: ScannedPackage[] = [];
    for (const r of parseDpkgStatus(body.toString('utf8'))) {
      if (!isInstalled(r)) continue;
      const p: ScannedPackage = { name: r.name, version: r.version, kind: 'binary', arch: r.architecture, packageDb: path };
      if (r.sourceField !== '') p.source = { name: r.sourceField, version: r.version, kind: 'source' };
      pkgs.push(p);
    }
    into.set(path, pkgs);
  }
}

function scanApk(contents: LayerContents, into: Map<string, ScannedPackage[]>): void {
  const body = contents.files.get(APK_DB);
  if (body === undefined) return;
  into.set(APK_DB, parseApkInstalled(body.toString('utf8')).map((r) => {
    const p: ScannedPackage = { name: r.name, version: r.version, kind: 'binary', arch: r.architecture, packageDb: APK_DB };
    if (r.origin !== '') p.source = { name: r.origin, version: r.version, kind: 'source' };
    return p;
  }));
}

export function scanLayerV4(digest: string, contents: LayerContents): V4LayerArtifacts {
  const packageDbs = new Map<string, ScannedPackage[]>();
  scanDpkg(contents, packageDbs);
  scanApk(contents, packageDbs);
  const out: V4LayerArtifacts = {
    digest, packageDbs, whiteouts: [...contents.whiteouts], opaqueDirs: [...contents.opaqueDirs],
  };
  const dist = scanDistribution(contents);
  if (dist !== undefined) out.distribution = dist;
  return out;
}

export interface V1LayerArtifacts {
  /** Detected in this layer; undefined means "inherit the parent's". */
  namespace?: string;
  /** Features from a package database in this layer; undefined means "inherit the parent's". */
  features?: V1Feature[];
}

/**
 * Clair 2: only regular files are extracted (so a symlinked `etc/os-release` is not seen, `usr/lib/os-release`
 * is), `etc/alpine-release` gives `alpine:vX.Y`, and features come from `var/lib/dpkg/status` (source-named)
 * or `lib/apk/db/installed`. Whiteouts are not interpreted.
 */
export function scanLayerV1(contents: LayerContents): V1LayerArtifacts {
  const out: V1LayerArtifacts = {};
  const alpine = text(contents, 'etc/alpine-release');
  const m = alpine === undefined ? null : /^(\d+)\.(\d+)/.exec(alpine.trim());
  if (m !== null) out.namespace = `alpine:v${m[1]}.${m[2]}`;
  for (const p of ['etc/os-release', 'usr/lib/os-release']) {
    if (out.namespace !== undefined) break;
    const body = text(contents, p);
    if (body === undefined) continue;
    const ns = toV1Namespace(parseOsRelease(body));
    if (ns !== undefined) out.namespace = ns;
  }
  const dpkg = text(contents, DPKG_STATUS);
  if (dpkg !== undefined) out.features = dpkgFeaturesV1(parseDpkgStatus(dpkg));
  const apk = text(contents, APK_DB);
  if (apk !== undefined) {
    const seen = new Map<string, V1Feature>();
    for (const r of parseApkInstalled(apk)) seen.set(`${r.name}#${r.version}`, { name: r.name, version: r.version });
    out.features = [...(out.features ?? []), ...seen.values()];
  }
  return out;
}
