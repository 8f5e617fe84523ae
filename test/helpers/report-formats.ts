// Test support for the JUnit and SARIF reports: XSD validation with xmllint, parsing with a real JUnit consumer
// (junit2json), validation against the SARIF 2.1.0 JSON schema with ajv, and golden files (UPDATE_GOLDEN=1
// rewrites them).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import AjvDraft04 from 'ajv-draft-04';
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

export const SARIF_SCHEMA_PATH = new URL('../schemas/sarif-schema-2.1.0.json', import.meta.url);

// The official SARIF 2.1.0 schema is JSON Schema draft-04 (`id`, not `$id`), which only ajv-draft-04's Ajv reads.
// validateFormats: false because ajv-formats is not installed and ajv refuses unknown formats (`uri`, `date-time`)
// otherwise; the URIs that matter to consumers are checked by hand in assertValidSarif.
const sarifAjv = new AjvDraft04.default({ allErrors: true, validateFormats: false });
const validateSarifSchema = sarifAjv.compile(JSON.parse(readFileSync(SARIF_SCHEMA_PATH, 'utf8')) as object);

/** The SARIF 2.1.0 schema's complaints about a parsed log, one line each; empty when it is valid. */
export function sarifSchemaErrors(log: unknown): string[] {
  if (validateSarifSchema(log)) return [];
  return (validateSarifSchema.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`);
}

/**
 * Validates a SARIF log against the official SARIF 2.1.0 schema, then checks what the schema leaves open but
 * docker-clair promises and GitHub code scanning needs (one run, unique rule ids, security-severity, a located,
 * non-empty message per result, relative artifact URIs, no control characters). Returns the parsed log.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function assertValidSarif(text: string): any {
  const log = JSON.parse(text);
  const errors = sarifSchemaErrors(log);
  assert.deepEqual(errors, [], `SARIF log does not match the SARIF 2.1.0 schema:\n${errors.join('\n')}`);
  assert.equal(typeof log.$schema, 'string', 'names its schema');
  assert.equal(log.runs.length, 1, 'one run');
  const run = log.runs[0];
  const driver = run.tool.driver;
  assert.equal(typeof driver.version, 'string');
  assert.match(driver.informationUri, /^https:\/\//);
  assert.ok(Array.isArray(driver.rules));
  const ruleIds = new Set<string>();
  for (const rule of driver.rules) {
    assert.ok(!ruleIds.has(rule.id), `rule ${rule.id} once`);
    ruleIds.add(rule.id);
    assert.ok(rule.shortDescription && rule.fullDescription && rule.help?.markdown !== undefined, `rule ${rule.id} is described`);
    assert.ok(rule.shortDescription.text.length > 0 && rule.shortDescription.text.length <= 1024);
    assert.match(rule.properties['security-severity'], /^\d+\.\d$/);
    assert.ok(Number(rule.properties['security-severity']) >= 0 && Number(rule.properties['security-severity']) <= 10);
    assert.ok(Array.isArray(rule.properties.tags) && rule.properties.tags.includes('security'));
    assert.ok(['error', 'warning', 'note'].includes(rule.defaultConfiguration?.level));
  }
  assert.ok(Array.isArray(run.results));
  for (const result of run.results) {
    assert.ok(ruleIds.has(result.ruleId), `result's rule ${result.ruleId} is defined`);
    assert.equal(driver.rules[result.ruleIndex].id, result.ruleId, 'ruleIndex points at the rule');
    assert.ok(['error', 'warning', 'note'].includes(result.level));
    assert.ok(typeof result.message.text === 'string' && result.message.text.length > 0, 'a message text');
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
  assert.equal(run.invocations?.length, 1, 'one invocation');
  assert.doesNotMatch(text, /\u001b|\\u001b|[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no escape or control characters');
  return log;
}

/**
 * Compares with test/golden/<name>, or rewrites it when UPDATE_GOLDEN=1. A missing golden is written on a
 * developer's machine but fails under CI, where writing it would make the test pass without comparing anything.
 */
export function assertGolden(name: string, actual: string): void {
  const path = fileURLToPath(new URL(`../golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    if (process.env.UPDATE_GOLDEN !== '1' && process.env.CI) assert.fail(`golden file ${name} missing (run with UPDATE_GOLDEN=1)`);
    writeFileSync(path, actual);
    return;
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `differs from test/golden/${name} (UPDATE_GOLDEN=1 rewrites it)`);
}
