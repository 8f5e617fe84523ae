import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startClairDouble, type ClairDouble } from './server.js';
import { call, DEBIAN12_OS_RELEASE, dpkgStanza, gzip, makeTar, startLayerServer, zstd, type TestLayerServer } from './test-support.js';
import type { VulnEntry } from './vulns.js';

const ENTRIES: VulnEntry[] = [
  { id: 'CVE-2099-2001', namespace: 'debian:12', package: 'glibc', fixed: '2.36-9+deb12u99', severity: 'High',
    links: ['https://a.invalid/2001'], cvssV2: { score: 7.5, vectors: 'AV:N/AC:L/Au:N/C:P/I:P' }, description: 'glibc <flaw>' },
  { id: 'CVE-2099-2002', namespace: 'debian:12', package: 'bash', severity: 'Defcon1' },
  { id: 'CVE-2099-2003', namespace: 'debian:12', package: 'libc6', severity: 'Critical' },
  { id: 'CVE-2099-2004', namespace: 'debian:12', package: 'e2fsprogs', fixed: '1.47.0-2+b1', severity: 'Low' },
  { id: 'CVE-2099-2005', namespace: 'debian:12', package: 'newpkg', fixed: '2.0', severity: 'Medium' },
];

interface V1Feature {
  Name: string;
  NamespaceName: string;
  VersionFormat: string;
  Version: string;
  AddedBy: string;
  Vulnerabilities?: Record<string, unknown>[];
}

