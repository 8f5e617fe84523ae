// The pass/fail decision for one image, and the process exit code over several. Pure: no I/O, no clock.
//
// Pipeline for one image:
//   1. filterFindings(scan, filters): each FindingFilter (ignore file, --ignore-unfixed …) may suppress a
//      finding, naming its rule and reason; suppressed findings are kept aside for the reports, never dropped.
//   2. decideVerdict(scan, { failOn }, filtered): untrusted when the scan carries any trust signal; otherwise
//      fail when a remaining finding is at or above --fail-on; otherwise pass.
// `evaluateScan` runs both. With no filters, step 1 keeps every finding.
import type { Finding, ImageScan } from '../findings/model.js';
import { severityRank, type Severity } from '../findings/severity.js';
import { ExitCode } from '../runtime/errors.js';

export type Verdict = 'pass' | 'fail' | 'untrusted';

export interface PolicyOptions {
  /** Findings at or above this severity fail the image; 'none' never fails on findings. */
  failOn: Severity | 'none';
}

export interface ImageVerdict {
  verdict: Verdict;
  /** One human sentence saying why, e.g. "2 findings at or above High (1 Critical, 1 High)". */
  reason: string;
  /** The findings at or above the threshold that made it fail (empty unless verdict is 'fail'). */
  failing: Finding[];
}

/** A finding a filter took out of the decision, with the rule that did it. */
export interface Suppression {
  finding: Finding;
  /** Which rule: where it is written ("path:line" of an ignore-file entry) or the option ("--ignore-unfixed"). */
  rule: string;
  /** Why: the rule's own reason when it gives one, else a sentence saying what matched. */
  reason: string;
  /** YYYY-MM-DD when the rule that hid it expires. */
  expires?: string;
}

/** What a filter says when it suppresses a finding. */
export type SuppressionHit = Omit<Suppression, 'finding'>;

/**
 * A rule that may suppress a finding before the verdict (the ignore file, --ignore-unfixed): suppression comes
 * first so an ignored finding can never fail the scan.
 */
export interface FindingFilter {
  /** Returns why the finding is suppressed, or undefined to keep it. */
  suppress(finding: Finding, scan: ImageScan): SuppressionHit | undefined;
}

export interface FilteredFindings {
  kept: Finding[];
  suppressed: Suppression[];
}

export function filterFindings(scan: ImageScan, filters: readonly FindingFilter[] = []): FilteredFindings {
  const kept: Finding[] = [];
  const suppressed: Suppression[] = [];
  for (const finding of scan.findings) {
    let hit: SuppressionHit | undefined;
    for (const filter of filters) {
      hit = filter.suppress(finding, scan);
      if (hit) break;
    }
    if (hit) suppressed.push({ finding, ...hit });
    else kept.push(finding);
  }
  return { kept, suppressed };
}

/**
 * The verdict for one image. `findings` are those left after filtering (default: all of the scan's).
 * Untrusted wins over pass and fail: when the result cannot be trusted, neither "clean" nor "only these" is
 * known, so the failing findings are still listed but the verdict says the scan itself is in doubt.
 */
export function decideVerdict(scan: ImageScan, policy: PolicyOptions, findings: readonly Finding[] = scan.findings): ImageVerdict {
  const failing = policy.failOn === 'none' ? [] : atOrAbove(findings, policy.failOn);
  if (scan.trust.length > 0) {
    return { verdict: 'untrusted', reason: scan.trust.map((t) => t.message).join('; '), failing };
  }
  if (failing.length > 0) {
    return {
      verdict: 'fail',
      reason: `${plural(failing.length, 'finding')} at or above ${policy.failOn} (${countBySeverity(failing)})`,
      failing,
    };
  }
  if (findings.length === 0) return { verdict: 'pass', reason: 'no vulnerabilities found', failing };
  if (policy.failOn === 'none') {
    return { verdict: 'pass', reason: `${plural(findings.length, 'finding')}; --fail-on none never fails on findings`, failing };
  }
  return { verdict: 'pass', reason: `no findings at or above ${policy.failOn} (${plural(findings.length, 'finding')} below)`, failing };
}

export interface Evaluation extends ImageVerdict {
  suppressed: Suppression[];
}

/** Filters, then decides: the whole policy step for one image. */
export function evaluateScan(scan: ImageScan, policy: PolicyOptions & { filters?: readonly FindingFilter[] }): Evaluation {
  const { kept, suppressed } = filterFindings(scan, policy.filters);
  const decided = decideVerdict(scan, policy, kept);
  if (suppressed.length === 0 || decided.verdict === 'untrusted') return { ...decided, suppressed };
  // The reason says that ignoring played a part, so "clean" is never claimed for an image whose findings were ignored.
  const ignored = `${plural(suppressed.length, 'finding')} ignored by policy`;
  const reason = kept.length === 0 ? `no vulnerabilities left: ${ignored}` : `${decided.reason}; ${ignored}`;
  return { ...decided, reason, suppressed };
}

function atOrAbove(findings: readonly Finding[], threshold: Severity): Finding[] {
  const min = severityRank(threshold);
  return findings.filter((f) => severityRank(f.severity) >= min);
}

function countBySeverity(findings: readonly Finding[]): string {
  const counts = new Map<Severity, number>();
  for (const f of findings) counts.set(f.severity, (counts.get(f.severity) ?? 0) + 1);
  return [...counts.entries()]
    .sort(([a], [b]) => severityRank(b) - severityRank(a))
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Exit code over several images

/** One image's outcome: a verdict, or a scan that threw. */
export type Outcome = { verdict: Verdict } | { verdict: 'error'; error?: unknown };

/**
 * Which outcome decides the exit code when images disagree, strongest first. This is the README's exit-code table
 * read as a ranking:
 *   error (2)     an image could not be scanned at all: the run's answer is incomplete, whatever the others say;
 *   untrusted (3) an image was scanned but its result cannot be trusted (empty database, unsupported OS …);
 *   fail (1)      findings at or above --fail-on;
 *   pass (0)      nothing at or above --fail-on.
 * So error outranks untrusted although 3 > 2 numerically, and no image can hide another's problem.
 */
export const OUTCOME_RANKING = ['error', 'untrusted', 'fail', 'pass'] as const;

const EXIT_CODES: Record<(typeof OUTCOME_RANKING)[number], ExitCode> = {
  error: ExitCode.Error,
  untrusted: ExitCode.Untrusted,
  fail: ExitCode.Fail,
  pass: ExitCode.Pass,
};

/** The exit code of a run; no outcomes at all (nothing scanned) is an error, never a pass. */
export function exitCodeFor(outcomes: Iterable<Outcome>): ExitCode {
  const seen = new Set<string>();
  for (const o of outcomes) seen.add(o.verdict);
  if (seen.size === 0) return ExitCode.Error;
  const decisive = OUTCOME_RANKING.find((v) => seen.has(v)) ?? 'error';
  return EXIT_CODES[decisive];
}
