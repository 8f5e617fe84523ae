// The three `docker save` formats end to end on Clair v4 (the double), from the real multilayer test image:
//   - legacy (Engine < 25): the test daemon itself;
//   - OCI layout (Engine >= 25) and containerd store (gzip + zstd blobs): tarballs built from the real legacy
//     save (save-archives.ts), served by the Engine stand-in (engine-standin.ts) and scanned with -H unix://…;
//   - each format again as --input FILE, and as --input - where one pass can do it.
// Every scan must find what the legacy scan of the real daemon finds. Also: the legacy-mapping fallback (a
// save whose v1 directories the diffIDs do not name), a truncated and a corrupt save stream, progress lines.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../src/cli/run.js';
import { readSaveArchive } from '../../src/save/reader.js';
import { drain, readableChunks } from '../../src/save/chunks.js';
import { LegacyLayerMappingError } from '../../src/runtime/errors.js';
import { dockerCli, TEST_IMAGES } from '../helpers/daemon.js';
import {
  scanWithStdin,
  startEngineStandin,
  writeLegacySaveWithConfig,
  writeLegacySaveWithV1Ids,
  type EngineStandin,
} from '../helpers/engine-standin.js';
import { describeOrder, legacyLayerOrder, splitLegacySave } from '../helpers/legacy-order.js';
import { buildContainerdSave, buildOciLayoutSave, type BuiltSave } from '../helpers/save-archives.js';
import { firstImage, scanInProcess, type ScanRun } from '../helpers/scan.js';
import { Capture } from '../helpers/streams.js';
import { imageLayerFetches, withDouble } from '../helpers/layer-fetches.js';

const execFileAsync = promisify(execFile);
const REF = TEST_IMAGES.multilayer;
const short = (digest: string) => digest.slice(7, 19);

let work: string;
let legacyPath: string;
let oci: BuiltSave;
let containerd: BuiltSave;
let diffIds: string[];
let imageId: string;
/** The legacy scan through the real daemon: what every other way in must find. */
let baseline: string[];

type Vulnerability = ReturnType<typeof firstImage>['vulnerabilities'][number];

/** Findings, comparable across formats: the introducing layer by its diffID. */
function findings(run: ScanRun, diffIdOf: (layer: string) => string = (l) => l): string[] {
  return firstImage(run).vulnerabilities
    .map((v: Vulnerability) => [v.id, v.package.name, v.package.version, v.severity, v.fixedIn, v.layer && diffIdOf(v.layer)].join(' '))
    .sort();
}

/** `layer K/N <short digest>` progress lines: K and the digest they name. */
function layerLines(stderr: string): { k: number; n: number | undefined; short: string; line: string }[] {
  return [...stderr.matchAll(/^.*: layer (\d+)(?:\/(\d+))? ([0-9a-f]{12}) .*$/gm)].map((m) => ({
    k: Number(m[1]), n: m[2] === undefined ? undefined : Number(m[2]), short: m[3] as string, line: m[0],
  }));
}

