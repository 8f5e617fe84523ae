// readSaveArchive on real images: the test daemon's own `docker save` (legacy format, Engine 20.10) of both test
// images, and the same images rebuilt as Engine >= 25 (OCI layout) and containerd-store saves by
// test/helpers/save-archives.ts. Also checks the legacy v1-ID formula against the daemon's directory names.
// `npm test` starts the daemon and builds the test images first; standalone, run `npm run test-images` before.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import * as tar from 'tar-stream';
import { readSaveArchive, type ArchiveEnd } from '../../src/save/reader.js';
import { hashSaveArchive } from '../../src/save/hash-pass.js';
import { eachChunk, readableChunks } from '../../src/save/chunks.js';
import { LEGACY_EPOCH_CREATED, legacyV1Ids, ZERO_CONTAINER_CONFIG_JSON } from '../../src/save/legacy-ids.js';
import type * as Save from '../../src/save/format.js';
import { TEST_IMAGES, testDocker } from '../helpers/daemon.js';
import { buildContainerdSave, buildOciLayoutSave, type BuiltSave } from '../helpers/save-archives.js';
import { digestsOf } from '../helpers/layer-digests.js';

const docker = testDocker();

interface RealImage {
  ref: string;
  id: string;
  diffIds: string[];
}

async function inspect(ref: string): Promise<RealImage> {
  const info = await docker.getImage(ref).inspect();
  return { ref, id: info.Id, diffIds: info.RootFS?.Layers ?? [] };
}

async function save(ref: string): Promise<Readable> {
  return (await docker.getImage(ref).get()) as unknown as Readable;
}

/** A consumer slower than the daemon: anything that does not hold back the save stream piles up in memory. */
const SLOW_BYTES_PER_MS = 60_000;

/** sha256 of a stream, read to its end (optionally slowly, like Clair on a slow link). */
async function hashOf(stream: AsyncIterable<Buffer | Uint8Array>, slow = false): Promise<{ digest: string; bytes: number }> {
  const hash = createHash('sha256');
  const start = Date.now();
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    bytes += chunk.length;
    const ahead = bytes / SLOW_BYTES_PER_MS - (Date.now() - start);
    if (slow && ahead > 5) await sleep(ahead);
  }
  return { digest: `sha256:${hash.digest('hex')}`, bytes };
}

const images: Record<keyof typeof TEST_IMAGES, RealImage> = {} as Record<keyof typeof TEST_IMAGES, RealImage>;
before(async () => {
  for (const key of Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[]) images[key] = await inspect(TEST_IMAGES[key]);
  assert.equal(images.debian12.diffIds.length, 1);
  assert.equal(images.multilayer.diffIds.length, 4);
});

describe('legacy v1 IDs: the formula against the real daemon', { timeout: 120_000 }, () => {
  for (const key of Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[]) {
    it(`names every non-top directory of ${TEST_IMAGES[key]} as the daemon does`, async () => {
      const image = images[key];
      const extract = tar.extract();
      (await save(image.ref)).pipe(extract);
      const jsons = new Map<string, Save.V1Json>();
      let manifest: Save.Manifest | undefined;
      for await (const entry of extract) {
        const parts: Buffer[] = [];
        const keep = entry.header.name.endsWith('/json') || entry.header.name === 'manifest.json';
        for await (const chunk of entry as AsyncIterable<Buffer>) if (keep) parts.push(chunk);
        if (entry.header.name === 'manifest.json') manifest = JSON.parse(Buffer.concat(parts).toString('utf8')) as Save.Manifest;
        else if (keep) jsons.set(entry.header.name.slice(0, 64), JSON.parse(Buffer.concat(parts).toString('utf8')) as Save.V1Json);
      }
      const dirs = manifest?.[0]?.Layers.map((l) => l.slice(0, 64)) ?? [];
      assert.equal(dirs.length, image.diffIds.length);
      // The chain the daemon wrote: each json names its own directory and the one below.
      dirs.forEach((dir, i) => {
        assert.equal(jsons.get(dir)?.id, dir);
        assert.equal(jsons.get(dir)?.parent, i ? dirs[i - 1] : undefined);
      });
      // Below the top: the zero form whose bytes legacy-ids.ts hashes.
      for (const dir of dirs.slice(0, -1)) {
        const v1 = jsons.get(dir);
        assert.equal(JSON.stringify(v1?.container_config), ZERO_CONTAINER_CONFIG_JSON);
        assert.equal(v1?.created, LEGACY_EPOCH_CREATED, 'the test daemon runs in UTC');
        assert.equal(v1?.config, undefined);
      }
      assert.deepEqual(legacyV1Ids(image.diffIds), dirs.slice(0, -1));
    });
  }
});

