// `--format table`: the human report. Pure: Report and plain options in, string out; the caller decides colour
// (from --no-color, NO_COLOR and whether stdout is a TTY) and the width. No clock, env or TTY reads here.
//
// Per image:
//   <ref> (<short id>) · <distribution> · <n> packages indexed · <VERDICT>: <reason>
//   ┌──────────┬────┬─────────┬───────────┬──────────┬───────┐
//   │ Severity │ ID │ Package │ Installed │ Fixed in │ Layer │   rows: severity desc, then package, id
//   └──────────┴────┴─────────┴───────────┴──────────┴───────┘
//   Total: <n> (Critical: a, High: b, Medium: c, Low: d, Negligible: e, Unknown: f)
// A passing image without findings says "No vulnerabilities found." An untrusted image without findings prints
// why it cannot be trusted instead of an (empty, clean-looking) table. An errored image prints its error.
// Every piece of Clair- or user-provided text is passed through text.ts's stripControl (ANSI escapes, C0/C1
// controls and bidirectional overrides removed; everything else, `<`, `&` and non-ASCII included, kept as is).
import Table from 'cli-table3';
import type { Finding, ImageScan } from '../findings/model.js';
import { SEVERITIES, severityRank, type Severity } from '../findings/severity.js';
import type { Verdict } from '../policy/verdict.js';
import { keptFindings, visibleFindings } from './listed.js';
import type { ImageOutcome, Report } from './model.js';
import { stripControl, withoutEscapes } from './text.js';

export interface TableOptions {
  /** Colour the severity and verdict (SGR escapes). */
  color: boolean;
  /** Terminal columns; when given, a table wider than this wraps its cells to fit (as far as possible). */
  width?: number;
}

