// `--format sarif`: SARIF 2.1.0 for code-scanning UIs (GitHub code scanning, Azure DevOps, VS Code's SARIF
// viewer). Pure: Report and plain options in, string out.
//
// One run for the whole report (every image):
//   tool.driver      name, version, informationUri, and one rule per vulnerability ID:
//                    shortDescription (title or ID), fullDescription (description), help (text + markdown with the
//                    links), helpUri (the first link), defaultConfiguration.level, and properties
//                    { "security-severity": "9.5"|"8.0"|"5.5"|"2.0"|"0.5"|"0.0", tags: [vulnerability, security,
//                    <severity>], precision } (level: error when the severity is at or above --fail-on) — GitHub ranks alerts by security-severity (≥ 9 critical, 7–8.9
//                    high, 4–6.9 medium, < 4 low). A rule's severity is the highest among its findings.
//   results          one per finding (vulnerability × package × image), in the Report's order:
//                    level "error" for findings at or above --fail-on (the verdict's failing findings), else
//                    "warning" for Medium and above, "note" below; message naming image, package, installed
//                    version and the fixed-in version; findings the ignore file or --ignore-unfixed suppressed
//                    are kept with `suppressions: [{kind: "external", justification}]` (GitHub hides them).
//   locations        as Trivy does for container images: physicalLocation.artifactLocation.uri is the image's
//                    repository path (tag and digest dropped, `:` of a registry port → `/`, so the URI has no
//                    scheme) relative to ROOTPATH, with region line 1, so GitHub code scanning accepts the result;
//                    plus a logicalLocation naming the full image reference (kind "module").
//   invocations      one: executionSuccessful false when an image errored; images that errored or whose verdict
//                    is untrusted are toolExecutionNotifications (level error / warning), never silent.
// Text from Clair loses ANSI escapes and control characters (newlines kept); JSON escaping does the rest.
import type { Finding, ImageScan } from '../findings/model.js';
import { severityRank, type Severity } from '../findings/severity.js';
import { listedFindings, type ListedFindings } from './listed.js';
import type { ImageOutcome, Report } from './model.js';
import { cleanText as clean } from './text.js';

export interface SarifOptions {
  /** tool.driver.informationUri. */
  informationUri?: string;
}

const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';
const DEFAULT_INFORMATION_URI = 'https://github.com/docker-clair/docker-clair';

/** GitHub's security-severity scale (CVSS-like); Trivy and Grype use the same anchors. */
export const SECURITY_SEVERITY: Record<Severity, string> = {
  Critical: '9.5',
  High: '8.0',
  Medium: '5.5',
  Low: '2.0',
  Negligible: '0.5',
  Unknown: '0.0',
};

type Level = 'error' | 'warning' | 'note';

interface SarifRule {
  id: string;
  name: string;
  shortDescription: { text: string };
  fullDescription: { text: string };
  help: { text: string; markdown: string };
  helpUri?: string;
  defaultConfiguration: { level: Level };
  properties: { 'security-severity': string; tags: string[]; precision: string };
}

interface SarifResult {
  ruleId: string;
  ruleIndex: number;
  level: Level;
  message: { text: string };
  locations: {
    physicalLocation: { artifactLocation: { uri: string; uriBaseId: string }; region: { startLine: number; startColumn: number; endLine: number; endColumn: number } };
    logicalLocations: { name: string; fullyQualifiedName: string; kind: string }[];
    message: { text: string };
  }[];
  partialFingerprints: Record<string, string>;
  suppressions?: { kind: 'external'; status: 'accepted'; justification: string }[];
  properties: Record<string, unknown>;
}

type Notification = { level: Level; message: { text: string }; properties: Record<string, string> };