describe('readSaveArchive on the real daemon\'s save (legacy format)', { timeout: 180_000 }, () => {
  for (const key of Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[]) {
    it(`delivers every layer of ${TEST_IMAGES[key]} once, with its diffID, in bounded memory`, async (t) => {
      const image = images[key];
      const delivered: string[] = [];
      let streamed = 0;
      let end: ArchiveEnd | undefined;
      const rss0 = process.memoryUsage().rss;
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
      try {
        for await (const event of readSaveArchive(readableChunks(await save(image.ref)), image)) {
          if (event.kind === 'end') {
            end = event;
            continue;
          }
          const { digest, bytes } = await hashOf(eachChunk(event.layer.body), true);
          assert.equal(digest, event.layer.digest, `${event.layer.tarName} hashes to the digest announced before it`);
          assert.equal(bytes, event.layer.size);
          assert.match(event.layer.tarName, /^[0-9a-f]{64}\/layer\.tar$/);
          assert.equal(event.layer.compression, 'none');
          delivered.push(digest);
          streamed += bytes;
        }
      } finally {
        clearInterval(sampler);
      }
      assert.deepEqual([...delivered].sort(), [...new Set(image.diffIds)].sort(), 'every RootFS layer, once');
      assert.deepEqual(end, { kind: 'end', format: 'legacy', layers: image.diffIds, config: image.id, repoTags: [image.ref] });
      assert.ok(streamed > 100e6, `the base layer is large enough to show buffering (${streamed} bytes)`);
      const growth = peak - rss0;
      t.diagnostic(`RSS growth ${(growth / 2 ** 20).toFixed(1)} MiB for ${(streamed / 2 ** 20).toFixed(0)} MiB of layers read at ~60 MB/s`);
      assert.ok(growth < Math.min(64 * 2 ** 20, streamed / 2),
        `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB while ${(streamed / 2 ** 20).toFixed(0)} MiB streamed`);
    });
  }

  it('a hash pass over the real save finds what the daemon reports', async () => {
    const image = images.multilayer;
    const pass = await hashSaveArchive(readableChunks(await save(image.ref)));
    assert.equal(pass.format, 'legacy');
    assert.deepEqual(pass.image, { id: image.id, diffIds: image.diffIds });
    assert.deepEqual(pass.layers, image.diffIds);
    assert.equal(pass.digests.size, image.diffIds.length);
  });
});

describe('readSaveArchive on Engine >= 25 and containerd-store saves of the real images', { timeout: 300_000 }, () => {
  let work: string;
  const built: { key: keyof typeof TEST_IMAGES; save: BuiltSave }[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'dc-archive-'));
    for (const key of Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[]) {
      const ref = TEST_IMAGES[key];
      built.push({ key, save: await buildOciLayoutSave(await save(ref), join(work, `${key}-oci`)) });
      built.push({ key, save: await buildContainerdSave(await save(ref), join(work, `${key}-containerd`)) });
    }
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('built the expected shapes (a zstd blob among gzip ones; the containerd image ID is its index)', () => {
    const ctr = built.find((b) => b.key === 'multilayer' && b.save.format === 'containerd')?.save;
    assert.deepEqual([...(ctr?.compression.values() ?? [])], ['gzip', 'gzip', 'gzip', 'zstd']);
    assert.notEqual(ctr?.image.id, images.multilayer.id);
    const oci = built.find((b) => b.key === 'multilayer' && b.save.format === 'oci')?.save;
    assert.deepEqual(oci?.layers, images.multilayer.diffIds);
  });

  for (const format of ['oci', 'containerd'] as const) {
    for (const key of Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[]) {
      it(`${format}: ${TEST_IMAGES[key]}, every layer as stored, decompressing to its RootFS diffID`, async () => {
        const image = images[key];
        const b = built.find((x) => x.key === key && x.save.format === format)?.save;
        assert.ok(b);
        const delivered = new Map<string, string>();
        let end: ArchiveEnd | undefined;
        for await (const event of readSaveArchive(readableChunks(b.open()), b.image)) {
          if (event.kind === 'end') {
            end = event;
            continue;
          }
          const { layer } = event;
          assert.equal(layer.tarName, `blobs/sha256/${layer.digest.slice(7)}`);
          assert.equal(layer.compression, b.compression.get(layer.digest));
          const { stored, diffId } = await digestsOf(layer);
          assert.equal(stored, layer.digest);
          delivered.set(layer.digest, diffId);
        }
        assert.deepEqual(end, { kind: 'end', format, layers: b.layers, config: image.id, repoTags: [image.ref] });
        assert.deepEqual(b.layers.map((d) => delivered.get(d)), image.diffIds, 'the layers decompress to RootFS.Layers');
        const pass = await hashSaveArchive(readableChunks(b.open()));
        assert.equal(pass.format, format);
        assert.deepEqual(pass.image, { id: image.id, diffIds: image.diffIds });
        assert.deepEqual(pass.layers, b.layers);
      });
    }
  }
});
