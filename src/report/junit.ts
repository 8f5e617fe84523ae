// `--format junit`: JUnit XML for Jenkins (and any other JUnit consumer). Pure: Report and plain options in,
// string out; the caller passes the host name (no environment reads here) and the Report carries the time.
//
// The document is valid under both the Ant JUnit XSD and the Jenkins xunit-plugin junit-10 XSD (the tests check
// both with xmllint):
//
//   <testsuites>                                     bare: the Ant XSD allows no attribute on it
//     <testsuite name="<image>" package="clair" id="0" timestamp="<generatedAt, UTC, no zone>" hostname="…"
//                tests failures errors skipped time="0">         one suite per image, always ≥ 1 testcase
//       <properties> image, image.id, image.digest, image.source, clair.url, clair.api, distribution, packages, fail-on, verdict,
//                    reason, tool </properties>
//       <testcase classname="clair.<image>" name="scan" time="0"/>            the image's own case, always present:
//                    passing when the scan gave a trustworthy answer; <error type="ScanError|DatabaseEmpty|
//                    Unsupported|NoPackages|NoUpdater"> when the image errored or its verdict is untrusted
//       <testcase classname="clair.<image>.<package>" name="<ID> (<Severity>) <package> <version>" time="0">
//                    one per finding (vulnerability × package):
//                    <failure type="<Severity>" message=…>  at or above --fail-on (the verdict's failing findings)
//                    <skipped message="ignored by <rule>: <reason>"/>   suppressed by the ignore file/--ignore-unfixed
//                    nothing (passing)                      below the threshold
//                    (the findings listed are listed.ts's listedFindings: --min-severity hides rows, never failures
//                    of the verdict; suppressed findings below --min-severity are hidden too)
//       <system-out>  the verdict and its reason   <system-err>  the image's error, if any
//
// Names: <image> is the image reference with every `.`, `:`, `/`, `@` and white space replaced by `_`, and
// <package> the package name with `.` replaced by `_`, so Jenkins' split of classname at the LAST dot gives
// package `clair.<image>` and class `<package>` (and, for the "scan" case, package `clair` and class `<image>`).
// No version ever appears in a classname. The fixed-in version is in the failure message, not the test name, so a
// test keeps its name (and its Jenkins history) when a fix is published.
//
// Text hygiene: every piece of Clair- or user-provided text loses ANSI escape sequences, C0/C1 control characters
// (tab and newline kept in bodies), bidirectional overrides, lone surrogates and U+FFFE/U+FFFF, i.e. everything
// XML 1.0 forbids or a terminal would interpret; attribute values are also folded onto one line. xmlbuilder2 then
// escapes `<`, `&`, `>` (so `]]>` cannot appear) and `"`. Non-ASCII text is kept and written as UTF-8.
import { create } from 'xmlbuilder2';
import type { Finding } from '../findings/model.js';
import { listedFindings } from './listed.js';
import type { FailedImage, ImageOutcome, Report } from './model.js';
import { cleanText } from './text.js';

export interface JunitOptions {
  /** The suite `hostname` attribute (the Ant XSD requires one); the caller supplies it. Default "localhost". */
  hostname?: string;
}

const CLASS_ROOT = 'clair';

