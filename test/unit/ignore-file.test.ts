import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectForm, isExpired, parseIgnoreFile, partitionRules } from '../../src/policy/ignore-file.js';
import { UsageError } from '../../src/runtime/errors.js';

const bad = (text: string, line: number, problem: RegExp) => (error: unknown) => {
  assert.ok(error instanceof UsageError, String(error));
  assert.equal(error.exitCode, 2);
  assert.match(error.message, new RegExp(`^invalid ignore file \\.clairignore, line ${line}: `));
  assert.match(error.message, problem);
  return true;
};

describe('parseIgnoreFile: plain (.trivyignore) form', () => {
  it('ids, comments, blank lines, exp:, CRLF, and each rule remembers its line', () => {
    const text = '# accepted risks\r\n\r\nCVE-2099-0001\r\n  CVE-2099-0002   exp:2027-01-31  # until the base image moves\r\nDSA-5555-1\r\n';
    const file = parseIgnoreFile(text, '.clairignore');
    assert.equal(file.form, 'plain');
    assert.deepEqual(file.rules, [
      { id: 'CVE-2099-0001', source: { path: '.clairignore', line: 3 } },
      { id: 'CVE-2099-0002', expires: '2027-01-31', source: { path: '.clairignore', line: 4 } },
      { id: 'DSA-5555-1', source: { path: '.clairignore', line: 5 } },
    ]);
  });

  it('an empty or comment-only file has no rules', () => {
    assert.deepEqual(parseIgnoreFile('', 'x').rules, []);
    assert.deepEqual(parseIgnoreFile('# nothing\n\n', 'x').rules, []);
  });

  it('malformed lines are errors naming the file and the line', () => {
    assert.throws(() => parseIgnoreFile('CVE-1\nCVE-2 exp:2027-13-01\n', '.clairignore'), bad('', 2, /exp:2027-13-01.*real date/));
    assert.throws(() => parseIgnoreFile('CVE-1\n\nCVE-2 exp:2027-02-30\n', '.clairignore'), bad('', 3, /real date/));
    assert.throws(() => parseIgnoreFile('CVE-1 because\n', '.clairignore'), bad('', 1, /unexpected "because"/));
    assert.throws(() => parseIgnoreFile('# c\n<CVE>\n', '.clairignore'), bad('', 2, /not a vulnerability id/));
    assert.throws(() => parseIgnoreFile('CVE-1 exp:2027-01-01 exp:2027-01-02\n', '.clairignore'), bad('', 1, /twice/));
  });
});

describe('parseIgnoreFile: YAML form', () => {
  it('a list under vulnerabilities:, every field, lines of each entry', () => {
    const text = [
      '# team exceptions',
      'vulnerabilities:',
      '  - id: CVE-2099-0001',
      '    package: libc6',
      '    image: "registry.example:5000/app:*"',
      '    expires: 2027-01-31',
      '    reason: fixed upstream, waiting for the base image',
      '  - id: CVE-2099-0002',
    ].join('\n');
    const file = parseIgnoreFile(text, '.clairignore');
    assert.equal(file.form, 'yaml');
    assert.deepEqual(file.rules, [
      { id: 'CVE-2099-0001', package: 'libc6', image: 'registry.example:5000/app:*', expires: '2027-01-31',
        reason: 'fixed upstream, waiting for the base image', source: { path: '.clairignore', line: 3 } },
      { id: 'CVE-2099-0002', source: { path: '.clairignore', line: 8 } },
    ]);
  });

  it('a top-level list, and an empty vulnerabilities:', () => {
    assert.deepEqual(parseIgnoreFile('- id: CVE-1\n  reason: ok\n', 'f').rules, [{ id: 'CVE-1', reason: 'ok', source: { path: 'f', line: 1 } }]);
    assert.deepEqual(parseIgnoreFile('vulnerabilities:\n', 'f').rules, []);
    assert.deepEqual(parseIgnoreFile('---\nvulnerabilities: []\n', 'f').rules, []);
  });

  it('malformed entries are errors naming the line', () => {
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - id: CVE-1\n  - package: bash\n', '.clairignore'), bad('', 3, /no "id"/));
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - id: CVE-1\n    expire: 2027-01-01\n', '.clairignore'), bad('', 3, /unknown key "expire"/));
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - id: CVE-1\n    expires: 31/01/2027\n', '.clairignore'), bad('', 3, /YYYY-MM-DD/));
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - CVE-1\n', '.clairignore'), bad('', 2, /mapping/));
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - id: [a, b]\n', '.clairignore'), bad('', 2, /non-empty string/));
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - id: CVE-1\n    reason: a: b\n', '.clairignore'), bad('', 3, /not valid YAML/));
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - id: CVE-1\n    id: CVE-2\n', '.clairignore'), bad('', 3, /unique/));
    assert.throws(() => parseIgnoreFile('vulnerabilities:\n  - id: CVE-1\nignore:\n  - id: CVE-2\n', '.clairignore'), bad('', 3, /unknown key "ignore"/));
    assert.throws(() => parseIgnoreFile('vulnerabilities: CVE-1\n', '.clairignore'), bad('', 1, /list of entries/));
  });

  it('form detection: the first significant line decides', () => {
    assert.equal(detectForm('# x\n\nCVE-1\n'), 'plain');
    assert.equal(detectForm('# x\n- id: CVE-1\n'), 'yaml');
    assert.equal(detectForm('vulnerabilities:\n'), 'yaml');
    assert.equal(detectForm('---\n'), 'yaml');
    assert.equal(detectForm('CVE-1 exp:2027-01-01\n'), 'plain');
  });
});

describe('expiry (fixed clock)', () => {
  const rules = parseIgnoreFile('CVE-1 exp:2026-01-02\nCVE-2\nCVE-3 exp:2026-01-03\n', 'f').rules;
  it('a rule stops applying at 00:00 UTC on its date', () => {
    const [r1] = rules;
    assert.equal(isExpired(r1!, new Date('2026-01-01T23:59:59Z')), false);
    assert.equal(isExpired(r1!, new Date('2026-01-02T00:00:00Z')), true);
  });
  it('partitionRules keeps order and splits expired rules out', () => {
    const { active, expired } = partitionRules(rules, new Date('2026-01-02T03:04:05Z'));
    assert.deepEqual(active.map((r) => r.id), ['CVE-2', 'CVE-3']);
    assert.deepEqual(expired.map((r) => r.id), ['CVE-1']);
  });
});
