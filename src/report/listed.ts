// Which findings a report lists for a scanned image, and how each is marked. Every renderer takes its rows from
// here, so --min-severity and the ignore rules look the same in every format.
import type { Finding } from '../findings/model.js';
import { severityRank } from '../findings/severity.js';
import type { Suppression } from '../policy/verdict.js';
import type { Report, ScannedImage } from './model.js';

/**
 * The findings a renderer lists for an image: not suppressed by a filter (those are in `suppressed`, for
 * renderers that show them separately) and at or above `report.minSeverity`. The scan's order is kept.
 */
export function visibleFindings(outcome: ScannedImage, report: Pick<Report, 'minSeverity'>): Finding[] {
  const hidden = new Set((outcome.suppressed ?? []).map((s) => s.finding));
  const min = minRank(report);
  return outcome.scan.findings.filter((f) => !hidden.has(f) && severityRank(f.severity) >= min);
}

/** The findings left after the filters (ignore file, --ignore-unfixed), whatever --min-severity hides. */
export function keptFindings(outcome: ScannedImage): Finding[] {
  const hidden = new Set((outcome.suppressed ?? []).map((s) => s.finding));
  return outcome.scan.findings.filter((f) => !hidden.has(f));
}

/**
 * A finding's identity within one image (vulnerability, package, installed version): how a listed finding is
 * looked up among the verdict's failing findings and the suppressions.
 */
function findingKey(f: Finding): string {
  return JSON.stringify([f.id, f.package.name, f.package.version]);
}

/** The rows of a format that also shows what the policy suppressed (JUnit as skipped, SARIF as suppressed). */
export interface ListedFindings {
  /** The visible findings, then the suppressed ones at or above --min-severity. */
  findings: Finding[];
  /** At or above --fail-on: one of the verdict's failing findings. */
  isFailing: (f: Finding) => boolean;
  /** The rule that suppressed it, if one did. */
  suppression: (f: Finding) => Suppression | undefined;
}

export function listedFindings(outcome: ScannedImage, report: Pick<Report, 'minSeverity'>): ListedFindings {
  const failing = new Set(outcome.verdict.failing.map(findingKey));
  const suppressed = new Map<string, Suppression>((outcome.suppressed ?? []).map((s) => [findingKey(s.finding), s]));
  const findings = [...visibleFindings(outcome, report)];
  const seen = new Set(findings.map(findingKey));
  const min = minRank(report);
  for (const s of outcome.suppressed ?? []) {
    if (!seen.has(findingKey(s.finding)) && severityRank(s.finding.severity) >= min) findings.push(s.finding);
  }
  return {
    findings,
    isFailing: (f) => failing.has(findingKey(f)),
    suppression: (f) => suppressed.get(findingKey(f)),
  };
}

function minRank(report: Pick<Report, 'minSeverity'>): number {
  return report.minSeverity === undefined ? -1 : severityRank(report.minSeverity);
}
