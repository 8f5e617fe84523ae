import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { advisoryId } from '../../src/clair/advisory-id.js';
import { splitLinks, toFixedIn, toImageScan, toSeverity } from '../../src/clair/v4/normalise.js';
import { compareFindings } from '../../src/findings/order.js';
import { parseErrorBody, parseIndexReport, parseUpdateOperations, parseVulnerabilityReport } from '../../src/clair/v4/parse.js';
import type * as V4 from '../../src/clair/v4/wire.js';
import type { ImageScan } from '../../src/findings/model.js';
import { ClairProtocolError } from '../../src/runtime/errors.js';

// Recorded Clair responses from public repositories; provenance in test/fixtures/clair/README.md.
const FIXTURES = fileURLToPath(new URL('../fixtures/clair/', import.meta.url));
const ENDPOINT = 'GET /matcher/api/v1/vulnerability_report/sha256:x';

interface RawPackage {
  name: string;
  version: string;
}
interface RawReport {
  manifest_hash: string;
  packages: Record<string, RawPackage>;
  environments: Record<string, { introduced_in: string; distribution_id: string }[]>;
  distributions: Record<string, { did: string; version_id: string }>;
  vulnerabilities: Record<string, { name: string; links: string; fixed_in_version: string; normalized_severity: string }>;
  package_vulnerabilities: Record<string, string[]>;
}

function raw(file: string): RawReport {
  return JSON.parse(readFileSync(FIXTURES + file, 'utf8')) as RawReport;
}

function scanOf(file: string): { json: RawReport; scan: ImageScan } {
  const json = raw(file);
  const report = parseVulnerabilityReport(json, ENDPOINT);
  const scan = toImageScan(report, { image: { ref: file, id: json.manifest_hash }, url: 'http://clair:6060' });
  return { json, scan };
}

/** The expectations, computed from the raw JSON without the code under test. */
function independent(json: RawReport) {
  const unique = new Map<string, { severity: string; links: string; fixed: string; layer: string | undefined }>();
  let pairs = 0;
  for (const [pkgId, vulnIds] of Object.entries(json.package_vulnerabilities)) {
    const pkg = json.packages[pkgId]!;
    for (const vulnId of vulnIds) {
      pairs++;
      const v = json.vulnerabilities[vulnId]!;
      unique.set(`${v.name}|${pkg.name}|${pkg.version}`, {
        severity: v.normalized_severity,
        links: v.links,
        fixed: v.fixed_in_version,
        layer: json.environments[pkgId]?.[0]?.introduced_in,
      });
    }
  }
  const severities: Record<string, number> = {};
  for (const u of unique.values()) severities[u.severity] = (severities[u.severity] ?? 0) + 1;
  return { pairs, findings: unique.size, packages: Object.keys(json.packages).length, severities, unique };
}

function countSeverities(scan: ImageScan): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of scan.findings) out[f.severity] = (out[f.severity] ?? 0) + 1;
  return out;
}

const REPORTS = [
  // file, packages, findings (unique per vulnerability name × installed package), raw pairs, distribution
  ['v4-vulnerability-report-clair-action-debian-stretch.json', 83, 212, 212, { id: 'debian', version: '9', prettyName: 'Debian GNU/Linux 9 (stretch)' }],
  ['v4-vulnerability-report-quay-alpine3.7-pypi-enrichments.json', 57, 26, 26, { id: 'alpine', version: '3.7', prettyName: 'Alpine Linux v3.7' }],
  ['v4-vulnerability-report-quay-clair-image-ubi8-rhel8.json', 188, 89, 177, { id: 'rhel', version: '8', prettyName: 'Red Hat Enterprise Linux Server 8' }],
] as const;

