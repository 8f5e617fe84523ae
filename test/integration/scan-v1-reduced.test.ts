// Clair v1's default mode: one read of the save, whatever order it delivers the layers in, each layer reduced to
// the files Clair 1.x/2.x reads. The double's v1 mode extracts only those files, as Clair does, so the findings
// must be the same as with whole layers (--v1-full-layers), for every test image and every engine's save format.
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { v1LayerNames } from '../../src/clair/v1/layer-names.js';
import { TEST_IMAGES } from '../helpers/daemon.js';
import { engineCli, imageFacts, testEngines } from '../helpers/engines.js';
import { describeOrder, splitLegacySave, type LegacySaveParts } from '../helpers/legacy-order.js';
import { buildContainerdSave, buildOciLayoutSave } from '../helpers/save-archives.js';
import { firstImage, scanInProcess, type ScanRun } from '../helpers/scan.js';
import { withV1Double } from '../helpers/layer-fetches.js';

const KEYS = Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[];
const NO_DAEMON = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };

/** What a report says about an image, in a stable order: every finding, and the package count. */
function findings(run: ScanRun): { packageCount: number; rows: string[] } {
  const image = firstImage(run);
  const rows = image.vulnerabilities.map((v) => [v.id, v.severity, v.package.name, v.package.version, v.fixedIn, v.layer].join(' '));
  return { packageCount: image.packageCount, rows: rows.sort() };
}

/** A cold scan of `args` on a fresh v1 double, with the layers it fetched. */
const coldScan = (args: string[], options: Parameters<typeof scanInProcess>[1] = {}) => withV1Double(async (clair) => {
  const run = await scanInProcess(['--clair', clair.url, '--clair-api', 'v1', '--debug', '--format', 'json', ...args], options);
  return { run, fetched: clair.layerFetches.map((f) => ({ name: f.digest, bytes: f.bytes })) };
});

for (const engine of testEngines()) {
  describe(`Clair v1, reduced vs whole layers: ${engine.label}`, { timeout: 300_000 }, () => {
    for (const key of KEYS) {
      it(`${TEST_IMAGES[key]}: the same findings with and without --v1-full-layers; one docker save`, async (t) => {
        const facts = imageFacts(engine, TEST_IMAGES[key]);
        const env = { env: { DOCKER_HOST: engine.host } };
        const reduced = await coldScan([TEST_IMAGES[key]], env);
        const full = await coldScan(['--v1-full-layers', TEST_IMAGES[key]], env);
        for (const { run } of [reduced, full]) assert.ok(run.code === 1, run.stderr);
        assert.equal(reduced.run.stats.saves, 1, 'one docker save');
        assert.match(reduced.run.stderr, /Clair v1: one pass over docker save \(1 read\(s\)\)/);
        assert.deepEqual(findings(reduced.run), findings(full.run));
        assert.ok(findings(reduced.run).rows.length > 0);
        const names = reduced.fetched.map((f) => f.name);
        assert.equal(names.length, facts.diffIds.length, 'every layer posted once');
        assert.deepEqual(names, full.fetched.map((f) => f.name), 'the same layers, parent first');
        const sent = (x: typeof reduced) => x.fetched.reduce((n, f) => n + f.bytes, 0);
        t.diagnostic(`${engine.label} ${TEST_IMAGES[key]}: ${sent(full)} bytes as whole layers, ${sent(reduced)} reduced`);
        assert.ok(sent(reduced) < sent(full) / 10, 'the reduced layers are a small part of the image');
      });
    }
  });
}

describe('Clair v1, reduced layers: one read of a file or a stream, any layer order', () => {
  let work: string;
  let parts: LegacySaveParts;
  let expected: ReturnType<typeof findings>;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'docker-clair-v1-reduced-'));
    const legacy = join(work, 'multilayer.tar');
    engineCli(testEngines()[0]!, ['save', '-o', legacy, TEST_IMAGES.multilayer]);
    parts = await splitLegacySave(legacy, join(work, 'parts'));
    expected = findings((await coldScan(['--v1-full-layers', TEST_IMAGES.multilayer])).run);
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const order of [[0, 1, 2, 3], [0, 2, 3, 1], [3, 2, 1, 0], [1, 3, 0, 2]]) {
    it(`a legacy save streaming ${describeOrder(order)}: a file read once (after its header walk), stdin once`, async () => {
      const path = await parts.write(order, join(work, `order-${order.join('')}.tar`));
      const names = v1LayerNames(imageFacts(testEngines()[0]!, TEST_IMAGES.multilayer).diffIds);
      const file = await coldScan(['--input', path], { daemon: false, env: NO_DAEMON });
      assert.equal(file.run.code, 1, file.run.stderr);
      assert.equal(file.run.stats.saves, 2, 'the header walk, then one read of the layers');
      assert.deepEqual(file.fetched.map((f) => f.name), names, 'parent first');
      assert.deepEqual(findings(file.run), expected);
      const stdin = await coldScan(['--input', '-'], { daemon: false, env: NO_DAEMON, stdin: createReadStream(path) });
      assert.equal(stdin.run.code, 1, stdin.run.stderr);
      assert.equal(stdin.run.stats.saves, 1);
      assert.match(stdin.run.stderr, /Clair v1: one pass over stdin \(1 read\(s\)\)/);
      assert.deepEqual(stdin.fetched.map((f) => f.name), names, 'parent first');
      assert.deepEqual(findings(stdin.run), expected);
    });
  }

  it('OCI-layout and containerd-store (gzip) archives, from a file and from stdin: one read each, the same findings', async () => {
    const legacy = join(work, 'multilayer.tar');
    const builds = [
      await buildOciLayoutSave(createReadStream(legacy), join(work, 'oci')),
      await buildContainerdSave(createReadStream(legacy), join(work, 'containerd'), { zstdLayers: [] }),
    ];
    for (const build of builds) {
      const file = await coldScan(['--input', build.path], { daemon: false, env: NO_DAEMON });
      const stdin = await coldScan(['--input', '-'], { daemon: false, env: NO_DAEMON, stdin: createReadStream(build.path) });
      for (const [how, scan, reads] of [['file', file, 2], ['stdin', stdin, 1]] as const) {
        assert.equal(scan.run.code, 1, `${build.format} ${how}: ${scan.run.stderr}`);
        assert.equal(scan.run.stats.saves, reads, `${build.format} ${how}`);
        assert.deepEqual(scan.fetched.map((f) => f.name), v1LayerNames(build.layers), `${build.format} ${how}`);
        const got = findings(scan.run);
        // The containerd store's layers are its gzip blobs: their digests name the introducing layer.
        assert.equal(got.packageCount, expected.packageCount, `${build.format} ${how}`);
        assert.deepEqual(got.rows.map((r) => r.split(' ').slice(0, 5).join(' ')), expected.rows.map((r) => r.split(' ').slice(0, 5).join(' ')));
      }
    }
  });
});
