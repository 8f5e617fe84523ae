// `docker clair scan` end to end on Clair v4, in-process: the real daemon, the real test images, the
// Clair double fetching layers over HTTP from the layer server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { helperManifestHash } from '../../src/clair/v4/index-layers.js';
import { startClairDouble, type ClairDouble } from '../double/server.js';
import { dockerCli, TEST_IMAGES } from '../helpers/daemon.js';
import { firstImage, listeners, scanInProcess } from '../helpers/scan.js';
import { imageLayerFetches } from '../helpers/layer-fetches.js';

const diffIds = (image: string): string[] => JSON.parse(dockerCli(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', image]));
const imageId = (image: string): string => dockerCli(['image', 'inspect', '-f', '{{.Id}}', image]);

type IndexFault = NonNullable<NonNullable<Parameters<typeof startClairDouble>[0]>['faults']>['index'];
type ManifestLayer = { hash: string; uri: string; headers: Record<string, string[]> };

/**
 * An index fault for the one-layer manifests of the image's layers (not the preflight's probe, nor the image's own
 * manifest): `handle` gets the layer and the headers its GET must carry; the rest are indexed as usual.
 */
function onImageLayer(handle: (layer: ManifestLayer, headers: Record<string, string>) => ReturnType<NonNullable<IndexFault>>): IndexFault {
  return (manifest) => {
    const layer = manifest.layers[0];
    if (!layer || manifest.layers.length !== 1 || layer.uri.includes('/probe/')) return undefined;
    return handle(layer, Object.fromEntries(Object.entries(layer.headers).map(([k, v]) => [k, v[0] ?? ''])));
  };
}

describe('scan on Clair v4 (cold, warm, shared base)', () => {
  let clair: ClairDouble;
  before(async () => {
    clair = await startClairDouble({ fetchConcurrency: 1 });
  });
  after(() => clair.close());

  it('cold scan of Debian 12: exports once, sends its layer, reports the fixture findings, exit 1', async () => {
    const run = await scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stats.saves, 1);
    const [layer] = diffIds(TEST_IMAGES.debian12);
    assert.deepEqual(imageLayerFetches(clair).map((f) => f.digest), [layer]);
    assert.equal(run.stats.layersSent, 1);
    const image = firstImage(run);
    assert.equal(image.verdict, 'fail');
    const found = (id: string, pkg: string) => image.vulnerabilities.find((v) => v.id === id && v.package.name === pkg);
    assert.equal(found('CVE-2099-0001', 'libc6')?.severity, 'Critical');
    assert.equal(found('CVE-2099-0001', 'libc6')?.fixedIn, '2.36-9+deb12u99');
    assert.equal(found('CVE-2099-0002', 'bash')?.severity, 'High');
    assert.equal(found('CVE-2099-0002', 'bash')?.fixedIn, null, 'an unfixed vulnerability has no fixedIn');
    assert.equal(found('CVE-2099-0001', 'libc6')?.layer, layer);
    const severities = new Set(image.vulnerabilities.map((v) => v.severity));
    for (const s of ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown']) assert.ok(severities.has(s), s);
    assert.ok(image.packageCount > 50);
    // The one-layer helper manifest is gone; the image's own index stays.
    assert.equal(clair.indexReport(helperManifestHash(layer as string)), undefined);
    assert.equal((clair.indexReport(imageId(TEST_IMAGES.debian12)) as { state: string }).state, 'IndexFinished');
  });

  it('warm rescan: no docker save at all, no layer fetched, same findings; the layer server started meanwhile is closed', async () => {
    const fetchesBefore = imageLayerFetches(clair).length;
    const listening = listeners();
    const run = await scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stats.saves, 0, 'a warm rescan must not export the image');
    assert.equal(listeners(), listening, 'no listener left behind');
    assert.equal(imageLayerFetches(clair).length, fetchesBefore);
    assert.ok(firstImage(run).vulnerabilities.some((v) => v.id === 'CVE-2099-0001'));
  });

  it('an image sharing the base layer: only the new layers are sent, the fixture package is found', async () => {
    const fetchesBefore = imageLayerFetches(clair).length;
    const run = await scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stats.saves, 1);
    const layers = diffIds(TEST_IMAGES.multilayer);
    const fetched = imageLayerFetches(clair).slice(fetchesBefore).map((f) => f.digest);
    assert.deepEqual(new Set(fetched), new Set(layers.slice(1)), 'every layer but the shared base, once each');
    assert.equal(fetched.length, layers.length - 1);
    const fixture = firstImage(run).vulnerabilities.find((v) => v.package.name === 'docker-clair-fixture');
    assert.equal(fixture?.id, 'CVE-2099-0013');
    assert.equal(fixture?.package.version, '1.2.3-1');
    assert.equal(fixture?.layer, layers[2], 'introduced by the dpkg -i layer');
  });

  it('the table names the build step of each layer with findings, from the image history (warm rescan too)', async () => {
    const run = await scanInProcess(['--clair', clair.url, TEST_IMAGES.multilayer]);
    assert.equal(run.stats.saves, 0, 'warm: the steps come from the history API, not from an export');
    const layers = diffIds(TEST_IMAGES.multilayer);
    const short = (d: string | undefined) => (d ?? '').slice(7, 19);
    assert.match(run.stdout, new RegExp(`\\nLayers:\\n {2}${short(layers[0])} {2}\\(base layer, no build step recorded\\)`));
    assert.match(run.stdout, new RegExp(`\\n {2}${short(layers[2])} {2}RUN dpkg -i /opt/docker-clair-fixture/debs/docker-clair-fixture_1\\.2\\.3-1_all\\.deb`));
  });

  it('--fail-on decides the exit code; none never fails on findings', async () => {
    assert.equal((await scanInProcess(['--clair', clair.url, '-q', '--fail-on', 'critical', TEST_IMAGES.debian12])).code, 1);
    assert.equal((await scanInProcess(['--clair', clair.url, '-q', '--fail-on', 'none', TEST_IMAGES.debian12])).code, 0);
  });

  it('the table goes to stdout; progress goes to stderr only when it is a terminal', async () => {
    const run = await scanInProcess(['--clair', clair.url, TEST_IMAGES.debian12], { stderrIsTTY: true });
    assert.match(run.stdout, /CVE-2099-0001/);
    assert.doesNotMatch(run.stdout, /matching vulnerabilities/);
    assert.match(run.stderr, /matching vulnerabilities/);
    assert.doesNotMatch(run.stdout, /\u001b\[/, 'no colour when stdout is not a terminal');
    const ci = await scanInProcess(['--clair', clair.url, TEST_IMAGES.debian12]);
    assert.equal(ci.stderr, '', 'nothing on a non-terminal stderr but errors');
    const quiet = await scanInProcess(['--clair', clair.url, '--no-progress', TEST_IMAGES.debian12], { stderrIsTTY: true });
    assert.equal(quiet.stderr, '');
  });
});

describe('scan on Clair v4: results that cannot be trusted', () => {
  it('an empty vulnerability database (202) is exit 3, never clean', async () => {
    const clair = await startClairDouble({ emptyDb: true });
    try {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '--fail-on', 'none', TEST_IMAGES.debian12]);
      assert.equal(run.code, 3, run.stderr);
      const image = firstImage(run);
      assert.equal(image.verdict, 'untrusted');
      assert.match(image.reason, /database is empty/);
      assert.deepEqual(image.vulnerabilities, []);
    } finally {
      await clair.close();
    }
  });
});

