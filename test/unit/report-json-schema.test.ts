// The JSON format against its committed schema: golden documents from fixed findings models (UPDATE_GOLDEN=1
// rewrites test/golden/*.json), each validated with ajv, plus negative checks that the schema has teeth.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Finding, ImageScan, TrustSignal } from '../../src/findings/model.js';
import { evaluateScan } from '../../src/policy/verdict.js';
import { buildFilters } from '../../src/policy/filters.js';
import { parseIgnoreFile, partitionRules } from '../../src/policy/ignore-file.js';
import { JSON_SCHEMA_VERSION, renderJson } from '../../src/report/json.js';
import type { Report, ScannedImage } from '../../src/report/model.js';
import { finding, scanOf } from '../fixtures/report-fixtures.js';
import { assertGolden } from '../helpers/report-formats.js';
import { assertValidReport } from '../helpers/report-schema.js';

const LAYER = 'sha256:aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111';
const HOSTILE = 'crafted <script>alert(1)</script> & "quotes" ]]> end; \u001b[31mred ANSI\u001b[0m; naïve café 日本 🐳\u0007\u0000';

const scan = (findings: Finding[], trust: TrustSignal[] = [], over: Partial<ImageScan> = {}): ImageScan =>
  scanOf('myapp:1.2', findings, trust, over);

const VULNERABLE = () => scan([
  finding({
    id: 'CVE-2099-0001', title: 'CVE-2099-0001 glibc', severity: 'Critical', vendorSeverity: 'critical',
    package: { name: 'libc6', version: '2.36-9+deb12u4', source: { name: 'glibc', version: '2.36-9+deb12u4' } },
    fixedIn: '2.36-9+deb12u99', layer: LAYER, links: ['https://security-tracker.debian.org/tracker/CVE-2099-0001'],
    description: 'out-of-bounds write',
  }),
  finding({ id: 'CVE-2099-0002', severity: 'High', package: { name: 'bash', version: '5.2.15-2+b2' }, layer: LAYER, description: HOSTILE }),
  finding({ id: 'CVE-2099-0003', severity: 'Low', package: { name: 'apt', version: '2.6.1' }, fixedIn: '2.6.2' }),
  finding({ id: 'CVE-2099-0004', severity: 'Negligible', package: { name: 'tar', version: '1.34' } }),
]);

const NOW = new Date('2026-06-01T00:00:00Z');

function report(images: Report['images'], over: Partial<Report> = {}): Report {
  return { tool: { name: 'docker-clair', version: '0.1.0' }, generatedAt: '2026-11-28T13:00:00.000Z', failOn: 'High', images, ...over };
}

function scanned(s: ImageScan, failOn: Report['failOn'] = 'High', filters = buildFilters({})): ScannedImage {
  const { suppressed, ...verdict } = evaluateScan(s, { failOn, filters });
  return { kind: 'scanned', scan: s, verdict, suppressed };
}

const IGNORE = parseIgnoreFile(
  ['vulnerabilities:', '  - id: CVE-2099-0001', '    package: glibc', '    reason: "fixed <upstream> & waiting ]]>"', '    expires: 2027-01-31',
    '  - id: CVE-2099-0003', '    expires: 2026-01-01', '    reason: stale'].join('\n'),
  '.clairignore',
);

const CASES: Record<string, () => Report> = {
  clean: () => report([scanned(scan([]))]),
  failing: () => report([scanned(VULNERABLE())]),
  untrusted: () => report([scanned(scan([], [{ kind: 'empty-database', message: "Clair's vulnerability database is empty" }]))]),
  errored: () => report([
    scanned(scan([])),
    { kind: 'error', image: { ref: 'gone:latest' }, error: { message: 'image gone:latest not found', code: 'IMAGE_NOT_FOUND' } },
  ]),
  hostile: () => report([scanned(scan([finding({ id: 'CVE-<&]]>', severity: 'Medium', title: HOSTILE, description: HOSTILE,
    package: { name: 'pkg-\u001b[1m', version: '1.0~ü' } })], [], { image: { ref: 'app:<tag>&]]>', id: 'sha256:ff' } }))]),
  'min-severity': () => report([scanned(VULNERABLE())], { minSeverity: 'High' }),
  policy: () => {
    const { active, expired } = partitionRules(IGNORE.rules, NOW);
    return report([scanned(VULNERABLE(), 'High', buildFilters({ rules: active, ignoreUnfixed: true }))], {
      minSeverity: 'Low', ignoreFile: '.clairignore', ignoreUnfixed: true, expiredRules: expired,
    });
  },
};

describe('JSON report: schema and golden files', () => {
  for (const [name, make] of Object.entries(CASES)) {
    it(`${name}: matches test/golden/${name}.json and the schema`, () => {
      const text = renderJson(make());
      assertValidReport(text);
      assertGolden(`${name}.json`, text);
    });
  }

  it('schemaVersion is 2', () => {
    assert.equal(JSON_SCHEMA_VERSION, 2);
    assert.equal((JSON.parse(renderJson(CASES.clean!())) as { schemaVersion: number }).schemaVersion, 2);
  });

  it('the policy case: ignored findings carry their rule, expired rules are listed, min-severity hides rows only', () => {
    const doc = JSON.parse(renderJson(CASES.policy!())) as any;
    assert.deepEqual(doc.expiredRules, [{ id: 'CVE-2099-0003', package: null, image: null, expires: '2026-01-01', reason: 'stale', source: '.clairignore:6' }]);
    const image = doc.images[0];
    assert.deepEqual(image.ignored.map((i: any) => [i.id, i.rule.source, i.rule.expires]), [
      ['CVE-2099-0001', '.clairignore:2', '2027-01-31'],
      ['CVE-2099-0002', '--ignore-unfixed', null],
      ['CVE-2099-0004', '--ignore-unfixed', null],
    ]);
    assert.equal(image.ignored[0].rule.reason, 'fixed <upstream> & waiting ]]>');
    assert.equal(image.verdict, 'pass', 'the Critical and the High are ignored, so nothing at or above High remains');
    assert.deepEqual(image.vulnerabilities.map((v: any) => v.id), ['CVE-2099-0003'], 'the expired rule no longer hides 0003');
    assert.equal(image.hidden, 0);
    assert.equal(doc.minSeverity, 'Low');
  });

  it('--min-severity hides rows but not from the verdict or the summary', () => {
    const image = (JSON.parse(renderJson(CASES['min-severity']!())) as any).images[0];
    assert.deepEqual(image.vulnerabilities.map((v: any) => v.severity), ['Critical', 'High']);
    assert.equal(image.hidden, 2);
    assert.equal(image.summary.Low, 1);
    assert.equal(image.verdict, 'fail');
  });

  it('the schema rejects what it should', () => {
    const good = JSON.parse(renderJson(CASES.failing!())) as any;
    const broken = [
      { ...good, schemaVersion: 1 },
      { ...good, failOn: 'high' },
      { ...good, images: [{ ...good.images[0], verdict: 'clean' }] },
      { ...good, images: [{ ...good.images[0], vulnerabilities: [{ ...good.images[0].vulnerabilities[0], fixedIn: undefined }] }] },
      { ...good, expiredRules: [{ id: 'X', package: null, image: null, expires: 'soon', reason: null, source: 'f:1' }] },
    ];
    for (const doc of broken) assert.throws(() => assertValidReport(JSON.stringify(doc)), /does not match/);
  });
});
