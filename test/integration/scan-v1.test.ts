// `docker clair scan` end to end on the legacy Clair v1 API (Clair 1.x/2.x), in-process: the real daemon, the
// real test images, the Clair double in v1 mode fetching layers over HTTP from the layer server, parent first.
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FORMATS } from '../../src/report/formats.js';
import { v1LayerNames } from '../../src/clair/v1/layer-names.js';
import { startClairDouble, type ClairDouble } from '../double/server.js';
import { dockerCli, TEST_IMAGES } from '../helpers/daemon.js';
import {
  daemonLayerOrder,
  describeOrder,
  splitLegacySave,
  unbufferedV1Passes,
  type LegacySaveParts,
} from '../helpers/legacy-order.js';
import { buildContainerdSave, buildOciLayoutSave } from '../helpers/save-archives.js';
import { firstImage, listeners, scanInProcess } from '../helpers/scan.js';
import { withV1Double } from '../helpers/layer-fetches.js';

const diffIds = (image: string): string[] => JSON.parse(dockerCli(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', image]));
const v1 = (clair: ClairDouble, ...args: string[]) => ['--clair', clair.url, '--clair-api', 'v1', ...args];
/** Whole layers, --v1-buffer and further passes. */
const v1Full = (clair: ClairDouble, ...args: string[]) => v1(clair, '--v1-full-layers', ...args);

describe('scan on Clair v1 (cold, warm, shared base)', () => {
  let clair: ClairDouble;
  before(async () => {
    clair = await startClairDouble({ api: 'v1' });
  });
  after(() => clair.close());

  it('cold scan of Debian 12 (API auto-detected): one export, its layer posted, the fixture findings, exit 1', async () => {
    const run = await scanInProcess(['--debug', '--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /Clair API: v1 \(GET .*\/indexer\/api\/v1\/index_state answered 404, GET .*\/v1\/namespaces answered 200\)/);
    assert.match(run.stderr, /Clair v1: one pass over docker save \(1 read\(s\)\), layers reduced to the files Clair v1 reads/);
    assert.equal(run.stats.saves, 1);
    const layers = diffIds(TEST_IMAGES.debian12);
    assert.equal(layers.length, 1);
    assert.deepEqual(clair.v1Layers(), v1LayerNames(layers));
    assert.equal(clair.layerFetches.length, 1);
    assert.match(clair.layerFetches[0]?.uri ?? '', new RegExp(`/layers/${layers[0]}$`));
    assert.match(clair.layerFetches[0]?.requestHeaders['Authorization']?.[0] ?? '', /^Bearer \S{20,}$/, 'the per-scan secret is sent');
    assert.equal(run.stats.layersSent, 1);
    const image = firstImage(run);
    assert.equal(image.verdict, 'fail');
    const found = (id: string, pkg: string) => image.vulnerabilities.find((v) => v.id === id && v.package.name === pkg);
    // v1 features are SOURCE packages: glibc, not libc6.
    assert.equal(found('CVE-2099-0001', 'glibc')?.severity, 'Critical');
    assert.equal(found('CVE-2099-0001', 'glibc')?.fixedIn, '2.36-9+deb12u99');
    assert.equal(found('CVE-2099-0001', 'glibc')?.layer, layers[0], 'AddedBy maps back to the layer digest');
    assert.equal(found('CVE-2099-0001', 'libc6'), undefined);
    assert.equal(found('CVE-2099-0002', 'bash')?.severity, 'High');
    assert.equal(found('CVE-2099-0002', 'bash')?.fixedIn, null, 'an unfixed vulnerability has no fixedIn');
    const perl = image.vulnerabilities.find((v) => v.package.name === 'perl' && v.severity === 'Critical');
    assert.ok(perl, 'Defcon1 (perl) becomes Critical');
    const severities = new Set(image.vulnerabilities.map((v) => v.severity));
    for (const s of ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown']) assert.ok(severities.has(s), s);
    assert.ok(image.packageCount > 20);
  });

  it('warm rescan: no docker save at all, no layer fetched, same findings; the layer server started meanwhile is closed', async () => {
    const fetchesBefore = clair.layerFetches.length;
    const listening = listeners();
    const run = await scanInProcess(v1(clair, '--format', 'json', TEST_IMAGES.debian12));
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stats.saves, 0, 'a warm rescan must not export the image');
    assert.equal(listeners(), listening, 'no listener left behind');
    assert.equal(clair.layerFetches.length, fetchesBefore);
    assert.ok(firstImage(run).vulnerabilities.some((v) => v.id === 'CVE-2099-0001'));
  });

  it('an image sharing the base layer: only the new layers are posted, parent first, in one pass', async (t) => {
    const fetchesBefore = clair.layerFetches.length;
    const run = await scanInProcess(v1(clair, '--debug', '--format', 'json', TEST_IMAGES.multilayer));
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stats.saves, 1, 'reduced layers are held until their parents are known: one pass');
    t.diagnostic(`multilayer, base known: ${run.stats.saves} docker save pass(es); ${/at most \d+ bytes held in memory/.exec(run.stderr)?.[0] ?? ''}`);
    const layers = diffIds(TEST_IMAGES.multilayer);
    assert.equal(layers.length, 4);
    const names = v1LayerNames(layers);
    const fetched = clair.layerFetches.slice(fetchesBefore).map((f) => f.digest);
    assert.deepEqual(fetched, names.slice(1), 'every layer but the shared base, once each, in image order');
    const fixture = firstImage(run).vulnerabilities.find((v) => v.package.name === 'docker-clair-fixture');
    assert.equal(fixture?.id, 'CVE-2099-0013');
    assert.equal(fixture?.package.version, '1.2.3-1');
    assert.equal(fixture?.layer, layers[2], 'introduced by the dpkg -i layer');
  });

  it('--fail-on decides the exit code; none never fails on findings', async () => {
    assert.equal((await scanInProcess(v1(clair, '-q', '--fail-on', 'critical', TEST_IMAGES.debian12))).code, 1);
    assert.equal((await scanInProcess(v1(clair, '-q', '--fail-on', 'none', TEST_IMAGES.debian12))).code, 0);
  });

  it('every report format: the table on stdout, json to a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'docker-clair-v1-'));
    try {
      const file = join(dir, 'report.json');
      const run = await scanInProcess(v1(clair, '--format', 'table', '--format', `json=${file}`, TEST_IMAGES.multilayer));
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stdout, /CVE-2099-0013/);
      assert.match(run.stdout, /CVE-2099-0001/);
      const doc = JSON.parse(readFileSync(file, 'utf8')) as { images: { verdict: string; vulnerabilities: { id: string }[] }[] };
      assert.equal(doc.images[0]?.verdict, 'fail');
      assert.ok(doc.images[0]?.vulnerabilities.some((v) => v.id === 'CVE-2099-0013'));
      assert.equal(run.stderr, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('scan on Clair v1: every implemented report format', () => {
  it('each format in FORMATS, written to a file from one v1 scan, names the v1 findings', async () => {
    const clair = await startClairDouble({ api: 'v1' });
    const dir = mkdtempSync(join(tmpdir(), 'docker-clair-v1-formats-'));
    try {
      const formats = [...FORMATS];
      const run = await scanInProcess(v1(clair, ...formats.flatMap((f) => ['--format', `${f}=${join(dir, `report.${f}`)}`]), TEST_IMAGES.multilayer));
      assert.equal(run.code, 1, run.stderr);
      for (const format of formats) {
        const text = readFileSync(join(dir, `report.${format}`), 'utf8');
        assert.match(text, /CVE-2099-0013/, format);
        assert.match(text, /docker-clair-fixture/, format);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await clair.close();
    }
  });
});

describe('scan on Clair v1 with --v1-full-layers: memory cap and docker save passes', () => {
  for (const [image, cap] of [
    [TEST_IMAGES.debian12, undefined], [TEST_IMAGES.debian12, '1'],
    [TEST_IMAGES.multilayer, undefined], [TEST_IMAGES.multilayer, '1'],
  ] as const) {
    it(`${image}, cold, --v1-buffer ${cap ?? 'default (256MiB)'}: every layer posted parent first`, async (t) => {
      const clair = await startClairDouble({ api: 'v1' });
      try {
        const run = await scanInProcess(v1Full(clair, '--debug', '--format', 'json', ...(cap ? ['--v1-buffer', cap] : []), image));
        assert.equal(run.code, 1, run.stderr);
        const layers = diffIds(image);
        assert.deepEqual(clair.layerFetches.map((f) => f.digest), v1LayerNames(layers), 'each layer fetched once, in image order');
        const memory = /at most (\d+) bytes held in memory/.exec(run.stderr);
        // The daemon's save streams the layers in the order of their v1 IDs, which every build changes.
        const order = await daemonLayerOrder(image);
        t.diagnostic(`${image}: ${layers.length} layer(s), the save streams ${describeOrder(order)}, --v1-buffer ${cap ?? 'default'}: ` +
          `${run.stats.saves} docker save pass(es), ${memory?.[1]} bytes buffered at most`);
        if (cap === '1') assert.equal(memory?.[1], '0', 'nothing may be buffered under a 1-byte cap');
        // A cap above the image size holds every early layer; a 1-byte cap holds none: a pass per run of layers
        // that the save delivers parent first.
        const passes = cap === undefined ? 1 : unbufferedV1Passes(order);
        assert.equal(run.stats.saves, passes, `the save streams ${describeOrder(order)}`);
        assert.ok(passes >= 1 && passes <= layers.length);
        assert.match(run.stderr, new RegExp(`Clair v1: ${run.stats.saves} pass\\(es\\)`));
      } finally {
        await clair.close();
      }
    });
  }

  it('--v1-buffer must be a size', async () => {
    const run = await scanInProcess(['--clair', 'http://127.0.0.1:1', '--v1-buffer', 'lots', TEST_IMAGES.debian12]);
    assert.equal(run.code, 2);
    assert.match(run.error?.message ?? '', /invalid --v1-buffer "lots"/);
  });
});

describe('scan on Clair v1 with --v1-full-layers: --input archives', () => {
  let work: string;
  let legacy: string;
  /** The daemon's save of multilayer, to write again with its layers in chosen orders. */
  let parts: LegacySaveParts;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'docker-clair-v1-input-'));
    legacy = join(work, 'multilayer.tar');
    dockerCli(['save', '-o', legacy, TEST_IMAGES.multilayer]);
    parts = await splitLegacySave(legacy, join(work, 'parts'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));
  const env = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
  const inOrder = (order: readonly number[]) => parts.write(order, join(work, `order-${order.join('')}.tar`));

  // Reads under a 1-byte cap: the header walk, then one per run of layers the archive delivers parent first.
  for (const [order, reads] of [[[0, 1, 2, 3], 2], [[0, 2, 3, 1], 3], [[3, 2, 1, 0], 5]] as const) {
    it(`a file is read again when the cap forces it: ${describeOrder(order)} take ${reads} reads under a 1-byte cap, 2 by default`, async (t) => {
      assert.equal(1 + unbufferedV1Passes(order), reads, 'unbufferedV1Passes, used on the daemon\'s own save, counts as the scan does');
      const path = await inOrder(order);
      for (const [cap, expected] of [[undefined, 2], ['1', reads]] as const) {
        await withV1Double(async (clair) => {
          const run = await scanInProcess(v1Full(clair, '--input', path, '--format', 'json', ...(cap ? ['--v1-buffer', cap] : [])), { daemon: false, env });
          assert.equal(run.code, 1, run.stderr);
          assert.equal(run.stats.saves, expected, `--v1-buffer ${cap ?? 'default'}`);
          t.diagnostic(`--input file streaming ${describeOrder(order)}, --v1-buffer ${cap ?? 'default'}: ${run.stats.saves} reads (header walk included)`);
          assert.deepEqual(clair.layerFetches.map((f) => f.digest), v1LayerNames(diffIds(TEST_IMAGES.multilayer)));
          assert.ok(firstImage(run).vulnerabilities.some((v) => v.id === 'CVE-2099-0013'));
        });
      }
    });
  }

  it('the daemon\'s own save as a file: as many reads as its order implies', async (t) => {
    const reads = 1 + unbufferedV1Passes(parts.order);
    t.diagnostic(`the daemon's save streams ${describeOrder(parts.order)}: ${reads} reads under a 1-byte cap`);
    await withV1Double(async (clair) => {
      const run = await scanInProcess(v1Full(clair, '--input', legacy, '--format', 'json', '--v1-buffer', '1'), { daemon: false, env });
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stats.saves, reads, `the save streams ${describeOrder(parts.order)}`);
      assert.deepEqual(clair.layerFetches.map((f) => f.digest), v1LayerNames(diffIds(TEST_IMAGES.multilayer)));
    });
  });

  it('OCI-layout and containerd-store saves (blobs in digest order) are posted parent first too', async (t) => {
    const builds = [
      await buildOciLayoutSave(createReadStream(legacy), join(work, 'oci')),
      // Clair 2 reads gzip (and bzip2/xz), not zstd: every layer gzip.
      await buildContainerdSave(createReadStream(legacy), join(work, 'containerd'), { zstdLayers: [] }),
    ];
    for (const build of builds) {
      for (const cap of [undefined, '1']) {
        await withV1Double(async (clair) => {
          const run = await scanInProcess(v1Full(clair, '--input', build.path, '--format', 'json', ...(cap ? ['--v1-buffer', cap] : [])), { daemon: false, env });
          assert.equal(run.code, 1, `${build.format}: ${run.stderr}`);
          assert.deepEqual(clair.layerFetches.map((f) => f.digest), v1LayerNames(build.layers), build.format);
          t.diagnostic(`--input ${build.format} file, --v1-buffer ${cap ?? 'default'}: ${run.stats.saves} reads (header walk included)`);
          const fixture = firstImage(run).vulnerabilities.find((v) => v.id === 'CVE-2099-0013');
          assert.equal(fixture?.layer, build.layers[2], build.format);
        });
      }
    }
  });

  it('stdin is read once: layers arriving parent first need no buffer; a cap too small to reorder is exit 2 with the fix', async () => {
    const parentFirst = await inOrder([0, 1, 2, 3]);
    const outOfOrder = await inOrder([0, 2, 3, 1]);
    const scanStdin = (path: string, ...args: string[]) => withV1Double((clair) =>
      scanInProcess(v1Full(clair, '--input', '-', '-q', '--fail-on', 'none', ...args), { daemon: false, env, stdin: createReadStream(path) }));

    const parentFirstTiny = await scanStdin(parentFirst, '--v1-buffer', '1');
    assert.equal(parentFirstTiny.code, 0, parentFirstTiny.stderr);
    assert.equal(parentFirstTiny.stats.saves, 1);
    const outOfOrderDefault = await scanStdin(outOfOrder);
    assert.equal(outOfOrderDefault.code, 0, outOfOrderDefault.stderr);
    assert.equal(outOfOrderDefault.stats.saves, 1);

    const run = await scanStdin(outOfOrder, '--v1-buffer', '1');
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.error?.message ?? '', /can be read only once/);
    assert.match(run.error?.hint ?? '', /--input FILE/);
  });
});

describe('scan on Clair v1: auto-detection', () => {
  it('a Clair speaking both APIs is used as v4', async () => {
    const clair = await startClairDouble({ api: 'both' });
    try {
      const run = await scanInProcess(['--debug', '--clair', clair.url, '-q', '--fail-on', 'none', TEST_IMAGES.debian12]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /Clair API: v4 \(GET .*index_state answered 200\)/);
      assert.deepEqual(clair.v1Layers(), []);
    } finally {
      await clair.close();
    }
  });

  it('a v4 Clair requiring PSK auth (401) is detected as v4', async () => {
    const key = Buffer.from('docker-clair test key material').toString('base64');
    const clair = await startClairDouble({ psk: key, issuers: ['docker-clair'] });
    try {
      const run = await scanInProcess(['--debug', '--clair', clair.url, '--fail-on', 'none', TEST_IMAGES.debian12], { env: { CLAIR_PSK: key } });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /Clair API: v4 \(GET .*index_state answered 401\)/);
    } finally {
      await clair.close();
    }
  });

  it('--clair-api v1 with --indexer/--matcher is a usage error', async () => {
    const run = await scanInProcess(['--indexer', 'http://127.0.0.1:1', '--matcher', 'http://127.0.0.1:1', '--clair-api', 'v1', TEST_IMAGES.debian12]);
    assert.equal(run.code, 2);
    assert.match(run.error?.message ?? '', /Clair v4 options/);
  });
});

describe('scan on Clair v1: results that cannot be trusted', () => {
  it('no vulnerabilities in the image namespace (empty database) is exit 3, never clean', async () => {
    const clair = await startClairDouble({ api: 'v1', vulns: [] });
    try {
      const run = await scanInProcess(v1(clair, '--format', 'json', '--fail-on', 'none', TEST_IMAGES.debian12));
      assert.equal(run.code, 3, run.stderr);
      const image = firstImage(run);
      assert.equal(image.verdict, 'untrusted');
      assert.match(image.reason, /no vulnerabilities for debian:12/);
      assert.deepEqual(image.vulnerabilities, []);
    } finally {
      await clair.close();
    }
  });

  it('422 "OS and/or package manager are not supported" is exit 3 with that reason', async () => {
    const clair = await startClairDouble({
      api: 'v1', faults: { v1PostLayer: () => ({ kind: 'error', status: 422, message: 'worker: OS and/or package manager are not supported' }) },
    });
    try {
      const run = await scanInProcess(v1(clair, '--format', 'json', '--fail-on', 'none', TEST_IMAGES.multilayer));
      assert.equal(run.code, 3, run.stderr);
      const image = firstImage(run);
      assert.equal(image.verdict, 'untrusted');
      assert.match(image.reason, /OS and\/or package manager are not supported/);
    } finally {
      await clair.close();
    }
  });
});

describe('scan on Clair v1: errors', () => {
  const withFault = async (status: number, message: string, args: string[] = []) => {
    const clair = await startClairDouble({ api: 'v1', faults: { v1PostLayer: () => ({ kind: 'error', status, message }) } });
    try {
      return await scanInProcess(v1(clair, '-q', ...args, TEST_IMAGES.debian12));
    } finally {
      await clair.close();
    }
  };

  it('Clair cannot fetch the layer (400 could not find layer): exit 2 telling to set --layer-address', async () => {
    const run = await withFault(400, 'could not find layer');
    assert.equal(run.code, 2);
    assert.equal(run.error?.code, 'CLAIR_INDEX');
    assert.match(run.error?.message ?? '', /Clair could not fetch layer [0-9a-f]{64} from the layer server at http:\/\/127\.0\.0\.1:\d+ \(400: could not find layer\)/);
    assert.match(run.error?.hint ?? '', /--layer-address/);
  });

  it('a later layer refused while the export streams on: exit 2 with Clair\'s words, the layers after it not posted', async () => {
    let posts = 0;
    const clair = await startClairDouble({
      api: 'v1',
      faults: { v1PostLayer: () => (++posts === 2 ? { kind: 'error', status: 500, message: 'database is locked' } : undefined) },
    });
    try {
      const run = await scanInProcess(v1(clair, '-q', TEST_IMAGES.multilayer));
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.error?.message ?? '', /database is locked/);
      assert.equal(posts, 2, 'nothing is posted after the refused layer');
      assert.equal(clair.v1Layers().length, 1, 'only the base layer reached Clair');
    } finally {
      await clair.close();
    }
  });

  it('a layer address whose port is taken: exit 2 naming it and the fix; the export asked for meanwhile is closed', async () => {
    // The export is asked for before the layer server starts (the daemon prepares it meanwhile): a server that
    // cannot start must still end the scan at once, with its own error, and close that export.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    const clair = await startClairDouble({ api: 'v1' });
    try {
      const run = await scanInProcess(v1(clair, '-q', '--layer-address', `127.0.0.1:${port}`, TEST_IMAGES.debian12));
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.error?.message ?? '', new RegExp(`cannot start the layer server on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`));
      assert.match(run.error?.hint ?? '', /choose another port with --layer-address/);
      assert.equal(run.stats.saves, 1, 'the export was asked for');
      assert.equal(clair.v1Layers().length, 0, 'nothing was posted');
    } finally {
      await clair.close();
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  it('parent unknown (400): exit 2 naming the parent', async () => {
    const run = await withFault(400, 'worker: parent layer is unknown, it must be processed first');
    assert.equal(run.code, 2);
    assert.match(run.error?.message ?? '', /does not know the parent .* parent layer is unknown/);
  });

  it('422 for a layer that is not a tar: exit 2 (not "unsupported")', async () => {
    const run = await withFault(422, 'tarutil: could not extract the archive');
    assert.equal(run.code, 2);
    assert.match(run.error?.message ?? '', /Clair could not read layer [0-9a-f]{64} \(422: tarutil: could not extract the archive\)/);
  });

  it('--clair-api v1 against a v4-only Clair: exit 2', async () => {
    const clair = await startClairDouble({ api: 'v4' });
    try {
      const run = await scanInProcess(v1(clair, '-q', TEST_IMAGES.debian12));
      assert.equal(run.code, 2);
    } finally {
      await clair.close();
    }
  });
});