describe('Clair v4 vulnerability reports → ImageScan (every recorded fixture)', () => {
  for (const [file, packages, findings, pairs, distribution] of REPORTS) {
    it(`${file}: counts, distribution, trust, order`, () => {
      const { json, scan } = scanOf(file);
      const expected = independent(json);
      assert.equal(expected.packages, packages, 'fixture package count (README)');
      assert.equal(expected.pairs, pairs, 'fixture (package, vulnerability) pairs');
      assert.equal(expected.findings, findings, 'fixture unique findings');

      assert.equal(scan.packageCount, expected.packages);
      assert.equal(scan.findings.length, expected.findings);
      assert.deepEqual(countSeverities(scan), expected.severities);
      assert.deepEqual(scan.distribution, distribution);
      assert.deepEqual(scan.trust, []);
      assert.deepEqual(scan.engine, { api: 'v4', url: 'http://clair:6060' });
      assert.equal(scan.image.id, json.manifest_hash);

      for (let i = 1; i < scan.findings.length; i++) {
        assert.ok(compareFindings(scan.findings[i - 1]!, scan.findings[i]!) < 0, `order at ${i}`);
      }
      for (const f of scan.findings) {
        assert.ok(f.id.length > 0 && f.id.trim() === f.id);
        assert.ok(f.links.every((l) => l.length > 0 && !/\s/.test(l)));
        assert.ok(f.layer?.startsWith('sha256:'), `layer of ${f.id}`);
      }
    });
  }

  it('layer is environments[pkg][0].introduced_in and links are the split string', () => {
    const { json, scan } = scanOf('v4-vulnerability-report-quay-clair-image-ubi8-rhel8.json');
    const { unique } = independent(json);
    const nghttp2 = scan.findings.find((f) => f.id === 'RHSA-2023:5837' && f.package.name === 'libnghttp2');
    assert.ok(nghttp2);
    const rawOne = unique.get(`${nghttp2.title}|libnghttp2|${nghttp2.package.version}`);
    assert.ok(rawOne, 'the finding keeps the full Clair name as title');
    assert.equal(nghttp2.layer, rawOne.layer);
    assert.deepEqual(nghttp2.links, [
      'https://access.redhat.com/errata/RHSA-2023:5837',
      'https://access.redhat.com/security/cve/CVE-2023-44487',
    ]);
    assert.equal(nghttp2.severity, 'High');
    assert.equal(nghttp2.vendorSeverity, 'Important');
    assert.equal(nghttp2.fixedIn, '0:1.33.0-5.el8_8');
    assert.deepEqual(nghttp2.package.source, { name: 'nghttp2', version: nghttp2.package.version });
    const multi = scan.findings.filter((f) => f.links.length > 1).length;
    assert.ok(multi >= 10, `several findings carry several links (${multi})`);
    // Every finding's links are exactly its raw string split on whitespace.
    for (const f of scan.findings) {
      const r = [...unique.entries()].find(([k]) => k.endsWith(`|${f.package.name}|${f.package.version}`) && (k.startsWith(`${f.title ?? f.id}|`)));
      assert.ok(r, `raw entry for ${f.id} ${f.package.name}`);
      assert.deepEqual(f.links, r[1].links.split(' ').filter(Boolean));
    }
  });

  it('"0:0" and "" mean no fix; real versions are kept', () => {
    const debian = scanOf('v4-vulnerability-report-clair-action-debian-stretch.json');
    assert.ok(Object.values(debian.json.vulnerabilities).every((v) => v.fixed_in_version === '0:0'));
    assert.equal(debian.scan.findings.filter((f) => f.fixedIn !== undefined).length, 0);

    const alpine = scanOf('v4-vulnerability-report-quay-alpine3.7-pypi-enrichments.json');
    const fixed = alpine.scan.findings.filter((f) => f.fixedIn !== undefined);
    assert.equal(fixed.length, 17, 'the 17 alpine-main entries have a fix, the 9 pyup ones do not');
    assert.ok(fixed.every((f) => /-r\d+$/.test(f.fixedIn!)));
    const pip = alpine.scan.findings.find((f) => f.id === 'pyup.io-38765 (CVE-2019-20916)');
    assert.ok(pip);
    assert.equal(pip.fixedIn, undefined);
    assert.deepEqual(pip.links, []);
    assert.equal(pip.package.version, '9.0.1', 'the installed version, not the advisory range "<19.2"');

    assert.equal(toFixedIn('0:0'), undefined);
    assert.equal(toFixedIn(''), undefined);
    assert.equal(toFixedIn('  '), undefined);
    assert.equal(toFixedIn('0:1.33.0-5.el8_8'), '0:1.33.0-5.el8_8');
    assert.equal(toFixedIn('fixed=1.2.3&introduced=0'), '1.2.3');
    assert.equal(toFixedIn('introduced=0&lastAffected=1.2'), undefined);
  });

  it('dedupes identical (id, package, version) findings: repeated environments and per-repository advisories', () => {
    const debian = scanOf('v4-vulnerability-report-clair-action-debian-stretch.json');
    const envCounts = Object.values(debian.json.environments).map((e) => e.length);
    assert.ok(envCounts.every((n) => n === 4), 'each package has four identical environments');
    assert.equal(debian.scan.findings.length, 212, 'one finding per pair, not one per environment');

    const ubi = scanOf('v4-vulnerability-report-quay-clair-image-ubi8-rhel8.json');
    const rhsa = ubi.scan.findings.filter((f) => f.id === 'RHSA-2023:5837');
    assert.deepEqual(rhsa.map((f) => f.package.name).sort(), ['libnghttp2'], 'two Clair ids (BaseOS, AppStream), one finding');
    const keys = ubi.scan.findings.map((f) => `${f.id}|${f.package.name}|${f.package.version}`);
    assert.equal(new Set(keys).size, keys.length);
  });

  it('dedupe keeps the most severe copy and the union of links', () => {
    const report = minimalReport();
    report.vulnerabilities['v2'] = { ...report.vulnerabilities['v1']!, id: 'v2', normalized_severity: 'Critical', links: 'https://b https://a' };
    report.package_vulnerabilities['p1'] = ['v1', 'v2', 'v1'];
    const scan = toImageScan(report, { image: { ref: 'x', id: 'sha256:x' }, url: 'u' });
    assert.equal(scan.findings.length, 1);
    assert.equal(scan.findings[0]!.severity, 'Critical');
    assert.deepEqual(scan.findings[0]!.links, ['https://b', 'https://a']);
  });

  it('reads an index report\'s packages as a report with nothing matched (debian-10, rhacs)', () => {
    const debian = parseIndexReport(raw('v4-index-report-claircore-debian-10.json'), 'POST /indexer/api/v1/index_report');
    assert.equal(debian.state, 'IndexFinished');
    assert.equal(debian.success, true);
    assert.equal(Object.keys(debian.packages!).length, 91);
    const asVuln: V4.VulnerabilityReport = {
      manifest_hash: debian.manifest_hash,
      packages: {},
      distributions: {},
      environments: {},
      vulnerabilities: {},
      package_vulnerabilities: {},
    };
    // The vulnerability report's copied members are empty: normalise falls back to the index report.
    const scan = toImageScan(asVuln, { image: { ref: 'debian:10', id: debian.manifest_hash }, url: 'u', indexReport: debian });
    assert.equal(scan.packageCount, 91);
    assert.deepEqual(scan.distribution, { id: 'debian', version: '10', prettyName: 'Debian GNU/Linux 10 (buster)' });
    assert.deepEqual(scan.findings, []);
    assert.deepEqual(scan.trust, [], 'a recognised OS with nothing matched is a clean result');

    const rhacs = parseIndexReport(raw('v4-index-report-claircore-rhacs-main-rhel8.json'), 'GET /indexer/api/v1/index_report/x');
    assert.equal(Object.keys(rhacs.packages!).length, 544);
    const goEnvs = Object.values(rhacs.environments!).filter((e) => e[0]?.distribution_id === '').length;
    assert.ok(goEnvs > 400, 'Go modules point to no distribution');
    const rhacsScan = toImageScan({ ...asVuln, manifest_hash: rhacs.manifest_hash, ...pick(rhacs) }, { image: { ref: 'rhacs', id: rhacs.manifest_hash }, url: 'u' });
    assert.deepEqual(rhacsScan.distribution, { id: 'rhel', version: '8', prettyName: 'Red Hat Enterprise Linux Server 8' });
  });

  it('splits dpkg source names that carry a version, and drops empty or identical sources', () => {
    const debian = parseIndexReport(raw('v4-index-report-claircore-debian-10.json'), 'x');
    const report = { manifest_hash: 'sha256:x', ...pick(debian), vulnerabilities: {}, package_vulnerabilities: {} } as V4.VulnerabilityReport;
    const byName = new Map(Object.entries(debian.packages!).map(([id, p]) => [p.name, id]));
    const vuln = minimalReport().vulnerabilities['v1']!;
    report.vulnerabilities = { v1: vuln };
    for (const name of ['bsdutils', 'mawk', 'base-passwd', 'bash']) report.package_vulnerabilities[byName.get(name)!] = ['v1'];
    const scan = toImageScan(report, { image: { ref: 'x', id: 'sha256:x' }, url: 'u' });
    const src = (name: string) => scan.findings.find((f) => f.package.name === name)?.package.source;
    assert.equal(debian.packages![byName.get('bsdutils')!]!.source!.name, 'util-linux (2.33.1-0.1)');
    assert.deepEqual(src('bsdutils'), { name: 'util-linux', version: '1:2.33.1-0.1' }, 'Clair\'s own source version wins');
    assert.equal(debian.packages![byName.get('mawk')!]!.source!.name, 'mawk (1.3.3-17)');
    assert.equal(src('mawk'), undefined, '"mawk (1.3.3-17)" is the package itself');
    assert.equal(src('base-passwd'), undefined, 'empty source name');
    const own = minimalReport();
    own.packages['p1']!.source = { name: 'util-linux (2.33.1-0.1)', version: '' };
    assert.deepEqual(toImageScan(own, { image: { ref: 'x', id: 'sha256:x' }, url: 'u' }).findings[0]!.package.source, {
      name: 'util-linux',
      version: '2.33.1-0.1',
    }, 'the version in parentheses when Clair gives none');
    assert.equal(src('bash'), undefined);
  });

  it('severity comes from normalized_severity; anything else is Unknown', () => {
    assert.equal(toSeverity('Critical'), 'Critical');
    assert.equal(toSeverity('Negligible'), 'Negligible');
    assert.equal(toSeverity('Important'), 'Unknown');
    assert.equal(toSeverity(''), 'Unknown');
    assert.equal(toSeverity('Defcon1'), 'Unknown');
    assert.equal(toSeverity(undefined), 'Unknown');
  });

  it('advisory ids: Clair names that are ids stay, leading ids are split from titles, CVEs come from links', () => {
    assert.deepEqual(advisoryId('CVE-2024-1234', [], '1'), { id: 'CVE-2024-1234' });
    assert.deepEqual(advisoryId('GHSA-jq35-85cj-fj4p', [], '1'), { id: 'GHSA-jq35-85cj-fj4p' });
    assert.deepEqual(advisoryId('pyup.io-39606 (CVE-2020-36242)', [], '1'), { id: 'pyup.io-39606 (CVE-2020-36242)' });
    assert.deepEqual(advisoryId('DSA-5555-1', [], '1'), { id: 'DSA-5555-1' });
    assert.deepEqual(advisoryId('CVE-2019-3844 systemd', [], '1'), { id: 'CVE-2019-3844', title: 'CVE-2019-3844 systemd' });
    assert.deepEqual(advisoryId('RHSA-2023:5837: nghttp2 security update (Important)', [], '1'), {
      id: 'RHSA-2023:5837',
      title: 'RHSA-2023:5837: nghttp2 security update (Important)',
    });
    assert.deepEqual(advisoryId('gmp: Integer overflow (moderate)', ['https://access.redhat.com/security/cve/CVE-2021-43618'], '1'), {
      id: 'CVE-2021-43618',
      title: 'gmp: Integer overflow (moderate)',
    });
    assert.deepEqual(advisoryId('something odd', ['https://x/CVE-2021-1111', 'https://x/CVE-2021-2222'], '1'), { id: 'something odd' });
    assert.deepEqual(advisoryId('', [], '42'), { id: '42' });
    assert.deepEqual(splitLinks(' a  b\tc a '), ['a', 'b', 'c']);
  });
});

