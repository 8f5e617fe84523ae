// The renderers' only input: what was scanned, what was decided, stamped by the caller. Built by scan/run.ts;
// every renderer (table, json, later junit and sarif) is a pure function of a Report and plain options.
import type { ImageRef, ImageScan } from '../findings/model.js';
import type { Severity } from '../findings/severity.js';
import type { ImageVerdict, Outcome, Suppression } from '../policy/verdict.js';

export interface Report {
  tool: { name: string; version: string };
  /** When the report was made, ISO 8601; injected by the caller (renderers read no clock). */
  generatedAt: string;
  failOn: Severity | 'none';
  images: ImageOutcome[];
}

export type ImageOutcome = ScannedImage | FailedImage;

/** An image Clair scanned: its findings and the verdict on them. */
export interface ScannedImage {
  kind: 'scanned';
  scan: ImageScan;
  verdict: ImageVerdict;
  /** Findings a filter (ignore file, --ignore-unfixed) took out of the verdict; empty until issue 5. */
  suppressed?: Suppression[];
}

/** An image whose scan threw: it has no findings, only the error. */
export interface FailedImage {
  kind: 'error';
  /** As much of the image's identity as was known when it failed (at least what the user typed). */
  image: { ref: string } & Partial<Omit<ImageRef, 'ref'>>;
  error: { message: string; code?: string };
}

export function imageOf(outcome: ImageOutcome): { ref: string; id?: string; digest?: string } {
  return outcome.kind === 'scanned' ? outcome.scan.image : outcome.image;
}

/** The report's images as verdict outcomes, for exitCodeFor. */
export function outcomesOf(report: Report): Outcome[] {
  return report.images.map((i) => (i.kind === 'scanned' ? { verdict: i.verdict.verdict } : { verdict: 'error' as const }));
}