export function renderJunit(report: Report, options: JunitOptions = {}): string {
  const doc = create({ version: '1.0', encoding: 'UTF-8' });
  const root = doc.ele('testsuites');
  report.images.forEach((outcome, index) => {
    const suite = buildSuite(outcome, report);
    const ref = outcome.kind === 'scanned' ? outcome.scan.image.ref : outcome.image.ref;
    const el = root.ele('testsuite', {
      name: classPart(ref),
      package: CLASS_ROOT,
      id: String(index),
      timestamp: junitTimestamp(report.generatedAt),
      hostname: attr(options.hostname ?? 'localhost') || 'localhost',
      tests: String(suite.cases.length),
      failures: String(suite.cases.filter((c) => c.outcome?.kind === 'failure').length),
      errors: String(suite.cases.filter((c) => c.outcome?.kind === 'error').length),
      skipped: String(suite.cases.filter((c) => c.outcome?.kind === 'skipped').length),
      time: formatSeconds(0),
    });
    const props = el.ele('properties');
    for (const [name, value] of suite.properties) props.ele('property', { name, value: attr(value) });
    for (const c of suite.cases) {
      const tc = el.ele('testcase', { classname: c.classname, name: attr(c.name), time: '0' });
      const o = c.outcome;
      if (!o) continue;
      if (o.kind === 'skipped') tc.ele('skipped', { message: attr(o.message) });
      else tc.ele(o.kind, { message: attr(o.message), type: attr(o.type) }).txt(body(o.body));
    }
    el.ele('system-out').txt(body(suite.out));
    el.ele('system-err').txt(body(suite.err));
  });
  return `${doc.end({ prettyPrint: true, indent: '  ' })}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Mapping

type CaseOutcome =
  | { kind: 'failure' | 'error'; type: string; message: string; body: string }
  | { kind: 'skipped'; message: string };

interface Case {
  classname: string;
  name: string;
  outcome?: CaseOutcome;
}

interface Suite {
  properties: [string, string][];
  cases: Case[];
  out: string;
  err: string;
}

const TRUST_TYPES = {
  'empty-database': 'DatabaseEmpty',
  'unsupported-os': 'Unsupported',
  'no-packages': 'NoPackages',
  'no-updater': 'NoUpdater',
} as const;

function buildSuite(outcome: ImageOutcome, report: Report): Suite {
  if (outcome.kind === 'error') return failedSuite(outcome, report);
  const { scan, verdict } = outcome;
  const imageClass = `${CLASS_ROOT}.${classPart(scan.image.ref)}`;
  const dist = scan.distribution;
  const properties: [string, string][] = [
    ['image', scan.image.ref],
    ['image.id', scan.image.id],
    ...(scan.image.digest ? [['image.digest', scan.image.digest] as [string, string]] : []),
    ...(scan.image.source ? [['image.source', scan.image.source] as [string, string]] : []),
    ['clair.url', scan.engine.url],
    ['clair.api', scan.engine.api],
    ['distribution', dist ? (dist.prettyName ?? `${dist.id} ${dist.version}`) : 'none recognised'],
    ['packages', String(scan.packageCount)],
    ['fail-on', report.failOn],
    ['verdict', verdict.verdict],
    ['reason', verdict.reason],
    ['tool', `${report.tool.name} ${report.tool.version}`],
  ];

  const scanCase: Case = { classname: imageClass, name: 'scan' };
  if (verdict.verdict === 'untrusted') {
    const first = scan.trust[0];
    scanCase.outcome = {
      kind: 'error',
      type: first ? TRUST_TYPES[first.kind] : 'Untrusted',
      message: `the verdict cannot be trusted: ${verdict.reason}`,
      body: scan.trust.map((t) => `${t.kind}: ${t.message}`).join('\n') || verdict.reason,
    };
  }

  // The rows every format lists, then the suppressed findings at or above --min-severity, as skipped.
  const listed = listedFindings(outcome, report);
  const findingCases: Case[] = listed.findings.map((f) => {
    const c: Case = {
      classname: `${imageClass}.${packagePart(f.package.name)}`,
      name: `${f.id} (${f.severity}) ${f.package.name} ${f.package.version}`,
    };
    const s = listed.suppression(f);
    if (s) c.outcome = { kind: 'skipped', message: `ignored by ${s.rule}: ${s.reason}` };
    else if (listed.isFailing(f)) {
      c.outcome = { kind: 'failure', type: f.severity, message: failureMessage(f), body: failureBody(f, scan.image.ref) };
    }
    return c;
  });

  return {
    properties,
    cases: [scanCase, ...findingCases],
    out: `${scan.image.ref}: ${verdict.verdict.toUpperCase()}: ${verdict.reason}`,
    err: '',
  };
}

/** An image whose scan threw: its one case errors with the message. */
function failedSuite(outcome: FailedImage, report: Report): Suite {
  const image = outcome.image;
  const imageClass = `${CLASS_ROOT}.${classPart(image.ref)}`;
  const message = `scan failed: ${outcome.error.message}`;
  return {
    properties: [
      ['image', image.ref],
      ...(image.id ? [['image.id', image.id] as [string, string]] : []),
      ...(image.digest ? [['image.digest', image.digest] as [string, string]] : []),
      ['fail-on', report.failOn],
      ['verdict', 'error'],
      ['reason', outcome.error.message],
      ['tool', `${report.tool.name} ${report.tool.version}`],
    ],
    cases: [{
      classname: imageClass,
      name: 'scan',
      outcome: {
        kind: 'error',
        type: 'ScanError',
        message,
        body: `${outcome.error.message}${outcome.error.code ? `\ncode: ${outcome.error.code}` : ''}`,
      },
    }],
    out: `${image.ref}: ERROR: ${outcome.error.message}`,
    err: outcome.error.message,
  };
}

function failureMessage(f: Finding): string {
  const fix = f.fixedIn ? `fixed in ${f.fixedIn}` : 'no fix available';
  return `${f.severity}: ${f.id} in ${f.package.name} ${f.package.version} (${fix})`;
}

function failureBody(f: Finding, ref: string): string {
  const lines = [
    `${f.id} (${f.severity}${f.vendorSeverity && f.vendorSeverity.toLowerCase() !== f.severity.toLowerCase() ? `, vendor: ${f.vendorSeverity}` : ''})`,
    ...(f.title && f.title !== f.id ? [`title: ${f.title}`] : []),
    `image: ${ref}`,
    `package: ${f.package.name} ${f.package.version}`,
    ...(f.package.source ? [`source package: ${f.package.source.name}${f.package.source.version ? ` ${f.package.source.version}` : ''}`] : []),
    `fixed in: ${f.fixedIn ?? 'no fix available'}`,
    ...(f.layer ? [`introduced in layer: ${f.layer}`] : []),
    ...(f.description ? ['', f.description] : []),
    ...(f.links.length > 0 ? ['', 'links:', ...f.links.map((l) => `  ${l}`)] : []),
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Names, times, text

/** An image reference as one classname segment: `.`, `:`, `/`, `@` and white space become `_`. */
export function classPart(ref: string): string {
  return attr(ref).replace(/[.:/@\s]/g, '_') || '_';
}

/** A package name as one classname segment: `.` becomes `_` (python3.11 → python3_11). */
export function packagePart(name: string): string {
  return attr(name).replace(/[.\s]/g, '_') || '_';
}

/** ISO 8601 → `YYYY-MM-DDThh:mm:ss` in UTC without a zone (the Ant XSD's xs:dateTime rejects `Z` there). */
export function junitTimestamp(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '1970-01-01T00:00:00';
  return d.toISOString().slice(0, 19);
}

/** Seconds with at most 3 decimals (junit-10's pattern rejects more), no exponent. */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '0';
  return String(Math.round(seconds * 1000) / 1000);
}

function body(text: string): string {
  return cleanText(text);
}

/** Text for an attribute: as an element body, folded onto one line (XML would turn raw line breaks into spaces anyway). */
function attr(text: string): string {
  return cleanText(text).replace(/\s+/g, ' ').trim();
}