describe('trust signals', () => {
  const ctx = { image: { ref: 'x', id: 'sha256:x' }, url: 'u' };

  it('no packages → no-packages (never clean)', () => {
    const report = minimalReport();
    report.packages = {};
    report.environments = {};
    report.package_vulnerabilities = {};
    const scan = toImageScan(report, ctx);
    assert.deepEqual(scan.trust.map((t) => t.kind), ['no-packages']);
    assert.equal(scan.packageCount, 0);
  });

  it('packages, no distribution, nothing matched → unsupported-os', () => {
    const report = minimalReport();
    report.distributions = {};
    report.package_vulnerabilities = {};
    const scan = toImageScan(report, ctx);
    assert.equal(scan.distribution, undefined);
    assert.deepEqual(scan.trust.map((t) => t.kind), ['unsupported-os']);
    assert.match(scan.trust[0]!.message, /1 package/);
  });

  it('packages, no distribution, something matched → no signal (the matcher ran)', () => {
    const report = minimalReport();
    report.distributions = {};
    const scan = toImageScan(report, ctx);
    assert.equal(scan.findings.length, 1);
    assert.deepEqual(scan.trust, []);
  });

  it('a distribution and nothing matched → clean, no signal', () => {
    const report = minimalReport();
    report.package_vulnerabilities = {};
    assert.deepEqual(toImageScan(report, ctx).trust, []);
  });

  it('picks the distribution most packages point to', () => {
    const report = minimalReport();
    report.distributions['2'] = { ...report.distributions['1']!, id: '2', did: 'ubuntu', version_id: '22.04', pretty_name: 'Ubuntu' };
    for (const id of ['p2', 'p3']) {
      report.packages[id] = { id, name: id, version: '1' };
      report.environments[id] = [{ package_db: 'x', introduced_in: 'sha256:l', distribution_id: '2', repository_ids: null }];
    }
    assert.equal(toImageScan(report, ctx).distribution?.id, 'ubuntu');
  });
});

