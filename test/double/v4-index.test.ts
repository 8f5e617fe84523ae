import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startClairDouble, type ClairDouble } from './server.js';
import {
  call, debianBaseLayer, dpkgStanza, gzip, layerRef, makeTar, postIndex, sha256, startLayerServer, zstd, zstdStored,
  type TestLayerServer,
} from './test-support.js';

const manifestHash = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
interface Report {
  manifest_hash: string;
  state: string;
  success: boolean;
  err: string;
  packages: Record<string, { id: string; name: string; version: string; kind?: string; arch?: string;
    source: { id: string; name: string; version: string; kind?: string } }>;
  distributions: Record<string, Record<string, string>>;
  repository: Record<string, unknown>;
  environments: Record<string, { package_db: string; introduced_in: string; distribution_id: string; repository_ids: null | string[] }[]>;
}
const names = (r: Report): string[] => Object.values(r.packages).map((p) => p.name).sort();

const BASE_STANZAS = [
  dpkgStanza({ name: 'bash', version: '5.2.15-2+b13', source: 'bash (5.2.15-2)' }),
  dpkgStanza({ name: 'libc6', version: '2.36-9+deb12u14', source: 'glibc' }),
  dpkgStanza({ name: 'tar', version: '1.34+dfsg-1.2+deb12u1' }),
  dpkgStanza({ name: 'gone', version: '1.0-1', status: 'deinstall ok config-files' }),
];

let layers: TestLayerServer;
let base: Buffer;
let baseGz: Buffer;
let addLayer: Buffer;
let addLayerZst: Buffer;

before(async () => {
  base = await debianBaseLayer(BASE_STANZAS);
  baseGz = gzip(base);
  addLayer = await makeTar([
    { name: 'var/lib/dpkg/info/', type: 'directory' },
    { name: 'var/lib/dpkg/info/extra.list', content: '/usr/bin/extra\n' },
    { name: 'var/lib/dpkg/status', content: [...BASE_STANZAS, dpkgStanza({ name: 'extra', version: '0.1-1', arch: 'all' })].join('\n') },
    { name: 'usr/bin/extra', content: '#!/bin/sh\n' },
  ]);
  addLayerZst = zstd(addLayer);
  layers = await startLayerServer({
    '/base.tar.gz': { body: baseGz },
    '/add.tar.zst': { body: addLayerZst },
  });
});
after(() => layers.close());

