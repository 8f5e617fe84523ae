/**
 * The double against the real Debian 12 test images (built by `npm run test-images`): the image is exported
 * from the local daemon, its layers are served as `docker save` stores them (plain tar, digest = diff_id), and
 * what the double indexes is compared with what `dpkg-query -W` lists inside the image.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import * as tar from 'tar-stream';
import { startClairDouble, type ClairDouble } from './server.js';
import { call, postIndex, startLayerServer, type TestLayerServer } from './test-support.js';

const DEBIAN12 = 'docker-clair-test/debian12:latest';
const MULTILAYER = 'docker-clair-test/multilayer:latest';
const docker = new Docker();

function imageExists(tag: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', tag], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface SavedImage {
  id: string;
  layers: Buffer[];
}

/** `docker save` through dockerode; layers in manifest order, bytes as stored in the archive. */
async function saveImage(tag: string): Promise<SavedImage> {
  const stream = await docker.getImage(tag).get();
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  extract.on('entry', (header, entry, next) => {
    const chunks: Buffer[] = [];
    entry.on('data', (c: unknown) => { chunks.push(c as Buffer); });
    entry.on('end', () => {
      if (header.type === 'file') files.set(header.name, Buffer.concat(chunks));
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', () => resolve());
    extract.on('error', reject);
    stream.on('error', reject);
    stream.pipe(extract as unknown as NodeJS.WritableStream);
  });
  const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? '[]') as { Config: string; Layers: string[] }[];
  const entry = manifest[0];
  assert.ok(entry !== undefined, 'manifest.json has an entry');
  const layers = entry.Layers.map((name) => {
    const b = files.get(name);
    assert.ok(b !== undefined, `layer ${name} in the archive`);
    return b;
  });
  return { id: `sha256:${createHash('sha256').update(files.get(entry.Config) ?? '').digest('hex')}`, layers };
}

function dpkgQuery(tag: string): string[] {
  const out = execFileSync('docker', ['run', '--rm', '--network', 'none', tag, 'dpkg-query', '-W', '-f',
    '${binary:Package} ${Version}\\n'], { encoding: 'utf8' });
  // ${binary:Package} adds ":<arch>" for Multi-Arch: same packages; the status file's Package field has no suffix.
  return out.trim().split('\n').map((l) => l.replace(/^([^ :]+):[^ ]+ /, '$1 ')).sort();
}

interface Report {
  state: string;
  packages: Record<string, { name: string; version: string }>;
  distributions: Record<string, { did: string; version_id: string; version_code_name: string }>;
  environments: Record<string, { introduced_in: string; distribution_id: string }[]>;
}
interface VulnReport extends Report {
  vulnerabilities: Record<string, { name: string; normalized_severity: string }>;
  package_vulnerabilities: Record<string, string[]>;
}

const ready = imageExists(DEBIAN12) && imageExists(MULTILAYER);
const skip = ready ? false : `test images missing: run "npm run test-images" (needs ${DEBIAN12} and ${MULTILAYER})`;

describe('real Debian 12 test images', { skip }, () => {
  let double: ClairDouble;
  let srv: TestLayerServer;
  let deb: SavedImage;
  let multi: SavedImage;
  const digest = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const manifestOf = (img: SavedImage, prefix: string): unknown => ({
    hash: img.id,
    layers: img.layers.map((b, i) => ({ hash: digest(b), uri: `${srv.url}/${prefix}/${i}`, headers: { Authorization: ['Bearer t'] } })),
  });

  before(async () => {
    deb = await saveImage(DEBIAN12);
    multi = await saveImage(MULTILAYER);
    srv = await startLayerServer({});
    deb.layers.forEach((b, i) => srv.set(`/deb/${i}`, { body: b }));
    multi.layers.forEach((b, i) => srv.set(`/multi/${i}`, { body: b }));
    double = await startClairDouble({ api: 'both' });
  });
  after(async () => {
    await double?.close();
    await srv?.close();
  });

  test('indexing debian12 yields distribution debian 12 and exactly the packages dpkg-query lists', async () => {
    const r = await postIndex(double.url, manifestOf(deb, 'deb'));
    assert.equal(r.status, 201, r.text);
    const report = r.json as Report;
    assert.equal(report.state, 'IndexFinished');
    const dists = Object.values(report.distributions);
    assert.equal(dists.length, 1);
    assert.equal(dists[0]?.did, 'debian');
    assert.equal(dists[0]?.version_id, '12');
    assert.equal(dists[0]?.version_code_name, 'bookworm');
    const indexed = Object.values(report.packages).map((p) => `${p.name} ${p.version}`).sort();
    const inImage = dpkgQuery(DEBIAN12);
    assert.ok(inImage.length > 50, `dpkg-query listed ${inImage.length} packages`);
    assert.deepEqual(indexed, inImage);
  });

  test('the fixture database gives debian12 High and Critical findings and lower ones, and skips non-matches', async () => {
    const r = await call(`${double.url}/matcher/api/v1/vulnerability_report/${deb.id}`);
    assert.equal(r.status, 200);
    const rep = r.json as VulnReport;
    const found = new Map<string, string>();
    for (const [pkgId, ids] of Object.entries(rep.package_vulnerabilities)) {
      for (const id of ids) {
        const v = rep.vulnerabilities[id];
        if (v !== undefined) found.set(`${v.name} ${rep.packages[pkgId]?.name ?? '?'}`, v.normalized_severity);
      }
    }
    const severities = new Set(found.values());
    for (const s of ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown']) assert.ok(severities.has(s), `a ${s} finding`);
    assert.equal(found.get('CVE-2099-0001 libc6'), 'Critical');
    assert.equal(found.get('CVE-2099-0001 libc-bin'), 'Critical');
    assert.equal(found.get('CVE-2099-0002 bash'), 'High');
    assert.equal(found.get('CVE-2099-0007 perl-base'), 'Critical');
    assert.equal(found.get('CVE-2099-0011 libsystemd0'), 'Medium');
    for (const absent of ['CVE-2099-0009', 'CVE-2099-0010', 'CVE-2099-0012', 'CVE-2099-0013', 'CVE-2099-0016']) {
      assert.ok(![...found.keys()].some((k) => k.startsWith(`${absent} `)), `${absent} must not match`);
    }
  });

  test('multilayer: only the new layers are fetched; the local .deb is found in its own layer and matched', async () => {
    const shared = multi.layers.filter((b) => deb.layers.some((d) => d.equals(b))).length;
    assert.ok(shared >= 1, 'multilayer is built FROM debian12');
    const before = srv.requests.length;
    const r = await postIndex(double.url, manifestOf(multi, 'multi'));
    assert.equal(r.status, 201, r.text);
    const fetched = srv.requests.slice(before).map((q) => q.path);
    assert.equal(fetched.length, new Set(multi.layers.map(digest)).size - shared);
    assert.ok(!fetched.includes('/multi/0'));
    const report = r.json as Report;
    const indexed = Object.values(report.packages).map((p) => `${p.name} ${p.version}`).sort();
    assert.deepEqual(indexed, dpkgQuery(MULTILAYER));
    const fixtureId = Object.keys(report.packages).find((k) => report.packages[k]?.name === 'docker-clair-fixture') ?? '';
    const introducedIn = report.environments[fixtureId]?.[0]?.introduced_in;
    assert.notEqual(introducedIn, digest(multi.layers[0] ?? Buffer.alloc(0)));
    assert.ok(multi.layers.some((b) => digest(b) === introducedIn));
    const bashId = Object.keys(report.packages).find((k) => report.packages[k]?.name === 'bash') ?? '';
    assert.equal(report.environments[bashId]?.[0]?.introduced_in, digest(multi.layers[0] ?? Buffer.alloc(0)));
    const vr = (await call(`${double.url}/matcher/api/v1/vulnerability_report/${multi.id}`)).json as VulnReport;
    const names = (vr.package_vulnerabilities[fixtureId] ?? []).map((id) => vr.vulnerabilities[id]?.name);
    assert.deepEqual(names, ['CVE-2099-0013']);
  });

  test('legacy v1: layers posted parent first give source-named features and Defcon1', async () => {
    let parent = '';
    for (const [i, b] of deb.layers.entries()) {
      const name = `${deb.id}-${digest(b)}`;
      const r = await call(`${double.url}/v1/layers`, {
        method: 'POST',
        body: JSON.stringify({ Layer: { Name: name, Path: `${srv.url}/deb/${i}`, ParentName: parent, Format: 'Docker' } }),
      });
      assert.equal(r.status, 201, r.text);
      parent = name;
    }
    const r = await call(`${double.url}/v1/layers/${encodeURIComponent(parent)}?features&vulnerabilities`);
    assert.equal(r.status, 200);
    const layer = (r.json as { Layer: { NamespaceName: string; Features: { Name: string; Vulnerabilities?: { Name: string; Severity: string }[] }[] } }).Layer;
    assert.equal(layer.NamespaceName, 'debian:12');
    const names = layer.Features.map((f) => f.Name);
    assert.ok(names.includes('glibc') && !names.includes('libc6'), 'features are source packages');
    assert.ok(names.includes('util-linux') && !names.includes('libmount1'));
    const perl = layer.Features.find((f) => f.Name === 'perl');
    assert.deepEqual(perl?.Vulnerabilities?.map((v) => [v.Name, v.Severity]), [['CVE-2099-0007', 'Defcon1']]);
    const e2fs = layer.Features.find((f) => f.Name === 'e2fsprogs');
    assert.deepEqual(e2fs?.Vulnerabilities?.map((v) => v.Name), ['CVE-2099-0016'], 'v1 compares the source version');
  });
});