describe('parse guards', () => {
  it('names the endpoint and the missing or mistyped field', () => {
    const cases: [string, (j: Record<string, any>) => void, RegExp][] = [
      ['missing vulnerability name', (j) => delete j.vulnerabilities[Object.keys(j.vulnerabilities)[0]!].name, /vulnerabilities\["[^"]+"\]\.name is missing/],
      ['package name mistyped', (j) => (j.packages[Object.keys(j.packages)[0]!].name = 42), /packages\["[^"]+"\]\.name should be a string, got number 42/],
      ['no package_vulnerabilities', (j) => delete j.package_vulnerabilities, /package_vulnerabilities is missing/],
      ['vulnerabilities null', (j) => (j.vulnerabilities = null), /vulnerabilities should be an object, got null/],
      ['environments not an array', (j) => (j.environments[Object.keys(j.environments)[0]!] = 'x'), /environments\["[^"]+"\] should be an array/],
      ['dangling vulnerability', (j) => (j.package_vulnerabilities[Object.keys(j.package_vulnerabilities)[0]!] = ['nope']), /refers to vulnerability "nope"/],
      ['manifest_hash missing', (j) => delete j.manifest_hash, /manifest_hash is missing/],
    ];
    for (const [what, mutate, pattern] of cases) {
      const json = raw('v4-vulnerability-report-quay-alpine3.7-pypi-enrichments.json') as unknown as Record<string, any>;
      mutate(json);
      assert.throws(
        () => parseVulnerabilityReport(json, ENDPOINT),
        (error: unknown) => {
          assert.ok(error instanceof ClairProtocolError, what);
          assert.equal(error.code, 'CLAIR_PROTOCOL');
          assert.equal(error.exitCode, 2);
          assert.ok(error.message.includes(ENDPOINT), `${what}: ${error.message}`);
          assert.match(error.message, pattern, what);
          return true;
        },
      );
    }
    assert.throws(() => parseVulnerabilityReport([], ENDPOINT), /the body should be an object, got an array/);
    assert.throws(() => parseIndexReport({ manifest_hash: 'sha256:x' }, 'POST /indexer/api/v1/index_report'), /index_report: state is missing/);
  });

  it('tolerates omitted optional fields and null maps', () => {
    const report = parseVulnerabilityReport(
      {
        manifest_hash: 'sha256:x',
        packages: { '1': { name: 'busybox' } },
        distributions: null,
        environments: { '1': [{ introduced_in: 'sha256:l', repository_ids: null }] },
        vulnerabilities: { '9': { name: 'CVE-2024-1' } },
        package_vulnerabilities: { '1': ['9'] },
        enrichments: null,
      },
      ENDPOINT,
    );
    assert.equal(report.packages['1']!.version, '');
    assert.deepEqual(report.distributions, {});
    assert.equal(report.vulnerabilities['9']!.fixed_in_version, '');
    const scan = toImageScan(report, { image: { ref: 'x', id: 'sha256:x' }, url: 'u' });
    assert.equal(scan.findings[0]!.severity, 'Unknown');
    assert.equal(scan.findings[0]!.layer, 'sha256:l');
  });

  it('update operations and error bodies', () => {
    assert.deepEqual(parseUpdateOperations({}, 'GET update_operation'), {});
    const ops = parseUpdateOperations(
      { 'debian/updater': [{ ref: 'a-b', updater: 'debian/updater', fingerprint: 'f', date: '2026-01-01T00:00:00Z', kind: 'vulnerability' }] },
      'GET update_operation',
    );
    assert.equal(ops['debian/updater']![0]!.ref, 'a-b');
    assert.throws(() => parseUpdateOperations({ u: [{ updater: 'u', date: 'd' }] }, 'GET update_operation'), /GET update_operation: \["u"\]\[0\]\.ref is missing/);
    assert.throws(() => parseUpdateOperations([], 'GET update_operation'), ClairProtocolError);

    assert.deepEqual(parseErrorBody({ code: 'not-found', message: 'index report not found' }, 'x'), { code: 'not-found', message: 'index report not found' });
    assert.deepEqual(parseErrorBody('{"code":"internal-error","message":"failed to start scan: boom"}'), {
      code: 'internal-error',
      message: 'failed to start scan: boom',
    });
    assert.deepEqual(parseErrorBody('{"code":"bad-request"}'), { code: 'bad-request' });
    assert.equal(parseErrorBody(''), undefined, '401 has no body');
    assert.equal(parseErrorBody('{"code":"internal-er'), undefined, 'truncated');
    assert.equal(parseErrorBody([1]), undefined);
  });
});

function pick(index: V4.IndexReport) {
  return { packages: index.packages ?? {}, distributions: index.distributions ?? {}, environments: index.environments ?? {} };
}

/** One Debian package with one High vulnerability. */
function minimalReport(): V4.VulnerabilityReport {
  return {
    manifest_hash: 'sha256:x',
    packages: { p1: { id: 'p1', name: 'openssl', version: '3.0.11-1', source: { name: '', version: '' } } },
    distributions: {
      '1': { id: '1', did: 'debian', name: 'Debian GNU/Linux', version: '12 (bookworm)', version_code_name: 'bookworm', version_id: '12', arch: '', cpe: '', pretty_name: 'Debian GNU/Linux 12 (bookworm)' },
    },
    environments: { p1: [{ package_db: 'var/lib/dpkg/status', introduced_in: 'sha256:layer1', distribution_id: '1', repository_ids: null }] },
    vulnerabilities: {
      v1: { id: 'v1', updater: 'debian/updater', name: 'CVE-2099-0001', description: 'd', links: 'https://a', severity: 'high', normalized_severity: 'High', fixed_in_version: '3.0.13-1' },
    },
    package_vulnerabilities: { p1: ['v1'] },
  };
}
