// `--format json`: a versioned document for machines. Pure: Report in, string out.
//
// Stability rules: `schemaVersion` changes only on a breaking change (a field removed, renamed or retyped);
// new fields may appear in the same version. Every documented key is always present: optional values are
// null rather than missing (fixedIn, layer, description, title, distribution, image.digest), so consumers can
// tell "none" from "not emitted". Arrays are never null. Findings keep the model's order (severity
// descending, then id, package). Clair text is emitted verbatim; JSON escaping makes control characters inert.
//
// {
//   "schemaVersion": 1,
//   "tool": {"name", "version"}, "generatedAt": ISO 8601, "failOn": "High" | … | "none",
//   "images": [
//     { "image": {"ref", "id", "digest"|null},
//       "verdict": "pass"|"fail"|"untrusted", "reason": string,
//       "distribution": {"id", "version", "prettyName"|null} | null,
//       "packageCount": n,
//       "summary": {"Critical": n, "High": n, "Medium": n, "Low": n, "Negligible": n, "Unknown": n},
//       "failing": n,                      // findings at or above failOn
//       "trust": [{"kind", "message"}],   // why the verdict is untrusted (empty otherwise)
//       "vulnerabilities": [
//         { "id", "title"|null, "severity", "vendorSeverity"|null,
//           "package": {"name", "version", "source": {"name", "version"|null}|null},
//           "fixedIn"|null, "layer"|null, "links": [string], "description"|null } ] },
//     { "image": {"ref", "id"|null, "digest"|null}, "verdict": "error", "reason": string,
//       "error": {"message", "code"|null} } ] }
import type { Finding } from '../findings/model.js';
import { SEVERITIES, type Severity } from '../findings/severity.js';
import type { ImageOutcome, Report } from './model.js';

export const JSON_SCHEMA_VERSION = 1;

export function renderJson(report: Report): string {
  const doc = {
    schemaVersion: JSON_SCHEMA_VERSION,
    tool: { name: report.tool.name, version: report.tool.version },
    generatedAt: report.generatedAt,
    failOn: report.failOn,
    images: report.images.map(imageJson),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function imageJson(outcome: ImageOutcome) {
  if (outcome.kind === 'error') {
    return {
      image: { ref: outcome.image.ref, id: outcome.image.id ?? null, digest: outcome.image.digest ?? null },
      verdict: 'error' as const,
      reason: outcome.error.message,
      error: { message: outcome.error.message, code: outcome.error.code ?? null },
    };
  }
  const { scan, verdict } = outcome;
  const dist = scan.distribution;
  return {
    image: { ref: scan.image.ref, id: scan.image.id, digest: scan.image.digest ?? null },
    verdict: verdict.verdict,
    reason: verdict.reason,
    distribution: dist ? { id: dist.id, version: dist.version, prettyName: dist.prettyName ?? null } : null,
    packageCount: scan.packageCount,
    summary: summarise(scan.findings),
    failing: verdict.failing.length,
    trust: scan.trust.map((t) => ({ kind: t.kind, message: t.message })),
    vulnerabilities: scan.findings.map(findingJson),
  };
}

/** Counts per severity, every severity present, most severe first. */
export function summarise(findings: readonly Finding[]): Record<Severity, number> {
  const counts = Object.fromEntries([...SEVERITIES].reverse().map((s) => [s, 0])) as Record<Severity, number>;
  for (const f of findings) counts[f.severity] += 1;
  return counts;
}

function findingJson(f: Finding) {
  const source = f.package.source;
  return {
    id: f.id,
    title: f.title ?? null,
    severity: f.severity,
    vendorSeverity: f.vendorSeverity ?? null,
    package: {
      name: f.package.name,
      version: f.package.version,
      source: source ? { name: source.name, version: source.version ?? null } : null,
    },
    fixedIn: f.fixedIn ?? null,
    layer: f.layer ?? null,
    links: [...f.links],
    description: f.description ?? null,
  };
}
