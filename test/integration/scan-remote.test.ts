// Registry images on Clair v4: the real registry (Debian's docker-registry) on loopback, images pushed to it by the
// test daemon (gzip blobs, Docker schema 2 manifests), Clair (the double) fetching the layers from the registry
// itself. Nothing is exported and no layer byte passes through the plugin; the findings are those of a scan of
// the same image through the daemon.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startClairDouble } from '../double/server.js';
import { dockerCli, TEST_IMAGES } from '../helpers/daemon.js';
import { imageLayerFetches, withDouble, withV1Double } from '../helpers/layer-fetches.js';
import { registryAvailable, startRegistry, type Registry } from '../helpers/registry.js';
import { MEDIA, sha256, zstdFrame } from '../helpers/save-archives.js';
import { scanInProcess, type ScanRun } from '../helpers/scan.js';

interface ReportImage {
  image: { ref: string; id: string; digest: string | null; source: string | null };
  verdict: string;
  vulnerabilities: { id: string; package: { name: string } }[];
  packageCount: number;
}

const imagesOf = (run: ScanRun): ReportImage[] => (JSON.parse(run.stdout) as { images: ReportImage[] }).images;
const vulnIds = (image: ReportImage): string[] => [...new Set(image.vulnerabilities.map((v) => `${v.id} ${v.package.name}`))].sort();