let srv: TestLayerServer;
let double: ClairDouble;
before(async () => {
  const base = await makeTar([
    { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
    { name: 'usr/lib/os-release', content: DEBIAN12_OS_RELEASE },
    { name: 'var/lib/dpkg/info/', type: 'directory' },
    { name: 'var/lib/dpkg/status', content: [
      dpkgStanza({ name: 'bash', version: '5.2.15-2+b13', source: 'bash (5.2.15-2)' }),
      dpkgStanza({ name: 'libc6', version: '2.36-9+deb12u14', source: 'glibc' }),
      dpkgStanza({ name: 'libc-bin', version: '2.36-9+deb12u14', source: 'glibc' }),
      dpkgStanza({ name: 'e2fsprogs', version: '1.47.0-2+b2', source: 'e2fsprogs (1.47.0-2)' }),
    ].join('\n') },
  ]);
  const files = await makeTar([{ name: 'srv/www/index.html', content: '<p>hi</p>' }]);
  const add = await makeTar([
    { name: 'var/lib/dpkg/status', content: [
      dpkgStanza({ name: 'bash', version: '5.2.15-2+b13', source: 'bash (5.2.15-2)' }),
      dpkgStanza({ name: 'libc6', version: '2.36-9+deb12u14', source: 'glibc' }),
      dpkgStanza({ name: 'newpkg', version: '1.0' }),
    ].join('\n') },
  ]);
  const noOs = await makeTar([{ name: 'var/lib/dpkg/status', content: dpkgStanza({ name: 'x', version: '1' }) }]);
  srv = await startLayerServer({
    '/base.tar.gz': { body: gzip(base) },
    '/files.tar': { body: files, headers: { 'Content-Type': 'text/html' }, status: 203 },
    '/add.tar': { body: add },
    '/noos.tar': { body: noOs },
    '/junk': { body: Buffer.from('not a tar '.repeat(100)) },
    '/zst': { body: zstd(files) },
  });
  double = await startClairDouble({ api: 'v1', vulns: ENTRIES });
});
after(async () => {
  await double.close();
  await srv.close();
});

const postLayer = (layer: Record<string, unknown>): ReturnType<typeof call> => call(`${double.url}/v1/layers`, {
  method: 'POST', body: JSON.stringify({ Layer: layer }), headers: { 'Content-Type': 'application/json' },
});

describe('v1 POST /v1/layers', () => {
  test('parent first; 201 echoes the layer; Headers are sent; any 2xx and any Content-Type are fine', async () => {
    const r = await postLayer({ Name: 'L1', Path: `${srv.url}/base.tar.gz`, Format: 'Docker', Headers: { Authorization: 'Basic abc' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.get('content-type'), 'application/json;charset=utf-8');
    assert.equal(r.headers.get('server'), 'clair');
    assert.ok(r.text.endsWith('}\n'));
    assert.deepEqual(r.json, { Layer: { Name: 'L1', Path: `${srv.url}/base.tar.gz`, Headers: { Authorization: 'Basic abc' }, Format: 'Docker', IndexedByVersion: 3 } });
    assert.equal(srv.requests.at(-1)?.headers.authorization, 'Basic abc');
    const r2 = await postLayer({ Name: 'L2', Path: `${srv.url}/files.tar`, ParentName: 'L1', Format: 'docker' });
    assert.equal(r2.status, 201, r2.text);
    const r3 = await postLayer({ Name: 'L3', Path: `${srv.url}/add.tar`, ParentName: 'L2', Format: 'Docker' });
    assert.equal(r3.status, 201, r3.text);
    const n = srv.requests.length;
    assert.equal((await postLayer({ Name: 'L3', Path: `${srv.url}/add.tar`, ParentName: 'L2', Format: 'Docker' })).status, 201);
    assert.equal(srv.requests.length, n, 'a known Name is not fetched again');
  });

  test('errors: unknown parent 400, fetch failure 400, non-tar 422, unsupported OS 422, missing fields 400', async () => {
    const err = async (layer: Record<string, unknown>, status: number, message: string): Promise<void> => {
      const r = await postLayer(layer);
      assert.equal(r.status, status, `${JSON.stringify(layer)}: ${r.text}`);
      assert.deepEqual(r.json, { Error: { Message: message } });
    };
    await err({ Name: 'P1', Path: `${srv.url}/base.tar.gz`, ParentName: 'nope', Format: 'Docker' }, 400,
      'worker: parent layer is unknown, it must be processed first');
    await err({ Name: 'P2', Path: `${srv.url}/missing`, Format: 'Docker' }, 400, 'could not find layer');
    await err({ Name: 'P3', Path: 'http://127.0.0.1:9/x', Format: 'Docker' }, 400, 'could not find layer');
    await err({ Name: 'P4', Path: `${srv.url}/junk`, Format: 'Docker' }, 422, 'tarutil: could not extract the archive');
    await err({ Name: 'P5', Path: `${srv.url}/noos.tar`, Format: 'Docker' }, 422, 'worker: OS and/or package manager are not supported');
    await err({ Name: 'P6', Path: `${srv.url}/zst`, Format: 'Docker' }, 422, 'tarutil: could not extract the archive');
    await err({ Path: `${srv.url}/base.tar.gz`, Format: 'Docker' }, 400, 'could not process a layer which does not have a name');
    await err({ Name: 'P7', Format: 'Docker' }, 400, 'could not process a layer which does not have a path');
    await err({ Name: 'P8', Path: `${srv.url}/base.tar.gz`, Format: 'OCI' }, 400, "unsupported image format 'OCI'");
    const bad = await call(`${double.url}/v1/layers`, { method: 'POST', body: '{}' });
    assert.deepEqual(bad.json, { Error: { Message: 'failed to provide layer' } });
    assert.ok(!double.v1Layers().includes('P4'));
  });
});

describe('v1 GET /v1/layers/{name}', () => {
  test('features are named by source package with AddedBy; vulnerabilities with FixedBy only when fixed', async () => {
    const r = await call(`${double.url}/v1/layers/L3?features&vulnerabilities`);
    assert.equal(r.status, 200, r.text);
    const layer = (r.json as { Layer: Record<string, unknown> }).Layer;
    assert.equal(layer['Name'], 'L3');
    assert.equal(layer['NamespaceName'], 'debian:12');
    assert.equal(layer['ParentName'], 'L2');
    assert.equal(layer['IndexedByVersion'], 3);
    const features = layer['Features'] as V1Feature[];
    assert.deepEqual(features.map((f) => [f.Name, f.Version, f.AddedBy]).sort(), [
      ['bash', '5.2.15-2', 'L1'], ['glibc', '2.36-9+deb12u14', 'L1'], ['newpkg', '1.0', 'L3'],
    ]);
    const glibc = features.find((f) => f.Name === 'glibc');
    assert.deepEqual(Object.keys(glibc ?? {}), ['Name', 'NamespaceName', 'VersionFormat', 'Version', 'Vulnerabilities', 'AddedBy']);
    assert.deepEqual(glibc?.Vulnerabilities, [{
      Name: 'CVE-2099-2001', NamespaceName: 'debian:12', Description: 'glibc <flaw>', Link: 'https://a.invalid/2001',
      Severity: 'High', Metadata: { NVD: { CVSSv2: { Score: 7.5, Vectors: 'AV:N/AC:L/Au:N/C:P/I:P' } } }, FixedBy: '2.36-9+deb12u99',
    }]);
    assert.ok(r.text.includes('glibc \\u003cflaw\\u003e'), 'Go escapes HTML characters');
    assert.deepEqual(features.find((f) => f.Name === 'bash')?.Vulnerabilities, [{ Name: 'CVE-2099-2002', NamespaceName: 'debian:12', Severity: 'Defcon1' }]);
    assert.equal(features.find((f) => f.Name === 'newpkg')?.Vulnerabilities?.[0]?.['FixedBy'], '2.0');
  });

  test('a layer without a package database inherits its parent\'s features; e2fsprogs is matched on the source version', async () => {
    const r = await call(`${double.url}/v1/layers/L2?vulnerabilities`);
    const features = ((r.json as { Layer: { Features: V1Feature[] } }).Layer.Features);
    assert.deepEqual(features.map((f) => f.Name).sort(), ['bash', 'e2fsprogs', 'glibc']);
    assert.equal(features.find((f) => f.Name === 'e2fsprogs')?.Vulnerabilities?.[0]?.['Name'], 'CVE-2099-2004');
    const plain = await call(`${double.url}/v1/layers/L2`);
    assert.equal((plain.json as { Layer: Record<string, unknown> }).Layer['Features'], undefined);
    const fOnly = await call(`${double.url}/v1/layers/L2?features`);
    assert.equal(((fOnly.json as { Layer: { Features: V1Feature[] } }).Layer.Features)[0]?.Vulnerabilities, undefined);
  });

  test('404 with the v1 error shape; DELETE removes a layer and its descendants', async () => {
    const r = await call(`${double.url}/v1/layers/unknown?features`);
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, { Error: { Message: 'the resource cannot be found' } });
  });
});

describe('v1 namespaces and vulnerabilities', () => {
  test('namespaces list; inserted vulnerabilities are matched; Severity is validated', async () => {
    const ns = await call(`${double.url}/v1/namespaces`);
    assert.deepEqual(ns.json, { Namespaces: [{ Name: 'debian:12', VersionFormat: 'dpkg' }] });
    const insert = await call(`${double.url}/v1/namespaces/debian%3A12/vulnerabilities`, {
      method: 'POST',
      body: JSON.stringify({ Vulnerability: { Name: 'CVE-2099-2099', NamespaceName: 'debian:12', Severity: 'Negligible',
        FixedIn: [{ Name: 'bash', NamespaceName: 'debian:12', VersionFormat: 'dpkg', Version: 'None' }] } }),
    });
    assert.equal(insert.status, 201, insert.text);
    const layer = await call(`${double.url}/v1/layers/L3?vulnerabilities`);
    const bash = (layer.json as { Layer: { Features: V1Feature[] } }).Layer.Features.find((f) => f.Name === 'bash');
    assert.deepEqual(bash?.Vulnerabilities?.map((v) => v['Name']), ['CVE-2099-2002', 'CVE-2099-2099']);
    const bad = await call(`${double.url}/v1/namespaces/debian%3A12/vulnerabilities`, {
      method: 'POST', body: JSON.stringify({ Vulnerability: { Name: 'X', Severity: 'Catastrophic', FixedIn: [] } }),
    });
    assert.equal(bad.status, 400);
    const list = await call(`${double.url}/v1/namespaces/debian%3A12/vulnerabilities?limit=2`);
    assert.equal((list.json as { Vulnerabilities: unknown[] }).Vulnerabilities.length, 2);
    assert.equal((list.json as { NextPage: string }).NextPage, '2');
    assert.equal((await call(`${double.url}/v1/namespaces/debian%3A12/vulnerabilities`)).status, 400);
    const del = await call(`${double.url}/v1/layers/L2`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.deepEqual(double.v1Layers(), ['L1']);
  });
});
