// Test support for the JUnit and SARIF reports: XSD validation with xmllint, parsing with a real JUnit consumer
// (junit2json), SARIF structure checks and golden files (UPDATE_GOLDEN=1 rewrites them).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseJunit } from 'junit2json';

const execFileAsync = promisify(execFile);

export const XSDS = {
  ant: fileURLToPath(new URL('../schemas/junit-ant.xsd', import.meta.url)),
  jenkins: fileURLToPath(new URL('../schemas/junit-jenkins-xunit.xsd', import.meta.url)),
} as const;

/** Validates a JUnit document against both XSDs with `xmllint --noout --schema`; fails with xmllint's output. */
export async function assertValidJunit(xml: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dc-junit-'));
  try {
    const file = join(dir, 'report.xml');
    await writeFile(file, xml);
    for (const [name, xsd] of Object.entries(XSDS)) {
      try {
        await execFileAsync('xmllint', ['--noout', '--schema', xsd, file]);
      } catch (error) {
        const e = error as { stderr?: string; message: string };
        assert.fail(`JUnit report invalid under the ${name} XSD:\n${e.stderr ?? e.message}\n--- document ---\n${xml}`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ConsumerCounts {
  suites: number;
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
}

/**
 * Counts as a JUnit consumer sees them: junit2json parses the document, and the totals are computed from the
 * testcases (as Jenkins does) and checked against the suites' own attributes.
 */
export async function junitConsumerCounts(xml: string): Promise<ConsumerCounts> {
  const parsed = await parseJunit(xml);
  assert.ok(parsed && 'testsuite' in parsed, 'junit2json found a <testsuites> root');
  const suites = (parsed as { testsuite?: import('junit2json').TestSuite[] }).testsuite ?? [];
  const counts: ConsumerCounts = { suites: suites.length, tests: 0, failures: 0, errors: 0, skipped: 0 };
  for (const suite of suites) {
    const cases = suite.testcase ?? [];
    assert.ok(cases.length > 0, `suite ${suite.name} has a testcase (Jenkins drops empty suites)`);
    const c = {
      tests: cases.length,
      failures: cases.filter((t) => (t.failure?.length ?? 0) > 0).length,
      errors: cases.filter((t) => (t.error?.length ?? 0) > 0).length,
      skipped: cases.filter((t) => (t.skipped?.length ?? 0) > 0).length,
    };
    assert.deepEqual(
      { tests: suite.tests, failures: suite.failures, errors: suite.errors, skipped: suite.skipped },
      c,
      `suite ${suite.name}: attributes agree with its testcases`,
    );
    counts.tests += c.tests;
    counts.failures += c.failures;
    counts.errors += c.errors;
    counts.skipped += c.skipped;
  }
  return counts;
}

/** Checks the SARIF 2.1.0 fields that the spec and GitHub code scanning require; returns the parsed log. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function assertValidSarif(text: string): any {
  const log = JSON.parse(text);
  assert.equal(log.version, '2.1.0');
  assert.equal(typeof log.$schema, 'string');
  assert.ok(Array.isArray(log.runs) && log.runs.length === 1, 'one run');
  const run = log.runs[0];
  const driver = run.tool?.driver;
  assert.equal(typeof driver?.name, 'string');
  assert.equal(typeof driver.version, 'string');
  assert.match(driver.informationUri, /^https:\/\//);
  assert.ok(Array.isArray(driver.rules));
  const ruleIds = new Set<string>();
  for (const rule of driver.rules) {
    assert.equal(typeof rule.id, 'string');
    assert.ok(!ruleIds.has(rule.id), `rule ${rule.id} once`);
    ruleIds.add(rule.id);
    assert.equal(typeof rule.shortDescription?.text, 'string');
    assert.ok(rule.shortDescription.text.length > 0 && rule.shortDescription.text.length <= 1024);
    assert.equal(typeof rule.fullDescription?.text, 'string');
    assert.equal(typeof rule.help?.text, 'string');
    assert.equal(typeof rule.help?.markdown, 'string');
    assert.match(rule.properties['security-severity'], /^\d+\.\d$/);
    assert.ok(Number(rule.properties['security-severity']) >= 0 && Number(rule.properties['security-severity']) <= 10);
    assert.ok(Array.isArray(rule.properties.tags) && rule.properties.tags.includes('security'));
    assert.ok(['error', 'warning', 'note'].includes(rule.defaultConfiguration.level));
  }
  assert.ok(Array.isArray(run.results));
  for (const result of run.results) {
    assert.ok(ruleIds.has(result.ruleId), `result's rule ${result.ruleId} is defined`);
    assert.equal(driver.rules[result.ruleIndex].id, result.ruleId, 'ruleIndex points at the rule');
    assert.ok(['error', 'warning', 'note'].includes(result.level));
    assert.equal(typeof result.message?.text, 'string');
    assert.ok(result.message.text.length > 0);
    assert.ok(Array.isArray(result.locations) && result.locations.length >= 1);
    for (const location of result.locations) {
      const uri: string = location.physicalLocation.artifactLocation.uri;
      assert.equal(typeof uri, 'string');
      assert.doesNotMatch(uri, /^[A-Za-z][A-Za-z0-9+.-]*:/, 'a relative URI, no scheme');
      assert.doesNotThrow(() => new URL(uri, 'file:///'));
      assert.ok(location.physicalLocation.region.startLine >= 1);
      assert.equal(typeof location.logicalLocations[0].fullyQualifiedName, 'string');
    }
  }
  assert.ok(Array.isArray(run.invocations) && typeof run.invocations[0].executionSuccessful === 'boolean');
  assert.doesNotMatch(text, /\u001b|\\u001b|[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no escape or control characters');
  return log;
}

/** Compares with test/golden/<name>, or rewrites it when UPDATE_GOLDEN=1. */
export function assertGolden(name: string, actual: string): void {
  const path = fileURLToPath(new URL(`../golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    if (process.env.UPDATE_GOLDEN !== '1' && process.env.CI) assert.fail(`golden file ${name} missing (run with UPDATE_GOLDEN=1)`);
    writeFileSync(path, actual);
    return;
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `differs from test/golden/${name} (UPDATE_GOLDEN=1 rewrites it)`);
}
