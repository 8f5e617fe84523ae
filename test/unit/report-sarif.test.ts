import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactUri, renderSarif, SECURITY_SEVERITY } from '../../src/report/sarif.js';
import { CASES, CLEAN, MIXED, VULNERABLE } from '../fixtures/report-fixtures.js';
import { assertGolden, assertValidSarif, sarifSchemaErrors } from '../helpers/report-formats.js';

describe('renderSarif', () => {
  for (const [name, report] of Object.entries(CASES)) {
    it(`${name}: matches its golden file and is valid under the SARIF 2.1.0 schema`, () => {
      const text = renderSarif(report);
      assertGolden(`${name}.sarif.json`, text);
      assertValidSarif(text);
    });
  }

  it('vulnerable image: a rule per vulnerability, a result per finding, levels by threshold and severity', () => {
    const log = assertValidSarif(renderSarif(VULNERABLE));
    const run = log.runs[0];
    assert.deepEqual(run.tool.driver.rules.map((r: { id: string }) => r.id), ['CVE-2099-0001', 'CVE-2099-0002', 'CVE-2099-0003', 'CVE-2099-0004']);
    assert.equal(run.tool.driver.name, 'docker-clair');
    assert.equal(run.tool.driver.version, '0.1.0');
    const glibc = run.tool.driver.rules[0];
    assert.equal(glibc.properties['security-severity'], SECURITY_SEVERITY.Critical);
    assert.equal(glibc.helpUri, 'https://security-tracker.debian.org/tracker/CVE-2099-0001');
    assert.ok(glibc.help.markdown.includes('https://example.invalid/a?b=1&c=2'));
    const levels = run.results.map((r: { ruleId: string; level: string }) => `${r.ruleId} ${r.level}`);
    assert.deepEqual(levels, ['CVE-2099-0001 error', 'CVE-2099-0002 error', 'CVE-2099-0003 note', 'CVE-2099-0004 warning']);
    const [first] = run.results;
    assert.equal(first.message.text, 'myapp:1.2: package libc6 2.36-9+deb12u4 is affected by CVE-2099-0001 (Critical); fixed in 2.36-9+deb12u99');
    assert.equal(first.locations[0].physicalLocation.artifactLocation.uri, 'myapp');
    assert.equal(first.locations[0].logicalLocations[0].name, 'myapp:1.2');
    const ignored = run.results[3];
    assert.deepEqual(ignored.suppressions, [{ kind: 'external', status: 'accepted', justification: 'ignore-file:.clairignore:3: not reachable <&> in our build' }]);
    assert.equal(run.invocations[0].executionSuccessful, true);
  });

  it('clean image: no results, a successful invocation', () => {
    const run = assertValidSarif(renderSarif(CLEAN)).runs[0];
    assert.deepEqual(run.results, []);
    assert.deepEqual(run.tool.driver.rules, []);
    assert.equal(run.invocations[0].executionSuccessful, true);
  });

  it('errored and untrusted images become notifications; a rule shared by images appears once', () => {
    const run = assertValidSarif(renderSarif(MIXED)).runs[0];
    assert.equal(run.invocations[0].executionSuccessful, false);
    const notes = run.invocations[0].toolExecutionNotifications;
    assert.deepEqual(notes.map((n: { level: string }) => n.level), ['warning', 'error']);
    assert.match(notes[0].message.text, /untrusted\.example\/base:12: the verdict cannot be trusted/);
    assert.deepEqual(run.results.map((r: { ruleId: string; level: string }) => `${r.ruleId} ${r.level}`),
      ['CVE-2099-0005 error', 'CVE-2099-0003 note', 'CVE-2099-0001 error']);
    assert.equal(run.results[0].locations[0].physicalLocation.artifactLocation.uri, 'registry.example.com/5000/team/app.web');
  });

  it('the schema check fails on an invalid log: a result without message, an unknown property, a bad level', () => {
    const broken = JSON.parse(renderSarif(VULNERABLE));
    delete broken.runs[0].results[0].message;
    broken.runs[0].results[1].severity = 'high';
    broken.runs[0].results[2].level = 'fatal';
    const errors = sarifSchemaErrors(broken);
    assert.ok(errors.some((e) => e.startsWith("/runs/0/results/0 must have required property 'message'")), errors.join('\n'));
    assert.ok(errors.some((e) => e.startsWith('/runs/0/results/1 must NOT have additional properties') && e.includes('"severity"')), errors.join('\n'));
    assert.ok(errors.some((e) => e.startsWith('/runs/0/results/2/level must be equal to one of the allowed values')), errors.join('\n'));
    const withoutMessage = JSON.parse(renderSarif(VULNERABLE));
    delete withoutMessage.runs[0].results[0].message;
    assert.throws(() => assertValidSarif(JSON.stringify(withoutMessage)), /does not match the SARIF 2\.1\.0 schema/);
  });

  it('hostile text: no escape sequences or control characters; markup kept as data', () => {
    const text = renderSarif(VULNERABLE);
    const log = JSON.parse(text);
    const bash = log.runs[0].tool.driver.rules[1];
    assert.ok(bash.fullDescription.text.startsWith('crafted <script>alert(1)</script> & "quotes"'));
    assert.ok(bash.fullDescription.text.includes('red ANSI; naïve café 日本 🐳'));
    assert.ok(!bash.help.markdown.includes('<script>'), 'markdown escapes markup');
  });

  it('artifactUri: repository path, no tag, digest or scheme', () => {
    assert.equal(artifactUri('alpine:3.20'), 'alpine');
    assert.equal(artifactUri('registry:5000/team/app:1.2@sha256:abc'), 'registry/5000/team/app');
    assert.equal(artifactUri('app@sha256:abc'), 'app');
    assert.equal(artifactUri('a b/<c>'), 'a%20b/%3Cc%3E');
  });
});
