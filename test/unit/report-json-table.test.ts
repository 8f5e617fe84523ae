import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Finding, ImageScan, TrustSignal } from '../../src/findings/model.js';
import { renderJson as renderJsonRaw } from '../../src/report/json.js';
import type { Report } from '../../src/report/model.js';
import { outcomesOf } from '../../src/report/model.js';
import { renderTable, shortDigest } from '../../src/report/table.js';
import { stripControl } from '../../src/report/text.js';
import { finding, LAYER, report, scanned, scanOf } from '../fixtures/report-fixtures.js';
import { assertValidReport } from '../helpers/report-schema.js';

/** Every JSON document these tests render is also checked against schema/report.schema.json. */
function renderJson(r: Report): string {
  const text = renderJsonRaw(r);
  assertValidReport(text);
  return text;
}

const ESC = '\u001b';
const HOSTILE_DESCRIPTION = 'crafted <script>alert(1)</script> & "quotes" ]]> end; \u001b[31mred ANSI\u001b[0m; naïve café 日本 🐳\u0007\u0000';

const scan = (findings: Finding[], trust: TrustSignal[] = [], over: Partial<ImageScan> = {}): ImageScan =>
  scanOf('myapp:1.2', findings, trust, over);


const VULNERABLE = scan([
  finding({
    id: 'CVE-2099-0001',
    title: 'CVE-2099-0001 glibc',
    severity: 'Critical',
    vendorSeverity: 'critical',
    package: { name: 'libc6', version: '2.36-9+deb12u4', source: { name: 'glibc', version: '2.36-9+deb12u4' } },
    fixedIn: '2.36-9+deb12u99',
    layer: LAYER,
    links: ['https://security-tracker.debian.org/tracker/CVE-2099-0001', 'https://example.invalid/a'],
    description: 'out-of-bounds write',
  }),
  finding({ id: 'CVE-2099-0002', severity: 'High', package: { name: 'bash', version: '5.2.15-2+b2' }, layer: LAYER, description: HOSTILE_DESCRIPTION }),
  finding({ id: 'CVE-2099-0003', severity: 'Low', package: { name: 'apt', version: '2.6.1' } }),
]);

const CONTROL_CHARS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/; // everything but \n

