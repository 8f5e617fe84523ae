// Ordering and de-duplication of findings, shared by every normaliser so all reports sort alike.
import type { Finding } from './model.js';
import { severityRank } from './severity.js';

/** Two findings for the same (id, package, version): keep the more severe, with both sets of links. */
export function mergeDuplicates(a: Finding, b: Finding): Finding {
  const [keep, other] = severityRank(b.severity) > severityRank(a.severity) ? [b, a] : [a, b];
  const merged: Finding = { ...keep, links: [...new Set([...keep.links, ...other.links])] };
  if (merged.fixedIn === undefined && other.fixedIn !== undefined) merged.fixedIn = other.fixedIn;
  if (merged.description === undefined && other.description !== undefined) merged.description = other.description;
  return merged;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Severity descending, then id, package name, package version. */
export function compareFindings(a: Finding, b: Finding): number {
  return (
    severityRank(b.severity) - severityRank(a.severity) ||
    cmp(a.id, b.id) ||
    cmp(a.package.name, b.package.name) ||
    cmp(a.package.version, b.package.version)
  );
}