describe('scan on Clair v4: errors', () => {
  it('Clair unreachable: exit 2 naming the URL', async () => {
    const clair = await startClairDouble();
    const url = clair.url;
    await clair.close();
    const run = await scanInProcess(['--clair', url, TEST_IMAGES.debian12]);
    assert.equal(run.code, 2);
    assert.match(run.error?.message ?? '', new RegExp(`cannot reach Clair at ${url.replace(/[.]/g, '\\.')}/indexer/api/v1/index_report/sha256:[0-9a-f]{64} \\(ECONNREFUSED\\)`));
  });

  it('no Clair configured: exit 2 with the fix', async () => {
    const run = await scanInProcess([TEST_IMAGES.debian12]);
    assert.equal(run.code, 2);
    assert.equal(run.error?.message, 'no Clair to scan with: no --clair or CLAIR_ADDR, and the managed Clair is not running');
    assert.match(run.error?.hint ?? '', /docker clair server up.*--clair URL \(or set CLAIR_ADDR\)/);
  });

  it("Clair's 500 on index: exit 2 with Clair's own message", async () => {
    const clair = await startClairDouble({
      faults: { index: () => ({ kind: 'error', status: 500, message: 'failed to start scan: disk full' }) },
    });
    try {
      const run = await scanInProcess(['--clair', clair.url, TEST_IMAGES.debian12]);
      assert.equal(run.code, 2);
      assert.equal(run.error?.code, 'CLAIR_INDEX');
      assert.match(run.error?.message ?? '', /Clair failed to index the image: failed to start scan: disk full/);
    } finally {
      await clair.close();
    }
  });

  it('Clair dropping a layer mid-way and asking again: 409 for the retry, exit 2 saying why', async () => {
    let retryStatus = 0;
    let firstBytes = 0;
    const clair = await startClairDouble({
      faults: {
        // Behaves like a Clair whose fetch broke off and that then retried (real Clair never retries).
        index: onImageLayer(async (layer, headers) => {
          const first = await fetch(layer.uri, { headers });
          const reader = first.body!.getReader();
          firstBytes = (await reader.read()).value?.length ?? 0;
          await reader.cancel();
          const again = await fetch(layer.uri, { headers });
          retryStatus = again.status;
          await again.body?.cancel();
          return { kind: 'error', status: 500, message: `failed to start scan: fetcher: unexpected status code: ${again.status}` };
        }),
      },
    });
    try {
      const run = await scanInProcess(['--clair', clair.url, '-q', TEST_IMAGES.debian12]);
      assert.ok(firstBytes > 0, 'the first GET started streaming');
      assert.equal(retryStatus, 409);
      assert.equal(run.code, 2);
      assert.equal(run.error?.code, 'CLAIR_INDEX');
      assert.match(run.error?.message ?? '', /unexpected status code: 409.*streams from docker save once; Clair asked for it again/);
    } finally {
      await clair.close();
    }
  });

  it("a layer's index answer failing once Clair has fetched it, while the next layer streams: exit 2 with that answer", async () => {
    // The stream moves on once Clair has fetched a layer whole; the answer for it may come while the next layer is
    // on offer. The first layer's answer waits here until the next layer's index request has arrived (it never
    // would, were the answer awaited first), then fails.
    let nextPosted!: () => void;
    const next = new Promise<string>((resolve) => {
      nextPosted = () => resolve('next layer posted');
    });
    const layerPosts: string[] = [];
    let firstBytes = 0;
    const clair = await startClairDouble({
      faults: {
        index: onImageLayer(async (layer, headers) => {
          layerPosts.push(layer.hash);
          if (layerPosts.length > 1) {
            nextPosted();
            return undefined;
          }
          firstBytes = (await (await fetch(layer.uri, { headers })).arrayBuffer()).byteLength;
          const waited = await Promise.race([next, new Promise<string>((resolve) => setTimeout(resolve, 20_000, 'no further layer posted'))]);
          return { kind: 'error', status: 500, message: `failed to start scan: indexer gave up (${waited})` };
        }),
      },
    });
    try {
      const run = await scanInProcess(['--clair', clair.url, '-q', TEST_IMAGES.multilayer]);
      assert.ok(firstBytes > 0, 'Clair fetched the first layer');
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.error?.code, 'CLAIR_INDEX');
      assert.match(run.error?.message ?? '', /failed to start scan: indexer gave up \(next layer posted\)/);
      assert.equal(layerPosts.length, 2, 'the read stopped at the failed answer: no third layer was offered');
      assert.equal(run.stats.saves, 1);
    } finally {
      await clair.close();
    }
  });

  it('429 twice, then accepted: retried with backoff', async () => {
    let refusals = 0;
    const clair = await startClairDouble({
      faults: { index: () => (refusals++ < 2 ? { kind: 'error', status: 429, message: 'too many requests' } : undefined) },
    });
    try {
      const run = await scanInProcess(['--clair', clair.url, '-q', '--fail-on', 'none', TEST_IMAGES.debian12]);
      assert.equal(run.code, 0, run.stderr);
      assert.ok(refusals >= 3);
    } finally {
      await clair.close();
    }
  });

  it('429 for ever: exit 2, Clair is busy', async () => {
    const clair = await startClairDouble({ faults: { index: () => ({ kind: 'error', status: 429, message: 'too many requests' }) } });
    try {
      const run = await scanInProcess(['--clair', clair.url, '-q', TEST_IMAGES.debian12]);
      assert.equal(run.code, 2);
      assert.match(run.error?.message ?? '', /is busy \(429\)/);
    } finally {
      await clair.close();
    }
  });

  it('PSK auth: 401 without the key is exit 2 naming CLAIR_PSK; with it the scan runs', async () => {
    const key = Buffer.from('docker-clair test key material').toString('base64');
    const clair = await startClairDouble({ psk: key, issuers: ['docker-clair'] });
    try {
      const denied = await scanInProcess(['--clair', clair.url, '-q', TEST_IMAGES.debian12]);
      assert.equal(denied.code, 2);
      assert.equal(denied.error?.code, 'CLAIR_AUTH');
      assert.match(denied.error?.hint ?? '', /CLAIR_PSK/);
      const wrongIssuer = await scanInProcess(['--clair', clair.url, '-q', TEST_IMAGES.debian12], { env: { CLAIR_PSK: key, CLAIR_PSK_ISSUER: 'someone-else' } });
      assert.equal(wrongIssuer.error?.code, 'CLAIR_AUTH');
      const ok = await scanInProcess(['--clair', clair.url, '-q', '--fail-on', 'none', TEST_IMAGES.debian12], { env: { CLAIR_PSK: key } });
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      await clair.close();
    }
  });

  it('an unknown image among several: exit 2, the others are still scanned', async () => {
    const clair = await startClairDouble();
    try {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12, 'docker-clair-test/absent:1']);
      assert.equal(run.code, 2);
      const doc = JSON.parse(run.stdout) as { images: { verdict?: string; error?: { message: string } | string }[] };
      assert.equal(doc.images.length, 2);
      assert.equal(doc.images[0]?.verdict, 'fail');
      assert.match(JSON.stringify(doc.images[1]), /not found/);
    } finally {
      await clair.close();
    }
  });
});
