import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classPart, formatSeconds, junitTimestamp, packagePart, renderJunit } from '../../src/report/junit.js';
import { CASES, CLEAN, MIXED, VULNERABLE } from '../fixtures/report-fixtures.js';
import { assertGolden, assertValidJunit, junitConsumerCounts } from '../helpers/report-formats.js';

const render = (r: Parameters<typeof renderJunit>[0]) => renderJunit(r, { hostname: 'ci-1' });

describe('renderJunit', () => {
  for (const [name, report] of Object.entries(CASES)) {
    it(`${name}: matches its golden file and is valid under both XSDs`, async () => {
      const xml = render(report);
      assertGolden(`${name}.junit.xml`, xml);
      await assertValidJunit(xml);
    });
  }

  it('vulnerable image: one case per finding plus the scan case; failure ≥ threshold, skipped when ignored, pass below', async () => {
    const xml = render(VULNERABLE);
    await assertValidJunit(xml);
    assert.deepEqual(await junitConsumerCounts(xml), { suites: 1, tests: 5, failures: 2, errors: 0, skipped: 1 });
    assert.match(xml, /<testcase classname="clair\.myapp_1_2" name="scan" time="0"\/>/);
    assert.match(xml, /<testcase classname="clair\.myapp_1_2\.libc6" name="CVE-2099-0001 \(Critical\) libc6 2\.36-9\+deb12u4" time="0">\s*<failure message="Critical: CVE-2099-0001 in libc6 2\.36-9\+deb12u4 \(fixed in 2\.36-9\+deb12u99\)" type="Critical">/);
    assert.match(xml, /<testcase classname="clair\.myapp_1_2\.apt" name="CVE-2099-0003 \(Low\) apt 2\.6\.1" time="0"\/>/);
    assert.match(xml, /<skipped message="ignored by ignore-file:\.clairignore:3: not reachable &lt;&amp;&gt; in our build"\/>/);
    assert.match(xml, /timestamp="2026-11-28T13:00:00"/);
    assert.match(xml, /hostname="ci-1"/);
  });

  it('a clean image still has a (passing) testcase', async () => {
    const xml = render(CLEAN);
    await assertValidJunit(xml);
    assert.deepEqual(await junitConsumerCounts(xml), { suites: 1, tests: 1, failures: 0, errors: 0, skipped: 0 });
  });

  it('untrusted and errored images carry <error>; findings of an untrusted image are still listed', async () => {
    const xml = render(MIXED);
    await assertValidJunit(xml);
    assert.deepEqual(await junitConsumerCounts(xml), { suites: 3, tests: 3 + 2 + 1, failures: 2, errors: 2, skipped: 0 });
    assert.match(xml, /<error message="the verdict cannot be trusted: Clair has no updater for debian 12" type="NoUpdater">/);
    assert.match(xml, /<error message="scan failed: cannot reach Clair [^"]*" type="ScanError">/);
    assert.match(xml, /classname="clair\.registry_example_com_5000_team_app_web_1_2_3\.python3_11"/);
  });

  it('hostile text: escaped or stripped, never raw markup, escapes or XML-forbidden characters', async () => {
    for (const report of [VULNERABLE, MIXED]) {
      const xml = render(report);
      await assertValidJunit(xml);
      assert.ok(!xml.includes('<script>'));
      assert.ok(!xml.includes(']]>'));
      assert.ok(!xml.includes('\u001b'));
      assert.doesNotMatch(xml, /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202e\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])/);
      assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>'));
    }
    const xml = render(VULNERABLE);
    assert.ok(xml.includes('&lt;script&gt;alert(1)&lt;/script&gt; &amp; "quotes"'));
    assert.ok(xml.includes(']]&gt; end; red ANSI; naïve café 日本 🐳'), 'non-ASCII kept, ANSI removed');
  });

  it('names: classname parts, timestamps and times', () => {
    assert.equal(classPart('registry.example.com:5000/team/app.web:1.2.3@sha256:ab'), 'registry_example_com_5000_team_app_web_1_2_3_sha256_ab');
    assert.equal(packagePart('python3.11'), 'python3_11');
    assert.equal(junitTimestamp('2026-11-28T14:00:00.123+01:00'), '2026-11-28T13:00:00');
    assert.equal(formatSeconds(12.34567), '12.346');
    assert.equal(formatSeconds(3), '3');
    assert.match(formatSeconds(0.0001234), /^\d+(\.\d{1,3})?$/);
  });

  it('an empty report is still well-formed and valid', async () => {
    await assertValidJunit(render({ ...CLEAN, images: [] }));
  });

  it('--min-severity hides rows below it without changing the failures of the verdict', async () => {
    const xml = renderJunit({ ...VULNERABLE, minSeverity: 'Medium' }, { hostname: 'h' });
    assert.deepEqual(await junitConsumerCounts(xml), { suites: 1, tests: 4, failures: 2, errors: 0, skipped: 1 });
    await assertValidJunit(xml);
  });
});