describe('v4 index_report POST', () => {
  let double: ClairDouble;
  before(async () => {
    double = await startClairDouble({ vulns: [] });
  });
  after(() => double.close());

  test('indexes gzip and zstd layers: 201, Clair headers, packages, distribution, introduced_in', async () => {
    const l1 = layerRef(layers, '/base.tar.gz', baseGz, { Authorization: ['Bearer layer-secret'] });
    const l2 = layerRef(layers, '/add.tar.zst', addLayerZst);
    const before = layers.requests.length;
    const r = await postIndex(double.url, { hash: manifestHash(1), layers: [l1, l2], unknown_field: true });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers.get('location'), `/indexer/api/v1/index_report/${manifestHash(1)}`);
    assert.match(r.headers.get('etag') ?? '', /^"[0-9a-f]{32}"$/);
    const link = r.headers.get('link') ?? '';
    assert.ok(link.includes(`</indexer/api/v1/index_report/${manifestHash(1)}>; rel="https://projectquay.io/clair/v1/index_report"`), link);
    assert.ok(link.includes(`</matcher/api/v1/vulnerability_report/${manifestHash(1)}>; rel="https://projectquay.io/clair/v1/vulnerability_report"`), link);
    const report = r.json as Report;
    assert.deepEqual(Object.keys(report), ['manifest_hash', 'state', 'packages', 'distributions', 'repository', 'environments', 'success', 'err']);
    assert.equal(report.state, 'IndexFinished');
    assert.equal(report.success, true);
    assert.equal(report.err, '');
    assert.deepEqual(names(report), ['bash', 'extra', 'libc6', 'tar']);
    const dists = Object.values(report.distributions);
    assert.equal(dists.length, 1);
    assert.deepEqual(dists[0], {
      id: dists[0]?.['id'], did: 'debian', name: 'Debian GNU/Linux', version: '12 (bookworm)', version_code_name: 'bookworm',
      version_id: '12', arch: '', cpe: '', pretty_name: 'Debian GNU/Linux 12 (bookworm)',
    });
    const byName = new Map(Object.values(report.packages).map((p) => [p.name, p]));
    const bash = byName.get('bash');
    assert.deepEqual(bash && { ...bash, id: 'x', source: { ...bash.source, id: 'y' } }, {
      id: 'x', name: 'bash', version: '5.2.15-2+b13', kind: 'binary',
      source: { id: 'y', name: 'bash (5.2.15-2)', version: '5.2.15-2+b13', kind: 'source' }, arch: 'amd64',
    });
    const tar = byName.get('tar');
    assert.equal(tar?.source.name, '');
    assert.equal(tar?.source.kind, undefined, 'an empty source omits kind');
    for (const p of Object.values(report.packages)) assert.equal(report.packages[p.id], p, 'keyed by id');
    const env = (n: string): Report['environments'][string] => report.environments[byName.get(n)?.id ?? ''] ?? [];
    assert.deepEqual(env('bash'), [{ package_db: 'var/lib/dpkg/status', introduced_in: l1.hash, distribution_id: dists[0]?.['id'], repository_ids: null }]);
    assert.equal(env('extra')[0]?.introduced_in, l2.hash);
    const gets = layers.requests.slice(before);
    assert.deepEqual(gets.map((g) => g.path), ['/base.tar.gz', '/add.tar.zst']);
    assert.equal(gets[0]?.headers.authorization, 'Bearer layer-secret');
    assert.equal(gets[1]?.headers.authorization, undefined);
    assert.equal(gets[0]?.headers['user-agent'], 'Go-http-client/1.1');
    assert.equal(gets[0]?.headers['accept-encoding'], 'gzip');
    assert.equal(gets[0]?.headers.range, undefined);
  });

  test('a second index of the same manifest fetches nothing and answers the same report', async () => {
    const l1 = layerRef(layers, '/base.tar.gz', baseGz);
    const first = await postIndex(double.url, { hash: manifestHash(2), layers: [l1] });
    assert.equal(first.status, 201);
    const count = layers.requests.length;
    const again = await postIndex(double.url, { hash: manifestHash(2), layers: [l1] });
    assert.equal(again.status, 201);
    assert.equal(layers.requests.length, count, 'no layer GET for a known manifest');
    assert.deepEqual(again.json, first.json);
    // Even a different layer list under a known hash is not looked at: the hash is the key.
    const other = await postIndex(double.url, { hash: manifestHash(2), layers: [layerRef(layers, '/missing', Buffer.from('x'))] });
    assert.equal(other.status, 201);
    assert.equal(layers.requests.length, count);
  });

  test('a manifest sharing a base layer fetches only its new layers', async () => {
    const fresh = await debianBaseLayer([dpkgStanza({ name: 'solo', version: '1' })]);
    const freshGz = gzip(fresh);
    layers.set('/fresh.tar.gz', { body: freshGz });
    const extra = await makeTar([{ name: 'srv/data.txt', content: 'hello' }]);
    layers.set('/extra.tar', { body: extra });
    const a = await postIndex(double.url, { hash: manifestHash(3), layers: [layerRef(layers, '/fresh.tar.gz', freshGz)] });
    assert.equal(a.status, 201);
    const count = layers.requests.length;
    const b = await postIndex(double.url, {
      hash: manifestHash(4), layers: [layerRef(layers, '/fresh.tar.gz', freshGz), layerRef(layers, '/extra.tar', extra)],
    });
    assert.equal(b.status, 201, b.text);
    assert.deepEqual(layers.requests.slice(count).map((g) => g.path), ['/extra.tar']);
    assert.deepEqual(names(b.json as Report), ['solo']);
    assert.equal(double.hasScannedLayer(sha256(extra)), true);
  });

  test('digest mismatch: 500 "failed to start scan" naming both digests, report kept as IndexError', async () => {
    const body = gzip(await makeTar([{ name: 'a', content: 'a' }]));
    layers.set('/mismatch.tar.gz', { body });
    const wrong = `sha256:${'ab'.repeat(32)}`;
    const r = await postIndex(double.url, { hash: manifestHash(5), layers: [{ hash: wrong, uri: `${layers.url}/mismatch.tar.gz` }] });
    assert.equal(r.status, 500);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.headers.get('link'), null);
    const got = sha256(body).slice('sha256:'.length);
    assert.deepEqual(r.json, {
      code: 'internal-error',
      message: `failed to start scan: failed to fetch layers: fetcher: encountered errors: fetcher: validation failed: got "${got}", expected "${'ab'.repeat(32)}"`,
    });
    const stored = await call(`${double.url}/indexer/api/v1/index_report/${manifestHash(5)}`);
    assert.equal(stored.status, 200);
    assert.equal((stored.json as Report).state, 'IndexError');
    assert.equal((stored.json as Report).success, false);
    assert.match((stored.json as Report).err, /validation failed/);
    assert.equal(double.hasScannedLayer(wrong), false);
  });

  test('a layer server answering anything but 200 fails the index with the status and body start', async () => {
    const r404 = await postIndex(double.url, { hash: manifestHash(6), layers: [layerRef(layers, '/nope', Buffer.from('x'))] });
    assert.equal(r404.status, 500);
    assert.equal((r404.json as { message: string }).message,
      'failed to start scan: failed to fetch layers: fetcher: encountered errors: unexpected status code: 404 Not Found (body starts: "no such blob")');
    const body = await makeTar([{ name: 'b', content: 'b' }]);
    for (const status of [206, 201, 204, 302]) {
      layers.set(`/status${status}`, { body, status, headers: status === 302 ? {} : {} });
      const r = await postIndex(double.url, { hash: manifestHash(600 + status), layers: [layerRef(layers, `/status${status}`, body)] });
      assert.equal(r.status, 500, `status ${status}`);
      assert.match((r.json as { message: string }).message, new RegExp(`unexpected status code: ${status} `));
    }
  });

  test('Content-Type must agree with the sniffed compression; Content-Encoding is refused', async () => {
    // Fresh layers: a digest already scanned would not be fetched at all.
    const ctGz = gzip(await makeTar([{ name: 'ct', content: 'ct' }]));
    layers.set('/ct.tar.gz', { body: ctGz, headers: { 'Content-Type': 'application/x-tar' } });
    const r = await postIndex(double.url, { hash: manifestHash(7), layers: [layerRef(layers, '/ct.tar.gz', ctGz)] });
    assert.equal(r.status, 500);
    assert.match((r.json as { message: string }).message,
      /encountered errors: fetcher: mismatched compression \("KindGzip"\) and content-type \("application\/x-tar"\)$/);
    layers.set('/ct-oci.tar.gz', { body: ctGz, headers: { 'Content-Type': 'application/vnd.oci.image.layer.v1.tar+gzip' } });
    const before = layers.requests.length;
    const ok = await postIndex(double.url, { hash: manifestHash(8), layers: [layerRef(layers, '/ct-oci.tar.gz', ctGz)] });
    assert.equal(ok.status, 201);
    assert.equal(layers.requests.length, before + 1, 'the failed layer was not marked scanned');
    const plain = await makeTar([{ name: 'c', content: 'c' }]);
    layers.set('/ce.tar', { body: gzip(plain), headers: { 'Content-Encoding': 'gzip' } });
    const ce = await postIndex(double.url, { hash: manifestHash(9), layers: [layerRef(layers, '/ce.tar', plain)] });
    assert.equal(ce.status, 500);
    assert.match((ce.json as { message: string }).message, /Content-Encoding "gzip"/);
    layers.set('/noct.tar', { body: plain, headers: { 'Content-Type': '' } });
    const noCt = await postIndex(double.url, { hash: manifestHash(10), layers: [layerRef(layers, '/noct.tar', plain)] });
    assert.equal(noCt.status, 500);
    assert.match((noCt.json as { message: string }).message, /fetcher: mime: no media type$/);
  });

  test('plain tar and a hand-made zstd frame are accepted; a non-tar body is a 400', async () => {
    const plain = await debianBaseLayer([dpkgStanza({ name: 'plainpkg', version: '2' })]);
    layers.set('/plain.tar', { body: plain });
    const p = await postIndex(double.url, { hash: manifestHash(11), layers: [layerRef(layers, '/plain.tar', plain)] });
    assert.equal(p.status, 201, p.text);
    assert.deepEqual(names(p.json as Report), ['plainpkg']);
    const stored = zstdStored(await debianBaseLayer([dpkgStanza({ name: 'zpkg', version: '3' })]));
    layers.set('/stored.zst', { body: stored });
    const z = await postIndex(double.url, { hash: manifestHash(12), layers: [layerRef(layers, '/stored.zst', stored)] });
    assert.equal(z.status, 201, z.text);
    assert.deepEqual(names(z.json as Report), ['zpkg']);
    const junk = Buffer.from('this is not a tar archive at all, just text '.repeat(40));
    layers.set('/junk', { body: junk });
    const j = await postIndex(double.url, { hash: manifestHash(13), layers: [layerRef(layers, '/junk', junk)] });
    assert.equal(j.status, 400);
    assert.match((j.json as { code: string; message: string }).message, /^failed to start scan: .*tarfs: format error/);
  });

  test('bad manifests: 400 bogus manifest, 400 for a malformed digest or body', async () => {
    const l = layerRef(layers, '/base.tar.gz', baseGz);
    for (const m of [{ hash: manifestHash(20), layers: [] }, { hash: '', layers: [l] }, { layers: [l] }, { hash: manifestHash(20) }]) {
      const r = await postIndex(double.url, m);
      assert.equal(r.status, 400, JSON.stringify(m));
      assert.deepEqual(r.json, { code: 'bad-request', message: 'bogus manifest' });
    }
    for (const m of [{ hash: 'sha256:abc', layers: [l] }, { hash: 'md5:00', layers: [l] }, { hash: manifestHash(21), layers: [{ ...l, hash: 'sha256:xyz' }] }]) {
      const r = await postIndex(double.url, m);
      assert.equal(r.status, 400, JSON.stringify(m));
      assert.match((r.json as { message: string }).message, /^failed to deserialize manifest: /);
    }
    const r = await call(`${double.url}/indexer/api/v1/index_report`, { method: 'POST', body: '{"hash":' });
    assert.equal(r.status, 400);
    const sha512 = await postIndex(double.url, { hash: `sha512:${'0'.repeat(128)}`, layers: [l] });
    assert.equal(sha512.status, 201, 'sha512 manifest digests are accepted');
  });

  test('If-None-Match with the index state gives 412 before any work', async () => {
    const state = (await call(`${double.url}/indexer/api/v1/index_state`)).json as { state: string };
    const count = layers.requests.length;
    const r = await postIndex(double.url, { hash: manifestHash(30), layers: [layerRef(layers, '/base.tar.gz', baseGz)] },
      { 'If-None-Match': `"${state.state}"` });
    assert.equal(r.status, 412);
    assert.equal(layers.requests.length, count);
    assert.equal((await call(`${double.url}/indexer/api/v1/index_report/${manifestHash(30)}`)).status, 404);
  });

  test('GET/DELETE index_report: 404 unknown, 200 known, 304 on the state validator, 204 delete', async () => {
    const url = `${double.url}/indexer/api/v1/index_report/${manifestHash(1)}`;
    const missing = await call(`${double.url}/indexer/api/v1/index_report/${manifestHash(999)}`);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json, { code: 'not-found', message: 'index report not found' });
    const got = await call(url);
    assert.equal(got.status, 200);
    assert.equal((got.json as Report).state, 'IndexFinished');
    const etag = got.headers.get('etag') ?? '';
    assert.equal((await call(url, { headers: { 'If-None-Match': etag } })).status, 304);
    assert.equal((await call(`${double.url}/indexer/api/v1/index_report/not-a-digest`)).status, 400);
    assert.equal((await call(url, { headers: { Accept: 'text/html' } })).status, 415);
    assert.equal((await call(url, { method: 'DELETE' })).status, 204);
    assert.equal((await call(url)).status, 404);
  });
});

