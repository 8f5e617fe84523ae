import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Finding, ImageScan, TrustSignal } from '../../src/findings/model.js';
import { SEVERITIES, type Severity } from '../../src/findings/severity.js';
import {
  decideVerdict,
  evaluateScan,
  exitCodeFor,
  filterFindings,
  OUTCOME_RANKING,
  type FindingFilter,
  type Outcome,
} from '../../src/policy/verdict.js';
import { ExitCode } from '../../src/runtime/errors.js';

function finding(severity: Severity, id = `CVE-2099-${severity}`, pkg = 'openssl', fixedIn?: string): Finding {
  const f: Finding = { id, severity, package: { name: pkg, version: '1.0' }, links: [] };
  if (fixedIn) f.fixedIn = fixedIn;
  return f;
}

function scan(findings: Finding[], trust: TrustSignal[] = []): ImageScan {
  return {
    image: { ref: 'img:1', id: 'sha256:0123456789abcdef' },
    engine: { api: 'v4', url: 'http://clair' },
    distribution: { id: 'debian', version: '12' },
    packageCount: 10,
    findings,
    trust,
  };
}

describe('decideVerdict: thresholds', () => {
  it('fails exactly on findings at or above --fail-on, at every threshold', () => {
    for (const threshold of SEVERITIES) {
      for (const severity of SEVERITIES) {
        const v = decideVerdict(scan([finding(severity)]), { failOn: threshold });
        const shouldFail = SEVERITIES.indexOf(severity) >= SEVERITIES.indexOf(threshold);
        assert.equal(v.verdict, shouldFail ? 'fail' : 'pass', `${severity} with --fail-on ${threshold}`);
        assert.equal(v.failing.length, shouldFail ? 1 : 0);
      }
    }
  });

  it('the edges around High', () => {
    const mixed = [finding('Critical'), finding('High'), finding('Medium'), finding('Low')];
    const high = decideVerdict(scan(mixed), { failOn: 'High' });
    assert.equal(high.verdict, 'fail');
    assert.deepEqual(high.failing.map((f) => f.severity), ['Critical', 'High']);
    assert.equal(high.reason, '2 findings at or above High (1 Critical, 1 High)');

    const medium = decideVerdict(scan([finding('Medium'), finding('Low')]), { failOn: 'High' });
    assert.equal(medium.verdict, 'pass');
    assert.equal(medium.reason, 'no findings at or above High (2 findings below)');

    assert.equal(decideVerdict(scan([finding('High')]), { failOn: 'Critical' }).verdict, 'pass');
    assert.equal(decideVerdict(scan([finding('Unknown')]), { failOn: 'Unknown' }).verdict, 'fail');
    assert.equal(decideVerdict(scan([finding('Negligible')]), { failOn: 'Low' }).verdict, 'pass');
  });

  it("'none' never fails on findings", () => {
    const v = decideVerdict(scan([finding('Critical'), finding('High')]), { failOn: 'none' });
    assert.equal(v.verdict, 'pass');
    assert.deepEqual(v.failing, []);
    assert.match(v.reason, /--fail-on none/);
  });

  it('no findings is a pass that says so', () => {
    const v = decideVerdict(scan([]), { failOn: 'Unknown' });
    assert.deepEqual(v, { verdict: 'pass', reason: 'no vulnerabilities found', failing: [] });
  });
});

describe('decideVerdict: trust', () => {
  const signal: TrustSignal = { kind: 'empty-database', message: "Clair's vulnerability database is empty" };

  it('untrusted beats fail, and still lists what would fail', () => {
    const v = decideVerdict(scan([finding('Critical')], [signal]), { failOn: 'High' });
    assert.equal(v.verdict, 'untrusted');
    assert.equal(v.reason, "Clair's vulnerability database is empty");
    assert.equal(v.failing.length, 1);
  });

  it('untrusted beats pass (nothing found, nothing known)', () => {
    const v = decideVerdict(scan([], [{ kind: 'no-packages', message: 'no packages' }, signal]), { failOn: 'High' });
    assert.equal(v.verdict, 'untrusted');
    assert.equal(v.reason, "no packages; Clair's vulnerability database is empty");
  });

  it("untrusted beats --fail-on none", () => {
    assert.equal(decideVerdict(scan([], [signal]), { failOn: 'none' }).verdict, 'untrusted');
  });
});