/** The manifest digest and layer blob digests the registry serves for `ref` (Docker schema 2). */
async function served(registry: Registry, repo: string): Promise<{ digest: string; config: string; layers: string[] }> {
  const response = await fetch(`http://${registry.host}/v2/${repo}/manifests/1`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  const manifest = await response.json() as { config: { digest: string }; layers: { digest: string }[] };
  return { digest: response.headers.get('docker-content-digest') ?? '', config: manifest.config.digest, layers: manifest.layers.map((l) => l.digest) };
}

describe('registry images on Clair v4', { skip: !registryAvailable() && 'docker-registry is not installed' }, () => {
  let registry: Registry;
  let multilayer: string;
  before(async () => {
    registry = await startRegistry();
    multilayer = await registry.push(TEST_IMAGES.multilayer, 'docker-clair-test/app', '1');
  });
  after(async () => {
    await registry?.close();
  });

  it('--image-src remote: Clair fetches every blob from the registry; no export, no byte through the plugin; findings as from the daemon', async () => {
    const blobs = await served(registry, 'docker-clair-test/app');
    const fromDaemon = await withDouble((clair) => scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer]));
    await withDouble(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '--image-src', 'remote', multilayer]);
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(run.stats, { saves: 0, layersSent: 0, bytesSent: 0 });
      const fetches = imageLayerFetches(clair);
      assert.deepEqual(fetches.map((f) => f.digest).sort(), [...blobs.layers].sort(), 'every blob, as the registry stores it');
      for (const f of fetches) assert.equal(f.uri, `http://${registry.host}/v2/docker-clair-test/app/blobs/${f.digest}`);
      assert.deepEqual(new Set(fetches.map((f) => f.compression)), new Set(['KindGzip']), 'the registry\'s gzip blobs');
      const [image] = imagesOf(run) as [ReportImage];
      assert.deepEqual(image.image, {
        ref: multilayer, id: blobs.config, digest: `${registry.host}/docker-clair-test/app@${blobs.digest}`, source: 'registry',
      });
      assert.equal(image.image.id, dockerCli(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGES.multilayer]), 'the image ID is the config digest');
      const [daemonImage] = imagesOf(fromDaemon) as [ReportImage];
      assert.equal(daemonImage.image.source, 'daemon');
      assert.deepEqual(vulnIds(image), vulnIds(daemonImage));
      assert.ok(vulnIds(image).includes('CVE-2099-0013 docker-clair-fixture'));
      assert.equal(image.packageCount, daemonImage.packageCount);

      const dir = await mkdtemp(join(tmpdir(), 'dc-remote-junit-'));
      try {
        const table = await scanInProcess(['--clair', clair.url, '--format', 'table', '--format', `junit=${join(dir, 'r.xml')}`, '--image-src', 'remote', multilayer]);
        assert.match(table.stdout, new RegExp(`^${multilayer.replace(/[.]/g, '\\.')} \\(${blobs.config.slice(7, 19)}, from its registry\\) · `, 'm'));
        assert.match(await readFile(join(dir, 'r.xml'), 'utf8'), /<property name="image.source" value="registry"\/>/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      const warm = await scanInProcess(['--clair', clair.url, '--format', 'json', '--image-src', 'remote', multilayer]);
      assert.equal(warm.code, 1, warm.stderr);
      assert.equal(imageLayerFetches(clair).length, fetches.length, 'a warm rescan fetches nothing');
      assert.deepEqual(vulnIds(imagesOf(warm)[0] as ReportImage), vulnIds(image));
    });
  });

  it('the default order: an image the daemon lacks comes from its registry; one it has comes from the daemon', async () => {
    await withDouble(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '-D', multilayer, TEST_IMAGES.debian12]);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stats.saves, 1, 'only the daemon image is exported');
      // The daemon lists 127.0.0.0/8 as insecure (its default): https without verification first, then plain http.
      assert.match(run.stderr, new RegExp(`registry ${registry.host.replace(/\./g, '\\.')}: https failed \\([^)]+\\); trying http`));
      assert.ok(imageLayerFetches(clair).every((f) => f.uri.startsWith('http://')), 'Clair is given the http URLs that worked');
      assert.deepEqual(imagesOf(run).map((i) => [i.image.ref, i.image.source]), [[multilayer, 'registry'], [TEST_IMAGES.debian12, 'daemon']]);
    });
  });

  it('--image-src remote,daemon: the registry first, the daemon when the registry cannot give the image', async () => {
    await withDouble(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '--image-src', 'remote,daemon', multilayer, TEST_IMAGES.debian12]);
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(imagesOf(run).map((i) => [i.image.ref, i.image.source]), [[multilayer, 'registry'], [TEST_IMAGES.debian12, 'daemon']]);
      assert.equal(run.stats.saves, 1);
      const neither = await scanInProcess(['--clair', clair.url, '--image-src', 'remote,daemon', `${registry.host}/docker-clair-test/app:404`]);
      assert.equal(neither.code, 2);
      assert.match(neither.error?.message ?? '', /not found in the registry at .*, nor in the daemon: image ".*" not found in the Docker daemon at /);
    });
  });

  it('--image-src daemon never asks the registry; a tag the registry lacks is named with both places', async () => {
    await withDouble(async (clair) => {
      const daemonOnly = await scanInProcess(['--clair', clair.url, '--image-src', 'daemon', multilayer]);
      assert.equal(daemonOnly.code, 2);
      assert.match(daemonOnly.error?.message ?? '', /^image ".*" not found in the Docker daemon at [^,]*$/);
      const missing = `${registry.host}/docker-clair-test/app:404`;
      const both = await scanInProcess(['--clair', clair.url, missing]);
      assert.equal(both.code, 2);
      assert.equal(both.error?.message, `image "${missing}" not found in the Docker daemon at ${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'}, ` +
        `nor in its registry: image "${missing}" not found in the registry at ${registry.host} (no manifest 404)`);
    });
  });

  it('a multi-platform index: --platform picks the manifest; a platform it lacks is named with those it has', async () => {
    const amd64 = await served(registry, 'docker-clair-test/app');
    const base = await registry.push(TEST_IMAGES.debian12, 'docker-clair-test/base', '1');
    const arm = await served(registry, 'docker-clair-test/base');
    // An index whose arm64 entry is the debian12 image: which one Clair indexes shows which was chosen.
    const manifestOf = async (repo: string) => Buffer.from(await (await fetch(`http://${registry.host}/v2/${repo}/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } })).arrayBuffer());
    for (const [repo, digest] of [['docker-clair-test/base', arm.digest]] as const) {
      // The index must live in one repository: copy base's manifest (and its blobs, by mount) into app.
      for (const blob of [...arm.layers, arm.config]) {
        const mount = await fetch(`http://${registry.host}/v2/docker-clair-test/app/blobs/uploads/?mount=${blob}&from=${repo}`, { method: 'POST' });
        assert.equal(mount.status, 201, `mount ${blob}`);
      }
      const put = await fetch(`http://${registry.host}/v2/docker-clair-test/app/manifests/${digest}`, {
        method: 'PUT', headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' }, body: await manifestOf(repo),
      });
      assert.equal(put.status, 201);
    }
    const index = JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: amd64.digest, size: 1, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: arm.digest, size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    });
    const put = await fetch(`http://${registry.host}/v2/docker-clair-test/app/manifests/multi`, {
      method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index,
    });
    assert.equal(put.status, 201);
    const multi = `${registry.host}/docker-clair-test/app:multi`;
    await withDouble(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '--image-src', 'remote', '--platform', 'linux/arm64', multi]);
      assert.equal(run.code, 1, run.stderr);
      const [image] = imagesOf(run) as [ReportImage];
      assert.equal(image.image.digest, `${registry.host}/docker-clair-test/app@${arm.digest}`);
      assert.equal(image.image.id, arm.config);
      assert.deepEqual(imageLayerFetches(clair).map((f) => f.digest), arm.layers);
      const byDefault = await scanInProcess(['--clair', clair.url, '--format', 'json', '--image-src', 'remote', multi]);
      assert.equal((imagesOf(byDefault)[0] as ReportImage).image.digest, `${registry.host}/docker-clair-test/app@${amd64.digest}`, 'the daemon\'s platform, linux/amd64');
      const none = await scanInProcess(['--clair', clair.url, '--image-src', 'remote', '--platform', 'linux/s390x', multi]);
      assert.equal(none.code, 2);
      assert.equal(none.error?.message, `${multi} has no manifest for linux/s390x (it has: linux/amd64, linux/arm64/v8)`);
    });
    void base;
  });
});

