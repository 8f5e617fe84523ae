import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Finding, ImageScan } from '../../src/findings/model.js';
import { buildFilters, globToRegExp, ignoreRulesFilter, ignoreUnfixedFilter } from '../../src/policy/filters.js';
import { parseIgnoreFile } from '../../src/policy/ignore-file.js';
import { evaluateScan, exitCodeFor } from '../../src/policy/verdict.js';
import { visibleFindings } from '../../src/report/listed.js';
import { parseMinSeverity, toScanOptions } from '../../src/cli/options/scan-options.js';

const f = (id: string, severity: Finding['severity'], name: string, fixedIn?: string, source?: string): Finding => ({
  id, severity, package: { name, version: '1', ...(source ? { source: { name: source } } : {}) }, links: [], ...(fixedIn ? { fixedIn } : {}),
});

const SCAN: ImageScan = {
  image: { ref: 'registry.example:5000/team/app:1.2', id: 'sha256:abc', digest: 'registry.example:5000/team/app@sha256:def' },
  engine: { api: 'v4', url: 'http://clair' },
  packageCount: 10,
  findings: [f('CVE-1', 'Critical', 'libc6', '2.0', 'glibc'), f('CVE-2', 'High', 'bash'), f('CVE-3', 'Low', 'apt', '3')],
  trust: [],
};

const rules = (text: string) => parseIgnoreFile(text, '.clairignore').rules;

describe('policy filters', () => {
  it('ignoring the only Critical and the unfixed High turns fail (1) into pass (0); suppressed keep their rule', () => {
    const before = evaluateScan(SCAN, { failOn: 'High' });
    assert.equal(before.verdict, 'fail');
    const after = evaluateScan(SCAN, { failOn: 'High', filters: buildFilters({ rules: rules('cve-1 exp:2027-01-01\n'), ignoreUnfixed: true }) });
    assert.equal(after.verdict, 'pass');
    assert.equal(exitCodeFor([after]), 0);
    assert.deepEqual(after.suppressed.map((s) => [s.finding.id, s.rule, s.reason, s.expires]), [
      ['CVE-1', '.clairignore:1', 'listed in .clairignore:1', '2027-01-01'],
      ['CVE-2', '--ignore-unfixed', 'no fixed version is available', undefined],
    ]);
  });

  it('the ignore file wins over --ignore-unfixed when both match (it comes first)', () => {
    const r = evaluateScan(SCAN, { failOn: 'High', filters: buildFilters({ rules: rules('- id: CVE-2\n  reason: accepted\n'), ignoreUnfixed: true }) });
    assert.deepEqual(r.suppressed.map((s) => [s.rule, s.reason]), [['.clairignore:1', 'accepted']]);
  });

  it('package matches the binary or the source name; a different package does not match', () => {
    const filter = ignoreRulesFilter(rules('- id: CVE-1\n  package: glibc\n- id: CVE-2\n  package: zsh\n'));
    assert.ok(filter.suppress(SCAN.findings[0]!, SCAN));
    assert.equal(filter.suppress(SCAN.findings[1]!, SCAN), undefined);
    const byBinary = ignoreRulesFilter(rules('- id: CVE-1\n  package: libc6\n'));
    assert.ok(byBinary.suppress(SCAN.findings[0]!, SCAN));
  });

  it('image globs match the reference (ports and slashes included), id or digest', () => {
    const hit = (glob: string) => Boolean(ignoreRulesFilter(rules(`- id: CVE-1\n  image: "${glob}"\n`)).suppress(SCAN.findings[0]!, SCAN));
    assert.equal(hit('registry.example:5000/team/app:*'), true);
    assert.equal(hit('*/app:1.?'), true);
    assert.equal(hit('*@sha256:def'), true);
    assert.equal(hit('sha256:abc'), true);
    assert.equal(hit('app:*'), false);
    assert.equal(hit('registry.example:5000/team/other:*'), false);
    assert.equal(globToRegExp('a.b*').test('aXb'), false, 'dots are literal');
  });

  it('--ignore-unfixed alone suppresses only findings without fixedIn', () => {
    assert.equal(ignoreUnfixedFilter.suppress(SCAN.findings[0]!, SCAN), undefined);
    assert.ok(ignoreUnfixedFilter.suppress(SCAN.findings[1]!, SCAN));
  });

  it('visibleFindings drops suppressed ones and those below minSeverity, without touching the verdict', () => {
    const { suppressed, ...verdict } = evaluateScan(SCAN, { failOn: 'Low', filters: buildFilters({ ignoreUnfixed: true }) });
    const outcome = { kind: 'scanned' as const, scan: SCAN, verdict, suppressed };
    assert.deepEqual(visibleFindings(outcome, {}).map((x) => x.id), ['CVE-1', 'CVE-3']);
    assert.deepEqual(visibleFindings(outcome, { minSeverity: 'High' }).map((x) => x.id), ['CVE-1']);
    assert.equal(verdict.failing.length, 2, 'the Low still counts for --fail-on low');
  });

  it('--min-severity parses case-insensitively, once, into ScanOptions', () => {
    assert.equal(parseMinSeverity('HIGH'), 'High');
    assert.throws(() => parseMinSeverity('severe'), /invalid --min-severity "severe"/);
    assert.equal(toScanOptions({ images: ['a'], 'min-severity': 'low' }, {}).minSeverity, 'Low');
    assert.equal(toScanOptions({ images: ['a'] }, {}).minSeverity, undefined);
  });
});