describe('v4 fetch scheduling', () => {
  test('at most N GETs at once, started in manifest order', async (t) => {
    const bodies = await Promise.all([0, 1, 2, 3, 4].map((i) => makeTar([{ name: `f${i}`, content: String(i) }])));
    const paths = bodies.map((_, i) => `/l${i}`);
    for (const n of [1, 2, 3]) {
      const srv = await startLayerServer();
      t.after(() => srv.close());
      // The first n layers answer only once n GETs have arrived: n are in flight together whatever the machine's speed.
      const nArrived = srv.when(() => srv.requests.length >= n);
      bodies.forEach((body, i) => srv.set(paths[i] ?? '', i < n ? { body, hold: nArrived } : { body }));
      const double = await startClairDouble({ vulns: [], fetchConcurrency: n });
      t.after(() => double.close());
      const r = await postIndex(double.url, { hash: manifestHash(40 + n), layers: bodies.map((b, i) => layerRef(srv, paths[i] ?? '', b)) });
      assert.equal(r.status, 201, r.text);
      // Start order is the double's; GETs in flight together may reach the server in either order.
      assert.deepEqual(double.layerFetches.map((f) => new URL(f.uri).pathname), paths);
      assert.deepEqual(srv.requests.map((q) => q.path).sort(), paths);
      assert.equal(srv.maxInFlight, n, `concurrency ${n}`);
      assert.equal(double.maxConcurrentFetches(), n);
    }
  });

  test('the first error cancels the other fetches and starts no more', async (t) => {
    const bodies = await Promise.all([0, 1, 2, 3].map((i) => makeTar([{ name: `g${i}`, content: String(i) }])));
    const srv = await startLayerServer();
    // /slow never answers, so the POST can only end by cancelling it; /missing fails only once /slow is in flight.
    srv.set('/slow', { body: bodies[0] ?? Buffer.alloc(0), hold: new Promise(() => undefined) });
    srv.set('/missing', { body: Buffer.from('no such blob'), status: 404, hold: srv.received('/slow') });
    srv.set('/l2', { body: bodies[2] ?? Buffer.alloc(0) });
    srv.set('/l3', { body: bodies[3] ?? Buffer.alloc(0) });
    t.after(() => srv.close());
    const double = await startClairDouble({ vulns: [], fetchConcurrency: 2 });
    t.after(() => double.close());
    const r = await postIndex(double.url, {
      hash: manifestHash(50),
      layers: [layerRef(srv, '/slow', bodies[0] ?? Buffer.alloc(0)), layerRef(srv, '/missing', bodies[1] ?? Buffer.alloc(0)),
        layerRef(srv, '/l2', bodies[2] ?? Buffer.alloc(0)), layerRef(srv, '/l3', bodies[3] ?? Buffer.alloc(0))],
    });
    assert.equal(r.status, 500);
    assert.deepEqual(double.layerFetches.map((f) => new URL(f.uri).pathname), ['/slow', '/missing']);
    assert.deepEqual(srv.requests.map((q) => q.path).sort(), ['/missing', '/slow']);
    const slow = double.layerFetches.find((f) => f.uri.endsWith('/slow'));
    assert.equal(slow?.cancelled, true);
  });

  test('the same digest twice in a manifest is fetched once; redirects are followed', async (t) => {
    const body = await makeTar([{ name: 'r', content: 'r' }]);
    const srv = await startLayerServer({
      '/r': { body },
      '/redirect': { body: Buffer.alloc(0), status: 307, headers: { Location: '/r' } },
    });
    t.after(() => srv.close());
    const double = await startClairDouble({ vulns: [] });
    t.after(() => double.close());
    const r = await postIndex(double.url, { hash: manifestHash(60), layers: [layerRef(srv, '/redirect', body), layerRef(srv, '/redirect', body)] });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(srv.requests.map((q) => q.path), ['/redirect', '/r']);
  });

  test('above the concurrency cap the POST gets 429 at once', async (t) => {
    const body = await makeTar([{ name: 'c', content: 'c' }]);
    let release!: () => void;
    const srv = await startLayerServer({ '/held': { body, hold: new Promise<void>((r) => { release = r; }) } });
    t.after(() => srv.close());
    const double = await startClairDouble({ vulns: [], indexConcurrency: 1 });
    t.after(() => double.close());
    const first = postIndex(double.url, { hash: manifestHash(70), layers: [layerRef(srv, '/held', body)] });
    // Its layer GET has arrived: the first index holds the only slot until the layer is released.
    await srv.received('/held');
    const second = await postIndex(double.url, { hash: manifestHash(71), layers: [layerRef(srv, '/held', body)] });
    assert.equal(second.status, 429);
    assert.deepEqual(second.json, { code: 'too-many-requests', message: 'server handling too many requests' });
    release();
    assert.equal((await first).status, 201);
  });

  test('a client that disconnects cancels the index; a re-POST indexes again', async (t) => {
    const body = await makeTar([{ name: 'd', content: 'd' }]);
    const srv = await startLayerServer({ '/held': { body, hold: new Promise(() => undefined) } });
    t.after(() => srv.close());
    const double = await startClairDouble({ vulns: [] });
    t.after(() => double.close());
    const req = request(`${double.url}/indexer/api/v1/index_report`, { method: 'POST' });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ hash: manifestHash(80), layers: [layerRef(srv, '/held', body)] }));
    await srv.received('/held');
    req.destroy();
    // The POST's handler ends only once the double has seen the client go and cancelled the index.
    await double.idle();
    assert.equal(double.layerFetches[0]?.cancelled, true);
    const stored = double.indexReport(manifestHash(80));
    assert.notEqual(stored?.['state'], 'IndexFinished');
    assert.equal(double.hasScannedLayer(sha256(body)), false);
    srv.set('/held', { body });
    const again = await postIndex(double.url, { hash: manifestHash(80), layers: [layerRef(srv, '/held', body)] });
    assert.equal(again.status, 201);
  });

  test('connection refused reads like Go\'s dial error', async (t) => {
    const double = await startClairDouble({ vulns: [] });
    t.after(() => double.close());
    const r = await postIndex(double.url, { hash: manifestHash(90), layers: [{ hash: sha256(Buffer.from('x')), uri: 'http://127.0.0.1:9/x' }] });
    assert.equal(r.status, 500);
    assert.equal((r.json as { message: string }).message,
      'failed to start scan: failed to fetch layers: fetcher: encountered errors: fetcher: request failed: Get "http://127.0.0.1:9/x": dial tcp 127.0.0.1:9: connect: connection refused');
  });
});

