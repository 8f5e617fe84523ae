// All four report formats from ONE in-process scan of the real multilayer test image through the Clair double:
// table on stdout, JSON, JUnit and SARIF to files. The JUnit files (vulnerable image, and a clean one from a
// double with an empty vulnerability list) are validated against both XSDs and parsed by a real JUnit consumer
// (junit2json) with the expected counts; the SARIF file is validated against the SARIF 2.1.0 schema, as in the unit tests.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClairDoubleOptions } from '../double/options.js';
import { startClairDouble, type ClairDouble } from '../double/server.js';
import { TEST_IMAGES } from '../helpers/daemon.js';
import { assertValidJunit, assertValidSarif, junitConsumerCounts } from '../helpers/report-formats.js';
import { scanInProcess } from '../helpers/scan.js';

interface JsonImage {
  image: { ref: string };
  verdict: string;
  failing: number;
  vulnerabilities: { id: string; severity: string; package: { name: string; version: string } }[];
}

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'dc-reports-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('table + json + junit + sarif in one scan', () => {
  let clair: ClairDouble;
  before(async () => {
    clair = await startClairDouble({ fetchConcurrency: 1 });
  });
  after(() => clair.close());

  it('the vulnerable multilayer image: every format agrees with the JSON report', async () => {
    const dir = join(work, 'vulnerable');
    const run = await scanInProcess([
      '--clair', clair.url, '--no-progress',
      '--format', 'table',
      '--format', `json=${dir}/r.json`,
      '--format', `junit=${dir}/r.xml`,
      '--format', `sarif=${dir}/r.sarif`,
      TEST_IMAGES.multilayer,
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stats.saves <= 1, true);
    assert.ok(run.stdout.includes(TEST_IMAGES.multilayer), 'the table went to stdout');
    assert.deepEqual((await readdir(dir)).sort(), ['r.json', 'r.sarif', 'r.xml'], 'no temporary files left');

    const doc = JSON.parse(await readFile(join(dir, 'r.json'), 'utf8')) as { images: JsonImage[] };
    const image = doc.images[0]!;
    assert.equal(image.verdict, 'fail');
    const findings = image.vulnerabilities;
    assert.ok(findings.length >= 6 && image.failing >= 2, `fixture findings (${findings.length}, ${image.failing} failing)`);

    const xml = await readFile(join(dir, 'r.xml'), 'utf8');
    await assertValidJunit(xml);
    assert.deepEqual(await junitConsumerCounts(xml), {
      suites: 1,
      tests: findings.length + 1,
      failures: image.failing,
      errors: 0,
      skipped: 0,
    });
    assert.match(xml, /classname="clair\.docker-clair-test_multilayer_latest"/);
    assert.match(xml, /timestamp="2026-01-02T03:04:05"/, 'the Report\'s generatedAt');

    const log = assertValidSarif(await readFile(join(dir, 'r.sarif'), 'utf8'));
    const results = log.runs[0].results as { ruleId: string; level: string }[];
    assert.equal(results.length, findings.length);
    assert.deepEqual(new Set(log.runs[0].tool.driver.rules.map((r: { id: string }) => r.id)), new Set(findings.map((f) => f.id)));
    assert.equal(results.filter((r) => r.level === 'error').length, image.failing);
    assert.equal(log.runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri, 'docker-clair-test/multilayer');
  });
});

describe('a clean image', () => {
  let clair: ClairDouble;
  before(async () => {
    // Not `vulns: []`: a database with no entries at all has no updaters, which Clair reports as an empty
    // database, (rightly) an untrusted verdict. One Debian 12 entry that matches no installed package makes a clean image.
    clair = await startClairDouble({
      fetchConcurrency: 1,
      vulns: [{ id: 'CVE-2099-9999', namespace: 'debian:12', package: 'no-such-package', severity: 'Critical' }],
    });
  });
  after(() => clair.close());

  it('no findings: one passing testcase per image, an empty SARIF run, exit 0', async () => {
    const dir = join(work, 'clean');
    const run = await scanInProcess([
      '--clair', clair.url, '--no-progress',
      '--format', `junit=${dir}/r.xml`, '--format', `sarif=${dir}/r.sarif`, '--format', 'json',
      TEST_IMAGES.multilayer,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).images[0].verdict, 'pass');
    const xml = await readFile(join(dir, 'r.xml'), 'utf8');
    await assertValidJunit(xml);
    assert.deepEqual(await junitConsumerCounts(xml), { suites: 1, tests: 1, failures: 0, errors: 0, skipped: 0 });
    const log = assertValidSarif(await readFile(join(dir, 'r.sarif'), 'utf8'));
    assert.deepEqual(log.runs[0].results, []);
    assert.equal(log.runs[0].invocations[0].executionSuccessful, true);
  });

  const untrusted: [string, ClairDoubleOptions][] = [
    ['an empty Clair database (202)', { emptyDb: true }],
    ['a database with no entries and so no updaters (vulns: [])', { vulns: [] }],
  ];
  for (const [what, options] of untrusted) {
  it(`${what}: the JUnit file has an <error>, never a clean pass (exit 3)`, async () => {
    const empty = await startClairDouble({ fetchConcurrency: 1, ...options });
    try {
      const dir = join(work, `untrusted-${untrusted.findIndex(([w]) => w === what)}`);
      const run = await scanInProcess(['--clair', empty.url, '--no-progress', '--format', `junit=${dir}/r.xml`, TEST_IMAGES.debian12]);
      assert.equal(run.code, 3, run.stderr);
      assert.ok(existsSync(join(dir, 'r.xml')), run.stderr);
      const xml = await readFile(join(dir, 'r.xml'), 'utf8');
      await assertValidJunit(xml);
      assert.deepEqual(await junitConsumerCounts(xml), { suites: 1, tests: 1, failures: 0, errors: 1, skipped: 0 });
      assert.match(xml, /<error message="the verdict cannot be trusted: [^"]+" type="DatabaseEmpty">/);
    } finally {
      await empty.close();
    }
  });
  }
});