export function renderSarif(report: Report, options: SarifOptions = {}): string {
  const rules = new RuleSet(report.failOn);
  const results: SarifResult[] = [];
  const notifications: Notification[] = [];
  for (const outcome of report.images) {
    const notification = notificationFor(outcome);
    if (notification) notifications.push(notification);
    if (outcome.kind === 'error') continue;
    const listed = listedFindings(outcome, report);
    for (const f of listed.findings) results.push(resultFor(f, outcome.scan, rules.indexOf(f), listed));
  }
  const anyError = report.images.some((o) => o.kind === 'error');

  const log = {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [{
      tool: {
        driver: {
          name: report.tool.name,
          version: report.tool.version,
          semanticVersion: report.tool.version,
          informationUri: options.informationUri ?? DEFAULT_INFORMATION_URI,
          rules: rules.rules,
        },
      },
      invocations: [{
        executionSuccessful: !anyError,
        endTimeUtc: report.generatedAt,
        toolExecutionNotifications: notifications,
      }],
      originalUriBaseIds: { ROOTPATH: { uri: 'file:///' } },
      columnKind: 'utf16CodeUnits',
      results,
      properties: {
        failOn: report.failOn,
        images: report.images.map((o) =>
          o.kind === 'scanned'
            ? { ref: clean(o.scan.image.ref), id: o.scan.image.id, verdict: o.verdict.verdict, reason: clean(o.verdict.reason) }
            : { ref: clean(o.image.ref), id: o.image.id ?? null, verdict: 'error', reason: clean(o.error.message) }),
      },
    }],
  };
  return `${JSON.stringify(log, null, 2)}\n`;
}

/** Images that errored, or whose verdict cannot be trusted, are said so: never silent. */
function notificationFor(outcome: ImageOutcome): Notification | undefined {
  if (outcome.kind === 'error') {
    return {
      level: 'error',
      message: { text: clean(`${outcome.image.ref}: scan failed: ${outcome.error.message}`) },
      properties: { image: clean(outcome.image.ref), ...(outcome.error.code ? { code: outcome.error.code } : {}) },
    };
  }
  const { scan, verdict } = outcome;
  if (verdict.verdict !== 'untrusted') return undefined;
  return {
    level: 'warning',
    message: { text: clean(`${scan.image.ref}: the verdict cannot be trusted: ${verdict.reason}`) },
    properties: { image: clean(scan.image.ref), trust: scan.trust.map((t) => t.kind).join(',') },
  };
}

/** One rule per vulnerability ID, in the order first seen; a rule's severity is the highest among its findings. */
class RuleSet {
  readonly rules: SarifRule[] = [];
  private readonly index = new Map<string, number>();
  private readonly worst = new Map<string, Severity>();
  private readonly failOn: Report['failOn'];

  constructor(failOn: Report['failOn']) {
    this.failOn = failOn;
  }

  indexOf(f: Finding): number {
    let index = this.index.get(f.id);
    if (index === undefined) {
      index = this.rules.length;
      this.index.set(f.id, index);
      this.rules.push(ruleFor(f, this.failOn));
    }
    const worst = this.worst.get(f.id);
    if (worst === undefined || severityRank(f.severity) > severityRank(worst)) {
      this.worst.set(f.id, f.severity);
      const rule = this.rules[index]!;
      rule.properties['security-severity'] = SECURITY_SEVERITY[f.severity];
      rule.properties.tags = ['vulnerability', 'security', f.severity.toLowerCase()];
      rule.defaultConfiguration.level = levelOf(f.severity, atOrAbove(f.severity, this.failOn));
    }
    return index;
  }
}