describe('registry images behind token auth', { skip: !registryAvailable() && 'docker-registry is not installed' }, () => {
  const PASSWORD = 'pw-7f3a9c-not-for-clair';
  let registry: Registry;
  let ref: string;
  let work: string;
  before(async () => {
    registry = await startRegistry({ auth: { kind: 'token', users: { ci: PASSWORD } } });
    ref = await registry.push(TEST_IMAGES.multilayer, 'team/app', '1');
    work = await mkdtemp(join(tmpdir(), 'dc-remote-auth-'));
  });
  after(async () => {
    await registry?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A docker config dir holding `auths` for the registry (as `docker login` without a credential store writes it). */
  async function configWith(entry: Record<string, string> | undefined): Promise<string> {
    const dir = await mkdtemp(join(work, 'config-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify(entry ? { auths: { [registry.host]: entry } } : {}));
    return dir;
  }

  it('the Must-show: a token-auth registry image, the same findings as a daemon scan, no export, no layer byte through the plugin; Clair gets a pull token, never the password', async () => {
    const config = await configWith({ auth: Buffer.from(`ci:${PASSWORD}`).toString('base64') });
    const fromDaemon = await withDouble((clair) => scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer]));
    await withDouble(async (clair) => {
      const before = registry.tokenRequests.length;
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '-D', '--image-src', 'remote', ref], { env: { DOCKER_CONFIG: config } });
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(run.stats, { saves: 0, layersSent: 0, bytesSent: 0 });
      assert.deepEqual(vulnIds(imagesOf(run)[0] as ReportImage), vulnIds(imagesOf(fromDaemon)[0] as ReportImage));
      assert.match(run.stderr, new RegExp(`registry ${registry.host.replace(/\./g, '\\.')}: credentials from config.json auths`));
      assert.doesNotMatch(run.stderr + run.stdout, new RegExp(PASSWORD), 'the password is in no output');
      // Ours: one token, with the password, for pulling this repository only.
      const asked = registry.tokenRequests.slice(before);
      assert.deepEqual(asked.map((r) => [r.credential, r.user, r.scopes]), [['basic', 'ci', ['repository:team/app:pull']]]);
      // Clair's: the blobs, each with that bearer token; no Basic header, no password anywhere in what Clair got.
      const fetches = imageLayerFetches(clair);
      assert.ok(fetches.length >= 3);
      for (const f of fetches) {
        assert.equal(f.status, 200, f.uri);
        const auth = f.requestHeaders.authorization ?? f.requestHeaders.Authorization ?? [];
        assert.equal(auth.length, 1);
        assert.match(auth[0] ?? '', /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
        assert.doesNotMatch(JSON.stringify(f.requestHeaders), new RegExp(`${PASSWORD}|${Buffer.from(`ci:${PASSWORD}`).toString('base64')}`));
      }
    });
  });

  it('an identity token (as `docker login` stores it for a token server that issues one) is exchanged, never sent as a password', async () => {
    const login = registry.tokenRequests.find((r) => r.issuedRefreshToken);
    assert.ok(login?.issuedRefreshToken, 'docker login obtained a refresh token');
    const config = await configWith({ identitytoken: login.issuedRefreshToken });
    await withDouble(async (clair) => {
      const before = registry.tokenRequests.length;
      const run = await scanInProcess(['--clair', clair.url, '-q', '--image-src', 'remote', ref], { env: { DOCKER_CONFIG: config } });
      assert.equal(run.code, 1, run.stderr);
      const asked = registry.tokenRequests.slice(before);
      assert.deepEqual(asked.map((r) => [r.method, r.grantType, r.credential, r.sentPassword, r.scopes]),
        [['POST', 'refresh_token', 'refresh_token', false, ['repository:team/app:pull']]]);
    });
  });

  it('no credentials: exit 2 naming the registry and `docker login`; a wrong password: the token server\'s refusal', async () => {
    await withDouble(async (clair) => {
      const none = await scanInProcess(['--clair', clair.url, '--image-src', 'remote', ref], { env: { DOCKER_CONFIG: await configWith(undefined) } });
      assert.equal(none.code, 2);
      assert.equal(none.error?.message, `the registry at ${registry.host} denied pulling team/app (HTTP 401)`);
      assert.equal(none.error?.hint, `check that your login may pull it: docker login ${registry.host}`);
      const wrong = await scanInProcess(['--clair', clair.url, '--image-src', 'remote', ref],
        { env: { DOCKER_CONFIG: await configWith({ username: 'ci', password: 'wrong' }) } });
      assert.equal(wrong.code, 2);
      assert.equal(wrong.error?.message, `the token server of ${registry.host} refused the credentials from config.json auths (HTTP 401)`);
      assert.equal(imageLayerFetches(clair).length, 0, 'Clair was asked for nothing');
    });
  });

  it('Clair v1: each layer posted with Path = the blob URL and the pull token; the findings of a v1 daemon scan', async () => {
    const config = await configWith({ auth: Buffer.from(`ci:${PASSWORD}`).toString('base64') });
    const fromDaemon = await withV1Double((clair) => scanInProcess(['--clair', clair.url, '--clair-api', 'v1', '--format', 'json', TEST_IMAGES.multilayer]));
    await withV1Double(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--clair-api', 'v1', '--format', 'json', '--image-src', 'remote', ref], { env: { DOCKER_CONFIG: config } });
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(run.stats, { saves: 0, layersSent: 0, bytesSent: 0 });
      const [image] = imagesOf(run) as [ReportImage];
      assert.equal(image.image.source, 'registry');
      assert.deepEqual(vulnIds(image), vulnIds(imagesOf(fromDaemon)[0] as ReportImage));
      assert.ok(clair.layerFetches.length >= 3);
      for (const f of clair.layerFetches) {
        assert.match(f.uri, new RegExp(`^http://${registry.host.replace(/\./g, '\\.')}/v2/team/app/blobs/sha256:[0-9a-f]{64}$`));
        assert.match((f.requestHeaders.Authorization ?? f.requestHeaders.authorization ?? [])[0] ?? '', /^Bearer /);
      }
      const fetched = clair.layerFetches.length;
      const warm = await scanInProcess(['--clair', clair.url, '--clair-api', 'v1', '-q', '--image-src', 'remote', ref], { env: { DOCKER_CONFIG: config } });
      assert.equal(warm.code, 1, warm.stderr);
      assert.equal(clair.layerFetches.length, fetched, 'a warm rescan fetches nothing');
    });
  });

  it('the registry refusing Clair\'s token (expired by the time Clair fetches): exit 2 saying so', async () => {
    const config = await configWith({ auth: Buffer.from(`ci:${PASSWORD}`).toString('base64') });
    // What Clair holds when its fetch happens too late: a token the registry no longer accepts.
    const clair = await startClairDouble({
      faults: { index: (manifest) => {
        for (const layer of manifest.layers) layer.headers = { Authorization: ['Bearer eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJl'] };
        return undefined;
      } },
    });
    try {
      const run = await scanInProcess(['--clair', clair.url, '--image-src', 'remote', ref], { env: { DOCKER_CONFIG: config } });
      assert.equal(run.code, 2);
      assert.match(run.error?.message ?? '', new RegExp(`^the registry at ${registry.host.replace(/\./g, '\\.')} refused Clair's layer requests for ${ref.replace(/\./g, '\\.')} \\(.*401 Unauthorized.*\\): the pull token expired or was not accepted$`));
      assert.ok(clair.layerFetches.some((f) => f.status === 401), 'the registry itself answered 401');
    } finally {
      await clair.close();
    }
  });

  it('a credential helper on PATH (credsStore) gives the password', async () => {
    const bin = await mkdtemp(join(work, 'bin-'));
    const helper = join(bin, 'docker-credential-dctest');
    await writeFile(helper, `#!/bin/sh\nread server\n[ "$server" = "${registry.host}" ] || exit 1\nprintf '{"ServerURL":"%s","Username":"ci","Secret":"${PASSWORD}"}' "$server"\n`);
    await chmod(helper, 0o755);
    const config = await mkdtemp(join(work, 'config-'));
    await writeFile(join(config, 'config.json'), JSON.stringify({ credsStore: 'dctest' }));
    await withDouble(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '-q', '-D', '--image-src', 'remote', ref],
        { env: { DOCKER_CONFIG: config, PATH: `${bin}:${process.env.PATH ?? ''}` } });
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /credentials from docker-credential-dctest/);
    });
  });
});