describe('v4 whiteouts and package databases across layers', () => {
  let double: ClairDouble;
  let srv: TestLayerServer;
  before(async () => {
    double = await startClairDouble({ vulns: [] });
    srv = await startLayerServer({});
  });
  after(async () => {
    await double.close();
    await srv.close();
  });

  const index = async (n: number, tars: Buffer[]): Promise<Report> => {
    tars.forEach((t, i) => srv.set(`/w${n}-${i}`, { body: t }));
    const r = await postIndex(double.url, { hash: manifestHash(100 + n), layers: tars.map((t, i) => layerRef(srv, `/w${n}-${i}`, t)) });
    assert.equal(r.status, 201, r.text);
    return r.json as Report;
  };

  test('a whiteout of the dpkg database removes its packages', async () => {
    const b = await debianBaseLayer([dpkgStanza({ name: 'wpkg', version: '1' })]);
    assert.deepEqual(names(await index(1, [b])), ['wpkg']);
    const del = await makeTar([{ name: 'var/lib/.wh.dpkg', content: '' }]);
    const r = await index(2, [b, del]);
    assert.deepEqual(names(r), []);
    assert.equal(Object.keys(r.distributions).length, 1, 'the distribution is still found');
  });

  test('an opaque directory hides the lower database; a re-created one is read', async () => {
    const b = await debianBaseLayer([dpkgStanza({ name: 'lower', version: '1' })]);
    const opaque = await makeTar([{ name: 'var/lib/dpkg/.wh..wh..opq', content: '' }, { name: 'var/lib/dpkg/other', content: 'x' }]);
    assert.deepEqual(names(await index(3, [b, opaque])), []);
    const recreate = await makeTar([
      { name: 'var/lib/dpkg/.wh..wh..opq', content: '' },
      { name: 'var/lib/dpkg/info/', type: 'directory' },
      { name: 'var/lib/dpkg/status', content: dpkgStanza({ name: 'upper', version: '2' }) },
    ]);
    assert.deepEqual(names(await index(4, [b, recreate])), ['upper']);
  });

  test('deleting an ordinary file keeps the package; a rewritten database drops purged packages', async () => {
    const b = await debianBaseLayer([dpkgStanza({ name: 'keep', version: '1' }), dpkgStanza({ name: 'purge', version: '1' })]);
    const rmFile = await makeTar([{ name: 'usr/share/doc/keep/.wh.copyright', content: '' }]);
    assert.deepEqual(names(await index(5, [b, rmFile])), ['keep', 'purge']);
    const rewrite = await makeTar([
      { name: 'var/lib/dpkg/info/', type: 'directory' },
      { name: 'var/lib/dpkg/status', content: dpkgStanza({ name: 'keep', version: '1' }) },
    ]);
    const r = await index(6, [b, rewrite]);
    assert.deepEqual(names(r), ['keep']);
    const keep = Object.values(r.packages).find((p) => p.name === 'keep');
    assert.equal(r.environments[keep?.id ?? '']?.[0]?.introduced_in, sha256(b), 'introduced where it first appeared');
  });

  test('a status file without an info directory is not a dpkg database (claircore rule)', async () => {
    const t = await makeTar([{ name: 'var/lib/dpkg/status', content: dpkgStanza({ name: 'orphan', version: '1' }) }]);
    assert.deepEqual(names(await index(7, [t])), []);
  });

  test('alpine: os-release and lib/apk/db/installed', async () => {
    const t = await makeTar([
      { name: 'etc/os-release', content: 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n' },
      { name: 'lib/apk/db/installed', content: 'P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\n\nP:ssl_client\nV:3.1.4-r5\nA:x86_64\no:openssl\n' },
    ]);
    const r = await index(8, [t]);
    assert.deepEqual(names(r), ['musl', 'ssl_client']);
    const d = Object.values(r.distributions)[0];
    assert.equal(d?.['did'], 'alpine');
    assert.equal(d?.['version_id'], '3.19.1');
    assert.equal(Object.values(r.packages).find((p) => p.name === 'ssl_client')?.source.name, 'openssl');
  });
});

describe('v4 optional fetch behaviours', () => {
  test('rangeProbe emulates unreleased claircore: a Range probe, then the fetch', async (t) => {
    const body = await makeTar([{ name: 'p', content: 'p' }]);
    const srv = await startLayerServer({ '/p': { body } });
    t.after(() => srv.close());
    const double = await startClairDouble({ vulns: [], rangeProbe: true });
    t.after(() => double.close());
    const r = await postIndex(double.url, { hash: manifestHash(200), layers: [layerRef(srv, '/p', body)] });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(srv.requests.map((q) => [q.headers.range, q.headers['claircore-reason']]),
      [['bytes=0-15', 'inspect'], [undefined, 'fetch']]);
    assert.deepEqual(double.layerFetches.map((f) => f.reason), ['probe', 'fetch']);
  });

  test('rejectContentEncoding: false decodes gzip before hashing, as Go\'s transport does', async (t) => {
    const plain = await makeTar([{ name: 'q', content: 'q' }]);
    const srv = await startLayerServer({ '/q': { body: gzip(plain), headers: { 'Content-Encoding': 'gzip' } } });
    t.after(() => srv.close());
    const double = await startClairDouble({ vulns: [], rejectContentEncoding: false });
    t.after(() => double.close());
    const ok = await postIndex(double.url, { hash: manifestHash(201), layers: [layerRef(srv, '/q', plain)] });
    assert.equal(ok.status, 201, 'the diff_id of the decoded body matches');
    const gzBody = gzip(plain);
    srv.set('/q2', { body: gzip(gzBody), headers: { 'Content-Encoding': 'gzip' } });
    const bad = await postIndex(double.url, { hash: manifestHash(202), layers: [layerRef(srv, '/q2', gzip(gzBody))] });
    assert.equal(bad.status, 500);
    assert.match((bad.json as { message: string }).message, /validation failed/);
  });
});

describe('v4 stand-in modes for benchmarks: --layers discard, --layer-rate', () => {
  test('discard: every layer is fetched to its end, nothing is hashed or unpacked, the image indexes as empty', async () => {
    const double = await startClairDouble({ vulns: [], layers: 'discard' });
    try {
      // A body that does not match its digest passes: the stand-in does not hash.
      const wrong = { ...layerRef(layers, '/base.tar.gz', baseGz), hash: manifestHash(0xbad) };
      const l2 = layerRef(layers, '/add.tar.zst', addLayerZst);
      const r = await postIndex(double.url, { hash: manifestHash(40), layers: [wrong, l2] });
      assert.equal(r.status, 201, r.text);
      const report = r.json as Report;
      assert.equal(report.state, 'IndexFinished');
      assert.deepEqual(report.packages, {});
      assert.deepEqual(double.layerFetches.map((f) => [f.digest, f.bytes]), [[wrong.hash, baseGz.length], [l2.hash, addLayerZst.length]]);
    } finally {
      await double.close();
    }
  });

  test('layer-rate: a layer is read no faster than the rate, in either mode', async () => {
    const rate = 4 * baseGz.length; // bytes per second: the base layer takes at least 250 ms
    for (const mode of ['scan', 'discard'] as const) {
      const double = await startClairDouble({ vulns: [], layers: mode, layerRate: rate });
      try {
        const r = await postIndex(double.url, { hash: manifestHash(41), layers: [layerRef(layers, '/base.tar.gz', baseGz)] });
        assert.equal(r.status, 201, r.text);
        const [fetch] = double.layerFetches;
        assert.equal(fetch?.bytes, baseGz.length);
        // A lower bound only: pacing cannot let it finish sooner, however fast or slow the machine.
        const took = (fetch?.finishedAt ?? 0) - (fetch?.startedAt ?? 0);
        assert.ok(took >= 240, `${mode}: read ${baseGz.length} bytes at ${rate} B/s in ${took} ms`);
        if (mode === 'scan') assert.deepEqual(names(r.json as Report), ['bash', 'libc6', 'tar']);
      } finally {
        await double.close();
      }
    }
  });
});
