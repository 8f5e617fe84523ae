import assert from 'node:assert/strict';
import { get } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { startClairDouble, type ClairDouble } from './server.js';
import { call, debianBaseLayer, dpkgStanza, gzip, layerRef, postIndex, startLayerServer, type TestLayerServer } from './test-support.js';
import type { VulnEntry } from './vulns.js';

const HASH = `sha256:${'c'.repeat(64)}`;
const ENTRIES: VulnEntry[] = [
  { id: 'CVE-2099-1001', namespace: 'debian:12', package: 'glibc', fixed: '2.36-9+deb12u99', severity: 'Critical',
    description: 'a <b> & "c" ]]> \u001b[31mred\u001b[0m é', links: ['https://a.invalid/1', 'https://b.invalid/1'], issued: '2099-01-02T03:04:05Z' },
  { id: 'CVE-2099-1002', namespace: 'debian:12', package: 'bash', severity: 'High', vendorSeverity: 'high' },
  { id: 'CVE-2099-1003', namespace: 'debian:12', package: 'perl', fixed: '5.36.0-7+deb12u4', severity: 'Defcon1' },
  { id: 'CVE-2099-1004', namespace: 'debian:12', package: 'bash', fixed: '5.2.15-2', severity: 'Critical' },
  { id: 'CVE-2099-1005', namespace: 'debian:11', package: 'bash', severity: 'Critical' },
  { id: 'CVE-2099-1006', namespace: 'debian:12', package: 'libsystemd0', fixed: '252.39-1~deb12u3', severity: 'Low' },
  { id: 'CVE-2099-1007', namespace: 'debian:12', package: 'gcc-12', severity: 'Negligible' },
];
const STANZAS = [
  dpkgStanza({ name: 'bash', version: '5.2.15-2+b13', source: 'bash (5.2.15-2)' }),
  dpkgStanza({ name: 'libc6', version: '2.36-9+deb12u14', source: 'glibc' }),
  dpkgStanza({ name: 'libc-bin', version: '2.36-9+deb12u14', source: 'glibc' }),
  dpkgStanza({ name: 'perl-base', version: '5.36.0-7+deb12u3', source: 'perl' }),
  dpkgStanza({ name: 'libsystemd0', version: '252.39-1~deb12u2', source: 'systemd' }),
  dpkgStanza({ name: 'libgcc-s1', version: '12.2.0-14+deb12u1', source: 'gcc-12 (12.2.0-14+deb12u1)' }),
  dpkgStanza({ name: 'tar', version: '1.34+dfsg-1.2+deb12u1' }),
];

interface VulnReport {
  packages: Record<string, { name: string }>;
  vulnerabilities: Record<string, Record<string, unknown>>;
  package_vulnerabilities: Record<string, string[]>;
  enrichments: unknown;
}

let srv: TestLayerServer;
let layer: Buffer;
before(async () => {
  layer = gzip(await debianBaseLayer(STANZAS));
  srv = await startLayerServer({ '/l': { body: layer } });
});
after(() => srv.close());