describe('renderJson', () => {
  it('a versioned document with every required field, typed', () => {
    const text = renderJson(report([scanned(VULNERABLE)]));
    assert.ok(text.endsWith('}\n'));
    const doc = JSON.parse(text);
    assert.equal(doc.schemaVersion, 2);
    assert.deepEqual(doc.tool, { name: 'docker-clair', version: '0.1.0' });
    assert.equal(doc.generatedAt, '2026-11-28T13:00:00.000Z');
    assert.equal(doc.failOn, 'High');
    assert.equal(doc.images.length, 1);

    const image = doc.images[0];
    assert.deepEqual(image.image, { ref: 'myapp:1.2', id: VULNERABLE.image.id, digest: null, source: null });
    assert.equal(image.verdict, 'fail');
    assert.equal(image.reason, '2 findings at or above High (1 Critical, 1 High)');
    assert.deepEqual(image.distribution, { id: 'debian', version: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
    assert.equal(image.packageCount, 120);
    assert.deepEqual(image.summary, { Critical: 1, High: 1, Medium: 0, Low: 1, Negligible: 0, Unknown: 0 });
    assert.deepEqual(Object.keys(image.summary), ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown']);
    assert.equal(image.failing, 2);
    assert.deepEqual(image.trust, []);
    assert.equal(image.vulnerabilities.length, 3);

    for (const v of image.vulnerabilities) {
      assert.equal(typeof v.id, 'string');
      assert.ok(['Unknown', 'Negligible', 'Low', 'Medium', 'High', 'Critical'].includes(v.severity));
      assert.equal(typeof v.package.name, 'string');
      assert.equal(typeof v.package.version, 'string');
      assert.ok(v.fixedIn === null || typeof v.fixedIn === 'string');
      assert.ok(v.layer === null || typeof v.layer === 'string');
      assert.ok(v.description === null || typeof v.description === 'string');
      assert.ok(Array.isArray(v.links) && v.links.every((l: unknown) => typeof l === 'string'));
    }
    const [glibc, bash, apt] = image.vulnerabilities;
    assert.deepEqual(glibc, {
      id: 'CVE-2099-0001',
      title: 'CVE-2099-0001 glibc',
      severity: 'Critical',
      vendorSeverity: 'critical',
      package: { name: 'libc6', version: '2.36-9+deb12u4', source: { name: 'glibc', version: '2.36-9+deb12u4' } },
      fixedIn: '2.36-9+deb12u99',
      layer: LAYER,
      links: ['https://security-tracker.debian.org/tracker/CVE-2099-0001', 'https://example.invalid/a'],
      description: 'out-of-bounds write',
    });
    assert.equal(bash.fixedIn, null, 'no fix → null, not absent');
    assert.ok('fixedIn' in bash);
    assert.equal(bash.description, HOSTILE_DESCRIPTION, 'JSON keeps Clair text verbatim');
    assert.equal(apt.layer, null);
    assert.equal(apt.description, null);
    assert.equal(apt.package.source, null);
  });

  it('control characters in Clair text are escaped, never raw', () => {
    const text = renderJson(report([scanned(VULNERABLE)]));
    assert.ok(!text.includes(ESC));
    assert.ok(!CONTROL_CHARS.test(text));
    assert.ok(text.includes('\\u001b[31mred ANSI'));
  });

  it('errored and untrusted images', () => {
    const untrusted = scan([], [{ kind: 'no-packages', message: 'Clair indexed no packages' }], { distribution: undefined, packageCount: 0 });
    const doc = JSON.parse(
      renderJson(
        report([
          scanned(untrusted),
          { kind: 'error', image: { ref: 'nope:latest' }, error: { message: 'image nope:latest not found', code: 'IMAGE_NOT_FOUND' } },
        ]),
      ),
    );
    assert.equal(doc.images[0].verdict, 'untrusted');
    assert.equal(doc.images[0].reason, 'Clair indexed no packages');
    assert.equal(doc.images[0].distribution, null);
    assert.deepEqual(doc.images[0].trust, [{ kind: 'no-packages', message: 'Clair indexed no packages' }]);
    assert.deepEqual(doc.images[0].vulnerabilities, []);
    assert.deepEqual(doc.images[1], {
      image: { ref: 'nope:latest', id: null, digest: null, source: null },
      verdict: 'error',
      reason: 'image nope:latest not found',
      error: { message: 'image nope:latest not found', code: 'IMAGE_NOT_FOUND' },
    });
  });

  it('is deterministic', () => {
    const r = report([scanned(VULNERABLE)]);
    assert.equal(renderJson(r), renderJson(structuredClone(r)));
  });
});

describe('renderTable', () => {
  it('header, rows by severity then package, summary; no colour codes when color=false', () => {
    const s = scan([
      finding({ id: 'CVE-3', severity: 'Low', package: { name: 'zlib', version: '1' } }),
      finding({ id: 'CVE-2', severity: 'Critical', package: { name: 'openssl', version: '3' }, fixedIn: '3.1', layer: LAYER }),
      finding({ id: 'CVE-1', severity: 'Critical', package: { name: 'bash', version: '5' } }),
      finding({ id: 'CVE-0', severity: 'Medium', package: { name: 'apt', version: '2' } }),
    ]);
    const text = renderTable(report([scanned(s)]), { color: false });
    assert.ok(!text.includes(ESC), 'no escape sequences at all');
    const lines = text.split('\n');
    assert.equal(
      lines[0],
      'myapp:1.2 (0123456789ab) · Debian GNU/Linux 12 (bookworm) · 120 packages indexed · FAIL: 2 findings at or above High (2 Critical)',
    );
    for (const head of ['Severity', 'ID', 'Package', 'Installed', 'Fixed in', 'Layer']) assert.ok(lines[2]!.includes(head), head);
    const order = lines.filter((l) => l.startsWith('│') && /CVE-\d/.test(l)).map((l) => l.split('│').map((c) => c.trim()).filter(Boolean));
    assert.deepEqual(order, [
      ['Critical', 'CVE-1', 'bash', '5'],
      ['Critical', 'CVE-2', 'openssl', '3', '3.1', 'aaaaaaaaaaaa'],
      ['Medium', 'CVE-0', 'apt', '2'],
      ['Low', 'CVE-3', 'zlib', '1'],
    ]);
    assert.ok(text.includes('Total: 4 (Critical: 2, High: 0, Medium: 1, Low: 1, Negligible: 0, Unknown: 0)'));
    assert.ok(text.endsWith('\n'));
  });

  it('colours severities and the verdict when color=true', () => {
    const text = renderTable(report([scanned(VULNERABLE)]), { color: true });
    assert.ok(text.includes('\u001b[31mHigh\u001b[39m'), 'High in red');
    assert.ok(text.includes('\u001b[1m\u001b[31mCritical'), 'Critical in bold red');
    assert.ok(text.includes('\u001b[34mLow\u001b[39m'), 'Low in blue');
    assert.ok(text.includes('\u001b[1m\u001b[31mFAIL'), 'verdict coloured');
    const plain = renderTable(report([scanned(VULNERABLE)]), { color: false });
    assert.equal(text.replace(/\u001b\[[0-9;]*m/g, ''), plain, 'colour is the only difference');
  });

  it('strips control characters from Clair text and keeps the rest (<, &, ]]>, non-ASCII)', () => {
    const hostile = scan(
      [
        finding({
          id: 'CVE-2099-<&>]]>',
          severity: 'High',
          package: { name: 'pkg\u001b[31mred\u001b[0m<&>', version: '1.0\u0000\u0007\u009b2J' },
          fixedIn: 'naïve café 日本 🐳\u001b]8;;http://evil\u0007link\u001b]8;;\u0007',
          description: HOSTILE_DESCRIPTION,
        }),
      ],
      [],
      { distribution: { id: 'debian', version: '12', prettyName: 'Debian\u001b[2J\r\nGNU/Linux ]]> &amp; ‮evil' } },
    );
    for (const color of [false, true]) {
      const text = renderTable(report([scanned(hostile)]), { color });
      const withoutOurColours = text.replace(/\u001b\[(?:1|22|3[0-9]|90)m/g, '');
      assert.ok(!withoutOurColours.includes(ESC), `no foreign escape sequence (color=${color})`);
      assert.ok(!CONTROL_CHARS.test(withoutOurColours), `no control characters (color=${color})`);
      assert.ok(!text.includes('\u202e'), 'no bidi override');
      assert.ok(text.includes('CVE-2099-<&>]]>'));
      assert.ok(text.includes('pkgred<&>'));
      assert.ok(text.includes('1.0'));
      assert.ok(text.includes('naïve café 日本 🐳link'));
      assert.ok(text.includes('Debian GNU/Linux ]]> &amp; evil'), 'line breaks become a space, the rest stays');
      assert.ok(!text.includes('[31m' + 'red'));
    }
  });

  it('stripControl', () => {
    assert.equal(stripControl('a\u001b[1;31mb\u001b[0mc'), 'abc');
    assert.equal(stripControl('\u001b]8;;https://x\u0007link\u001b]8;;\u001b\\'), 'link');
    assert.equal(stripControl('x\u009b31my'), 'xy');
    assert.equal(stripControl('line1\nline2\r\n\tend'), 'line1 line2 end');
    assert.equal(stripControl('del\u007f c1\u0085 bell\u0007'), 'del c1  bell');
    assert.equal(stripControl('<&> ]]> 日本 🐳 é'), '<&> ]]> 日本 🐳 é');
  });

  it('a clean passing image says so explicitly', () => {
    const text = renderTable(report([scanned(scan([]))]), { color: false });
    assert.match(text, /PASS: no vulnerabilities found\nNo vulnerabilities found\.\n$/);
    assert.ok(!text.includes('┌'));
  });

  it('an untrusted image shows the reason, not an empty or clean-looking table', () => {
    const s = scan([], [{ kind: 'unsupported-os', message: 'Clair recognised no operating system' }], { distribution: undefined });
    const text = renderTable(report([scanned(s)]), { color: false });
    assert.ok(!text.includes('┌'), 'no table');
    assert.ok(!/No vulnerabilities found/.test(text));
    assert.match(text, /no OS detected · 120 packages indexed · UNTRUSTED: Clair recognised no operating system/);
    assert.match(text, /does NOT mean the image is clean: Clair recognised no operating system/);
  });

  it('an errored image prints its error; several images are separated by a blank line', () => {
    const text = renderTable(
      report([scanned(scan([])), { kind: 'error', image: { ref: 'nope\u001b[2J:latest' }, error: { message: 'not found\u0007' } }]),
      { color: false },
    );
    assert.match(text, /No vulnerabilities found\.\n\nnope:latest · ERROR: not found\n$/);
  });

  it('fits the given width by wrapping cells, losing no text', () => {
    const long = scan([
      finding({ id: 'pyup.io-39606 (CVE-2020-36242)', severity: 'Medium', package: { name: 'cryptography-with-a-long-name', version: '2.2.2+really.long.version-1' }, fixedIn: '3.3.2+another.long.version-7', layer: LAYER }),
    ]);
    const wide = renderTable(report([scanned(long)]), { color: false });
    const narrow = renderTable(report([scanned(long)]), { color: false, width: 80 });
    const tableLines = (t: string) => t.split('\n').filter((l) => /^[┌│├└]/.test(l));
    assert.ok(tableLines(wide).some((l) => [...l].length > 80), 'the natural table is wider than 80');
    for (const l of tableLines(narrow)) assert.ok([...l].length <= 80, `${[...l].length}: ${l}`);
    // Reassemble each column of the (single) data row from its wrapped lines: those after the header rule.
    const lines = narrow.split('\n');
    const rule = lines.findIndex((l) => l.startsWith('├'));
    const dataCells = lines
      .slice(rule + 1)
      .filter((l) => l.startsWith('│'))
      .map((l) => l.split('│').slice(1, -1).map((c) => c.trim()))
      .reduce((acc, cells) => acc.map((text, i) => text + (cells[i] ?? '')));
    assert.deepEqual(dataCells, [
      'Medium',
      'pyup.io-39606 (CVE-2020-36242)',
      'cryptography-with-a-long-name',
      '2.2.2+really.long.version-1',
      '3.3.2+another.long.version-7',
      'aaaaaaaaaaaa',
    ]);
    assert.equal(renderTable(report([scanned(long)]), { color: false, width: 500 }), wide, 'no change when it fits');
  });

  it('shortDigest', () => {
    assert.equal(shortDigest('sha256:0123456789abcdef'), '0123456789ab');
    assert.equal(shortDigest('0123456789abcdef'), '0123456789ab');
  });
});

describe('report model', () => {
  it('outcomesOf feeds exitCodeFor', () => {
    const r = report([scanned(VULNERABLE), { kind: 'error', image: { ref: 'x' }, error: { message: 'e' } }]);
    assert.deepEqual(outcomesOf(r), [{ verdict: 'fail' }, { verdict: 'error' }]);
  });

  it('renderers import only findings/, policy/, their own folder and their library', () => {
    const dir = fileURLToPath(new URL('../../src/report/', import.meta.url));
    // outputs.ts is the writer, not a renderer: it alone may touch the file system.
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'outputs.ts')) {
      const source = readFileSync(dir + file, 'utf8');
      const imports = [...source.matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
      for (const spec of imports) {
        const allowed = spec === 'cli-table3' || spec === 'xmlbuilder2' || /^\.\/[\w-]+\.js$/.test(spec) || /^\.\.\/(findings|policy)\//.test(spec);
        assert.ok(allowed, `${file} imports ${spec}`);
      }
    }
  });
});
