// Issue 5's policy end to end, in-process: the real daemon and test image docker-clair-test/debian12, the Clair
// double with the fixture database (test/fixtures/vulnerabilities.json), the ignore file in both forms,
// --ignore-unfixed, an expired rule, --min-severity; every JSON report validated against the committed schema.
// The in-process clock is 2026-01-02T03:04:05Z (test/helpers/scan.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/runtime/log.js';
import { loadRunPolicy } from '../../src/policy/load.js';
import { startClairDouble, type ClairDouble } from '../double/server.js';
import { TEST_IMAGES } from '../helpers/daemon.js';
import { assertValidReport } from '../helpers/report-schema.js';
import { scanInProcess, type ScanRun } from '../helpers/scan.js';
import { Capture } from '../helpers/streams.js';

interface JsonImage {
  verdict: string;
  reason: string;
  hidden: number;
  summary: Record<string, number>;
  vulnerabilities: { id: string; severity: string; package: { name: string }; fixedIn: string | null }[];
  ignored: { id: string; package: { name: string }; rule: { source: string; reason: string; expires: string | null } }[];
}
interface JsonDoc {
  ignoreFile: string | null;
  ignoreUnfixed: boolean;
  minSeverity: string | null;
  expiredRules: { id: string; expires: string; source: string }[];
  images: JsonImage[];
}

/** The run's JSON report, checked against schema/report.schema.json. */
function report(run: ScanRun): JsonDoc {
  return assertValidReport(run.stdout) as JsonDoc;
}

