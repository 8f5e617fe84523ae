/**
 * Combining per-layer scans into one image's packages (claircore's linux coalescer, newer form):
 * - the newest layer holding a package database defines that database's packages;
 * - a package's `introduced_in` is the first layer whose copy of that database lists the identical package;
 * - its distribution is the one found in that layer, else the nearest earlier layer, else the nearest later one;
 * - every distribution found in any layer is listed.
 * The double adds one whiteout rule: a database whose file (or a parent directory) a later layer deletes with
 * `.wh.` or hides with an opaque directory is dropped, so deleting `var/lib/dpkg` removes its packages.
 */
import type { ScannedPackage, V4LayerArtifacts } from './layer-scan.js';
import type { DistributionRow, EnvironmentRow, IdTable, IndexReportRecord, PackageRow, SourceRow } from './v4-model.js';
import type { DistributionFields } from './os-release.js';

export interface IdTables {
  packages: IdTable;
  distributions: IdTable;
}

const distKey = (d: DistributionFields): string => JSON.stringify([d.did, d.name, d.version, d.version_code_name,
  d.version_id, d.arch, d.cpe, d.pretty_name]);
const pkgKey = (p: ScannedPackage): string => JSON.stringify([p.name, p.version, p.kind, p.arch,
  p.source?.name ?? '', p.source?.version ?? '']);

function isUnder(path: string, dir: string): boolean {
  return dir === '' || path === dir || path.startsWith(`${dir}/`);
}

/** True when a layer's whiteouts remove `path` from the layers below it. */
export function deletedBy(layer: Pick<V4LayerArtifacts, 'whiteouts' | 'opaqueDirs'>, path: string): boolean {
  return layer.whiteouts.some((w) => isUnder(path, w)) ||
    layer.opaqueDirs.some((d) => path !== d && isUnder(path, d));
}

export function coalesce(
  hash: string,
  layers: V4LayerArtifacts[],
  ids: IdTables,
): Pick<IndexReportRecord, 'packages' | 'distributions' | 'environments'> {
  const distRows = layers.map((l): DistributionRow | undefined =>
    l.distribution === undefined ? undefined : { ...l.distribution, id: ids.distributions.idFor(distKey(l.distribution)) });
  const distributions = new Map<string, DistributionRow>();
  for (const d of distRows) if (d !== undefined) distributions.set(d.id, d);
  const distFor = (i: number): DistributionRow | undefined => {
    if (distRows[i] !== undefined) return distRows[i];
    for (let k = i - 1; k >= 0; k--) if (distRows[k] !== undefined) return distRows[k];
    for (let k = i + 1; k < distRows.length; k++) if (distRows[k] !== undefined) return distRows[k];
    return undefined;
  };

  const newest = new Map<string, number>();
  for (let i = layers.length - 1; i >= 0; i--) {
    for (const db of layers[i]?.packageDbs.keys() ?? []) if (!newest.has(db)) newest.set(db, i);
  }

  const emptySource: SourceRow = { id: ids.packages.idFor(JSON.stringify(['', '', '', ''])), name: '', version: '', kind: '' };
  const packages = new Map<string, PackageRow>();
  const environments = new Map<string, EnvironmentRow[]>();
  for (const [db, at] of newest) {
    if (layers.slice(at + 1).some((l) => deletedBy(l, db))) continue;
    for (const pkg of layers[at]?.packageDbs.get(db) ?? []) {
      const key = pkgKey(pkg);
      let intro = at;
      for (let i = 0; i < at; i++) {
        if ((layers[i]?.packageDbs.get(db) ?? []).some((p) => pkgKey(p) === key)) {
          intro = i;
          break;
        }
      }
      const id = ids.packages.idFor(key);
      const source: SourceRow = pkg.source === undefined ? emptySource : {
        id: ids.packages.idFor(JSON.stringify([pkg.source.name, pkg.source.version, pkg.source.kind, ''])),
        name: pkg.source.name, version: pkg.source.version, kind: pkg.source.kind,
      };
      packages.set(id, { id, name: pkg.name, version: pkg.version, kind: pkg.kind, arch: pkg.arch, source });
      const env: EnvironmentRow = {
        package_db: db,
        introduced_in: layers[intro]?.digest ?? hash,
        distribution_id: distFor(intro)?.id ?? '',
        repository_ids: null,
      };
      const list = environments.get(id) ?? [];
      if (!list.some((e) => e.package_db === env.package_db && e.introduced_in === env.introduced_in)) list.push(env);
      environments.set(id, list);
    }
  }
  return { packages, distributions, environments };
}
