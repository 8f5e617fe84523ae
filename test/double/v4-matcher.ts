/**
 * The v4 matcher: an index report plus the vulnerability database gives a VulnerabilityReport, computed on
 * every request and never stored (as Clair does). One vulnerability record per (entry, binary package name),
 * as claircore's Debian updater stores one per binary; `package` in it is the advisory's, not the installed one.
 */
import { encodeDistribution, encodeIndexBody, IdTable, type DistributionRow, type IndexReportRecord } from './v4-model.js';
import { namespaceAliases } from './os-release.js';
import {
  defaultUpdater, isAffected, normalizedSeverity, severityRank, v4PackageNames, ZERO_TIME, type VulnEntry,
} from './vulns.js';

export class V4Matcher {
  private readonly vulnIds = new IdTable(100001);

  constructor(private readonly db: () => VulnEntry[]) {}

  report(index: IndexReportRecord, enrichments: Record<string, unknown[]> | null): Record<string, unknown> {
    const entries = this.db();
    const vulnerabilities: Record<string, unknown> = {};
    const packageVulnerabilities: Record<string, string[]> = {};
    const ranks = new Map<string, [number, string]>();
    for (const [pkgId, pkg] of index.packages) {
      const names = v4PackageNames(pkg.name, pkg.source.name);
      const dists = new Map<string, DistributionRow>();
      for (const env of index.environments.get(pkgId) ?? []) {
        const d = index.distributions.get(env.distribution_id);
        if (d !== undefined) dists.set(d.id, d);
      }
      const hits: string[] = [];
      entries.forEach((e, idx) => {
        if (!names.includes(e.package) || !isAffected(pkg.version, e.fixed)) return;
        const dist = [...dists.values()].find((d) => namespaceAliases(d).includes(e.namespace));
        if (dist === undefined) return;
        const id = this.vulnIds.idFor(`${idx}|${pkg.name}|${dist.id}`);
        if (vulnerabilities[id] === undefined) {
          vulnerabilities[id] = {
            id,
            updater: e.updater ?? defaultUpdater(e.namespace),
            name: e.id,
            description: e.description ?? '',
            issued: e.issued ?? ZERO_TIME,
            links: (e.links ?? []).join(' '),
            severity: e.vendorSeverity ?? e.severity,
            normalized_severity: normalizedSeverity(e.severity),
            package: { id: '', name: pkg.name, version: '', kind: 'binary' },
            distribution: { ...encodeDistribution(dist), id: '' },
            fixed_in_version: e.fixed ?? '',
          };
          ranks.set(id, [severityRank(normalizedSeverity(e.severity)), e.id]);
        }
        if (!hits.includes(id)) hits.push(id);
      });
      if (hits.length > 0) {
        hits.sort((a, b) => {
          const [ra = 0, na = ''] = ranks.get(a) ?? [];
          const [rb = 0, nb = ''] = ranks.get(b) ?? [];
          return rb - ra || na.localeCompare(nb);
        });
        packageVulnerabilities[pkgId] = hits;
      }
    }
    return {
      ...encodeIndexBody(index),
      vulnerabilities,
      package_vulnerabilities: packageVulnerabilities,
      enrichments,
    };
  }
}
