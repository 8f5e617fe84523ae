// Clair v4 vulnerability report → the findings model (src/findings/model.ts). The one bridge between Clair's
// wire shapes and the rest of the program; pure.
//
// Rules (each one tested in test/unit/v4-normalise.test.ts):
// - Findings: one per (installed package, vulnerability) pair listed in `package_vulnerabilities`. The installed
//   package is `packages[id]`, never the advisory's `vulnerability.package` (a spec, e.g. "<19.2").
// - Identity: `Finding.id` is the advisory identifier. Clair's `name` is used when it already is one
//   ("CVE-2024-1234", "GHSA-…", "pyup.io-39606 (CVE-2020-36242)"); when the name starts with an identifier
//   followed by a title ("RHSA-2023:5837: nghttp2 security update (Important)", "CVE-2019-3844 systemd") that
//   leading identifier is the id and the full name becomes `title`; when the name is only a title (RHEL
//   "unpatched" OVAL entries such as "gmp: Integer overflow … (moderate)") and its links name exactly one CVE,
//   that CVE is the id. Otherwise the name itself (or, if empty, Clair's internal id) is the id.
// - Dedupe: findings with the same (id, package name, package version) are one finding. Clair repeats an
//   advisory once per repository (RHEL BaseOS/AppStream) and some tools repeat environments; the survivor is
//   the most severe copy, with the union of links and the first known fixed version.
// - Severity: `normalized_severity` (exactly Unknown…Critical; any other string, or none, → Unknown). The raw
//   `severity` is kept as `vendorSeverity` when non-empty.
// - fixedIn, "no fix" when: "" (Clair's own "no fix"), "0:0" (the Debian OVAL-era updater's "epoch 0, version 0"
//   placeholder, e.g. clair-action's debian-stretch report: nothing can be older than 0:0, so it fixes nothing),
//   or an OSV query string without a `fixed=` term. OSV's URL-encoded form ("fixed=1.2.3&introduced=0") gives
//   its `fixed` value. Anything else is kept verbatim (RPM EVRs keep their epoch, e.g. "0:1.33.0-5.el8_8").
// - links: the space-separated string split on whitespace, empties and repeats dropped.
// - layer: `environments[pkg][0].introduced_in` (the first environment with one), i.e. the digest we submitted.
// - package source: kept when Clair names one that differs from the package ("" names are Clair's "unknown").
//   dpkg's "util-linux (2.33.1-0.1)" form is split into name and version.
// - distribution: the one the packages' environments point to; with several, the one most packages point to
//   (ties: the smaller distribution id). With none pointed to, the report's only distribution if it has
//   exactly one. `version` is `version_id`, or `version` when that is empty.
// - Trust signals (any one makes the verdict "untrusted", exit 3):
//   * no-packages: the report lists zero packages. Nothing was indexed, so "no findings" says nothing.
//   * unsupported-os: there are packages, no distribution was detected, AND not a single vulnerability was
//     matched to any package. Without an OS Clair cannot match OS packages at all, and an empty result is
//     indistinguishable from "Clair could not look". If anything matched (e.g. language packages through OSV)
//     the matcher demonstrably ran and the findings are reported as they are, with no distribution.
// - Order: severity descending, then id, then package name, then package version (code-unit order, no locale).
import type { Distribution, Finding, ImageRef, ImageScan, PackageRef, TrustSignal } from '../../findings/model.js';
import { compareFindings, mergeDuplicates } from '../../findings/order.js';
import { SEVERITIES, type Severity } from '../../findings/severity.js';
import { advisoryId } from '../advisory-id.js';
import type * as V4 from './wire.js';

export interface NormaliseContext {
  image: ImageRef;
  /** The matcher URL the report came from (redacted by the caller). */
  url: string;
  /**
   * The index report, when the caller has it. Used only as a fallback for the members a vulnerability report
   * copies from it (packages, distributions, environments) when those are empty in the vulnerability report.
   */
  indexReport?: V4.IndexReport;
}

export function toImageScan(report: V4.VulnerabilityReport, context: NormaliseContext): ImageScan {
  const packages = nonEmpty(report.packages) ?? nonEmpty(context.indexReport?.packages) ?? {};
  const environments = nonEmpty(report.environments) ?? nonEmpty(context.indexReport?.environments) ?? {};
  const distributions = nonEmpty(report.distributions) ?? nonEmpty(context.indexReport?.distributions) ?? {};

  const byKey = new Map<string, Finding>();
  for (const [pkgId, vulnIds] of Object.entries(report.package_vulnerabilities)) {
    const pkg = packages[pkgId];
    if (!pkg) continue; // parseVulnerabilityReport rejects dangling references; tolerate them here
    const packageRef = toPackageRef(pkg);
    const layer = environments[pkgId]?.find((e) => e.introduced_in !== '')?.introduced_in;
    for (const vulnId of vulnIds) {
      const vuln = report.vulnerabilities[vulnId];
      if (!vuln) continue;
      const finding = toFinding(vuln, packageRef, layer);
      const k = JSON.stringify([finding.id, finding.package.name, finding.package.version]);
      const seen = byKey.get(k);
      byKey.set(k, seen ? mergeDuplicates(seen, finding) : finding);
    }
  }
  const findings = [...byKey.values()].sort(compareFindings);

  const packageCount = Object.keys(packages).length;
  const distribution = pickDistribution(packages, environments, distributions);
  const scan: ImageScan = {
    image: context.image,
    engine: { api: 'v4', url: context.url },
    packageCount,
    findings,
    trust: trustSignals(packageCount, distribution, findings.length),
  };
  if (distribution) scan.distribution = distribution;
  return scan;
}

