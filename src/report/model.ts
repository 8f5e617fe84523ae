// The renderers' only input: what was scanned, what was decided, stamped by the caller (built by build.ts).
// Every renderer is a pure function of a Report and plain options, so the same run renders the same in any format.
import type { ImageRef, ImageScan } from '../findings/model.js';
import type { Severity } from '../findings/severity.js';
import type { IgnoreRule } from '../policy/ignore-rules.js';
import type { ImageVerdict, Outcome, Suppression } from '../policy/verdict.js';

export interface Report {
  tool: { name: string; version: string };
  /** When the report was made, ISO 8601; injected by the caller (renderers read no clock). */
  generatedAt: string;
  failOn: Severity | 'none';
  /** --min-severity: rows below it are hidden by every renderer (see listed.ts); the verdict is unaffected. */
  minSeverity?: Severity;
  /** The ignore file read for this run, if any. */
  ignoreFile?: string;
  /** --ignore-unfixed was given. */
  ignoreUnfixed?: boolean;
  /** Ignore-file rules that had expired, so were not applied (reported so someone renews or removes them). */
  expiredRules?: IgnoreRule[];
  images: ImageOutcome[];
}

export type ImageOutcome = ScannedImage | FailedImage;

/** An image Clair scanned: its findings and the verdict on them. */
export interface ScannedImage {
  kind: 'scanned';
  scan: ImageScan;
  verdict: ImageVerdict;
  /** Findings a filter (ignore file, --ignore-unfixed) took out of the verdict, each with its rule. */
  suppressed?: Suppression[];
}

/** An image whose scan threw: it has no findings, only the error. */
export interface FailedImage {
  kind: 'error';
  /** As much of the image's identity as was known when it failed (at least what the user typed). */
  image: { ref: string } & Partial<Omit<ImageRef, 'ref'>>;
  error: { message: string; code?: string };
}

/** The report's images as verdict outcomes, for exitCodeFor. */
export function outcomesOf(report: Report): Outcome[] {
  return report.images.map((i) => (i.kind === 'scanned' ? { verdict: i.verdict.verdict } : { verdict: 'error' as const }));
}