async function withStandin<T>(options: Parameters<typeof startEngineStandin>[0], fn: (engine: EngineStandin) => Promise<T>): Promise<T> {
  const engine = await startEngineStandin(options);
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'dc-formats-'));
  legacyPath = join(work, 'legacy.tar');
  dockerCli(['save', '-o', legacyPath, REF]);
  oci = await buildOciLayoutSave(createReadStream(legacyPath), join(work, 'oci'));
  containerd = await buildContainerdSave(createReadStream(legacyPath), join(work, 'containerd'));
  diffIds = JSON.parse(dockerCli(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', REF])) as string[];
  imageId = dockerCli(['image', 'inspect', '-f', '{{.Id}}', REF]);
  assert.equal(diffIds.length, 4);
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('legacy save from the real daemon (the baseline)', { timeout: 300_000 }, () => {
  it('finds the fixture; progress numbers each layer K/N by its place in the image, in the order the save streams them', async (t) => {
    // The order of the v1 directories, which every build of the image changes.
    const streamed = await legacyLayerOrder(legacyPath);
    t.diagnostic(`the daemon's save streams ${describeOrder(streamed)}`);
    await withDouble(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', REF], { stderrIsTTY: true });
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stats.saves, 1);
      baseline = findings(run);
      assert.ok(baseline.some((f) => f.startsWith('CVE-2099-0013 docker-clair-fixture 1.2.3-1')), baseline.join('\n'));
      const lines = layerLines(run.stderr);
      assert.equal(lines.length, 4, run.stderr);
      for (const line of lines) {
        assert.equal(line.n, 4, line.line);
        assert.equal(line.short, short(diffIds[line.k - 1] as string), `${line.line}: K is the digest's position in RootFS.Layers`);
      }
      assert.deepEqual(lines.map((l) => l.k), streamed.map((i) => i + 1), `the save streams ${describeOrder(streamed)}`);
    });
  });

  it('a legacy save streaming its layers out of image order: K/N still counts in image order', async () => {
    // Served by the Engine stand-in as Engine 20.10 would, with the layer directories in an order chosen here.
    const order = [2, 0, 3, 1];
    const parts = await splitLegacySave(legacyPath, join(work, 'reordered'));
    const path = await parts.write(order, join(work, 'reordered.tar'));
    await withDouble(async (clair) => withStandin({ saves: [{ path }], engineVersion: '20.10.24', apiVersion: '1.41' }, async (engine) => {
      const run = await scanInProcess(['-H', engine.host, '--clair', clair.url, '--format', 'json', REF], { stderrIsTTY: true });
      assert.equal(run.code, 1, run.stderr);
      assert.equal(engine.exports(), 1);
      assert.deepEqual(findings(run), baseline);
      const lines = layerLines(run.stderr);
      assert.deepEqual(lines.map((l) => `${l.k}/${l.n}`), ['3/4', '1/4', '4/4', '2/4'], `${describeOrder(order)}:\n${run.stderr}`);
      for (const line of lines) assert.equal(line.short, short(diffIds[line.k - 1] as string), line.line);
    }));
  });
});