export function renderTable(report: Report, options: TableOptions): string {
  return `${report.images.map((image) => renderImage(image, options, report)).join('\n\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Colour (SGR with the specific "off" codes cli-table3 understands when it truncates or wraps)

const SEVERITY_STYLE: Record<Severity, [string, string]> = {
  Critical: ['\u001b[1m\u001b[31m', '\u001b[39m\u001b[22m'],
  High: ['\u001b[31m', '\u001b[39m'],
  Medium: ['\u001b[33m', '\u001b[39m'],
  Low: ['\u001b[34m', '\u001b[39m'],
  Negligible: ['\u001b[90m', '\u001b[39m'],
  Unknown: ['\u001b[36m', '\u001b[39m'],
};

const VERDICT_STYLE: Record<Verdict | 'error', [string, string]> = {
  pass: ['\u001b[32m', '\u001b[39m'],
  fail: ['\u001b[1m\u001b[31m', '\u001b[39m\u001b[22m'],
  untrusted: ['\u001b[1m\u001b[33m', '\u001b[39m\u001b[22m'],
  error: ['\u001b[1m\u001b[31m', '\u001b[39m\u001b[22m'],
};

function paint(text: string, style: [string, string], color: boolean): string {
  return color ? `${style[0]}${text}${style[1]}` : text;
}

// ---------------------------------------------------------------------------------------------------------------
// Layout

/** "sha256:0123456789abcdef…" → "0123456789ab"; anything else cut to 12 characters. */
export function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return (colon >= 0 ? digest.slice(colon + 1) : digest).slice(0, 12);
}

function renderImage(outcome: ImageOutcome, options: TableOptions, report: Report): string {
  const { color } = options;
  if (outcome.kind === 'error') {
    const label = paint('ERROR', VERDICT_STYLE.error, color);
    const id = outcome.image.id ? ` (${stripControl(shortDigest(outcome.image.id))})` : '';
    return `${stripControl(outcome.image.ref)}${id} · ${label}: ${stripControl(outcome.error.message)}`;
  }
  const { scan, verdict } = outcome;
  const dist = scan.distribution;
  const distText = dist ? dist.prettyName || [dist.id, dist.version].filter(Boolean).join(' ') : 'no OS detected';
  const header = [
    `${stripControl(scan.image.ref)} (${stripControl(shortDigest(scan.image.id))}${scan.image.source === 'registry' ? ', from its registry' : ''})`,
    stripControl(distText),
    `${scan.packageCount} package${scan.packageCount === 1 ? '' : 's'} indexed`,
    `${paint(verdict.verdict.toUpperCase(), VERDICT_STYLE[verdict.verdict], color)}: ${stripControl(verdict.reason)}`,
  ].join(' · ');

  // Ignored findings and rows below --min-severity are not listed; a note says how many.
  const findings = visibleFindings(outcome, report);
  const ignored = outcome.suppressed?.length ?? 0;
  const hidden = keptFindings(outcome).length - findings.length;
  const notes = [
    ...(ignored > 0 ? [`${ignored} ignored by policy (rules in the JSON report)`] : []),
    ...(hidden > 0 && report.minSeverity ? [`${hidden} below ${report.minSeverity} hidden by --min-severity`] : []),
  ];
  const note = notes.length > 0 ? `\nNot listed: ${notes.join('; ')}.` : '';
  if (findings.length === 0) {
    if (verdict.verdict === 'pass') return `${header}\n${notes.length > 0 ? 'No vulnerabilities listed.' : 'No vulnerabilities found.'}${note}`;
    // Untrusted (or, defensively, anything else) with nothing listed: never an empty, clean-looking table.
    return `${header}\nNo findings listed, but this does NOT mean the image is clean: ${stripControl(verdict.reason)}${note}`;
  }
  return `${header}\n${renderFindings(findings, options)}\n${summaryLine(findings, color)}${note}${layerLegend(scan, findings, options.width)}`;
}

/** Which build step made each layer that introduced a listed finding (from the image history, when known). */
function layerLegend(scan: ImageScan, findings: readonly Finding[], width: number | undefined): string {
  const used = new Set(findings.map((f) => f.layer).filter((l): l is string => Boolean(l)));
  const steps = (scan.layers ?? []).filter((l) => used.has(l.digest));
  if (steps.length === 0) return '';
  const room = Math.max((width ?? 120) - 16, 20);
  const lines = steps.map((l) => {
    const step = stripControl(describeStep(l.createdBy));
    return `  ${shortDigest(l.digest)}  ${step.length > room ? `${step.slice(0, room - 1)}…` : step}`;
  });
  return `\nLayers:\n${lines.join('\n')}`;
}

/** `/bin/sh -c #(nop) COPY x` → `COPY x`; `/bin/sh -c cmd` → `RUN cmd`; BuildKit's `RUN … # buildkit` → `RUN …`. */
export function describeStep(createdBy: string): string {
  const text = createdBy.replace(/\s+/g, ' ').trim();
  if (text === '') return '(base layer, no build step recorded)';
  const nop = /^\/bin\/sh -c #\(nop\) ?(.*)$/.exec(text);
  if (nop) return (nop[1] ?? '').trim();
  const shell = /^\/bin\/sh -c (.*)$/.exec(text);
  if (shell) return `RUN ${shell[1]}`;
  return text.replace(/ # buildkit$/, '');
}

const HEAD = ['Severity', 'ID', 'Package', 'Installed', 'Fixed in', 'Layer'];

function renderFindings(findings: readonly Finding[], options: TableOptions): string {
  const rows = [...findings].sort(byRow).map((f) => [
    // Never wrapped (cli-table3 would count the colour codes and split the word).
    { content: paint(f.severity, SEVERITY_STYLE[f.severity], options.color), wordWrap: false },
    stripControl(f.id),
    stripControl(f.package.name),
    stripControl(f.package.version),
    stripControl(f.fixedIn ?? ''),
    stripControl(f.layer ? shortDigest(f.layer) : ''),
  ]);
  const natural = buildTable(rows, undefined);
  if (options.width === undefined || maxLineWidth(natural) <= options.width) return natural;
  return buildTable(rows, fitColumns(options.width));
}

function buildTable(rows: Table.HorizontalTableRow[], colWidths: number[] | undefined): string {
  // style.head/border empty: no colour from cli-table3 (and its colors library) at all; colour is ours only.
  // One line per row is compact; once cells wrap, rows get separators again so they stay readable. Wrapping
  // is hard (mid-word) on purpose: word-boundary wrapping truncates long versions and ids, losing text.
  const table = new Table({
    head: HEAD,
    style: { head: [], border: [], compact: colWidths === undefined },
    ...(colWidths ? { colWidths, wordWrap: true, wrapOnWordBoundary: false } : {}),
  });
  table.push(...rows);
  return table.toString();
}

/** Column widths (padding included) that fit `width`: fixed severity and layer, the rest shared 3:3:2:2. */
function fitColumns(width: number): number[] {
  const severity = 'Negligible'.length + 2;
  const layer = 12 + 2;
  const borders = HEAD.length + 1;
  const rest = Math.max(width - borders - severity - layer, 4 * 8);
  // Minimum 8 each, then the rest shared 3:3:2:2 (id, package, installed, fixed in), rounding given to id first.
  const weights = [3, 3, 2, 2];
  const sum = weights.reduce((a, b) => a + b, 0);
  const extra = rest - 4 * 8;
  const flexible = weights.map((w) => 8 + Math.floor((extra * w) / sum));
  for (let i = 0, spare = rest - flexible.reduce((a, b) => a + b, 0); spare > 0; i = (i + 1) % 4, spare--) {
    flexible[i] = (flexible[i] as number) + 1;
  }
  return [severity, flexible[0], flexible[1], flexible[2], flexible[3], layer] as number[];
}

function maxLineWidth(text: string): number {
  // Cells are already stripped of wide control characters; count code points as columns.
  return Math.max(...text.split('\n').map((line) => [...withoutEscapes(line)].length));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Table order: severity descending, then package name, id, installed version. */
function byRow(a: Finding, b: Finding): number {
  return (
    severityRank(b.severity) - severityRank(a.severity) ||
    cmp(a.package.name, b.package.name) ||
    cmp(a.id, b.id) ||
    cmp(a.package.version, b.package.version)
  );
}

function summaryLine(findings: readonly Finding[], color: boolean): string {
  const counts = new Map<Severity, number>(SEVERITIES.map((s) => [s, 0]));
  for (const f of findings) counts.set(f.severity, (counts.get(f.severity) ?? 0) + 1);
  const parts = [...SEVERITIES].reverse().map((s) => `${paint(s, SEVERITY_STYLE[s], color)}: ${counts.get(s) ?? 0}`);
  return `Total: ${findings.length} (${parts.join(', ')})`;
}