function resultFor(f: Finding, scan: ImageScan, ruleIndex: number, listed: ListedFindings): SarifResult {
  const s = listed.suppression(f);
  const ref = clean(scan.image.ref);
  const fix = f.fixedIn ? `fixed in ${clean(f.fixedIn)}` : 'no fix available';
  const pkg = `${clean(f.package.name)} ${clean(f.package.version)}`;
  return {
    ruleId: f.id,
    ruleIndex,
    level: levelOf(f.severity, listed.isFailing(f)),
    message: {
      text: `${ref}: package ${pkg} is affected by ${clean(f.id)} (${f.severity}); ${fix}`,
    },
    locations: [{
      physicalLocation: {
        artifactLocation: { uri: artifactUri(scan.image.ref), uriBaseId: 'ROOTPATH' },
        region: { startLine: 1, startColumn: 1, endLine: 1, endColumn: 1 },
      },
      logicalLocations: [{ name: ref, fullyQualifiedName: `${ref}@${scan.image.id}`, kind: 'module' }],
      message: { text: `${ref}: ${pkg}` },
    }],
    partialFingerprints: { 'dockerClair/v1': `${ref}|${clean(f.id)}|${clean(f.package.name)}` },
    ...(s ? { suppressions: [{ kind: 'external' as const, status: 'accepted' as const, justification: clean(`${s.rule}: ${s.reason}`) }] } : {}),
    properties: {
      image: ref,
      imageId: scan.image.id,
      severity: f.severity,
      package: clean(f.package.name),
      installedVersion: clean(f.package.version),
      fixedIn: f.fixedIn === undefined ? null : clean(f.fixedIn),
      layer: f.layer ?? null,
    },
  };
}

function ruleFor(f: Finding, failOn: Report['failOn']): SarifRule {
  const id = clean(f.id);
  const title = clean(f.title ?? f.id).replace(/\s+/g, ' ').trim() || id;
  const description = clean(f.description ?? title);
  const links = f.links.map(clean);
  // Only plain http(s) URLs become links (helpUri must be a URI; a markdown autolink must not break out).
  const urls = links.filter((l) => /^https?:\/\/[^\s<>]+$/.test(l));
  const helpText = [`Vulnerability ${id}`, `Severity: ${f.severity}`, description, ...(links.length ? ['Links:', ...links.map((l) => `  ${l}`)] : [])].join('\n');
  const md = [
    `**Vulnerability ${mdEscape(id)}**`,
    '',
    '| Severity | Link |',
    '| --- | --- |',
    `| ${f.severity} | ${urls[0] ? `<${urls[0]}>` : 'none'} |`,
    '',
    mdEscape(description),
    ...(urls.length > 0 ? ['', ...urls.map((l) => `- <${l}>`)] : []),
  ].join('\n');
  return {
    id: f.id,
    name: id.replace(/[^A-Za-z0-9]+/g, '_'),
    shortDescription: { text: title },
    fullDescription: { text: description },
    help: { text: helpText, markdown: md },
    ...(urls[0] ? { helpUri: urls[0] } : {}),
    defaultConfiguration: { level: levelOf(f.severity, atOrAbove(f.severity, failOn)) },
    properties: { 'security-severity': SECURITY_SEVERITY[f.severity], tags: ['vulnerability', 'security', f.severity.toLowerCase()], precision: 'very-high' },
  };
}

function atOrAbove(severity: Severity, failOn: Report['failOn']): boolean {
  return failOn !== 'none' && severityRank(severity) >= severityRank(failOn);
}

function levelOf(severity: Severity, failing: boolean): Level {
  if (failing) return 'error';
  return severityRank(severity) >= severityRank('Medium') ? 'warning' : 'note';
}

/**
 * The image as a relative URI, as Trivy writes container targets: `registry:5000/team/app:1.2@sha256:…` →
 * `registry/5000/team/app`. Tag and digest are dropped (the same image at another tag is the same alert
 * location), and no `:` remains, so the reference never reads as a URI scheme.
 */
export function artifactUri(ref: string): string {
  let repo = clean(ref).split('@')[0] ?? '';
  const slash = repo.lastIndexOf('/');
  const colon = repo.lastIndexOf(':');
  if (colon > slash) repo = repo.slice(0, colon);
  const path = repo.replace(/:/g, '/').split('/').filter(Boolean).map((p) => encodeURIComponent(p)).join('/');
  return path || 'image';
}

function mdEscape(text: string): string {
  return text.replace(/[\\`*_{}[\]()<>#+!|]/g, (c) => `\\${c}`).replace(/\n/g, ' ');
}