describe('Engine >= 25 and containerd-store saves through the Engine stand-in', { timeout: 600_000 }, () => {
  it('the stand-in answers as the daemon does (inspect fields from the tarball; containerd Id = target digest)', async () => {
    await withStandin({ saves: [{ path: oci.path }] }, async (engine) => {
      const [image] = engine.images;
      assert.equal(image?.Id, imageId);
      assert.deepEqual(image?.RootFS.Layers, diffIds);
      assert.deepEqual(image?.RepoTags, [REF]);
      // The real docker CLI against it (its own -H: dockerCli() targets the test daemon). Not execFileSync: the
      // stand-in answers from this process's event loop.
      const { stdout: cli } = await execFileAsync('docker', ['-H', engine.host, 'image', 'inspect', REF.replace(/:latest$/, '')], { encoding: 'utf8' });
      const inspected = JSON.parse(cli) as { Id: string; RootFS: { Layers: string[] } }[];
      assert.equal(inspected[0]?.Id, imageId);
      assert.ok(engine.requests.some((r) => /^\/v1\.\d+\/images\/.+\/json$/.test(r.path)), 'the docker CLI uses versioned paths');
    });
    await withStandin({ saves: [{ path: containerd.path, store: 'containerd' }] }, async (engine) => {
      assert.equal(engine.images[0]?.Id, containerd.image.id);
      assert.notEqual(engine.images[0]?.Id, imageId);
    });
  });

  it('OCI layout: one /get cold, none warm; layers are the diffIDs; the legacy findings; K/N in image order', async () => {
    await withDouble(async (clair) => withStandin({ saves: [{ path: oci.path }] }, async (engine) => {
      const cold = await scanInProcess(['-H', engine.host, '--clair', clair.url, '--format', 'json', REF], { stderrIsTTY: true });
      assert.equal(cold.code, 1, cold.stderr);
      assert.equal(engine.exports(), 1);
      assert.equal(cold.stats.saves, 1);
      assert.deepEqual(findings(cold), baseline);
      assert.deepEqual(new Set(imageLayerFetches(clair).map((f) => f.digest)), new Set(diffIds));
      assert.equal((clair.indexReport(imageId) as { state: string }).state, 'IndexFinished');
      const lines = layerLines(cold.stderr);
      assert.equal(lines.length, 4, cold.stderr);
      for (const line of lines) assert.equal(line.short, short(diffIds[line.k - 1] as string), line.line);

      const fetches = imageLayerFetches(clair).length;
      const warm = await scanInProcess(['-H', engine.host, '--clair', clair.url, '--format', 'json', REF], { stderrIsTTY: true });
      assert.equal(warm.code, 1, warm.stderr);
      assert.equal(engine.exports(), 1, 'a warm rescan must not call /images/{name}/get');
      assert.equal(warm.stats.saves, 0);
      assert.equal(imageLayerFetches(clair).length, fetches);
      assert.deepEqual(findings(warm), baseline);
    }));
  });

  it('containerd store: Clair gets the gzip and zstd blobs as stored, under their compressed digests', async () => {
    assert.deepEqual([...containerd.compression.values()], ['gzip', 'gzip', 'gzip', 'zstd']);
    await withDouble(async (clair) => withStandin({ saves: [{ path: containerd.path, store: 'containerd' }], engineVersion: '29.0.0', apiVersion: '1.52' }, async (engine) => {
      const cold = await scanInProcess(['-H', engine.host, '--clair', clair.url, '--format', 'json', REF], { stderrIsTTY: true });
      assert.equal(cold.code, 1, cold.stderr);
      assert.equal(engine.exports(), 1);
      const fetched = imageLayerFetches(clair).map((f) => f.digest);
      assert.deepEqual(new Set(fetched), new Set(containerd.layers));
      assert.equal(fetched.length, 4);
      assert.ok(fetched.every((d) => !diffIds.includes(d)), 'compressed digests, not diffIDs');
      const diffIdOf = (layer: string) => containerd.diffIdOf.get(layer) ?? `not a blob of the image: ${layer}`;
      assert.deepEqual(findings(cold, diffIdOf), baseline);
      // The manifest hash is the image ID the daemon reports: the target digest.
      assert.equal((JSON.parse(cold.stdout) as { images: { image: { id: string } }[] }).images[0]?.image.id, containerd.image.id);
      // Blob digests are not in RootFS.Layers: counted in stream order, against the image's layer count.
      assert.deepEqual(layerLines(cold.stderr).map((l) => `${l.k}/${l.n}`), ['1/4', '2/4', '3/4', '4/4'], cold.stderr);

      const warm = await scanInProcess(['-H', engine.host, '--clair', clair.url, '--format', 'json', REF], { stderrIsTTY: true });
      assert.equal(warm.code, 1, warm.stderr);
      assert.equal(engine.exports(), 1, 'a warm rescan must not call /images/{name}/get');
      assert.equal(imageLayerFetches(clair).length, 4);
    }));
  });

  it('a legacy save whose v1 directories the diffIDs do not name: hash pass over a 2nd save, layers from a 3rd, each sent once', async () => {
    const path = await writeLegacySaveWithV1Ids(createReadStream(legacyPath), join(work, 'v1ids'));
    // The premise: reading it with RootFS.Layers alone fails to map its directories.
    await assert.rejects(async () => {
      for await (const event of readSaveArchive(readableChunks(createReadStream(path)), { id: imageId, diffIds })) {
        if (event.kind === 'layer') await drain(event.layer.body);
      }
    }, LegacyLayerMappingError);
    await withDouble(async (clair) => withStandin({ saves: [{ path }], engineVersion: '20.10.24', apiVersion: '1.41' }, async (engine) => {
      const run = await scanInProcess(['-D', '-H', engine.host, '--clair', clair.url, '--format', 'json', REF]);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(engine.exports(), 3);
      assert.equal(run.stats.saves, 3);
      assert.match(run.stderr, /debug: .*: 3 docker save passes: pass 1 stopped \(.*legacy .*directory.*\); pass 2 hashed every layer to map them; pass 3 served the layers/);
      const fetched = imageLayerFetches(clair).map((f) => f.digest);
      assert.deepEqual([...fetched].sort(), [...diffIds].sort(), 'every layer once, none twice across the passes');
      assert.deepEqual(findings(run), baseline);
    }));
  });

  it('a truncated save stream: exit 2, one line naming the truncated entry', async () => {
    const size = (await stat(oci.path)).size;
    await withDouble(async (clair) => withStandin({ saves: [{ path: oci.path, truncateAt: Math.floor(size / 2) }] }, async (engine) => {
      const stdout = new Capture();
      const stderr = new Capture();
      const code = await runCli({ argv: ['-H', engine.host, 'scan', '--clair', clair.url, '--no-progress', REF], env: {}, stdout, stderr });
      assert.equal(code, 2, stderr.text);
      assert.equal(stderr.lines.length, 1, stderr.text);
      assert.match(stderr.text, /^docker-clair: the save archive is truncated: it ends inside entry "blobs\/sha256\/[0-9a-f]{64}"; hint: /);
      assert.equal(stdout.text, '');
      const run = await scanInProcess(['-H', engine.host, '--clair', clair.url, '-q', REF]);
      assert.equal(run.error?.code, 'ARCHIVE_FORMAT');
    }));
  });

  it('a corrupt save stream (one byte flipped inside a layer): exit 2, one line naming the layer and both digests', async () => {
    const size = (await stat(oci.path)).size;
    await withDouble(async (clair) => withStandin({ saves: [{ path: oci.path, corruptAt: Math.floor(size / 2) }] }, async (engine) => {
      const stdout = new Capture();
      const stderr = new Capture();
      const code = await runCli({ argv: ['-H', engine.host, 'scan', '--clair', clair.url, '--no-progress', REF], env: {}, stdout, stderr });
      assert.equal(code, 2, stderr.text);
      assert.equal(stderr.lines.length, 1, stderr.text);
      assert.match(stderr.text, /^docker-clair: layer blobs\/sha256\/[0-9a-f]{64} does not match its digest: expected sha256:[0-9a-f]{64}, the \d+ bytes read hash to sha256:[0-9a-f]{64}; hint: /);
      // Caught by Clair's own digest check: the v4 scan does not hash layers whose digest the entry's name gives.
      const run = await scanInProcess(['-H', engine.host, '--clair', clair.url, '-q', REF]);
      assert.equal(run.error?.code, 'ARCHIVE_FORMAT');
      assert.match(((run.error as Error | undefined)?.cause as Error | undefined)?.message ?? '', /validation failed: got "[0-9a-f]{64}", expected "[0-9a-f]{64}"/);
    }));
  });
});

