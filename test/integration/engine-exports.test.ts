// Every engine's own `docker save` of the real test images (test/helpers/engines.ts: Debian 12's Engine 20.10,
// and Debian 13's Engine 26 with the classic and with the containerd image store): read by readSaveArchive and the
// hash pass, scanned through the daemon and as `--input` files and streams. On the containerd store also an image
// pulled from a real registry (gzip blobs as the registry served them) and the export Engine 26.1.5 writes without
// the blobs of a pulled image whose layers it already had.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { readableChunks } from '../../src/save/chunks.js';
import { readSaveArchive, type ArchiveEnd } from '../../src/save/reader.js';
import { hashSaveArchive } from '../../src/save/hash-pass.js';
import { IncompleteArchiveError } from '../../src/runtime/errors.js';
import { TEST_IMAGES } from '../helpers/daemon.js';
import { engineCli, engineDocker, imageFacts, saveLayoutOf, testEngines, type TestEngine } from '../helpers/engines.js';
import { digestsOf } from '../helpers/layer-digests.js';
import { imageLayerFetches, withDouble } from '../helpers/layer-fetches.js';
import { pullTestImages, type PulledImages } from '../helpers/pulled-images.js';
import { firstImage, scanInProcess, type ScanRun } from '../helpers/scan.js';

const KEYS = Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[];

async function saveFrom(engine: TestEngine, ref: string): Promise<Readable> {
  return (await engineDocker(engine).getImage(ref).get()) as unknown as Readable;
}

interface Read {
  end: ArchiveEnd;
  /** stored digest -> diffID, per delivered layer. */
  delivered: Map<string, string>;
  compression: Set<string>;
}

async function readAll(stream: Readable, image: { id: string; diffIds: string[] }): Promise<Read> {
  const delivered = new Map<string, string>();
  const compression = new Set<string>();
  let end: ArchiveEnd | undefined;
  for await (const event of readSaveArchive(readableChunks(stream), image)) {
    if (event.kind === 'end') {
      end = event;
      continue;
    }
    assert.notEqual(event.layer.compression, 'zstd', 'no engine here stores zstd layers');
    const { stored, diffId } = await digestsOf(event.layer);
    assert.equal(stored, event.layer.digest, `${event.layer.tarName} hashes to the digest announced before it`);
    assert.ok(!delivered.has(stored), `${stored} delivered twice`);
    delivered.set(stored, diffId);
    compression.add(event.layer.compression);
  }
  assert.ok(end, 'the archive ended');
  return { end, delivered, compression };
}

const vulnIds = (run: ScanRun): string[] => [...new Set(firstImage(run).vulnerabilities.map((v) => `${v.id} ${v.package.name}`))].sort();