describe('the filter seam (issue 5)', () => {
  const unfixed: FindingFilter = {
    suppress: (f) => (f.fixedIn === undefined ? { rule: 'ignore-unfixed', reason: 'no fixed version' } : undefined),
  };
  const byId = (id: string): FindingFilter => ({ suppress: (f) => (f.id === id ? { rule: `ignore-file:.clairignore:1`, reason: 'accepted risk' } : undefined) });

  it('no filters keep everything', () => {
    const s = scan([finding('High')]);
    assert.deepEqual(filterFindings(s), { kept: s.findings, suppressed: [] });
  });

  it('filters run before the threshold and keep the rule that suppressed', () => {
    const s = scan([finding('Critical', 'CVE-1'), finding('High', 'CVE-2', 'bash', '5.2'), finding('Low', 'CVE-3')]);
    const e = evaluateScan(s, { failOn: 'High', filters: [byId('CVE-1'), unfixed] });
    assert.equal(e.verdict, 'fail');
    assert.deepEqual(e.failing.map((f) => f.id), ['CVE-2']);
    assert.deepEqual(e.suppressed.map((x) => [x.finding.id, x.rule]), [
      ['CVE-1', 'ignore-file:.clairignore:1'],
      ['CVE-3', 'ignore-unfixed'],
    ]);

    const clean = evaluateScan(scan([finding('Critical', 'CVE-1')]), { failOn: 'High', filters: [byId('CVE-1')] });
    assert.equal(clean.verdict, 'pass');
    assert.equal(clean.reason, 'no vulnerabilities left: 1 finding ignored by policy');
  });

  it('filters cannot turn an untrusted scan into a pass', () => {
    const e = evaluateScan(scan([finding('Critical')], [{ kind: 'no-updater', message: 'no updater' }]), { failOn: 'High', filters: [unfixed] });
    assert.equal(e.verdict, 'untrusted');
  });
});

describe('exitCodeFor', () => {
  const o = (verdict: Outcome['verdict']): Outcome => (verdict === 'error' ? { verdict, error: new Error('x') } : { verdict });

  it('one image: the README table', () => {
    assert.equal(exitCodeFor([o('pass')]), 0);
    assert.equal(exitCodeFor([o('fail')]), 1);
    assert.equal(exitCodeFor([o('error')]), 2);
    assert.equal(exitCodeFor([o('untrusted')]), 3);
  });

  it('several images: error 2 > untrusted 3 > fail 1 > pass 0', () => {
    assert.deepEqual([...OUTCOME_RANKING], ['error', 'untrusted', 'fail', 'pass']);
    assert.equal(exitCodeFor([o('pass'), o('fail')]), ExitCode.Fail);
    assert.equal(exitCodeFor([o('fail'), o('untrusted'), o('pass')]), ExitCode.Untrusted);
    assert.equal(exitCodeFor([o('untrusted'), o('error')]), ExitCode.Error);
    assert.equal(exitCodeFor([o('pass'), o('pass'), o('error')]), ExitCode.Error);
    assert.equal(exitCodeFor([o('pass'), o('pass')]), ExitCode.Pass);
  });

  it('every pair and order agrees with the ranking', () => {
    const code = { error: 2, untrusted: 3, fail: 1, pass: 0 } as const;
    const verdicts = ['pass', 'fail', 'untrusted', 'error'] as const;
    for (const a of verdicts) {
      for (const b of verdicts) {
        const strongest = OUTCOME_RANKING.find((v) => v === a || v === b)!;
        assert.equal(exitCodeFor([o(a), o(b)]), code[strongest], `${a} + ${b}`);
        assert.equal(exitCodeFor([o(b), o(a)]), code[strongest], `${b} + ${a}`);
      }
    }
  });

  it('no outcome at all is an error, never a pass', () => {
    assert.equal(exitCodeFor([]), ExitCode.Error);
  });
});