function nonEmpty<T>(map: Record<string, T> | undefined): Record<string, T> | undefined {
  return map && Object.keys(map).length > 0 ? map : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Findings

function toFinding(vuln: V4.Vulnerability, pkg: PackageRef, layer: string | undefined): Finding {
  const links = splitLinks(vuln.links);
  const { id, title } = advisoryId(vuln.name, links, vuln.id);
  const finding: Finding = { id, severity: toSeverity(vuln.normalized_severity), package: pkg, links };
  if (title !== undefined) finding.title = title;
  if (vuln.severity.trim() !== '') finding.vendorSeverity = vuln.severity.trim();
  const fixedIn = toFixedIn(vuln.fixed_in_version);
  if (fixedIn !== undefined) finding.fixedIn = fixedIn;
  if (layer !== undefined) finding.layer = layer;
  const description = vuln.description.trim();
  if (description !== '') finding.description = description;
  return finding;
}

/** normalized_severity → Severity; anything that is not one of the six names (or missing) is Unknown. */
export function toSeverity(normalized: string | undefined): Severity {
  return SEVERITIES.find((s) => s === normalized) ?? SEVERITIES.find((s) => s.toLowerCase() === normalized?.toLowerCase()) ?? 'Unknown';
}

/** Clair's fixed_in_version → the fixing version, or undefined when there is no fix (see the rules above). */
export function toFixedIn(value: string): string | undefined {
  const text = value.trim();
  if (text === '' || text === '0:0') return undefined;
  // OSV ranges arrive URL-encoded: "fixed=1.2.3&introduced=0" (claircore updater/osv).
  if (/^[A-Za-z_]+=/.test(text)) {
    const fixed = new URLSearchParams(text).get('fixed')?.trim();
    return fixed ? fixed : undefined;
  }
  return text;
}

export function splitLinks(links: string): string[] {
  return [...new Set(links.split(/\s+/).filter((l) => l !== ''))];
}

function toPackageRef(pkg: V4.Package): PackageRef {
  const ref: PackageRef = { name: pkg.name, version: pkg.version };
  const src = pkg.source;
  if (src && src.name.trim() !== '') {
    let name = src.name.trim();
    let version = src.version.trim();
    // dpkg copies "Source: util-linux (2.33.1-0.1)" verbatim into the name.
    const m = /^(\S+) \(([^()]+)\)$/.exec(name);
    if (m) {
      name = m[1] as string;
      if (version === '') version = (m[2] as string).trim();
    }
    if (name !== pkg.name) ref.source = version !== '' ? { name, version } : { name };
  }
  return ref;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Distribution and trust

function pickDistribution(
  packages: Record<string, V4.Package>,
  environments: Record<string, V4.Environment[]>,
  distributions: Record<string, V4.Distribution>,
): Distribution | undefined {
  const uses = new Map<string, number>();
  for (const pkgId of Object.keys(packages)) {
    // Count each package once per distribution, however many (identical) environments it has.
    const ids = new Set((environments[pkgId] ?? []).map((e) => e.distribution_id).filter((id) => id !== '' && id in distributions));
    for (const id of ids) uses.set(id, (uses.get(id) ?? 0) + 1);
  }
  const ranked = [...uses.entries()].sort(([ia, na], [ib, nb]) => nb - na || cmp(ia, ib));
  let chosen = ranked[0] ? distributions[ranked[0][0]] : undefined;
  if (!chosen) {
    const all = Object.values(distributions);
    if (all.length === 1) chosen = all[0];
  }
  if (!chosen || (chosen.did === '' && chosen.name === '' && chosen.pretty_name === '')) return undefined;
  const dist: Distribution = { id: chosen.did || chosen.name, version: chosen.version_id || chosen.version };
  if (chosen.pretty_name !== '') dist.prettyName = chosen.pretty_name;
  return dist;
}

function trustSignals(packageCount: number, distribution: Distribution | undefined, findingCount: number): TrustSignal[] {
  if (packageCount === 0) {
    return [{ kind: 'no-packages', message: 'Clair indexed no packages in the image, so finding no vulnerabilities says nothing' }];
  }
  if (!distribution && findingCount === 0) {
    return [
      {
        kind: 'unsupported-os',
        message: `Clair recognised no operating system and matched no vulnerabilities to the ${packageCount} package${packageCount === 1 ? '' : 's'} it indexed; an unsupported OS cannot be told apart from a clean image`,
      },
    ];
  }
  return [];
}