describe('a registry that takes only Basic auth', { skip: !registryAvailable() && 'docker-registry is not installed' }, () => {
  it('is refused before Clair is asked: Clair would need the password, which docker clair never gives it', async () => {
    const registry = await startRegistry({ auth: { kind: 'htpasswd', users: { ci: 'basic-pw' } } });
    const work = await mkdtemp(join(tmpdir(), 'dc-remote-basic-'));
    try {
      const ref = await registry.push(TEST_IMAGES.debian12, 'team/base', '1');
      await writeFile(join(work, 'config.json'), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('ci:basic-pw').toString('base64') } } }));
      await withDouble(async (clair) => {
        const run = await scanInProcess(['--clair', clair.url, '--image-src', 'remote', ref], { env: { DOCKER_CONFIG: work } });
        assert.equal(run.code, 2);
        assert.equal(run.error?.message, `the registry at ${registry.host} takes only Basic authentication, so Clair could fetch the layers only with your password`);
        assert.match(run.error?.hint ?? '', /--image-src daemon/);
        assert.equal(clair.layerFetches.length, 0);
      });
    } finally {
      await registry.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('a zstd layer in a registry (OCI manifest)', { skip: !registryAvailable() && 'docker-registry is not installed' }, () => {
  it('Clair fetches the zstd blob and indexes what it holds: the findings of the same layer from the daemon', async () => {
    const registry = await startRegistry();
    const work = await mkdtemp(join(tmpdir(), 'dc-remote-zstd-'));
    try {
      // debian12's one layer and config, from its `docker save`, the layer compressed with zstd.
      const archive = join(work, 'debian12.tar');
      dockerCli(['save', '-o', archive, TEST_IMAGES.debian12]);
      const entry = (name: string) => execFileSync('tar', ['-xOf', archive, name], { maxBuffer: 1 << 30 });
      const [item] = JSON.parse(entry('manifest.json').toString('utf8')) as { Config: string; Layers: string[] }[];
      const config = entry(item?.Config as string);
      const layer = zstdFrame(entry(item?.Layers[0] as string));
      const repo = `http://${registry.host}/v2/team/zstd`;
      const upload = async (blob: Buffer) => {
        const digest = sha256(blob);
        const start = await fetch(`${repo}/blobs/uploads/`, { method: 'POST' });
        assert.equal(start.status, 202);
        const location = new URL(start.headers.get('location') ?? '', repo);
        location.searchParams.set('digest', digest);
        const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: blob });
        assert.equal(put.status, 201, await put.text());
        return { digest, size: blob.length };
      };
      const manifest = JSON.stringify({
        schemaVersion: 2, mediaType: MEDIA.ociManifest,
        config: { mediaType: MEDIA.ociConfig, ...(await upload(config)) },
        layers: [{ mediaType: MEDIA.layerZstd, ...(await upload(layer)) }],
      });
      const put = await fetch(`${repo}/manifests/1`, { method: 'PUT', headers: { 'content-type': MEDIA.ociManifest }, body: manifest });
      assert.equal(put.status, 201, await put.text());
      const ref = `${registry.host}/team/zstd:1`;
      const fromDaemon = await withDouble((clair) => scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]));
      await withDouble(async (clair) => {
        const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '--image-src', 'remote', ref]);
        assert.equal(run.code, 1, run.stderr);
        assert.deepEqual(imageLayerFetches(clair).map((f) => [f.digest, f.compression]), [[sha256(layer), 'KindZstd']]);
        const [image] = imagesOf(run) as [ReportImage];
        assert.equal(image.image.digest, `${registry.host}/team/zstd@${sha256(Buffer.from(manifest))}`);
        assert.deepEqual(vulnIds(image), vulnIds(imagesOf(fromDaemon)[0] as ReportImage));
        assert.equal(image.packageCount, (imagesOf(fromDaemon)[0] as ReportImage).packageCount);
      });
    } finally {
      await registry.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});