describe('--input: each format from a file, and from stdin where one pass can do it', { timeout: 600_000 }, () => {
  const formats = () => [
    { name: 'legacy', path: legacyPath, layers: diffIds },
    { name: 'OCI layout', path: oci.path, layers: oci.layers },
    { name: 'containerd store', path: containerd.path, layers: containerd.layers },
  ];
  const diffIdOf = (layer: string) => containerd.diffIdOf.get(layer) ?? layer;
  // No daemon: a socket that does not exist.
  const env = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };

  for (const index of [0, 1, 2]) {
    it(`--input FILE, ${['legacy', 'OCI layout', 'containerd store'][index]}: 2 reads cold (headers, then layers), 1 warm (headers)`, async () => {
      const format = formats()[index];
      assert.ok(format);
      await withDouble(async (clair) => {
        const cold = await scanWithStdin(['--input', format.path, '--clair', clair.url, '--format', 'json'], { env });
        assert.equal(cold.code, 1, cold.stderr);
        assert.equal(cold.stats.saves, 2);
        assert.deepEqual(findings(cold, diffIdOf), baseline);
        assert.deepEqual(new Set(imageLayerFetches(clair).map((f) => f.digest)), new Set(format.layers));
        const doc = JSON.parse(cold.stdout) as { images: { image: { ref: string; id: string } }[] };
        assert.deepEqual(doc.images[0]?.image, { ref: REF, id: imageId, digest: null, source: 'archive' }, 'identity from the archive: RepoTags[0], config digest');
        assert.equal((clair.indexReport(imageId) as { state: string }).state, 'IndexFinished');

        const warm = await scanWithStdin(['--input', format.path, '--clair', clair.url, '--format', 'json'], { env });
        assert.equal(warm.code, 1, warm.stderr);
        assert.equal(warm.stats.saves, 1, 'a warm rescan reads the headers only');
        assert.equal(imageLayerFetches(clair).length, 4);
      });
    });
  }

  for (const index of [0, 1, 2]) {
    it(`--input -, ${['legacy (config before the layers)', 'OCI layout', 'containerd store'][index]}: one pass`, async () => {
      const format = formats()[index];
      assert.ok(format);
      // A legacy stream can be read in one pass only when its config comes first (scan-input.test.ts: the other case).
      if (index === 0) format.path = await writeLegacySaveWithConfig(legacyPath, 'first', join(work, 'legacy-config-first.tar'));
      await withDouble(async (clair) => {
        const run = await scanWithStdin(['--input', '-', '--clair', clair.url, '--format', 'json'], { env, stdin: createReadStream(format.path) });
        assert.equal(run.code, 1, run.stderr);
        assert.equal(run.stats.saves, 1);
        assert.deepEqual(findings(run, diffIdOf), baseline);
        assert.deepEqual(new Set(imageLayerFetches(clair).map((f) => f.digest)), new Set(format.layers));
        const doc = JSON.parse(run.stdout) as { images: { image: { ref: string; id: string } }[] };
        assert.deepEqual(doc.images[0]?.image, { ref: REF, id: imageId, digest: null, source: 'archive' });
      });
    });
  }
});