describe('scan with policy (ignore file, --ignore-unfixed, --min-severity) on Clair v4', () => {
  let clair: ClairDouble;
  let dir: string;
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const scan = (...args: string[]) => scanInProcess(['--clair', clair.url, '--format', 'json', ...args, TEST_IMAGES.debian12]);

  before(async () => {
    clair = await startClairDouble();
    dir = mkdtempSync(join(tmpdir(), 'docker-clair-policy-'));
  });
  after(async () => {
    await clair.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a malformed ignore file fails with exit 2 naming the line, before any export or Clair request', async () => {
    const bad = file('bad.clairignore', '# accepted\nCVE-2099-0001\nCVE-2099-0007 exp:2026-02-31\n');
    const run = await scan('--ignore-file', bad);
    assert.equal(run.code, 2);
    assert.match(run.error?.message ?? '', new RegExp(`invalid ignore file ${bad}, line 3: .*real date`));
    assert.equal(run.stats.saves, 0, 'nothing exported');
    assert.equal(clair.requests.length, 0, 'Clair not contacted');
    assert.equal(run.stdout, '', 'no report');
    const yaml = file('bad.yaml', 'vulnerabilities:\n  - id: CVE-2099-0001\n  - package: bash\n');
    const y = await scan('--ignore-file', yaml);
    assert.equal(y.code, 2);
    assert.match(y.error?.message ?? '', /line 3: entry has no "id"/);
    const missing = await scan('--ignore-file', join(dir, 'nope'));
    assert.equal(missing.code, 2);
    assert.match(missing.error?.message ?? '', /cannot read the ignore file .*nope \(ENOENT\)/);
    assert.equal(clair.requests.length, 0);
  });

  it('baseline: the Criticals fail --fail-on critical (exit 1)', async () => {
    const run = await scan('--fail-on', 'critical');
    assert.equal(run.code, 1, run.stderr);
    const doc = report(run);
    assert.deepEqual(doc.images[0]?.ignored, []);
    assert.equal(doc.ignoreFile, null);
  });

  it('plain form: ignoring both Critical ids turns exit 1 into 0; ignored findings name their rule', async () => {
    const path = file('plain.clairignore', '# risk accepted\nCVE-2099-0001\n\nCVE-2099-0007 exp:2027-01-31  # perl\n');
    const run = await scan('--fail-on', 'critical', '--ignore-file', path);
    assert.equal(run.code, 0, run.stderr);
    const doc = report(run);
    const image = doc.images[0]!;
    assert.equal(image.verdict, 'pass');
    assert.equal(doc.ignoreFile, path);
    assert.deepEqual(image.ignored.map((i) => [i.id, i.package.name, i.rule.source, i.rule.expires]).sort(), [
      ['CVE-2099-0001', 'libc-bin', `${path}:2`, null],
      ['CVE-2099-0001', 'libc6', `${path}:2`, null],
      ['CVE-2099-0007', 'perl-base', `${path}:4`, '2027-01-31'],
    ]);
    assert.ok(!image.vulnerabilities.some((v) => v.severity === 'Critical'));
    assert.equal(image.summary.Critical, 0);
    // The same findings at --fail-on high: the Highs still fail.
    assert.equal((await scan('--fail-on', 'high', '--ignore-file', path)).code, 1);
  });

  it('YAML form: package and image patterns, reasons; with --ignore-unfixed the unfixed High goes too (exit 0)', async () => {
    const path = file('policy.yaml', [
      'vulnerabilities:',
      '  - id: CVE-2099-0001',
      '    package: glibc            # the source package covers libc6 and libc-bin',
      '    reason: fixed in the next base image',
      '  - id: CVE-2099-0007',
      `    image: "docker-clair-test/debian12:*"`,
      '  - id: CVE-2099-0008',
      '    expires: 2027-06-30',
      '  - id: CVE-2099-0002',
      '    image: "someone-else/*"   # does not match this image',
    ].join('\n'));
    const without = await scan('--fail-on', 'high', '--ignore-file', path);
    assert.equal(without.code, 1, 'bash CVE-2099-0002 (High) is still there');
    const remaining = report(without).images[0]!.vulnerabilities.filter((v) => ['Critical', 'High'].includes(v.severity));
    assert.deepEqual(remaining.map((v) => v.id), ['CVE-2099-0002']);

    const run = await scan('--fail-on', 'high', '--ignore-file', path, '--ignore-unfixed');
    assert.equal(run.code, 0, run.stderr);
    const doc = report(run);
    assert.equal(doc.ignoreUnfixed, true);
    const image = doc.images[0]!;
    const rule = (id: string) => image.ignored.find((i) => i.id === id)?.rule;
    assert.deepEqual(rule('CVE-2099-0001'), { source: `${path}:2`, reason: 'fixed in the next base image', expires: null });
    assert.equal(rule('CVE-2099-0007')?.source, `${path}:5`);
    assert.deepEqual(rule('CVE-2099-0008'), { source: `${path}:7`, reason: `listed in ${path}:7`, expires: '2027-06-30' });
    assert.deepEqual(rule('CVE-2099-0002'), { source: '--ignore-unfixed', reason: 'no fixed version is available', expires: null });
    assert.ok(image.vulnerabilities.every((v) => v.fixedIn !== null), 'no unfixed finding left');
  });

  it('--ignore-unfixed alone: every unfixed finding is ignored by that rule', async () => {
    const run = await scan('--fail-on', 'medium', '--ignore-unfixed');
    assert.equal(run.code, 1);
    const image = report(run).images[0]!;
    assert.deepEqual([...new Set(image.ignored.map((i) => i.id))].sort(), ['CVE-2099-0002', 'CVE-2099-0004', 'CVE-2099-0006', 'CVE-2099-0015']);
    assert.ok(image.ignored.every((i) => i.rule.source === '--ignore-unfixed'));
    assert.ok(image.vulnerabilities.every((v) => v.fixedIn !== null));
  });

  it('an expired rule stops applying: warned on stderr, listed in expiredRules, and the Critical fails again', async () => {
    const path = file('expired.clairignore', 'CVE-2099-0001 exp:2025-12-31\nCVE-2099-0007 exp:2026-01-03\n');
    const run = await scan('--fail-on', 'critical', '--ignore-file', path);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`warning: ignore rule CVE-2099-0001 \\(${path}:1\\) expired on 2025-12-31`));
    const doc = report(run);
    assert.deepEqual(doc.expiredRules.map((r) => [r.id, r.expires, r.source]), [['CVE-2099-0001', '2025-12-31', `${path}:1`]]);
    const image = doc.images[0]!;
    assert.ok(image.vulnerabilities.some((v) => v.id === 'CVE-2099-0001'));
    assert.deepEqual(image.ignored.map((i) => i.id), ['CVE-2099-0007'], 'the unexpired rule still applies');
  });

  it('--min-severity hides rows from the JSON and the table but keeps the verdict', async () => {
    const run = await scan('--fail-on', 'low', '--min-severity', 'high');
    assert.equal(run.code, 1);
    const doc = report(run);
    const image = doc.images[0]!;
    assert.equal(doc.minSeverity, 'High');
    assert.ok(image.vulnerabilities.every((v) => ['Critical', 'High'].includes(v.severity)));
    assert.ok(image.hidden > 0);
    assert.ok(image.summary.Low! > 0, 'the summary still counts hidden rows');
    assert.match(image.reason, /at or above Low/);
    const table = await scanInProcess(['--clair', clair.url, '--fail-on', 'low', '--min-severity', 'high', TEST_IMAGES.debian12]);
    assert.equal(table.code, 1);
    assert.doesNotMatch(table.stdout, /CVE-2099-0014/);
    assert.match(table.stdout, new RegExp(`Not listed: ${image.hidden} below High hidden by --min-severity`));
    const bad = await scan('--min-severity', 'severe');
    assert.equal(bad.code, 2);
  });

  it('the default ignore file is ./.clairignore when present (and none otherwise)', async () => {
    const cwd = mkdtempSync(join(dir, 'cwd-'));
    const log = createLogger(new Capture());
    const now = new Date('2026-01-02T00:00:00Z');
    assert.equal((await loadRunPolicy({ ignoreUnfixed: false }, { cwd, now, log })).ignoreFile, undefined);
    writeFileSync(join(cwd, '.clairignore'), 'CVE-2099-0001\n');
    const policy = await loadRunPolicy({ ignoreUnfixed: false }, { cwd, now, log });
    assert.equal(policy.ignoreFile, '.clairignore');
    assert.equal(policy.filters.length, 1);
    writeFileSync(join(cwd, '.clairignore'), 'CVE-2099-0001 nonsense\n');
    await assert.rejects(loadRunPolicy({ ignoreUnfixed: false }, { cwd, now, log }), /invalid ignore file \.clairignore, line 1/);
  });
});