for (const engine of testEngines()) {
  describe(`exports of ${engine.label}`, { timeout: 300_000 }, () => {
    let work: string;
    before(async () => {
      work = await mkdtemp(join(tmpdir(), `dc-engine-${engine.name}-`));
    });
    after(async () => {
      if (work) await rm(work, { recursive: true, force: true });
    });

    for (const key of KEYS) {
      it(`${TEST_IMAGES[key]}: readSaveArchive and the hash pass deliver every layer once, as its diffID`, async (t) => {
        const facts = imageFacts(engine, TEST_IMAGES[key]);
        const read = await readAll(await saveFrom(engine, TEST_IMAGES[key]), facts);
        const layout = saveLayoutOf(engine);
        t.diagnostic(`${engine.label}: ${read.end.format} save, layers ${[...read.compression].join('/')}`);
        // Locally built or loaded images are kept uncompressed by every store, so the blobs are the diffIDs.
        assert.equal(read.end.format, layout);
        assert.deepEqual(read.end.layers, facts.diffIds);
        assert.deepEqual([...read.compression], ['none']);
        assert.deepEqual([...read.delivered.keys()].sort(), [...new Set(facts.diffIds)].sort());
        assert.deepEqual(read.end.repoTags, [TEST_IMAGES[key]]);
        if (engine.store === 'classic') assert.equal(read.end.config, facts.id, 'the classic store names images by their config');

        const pass = await hashSaveArchive(readableChunks(await saveFrom(engine, TEST_IMAGES[key])));
        assert.equal(pass.format, layout);
        assert.deepEqual(pass.layers, facts.diffIds);
        assert.deepEqual(pass.image.diffIds, facts.diffIds);
      });
    }

    it('scan through the daemon, --input FILE and --input - give the same findings', async (t) => {
      const file = join(work, 'multilayer.tar');
      engineCli(engine, ['save', '-o', file, TEST_IMAGES.multilayer]);
      const facts = imageFacts(engine, TEST_IMAGES.multilayer);
      const runs: Record<string, ScanRun> = {};
      // A fresh Clair for each, so each one sends every layer.
      runs.daemon = await withDouble((clair) => scanInProcess(['--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer],
        { env: { DOCKER_HOST: engine.host } }).then((run) => {
        assert.deepEqual(imageLayerFetches(clair).map((f) => f.digest).sort(), [...facts.diffIds].sort(), 'every layer fetched once');
        return run;
      }));
      runs.file = await withDouble((clair) => scanInProcess(['--clair', clair.url, '--format', 'json', '--input', file], { daemon: false }));
      const stdin = await withDouble((clair) => scanInProcess(['--clair', clair.url, '--format', 'json', '--input', '-'],
        { daemon: false, stdin: createReadStream(file) }));
      for (const [how, run] of Object.entries(runs)) assert.equal(run.code, 1, `${how}: ${run.stderr}`);
      const expected = vulnIds(runs.daemon as ScanRun);
      assert.ok(expected.includes('CVE-2099-0013 docker-clair-fixture'), expected.join(', '));
      assert.deepEqual(vulnIds(runs.file as ScanRun), expected);
      // OCI-layout layers are named by their digest, so one pass over a stream works in any order. A legacy
      // save's layers can be identified as they pass only after the image config, and where the config lands
      // follows the build-dependent config digest and v1 IDs: each outcome is right for its order.
      const entries = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
      const configAt = entries.findIndex((n) => /^[0-9a-f]{64}\.json$/.test(n));
      const firstLayerAt = entries.findIndex((n) => /\/layer\.tar$/.test(n));
      t.diagnostic(`save order: config at ${configAt}, first layer.tar at ${firstLayerAt}; stdin exit ${stdin.code}`);
      if (saveLayoutOf(engine) === 'legacy' && configAt > firstLayerAt) {
        assert.equal(stdin.code, 2, stdin.stderr);
        assert.match(stdin.stderr, /image config comes after its first layer/);
      } else {
        assert.equal(stdin.code, 1, stdin.stderr);
        assert.deepEqual(vulnIds(stdin), expected);
      }
      assert.equal(firstImage(runs.daemon as ScanRun).packageCount, firstImage(runs.file as ScanRun).packageCount);
    });

    if (engine.store === 'containerd') {
      describe('images pulled from a registry', () => {
        let pulled: PulledImages;
        before(async () => {
          pulled = await pullTestImages(engine);
        });
        after(async () => {
          await pulled?.close();
        });

        it('gzip blobs as the registry served them, read as stored and decompressing to the diffIDs', async () => {
          const facts = imageFacts(engine, pulled.gzip);
          const read = await readAll(await saveFrom(engine, pulled.gzip), facts);
          assert.equal(read.end.format, 'containerd');
          assert.deepEqual([...read.compression], ['gzip']);
          assert.equal(read.end.layers.length, facts.diffIds.length);
          assert.deepEqual(read.end.layers.map((d) => read.delivered.get(d)), facts.diffIds, 'each blob decompresses to its diffID');
          const pass = await hashSaveArchive(readableChunks(await saveFrom(engine, pulled.gzip)));
          assert.equal(pass.format, 'containerd');
          assert.deepEqual(pass.layers, read.end.layers);
        });

        it('a scan through the daemon and of its saved file: Clair fetches the gzip blobs, same findings', async () => {
          const facts = imageFacts(engine, pulled.gzip);
          const stored = (await readAll(await saveFrom(engine, pulled.gzip), facts)).end.layers;
          const file = join(work, 'pulled.tar');
          engineCli(engine, ['save', '-o', file, pulled.gzip]);
          const daemon = await withDouble(async (clair) => {
            const run = await scanInProcess(['--clair', clair.url, '--format', 'json', pulled.gzip], { env: { DOCKER_HOST: engine.host } });
            const fetches = imageLayerFetches(clair);
            assert.deepEqual(fetches.map((f) => f.digest).sort(), [...stored].sort(), 'the blobs as stored');
            assert.deepEqual(new Set(fetches.map((f) => f.compression)), new Set(['KindGzip']), 'Clair sniffed gzip in every layer it fetched');
            return run;
          });
          const input = await withDouble((clair) => scanInProcess(['--clair', clair.url, '--format', 'json', '--input', file], { daemon: false }));
          assert.equal(daemon.code, 1, daemon.stderr);
          assert.equal(input.code, 1, input.stderr);
          assert.ok(vulnIds(daemon).includes('CVE-2099-0001 libc6'), vulnIds(daemon).join(', '));
          assert.deepEqual(vulnIds(input), vulnIds(daemon));
        });

        it('an export lacking the blobs its manifest lists: the daemon\'s export is named incomplete, with the engine and the blob', async () => {
          const facts = imageFacts(engine, pulled.incomplete);
          let missing = '';
          await assert.rejects(readAll(await saveFrom(engine, pulled.incomplete), facts), (error: unknown) => {
            assert.ok(error instanceof IncompleteArchiveError, String(error));
            assert.match(error.missing ?? '', /^sha256:[0-9a-f]{64}$/);
            missing = error.missing ?? '';
            return true;
          });
          // The docker CLI's own save succeeds and writes the same archive: the daemon reports no error of its own.
          const file = join(work, 'incomplete.tar');
          engineCli(engine, ['save', '-o', file, pulled.incomplete]);
          const entries = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
          assert.ok(entries.includes('manifest.json'), entries.join(', '));
          assert.ok(!entries.includes(`blobs/sha256/${missing.slice('sha256:'.length)}`), entries.join(', '));
          const run = await withDouble((clair) => scanInProcess(['--clair', clair.url, pulled.incomplete], { env: { DOCKER_HOST: engine.host } }));
          assert.equal(run.code, 2, run.stderr);
          const message = `${run.error?.message ?? ''}; hint: ${run.error?.hint ?? ''}`;
          assert.match(message, new RegExp(`export of ${pulled.incomplete.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is incomplete`));
          assert.match(message, new RegExp(`Docker Engine ${engine.version.replace(/[.+]/g, '\\$&')} \\(containerd image store\\)`));
          assert.match(message, /left out sha256:[0-9a-f]{64}/);
          assert.match(message, /pull it again/);
          assert.doesNotMatch(message, /save (the image )?again/);
        });
      });
    }
  });
}