describe('vulnerability_report', () => {
  let double: ClairDouble;
  before(async () => {
    double = await startClairDouble({ vulns: ENTRIES });
  });
  after(() => double.close());

  test('404 before the manifest is indexed, and while its index is not finished', async () => {
    const r = await call(`${double.url}/matcher/api/v1/vulnerability_report/${HASH}`);
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, { code: 'not-found', message: `index report for manifest "${HASH}" not found` });
    const other = `sha256:${'d'.repeat(64)}`;
    let release!: () => void;
    srv.set('/slow', { body: layer, hold: new Promise<void>((r) => { release = r; }) });
    const pending = postIndex(double.url, { hash: other, layers: [layerRef(srv, '/slow', layer)] });
    // Its layer GET has arrived and is held: the index is fetching layers until the release.
    await srv.received('/slow');
    const during = await call(`${double.url}/indexer/api/v1/index_report/${other}`);
    assert.equal((during.json as { state: string }).state, 'FetchLayers');
    assert.equal((await call(`${double.url}/matcher/api/v1/vulnerability_report/${other}`)).status, 404);
    release();
    assert.equal((await pending).status, 201);
    assert.equal((await call(`${double.url}/matcher/api/v1/vulnerability_report/${other}`)).status, 200);
    assert.equal((await call(`${double.url}/matcher/api/v1/vulnerability_report/nope`)).status, 400);
  });

  test('200 with the real server\'s headers and shapes; matching by binary or source name and dpkg order', async () => {
    assert.equal((await postIndex(double.url, { hash: HASH, layers: [layerRef(srv, '/l', layer)] })).status, 201);
    const r = await call(`${double.url}/matcher/api/v1/vulnerability_report/${HASH}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/vnd.clair.index_report.v1+json');
    assert.equal(r.headers.get('cache-control'), 'max-age=21600');
    assert.ok(r.text.includes('\\u003cb\\u003e \\u0026'), 'HTML characters escaped as Go does');
    const rep = r.json as VulnReport;
    assert.deepEqual(Object.keys(rep), ['manifest_hash', 'packages', 'distributions', 'repository', 'environments',
      'vulnerabilities', 'package_vulnerabilities', 'enrichments']);
    assert.deepEqual(rep.enrichments, {});
    const hits = new Map<string, string[]>();
    for (const [pkgId, ids] of Object.entries(rep.package_vulnerabilities)) {
      hits.set(rep.packages[pkgId]?.name ?? '?', ids.map((id) => String(rep.vulnerabilities[id]?.['name'])));
    }
    assert.deepEqual(Object.fromEntries([...hits].sort()), {
      bash: ['CVE-2099-1002'],
      'libc-bin': ['CVE-2099-1001'],
      libc6: ['CVE-2099-1001'],
      'libgcc-s1': ['CVE-2099-1007'],
      libsystemd0: ['CVE-2099-1006'],
      'perl-base': ['CVE-2099-1003'],
    });
    const libc6Id = Object.keys(rep.package_vulnerabilities).find((k) => rep.packages[k]?.name === 'libc6') ?? '';
    const v = rep.vulnerabilities[rep.package_vulnerabilities[libc6Id]?.[0] ?? ''];
    assert.deepEqual(v && Object.keys(v), ['id', 'updater', 'name', 'description', 'issued', 'links', 'severity',
      'normalized_severity', 'package', 'distribution', 'fixed_in_version']);
    assert.equal(v?.['links'], 'https://a.invalid/1 https://b.invalid/1');
    assert.equal(v?.['normalized_severity'], 'Critical');
    assert.equal(v?.['fixed_in_version'], '2.36-9+deb12u99');
    assert.equal(v?.['updater'], 'debian/updater');
    assert.equal(v?.['issued'], '2099-01-02T03:04:05Z');
    assert.deepEqual(v?.['package'], { id: '', name: 'libc6', version: '', kind: 'binary' });
    assert.equal((v?.['distribution'] as Record<string, string>)['version_id'], '12');
    assert.equal((v?.['distribution'] as Record<string, string>)['id'], '');
    const byName = (n: string): Record<string, unknown> | undefined =>
      Object.values(rep.vulnerabilities).find((x) => x['name'] === n);
    assert.equal(byName('CVE-2099-1003')?.['normalized_severity'], 'Critical', 'Defcon1 becomes Critical');
    assert.equal(byName('CVE-2099-1003')?.['severity'], 'Defcon1');
    assert.equal(byName('CVE-2099-1002')?.['fixed_in_version'], '');
    assert.equal(byName('CVE-2099-1002')?.['issued'], '0001-01-01T00:00:00Z');
    assert.equal(byName('CVE-2099-1002')?.['links'], '');
    assert.equal(byName('CVE-2099-1004'), undefined, 'installed is not lower than fixed');
    assert.equal(byName('CVE-2099-1005'), undefined, 'other namespace');
  });

  test('responses are gzip-compressed when the client asks', async () => {
    const { headers, body } = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      get(`${double.url}/matcher/api/v1/vulnerability_report/${HASH}`, { headers: { 'Accept-Encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
    assert.equal(headers['content-encoding'], 'gzip');
    assert.ok(JSON.parse(gunzipSync(body).toString()).vulnerabilities !== undefined);
  });

  test('update_operation lists one operation per updater', async () => {
    const r = await call(`${double.url}/matcher/api/v1/internal/update_operation?kind=vulnerability&latest=true`);
    assert.equal(r.status, 200);
    const ops = r.json as Record<string, { ref: string; updater: string; kind: string; date: string }[]>;
    assert.deepEqual(Object.keys(ops), ['debian/updater']);
    assert.equal(ops['debian/updater']?.[0]?.kind, 'vulnerability');
    assert.equal(r.headers.get('etag'), `"${ops['debian/updater']?.[0]?.ref ?? ''}"`);
    const again = await call(`${double.url}/matcher/api/v1/internal/update_operation`, { headers: { 'If-None-Match': r.headers.get('etag') ?? '' } });
    assert.equal(again.status, 304);
    assert.equal((await call(`${double.url}/matcher/api/v1/internal/update_operation?kind=bogus`)).status, 400);
  });
});

describe('empty vulnerability database', () => {
  test('202 with an empty body (checked before the index lookup) and {} update operations', async () => {
    const double = await startClairDouble({ vulns: ENTRIES, emptyDb: true });
    try {
      const unknown = await call(`${double.url}/matcher/api/v1/vulnerability_report/${HASH}`);
      assert.equal(unknown.status, 202);
      assert.equal(unknown.text, '');
      assert.equal((await postIndex(double.url, { hash: HASH, layers: [layerRef(srv, '/l', layer)] })).status, 201);
      const r = await call(`${double.url}/matcher/api/v1/vulnerability_report/${HASH}`);
      assert.equal(r.status, 202);
      assert.equal(r.text, '');
      assert.deepEqual((await call(`${double.url}/matcher/api/v1/internal/update_operation`)).json, {});
      double.setEmptyDb(false);
      assert.equal((await call(`${double.url}/matcher/api/v1/vulnerability_report/${HASH}`)).status, 200);
    } finally {
      await double.close();
    }
  });

  test('no entries at all also counts as empty', async () => {
    const double = await startClairDouble({ vulns: [] });
    try {
      assert.equal((await call(`${double.url}/matcher/api/v1/vulnerability_report/${HASH}`)).status, 202);
    } finally {
      await double.close();
    }
  });
});

describe('fault hooks', () => {
  test('error, disconnect and truncate on the matcher; error on the indexer', async () => {
    let mode: 'error' | 'disconnect' | 'truncate' | undefined;
    const double = await startClairDouble({
      vulns: ENTRIES,
      faults: {
        index: (m) => (m.hash.endsWith('e') ? { kind: 'error', status: 503, message: 'maintenance' } : undefined),
        vulnerabilityReport: () => (mode === undefined ? undefined
          : mode === 'error' ? { kind: 'error', status: 500, message: 'boom' } : mode === 'truncate' ? { kind: 'truncate' } : { kind: 'disconnect' }),
      },
    });
    try {
      const e = await postIndex(double.url, { hash: `sha256:${'e'.repeat(64)}`, layers: [layerRef(srv, '/l', layer)] });
      assert.equal(e.status, 503);
      assert.deepEqual(e.json, { code: 'internal-error', message: 'maintenance' });
      assert.equal((await postIndex(double.url, { hash: HASH, layers: [layerRef(srv, '/l', layer)] })).status, 201);
      const url = `${double.url}/matcher/api/v1/vulnerability_report/${HASH}`;
      mode = 'error';
      assert.equal((await call(url)).status, 500);
      mode = 'disconnect';
      await assert.rejects(call(url));
      mode = 'truncate';
      await assert.rejects(call(url));
      mode = undefined;
      assert.equal((await call(url)).status, 200);
    } finally {
      await double.close();
    }
  });
});
