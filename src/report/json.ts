// `--format json`: a versioned document for machines. Pure: Report in, string out. Its JSON Schema (draft
// 2020-12) is committed at schema/report.schema.json, and the tests validate every JSON output against it.
//
// Stability rules: `schemaVersion` changes only on a breaking change (a field removed, renamed or retyped, or
// its meaning changed); new fields may appear in the same version. Every documented key is always present:
// optional values are null rather than missing (fixedIn, layer, description, title, distribution, image.digest),
// so consumers can tell "none" from "not emitted". Arrays are never null. Findings keep the model's order
// (severity descending, then id, package). Clair text is emitted verbatim; JSON escaping makes control
// characters inert.
//
// schemaVersion 2: `vulnerabilities` lists only what is neither ignored nor hidden by --min-severity;
// ignored findings move to `ignored` with the rule that hid them; `summary` counts the findings left after the
// ignore rules (hidden ones included), `hidden` says how many rows --min-severity hid. It also carries `minSeverity`,
// `ignoreFile`, `ignoreUnfixed`, `expiredRules`.
//
// {
//   "schemaVersion": 2,
//   "tool": {"name", "version"}, "generatedAt": ISO 8601,
//   "failOn": "High" | … | "none",            // the threshold: findings at or above it fail the image
//   "minSeverity": "Low" | … | null,          // rows below it are hidden; does not change the verdict
//   "ignoreFile": path | null, "ignoreUnfixed": bool,
//   "expiredRules": [{"id", "package"|null, "image"|null, "expires", "reason"|null, "source": "path:line"}],
//   "images": [
//     { "image": {"ref", "id", "digest"|null, "source": "daemon"|"registry"|"archive"|null},
//       "verdict": "pass"|"fail"|"untrusted", "reason": string,
//       "distribution": {"id", "version", "prettyName"|null} | null,
//       "packageCount": n,
//       "summary": {"Critical": n, "High": n, "Medium": n, "Low": n, "Negligible": n, "Unknown": n},
//       "failing": n,                      // findings at or above failOn (after the ignore rules)
//       "hidden": n,                       // findings not listed because of minSeverity
//       "trust": [{"kind", "message"}],   // why the verdict is untrusted (empty otherwise)
//       "vulnerabilities": [
//         { "id", "title"|null, "severity", "vendorSeverity"|null,
//           "package": {"name", "version", "source": {"name", "version"|null}|null},
//           "fixedIn"|null, "layer"|null, "links": [string], "description"|null } ],
//       "ignored": [
//         { "id", "severity", "package": {"name", "version"}, "fixedIn"|null,
//           "rule": {"source": "path:line" | "--ignore-unfixed", "reason", "expires"|null} } ] },
//     { "image": {"ref", "id"|null, "digest"|null, "source": null}, "verdict": "error", "reason": string,
//       "error": {"message", "code"|null} } ] }
import type { Finding } from '../findings/model.js';
import { SEVERITIES, type Severity } from '../findings/severity.js';
import type { IgnoreRule } from '../policy/ignore-rules.js';
import type { Suppression } from '../policy/verdict.js';
import { keptFindings, visibleFindings } from './listed.js';
import type { ImageOutcome, Report } from './model.js';

export const JSON_SCHEMA_VERSION = 2;

export function renderJson(report: Report): string {
  const doc = {
    schemaVersion: JSON_SCHEMA_VERSION,
    tool: { name: report.tool.name, version: report.tool.version },
    generatedAt: report.generatedAt,
    failOn: report.failOn,
    minSeverity: report.minSeverity ?? null,
    ignoreFile: report.ignoreFile ?? null,
    ignoreUnfixed: report.ignoreUnfixed ?? false,
    expiredRules: (report.expiredRules ?? []).map(expiredJson),
    images: report.images.map((image) => imageJson(image, report)),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function imageJson(outcome: ImageOutcome, report: Report) {
  if (outcome.kind === 'error') {
    return {
      image: { ref: outcome.image.ref, id: outcome.image.id ?? null, digest: outcome.image.digest ?? null, source: null },
      verdict: 'error' as const,
      reason: outcome.error.message,
      error: { message: outcome.error.message, code: outcome.error.code ?? null },
    };
  }
  const { scan, verdict } = outcome;
  const dist = scan.distribution;
  const kept = keptFindings(outcome);
  const visible = visibleFindings(outcome, report);
  return {
    image: { ref: scan.image.ref, id: scan.image.id, digest: scan.image.digest ?? null, source: scan.image.source ?? null },
    verdict: verdict.verdict,
    reason: verdict.reason,
    distribution: dist ? { id: dist.id, version: dist.version, prettyName: dist.prettyName ?? null } : null,
    packageCount: scan.packageCount,
    summary: summarise(kept),
    failing: verdict.failing.length,
    hidden: kept.length - visible.length,
    trust: scan.trust.map((t) => ({ kind: t.kind, message: t.message })),
    vulnerabilities: visible.map(findingJson),
    ignored: (outcome.suppressed ?? []).map(ignoredJson),
  };
}

/** Counts per severity, every severity present, most severe first. */
function summarise(findings: readonly Finding[]): Record<Severity, number> {
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

function ignoredJson(s: Suppression) {
  const f = s.finding;
  return {
    id: f.id,
    severity: f.severity,
    package: { name: f.package.name, version: f.package.version },
    fixedIn: f.fixedIn ?? null,
    rule: { source: s.rule, reason: s.reason, expires: s.expires ?? null },
  };
}

function expiredJson(rule: IgnoreRule) {
  return {
    id: rule.id,
    package: rule.package ?? null,
    image: rule.image ?? null,
    expires: rule.expires ?? '',
    reason: rule.reason ?? null,
    source: `${rule.source.path}:${rule.source.line}`,
  };
}
