// Several images in one `docker clair scan a b c` on Clair v4, against every test engine: the images Clair lacks are
// exported together in one `docker save` (shared layers once, Clair fetching each layer once), the ones it has are
// not exported, and every image gets the findings a scan of it alone gives. Two sibling images (one small layer
// each on the Debian 12 base) are built for it: on a legacy save their top layers name the same parent, the case
// where only the exact top v1 ID (legacyTopV1Id) tells which directory is whose.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { readableChunks } from '../../src/save/chunks.js';
import { legacyTopV1Id } from '../../src/save/legacy-ids.js';
import { readSaveArchive, readSaveArchiveOf, type ArchiveEnd } from '../../src/save/reader.js';
import { dockerCli, TEST_DOCKER_HOST, TEST_IMAGES } from '../helpers/daemon.js';
import { engineCli, engineDocker, imageFacts, saveLayoutOf, testEngines, type TestEngine } from '../helpers/engines.js';
import { imageLayerFetches, withDouble } from '../helpers/layer-fetches.js';
import { scanInProcess, type ScanRun } from '../helpers/scan.js';

const SIBLING_A = 'docker-clair-test/sibling-a:latest';
const SIBLING_B = 'docker-clair-test/sibling-b:latest';
const THREE = [TEST_IMAGES.debian12, SIBLING_A, SIBLING_B];

interface ReportImage {
  image: { ref: string; id: string };
  vulnerabilities: { id: string; package: { name: string } }[];
  packageCount: number;
}

const imagesOf = (run: ScanRun): ReportImage[] => (JSON.parse(run.stdout) as { images: ReportImage[] }).images;
const vulnIds = (image: ReportImage): string[] => [...new Set(image.vulnerabilities.map((v) => `${v.id} ${v.package.name}`))].sort();

async function saveOf(engine: TestEngine, refs: string[]): Promise<Readable> {
  const docker = engineDocker(engine) as unknown as { getImages(opts: { names: string[] }): Promise<unknown> };
  return (await docker.getImages({ names: refs })) as Readable;
}

async function ends(stream: Readable, images: { id: string; diffIds: string[] }[], many: boolean): Promise<{ ends: ArchiveEnd[]; layers: string[] }> {
  const found: ArchiveEnd[] = [];
  const layers: string[] = [];
  const events = many ? readSaveArchiveOf(readableChunks(stream), images) : readSaveArchive(readableChunks(stream), images[0] as { id: string; diffIds: string[] });
  for await (const event of events) {
    if (event.kind === 'end') found.push(event);
    else layers.push(event.layer.digest);
  }
  return { ends: found, layers };
}

describe('several images, one export', () => {
  let context: string;
  before(async () => {
    context = await mkdtemp(join(tmpdir(), 'dc-siblings-'));
    for (const [tag, file] of [[SIBLING_A, 'a.txt'], [SIBLING_B, 'b.txt']] as const) {
      await writeFile(join(context, file), `${tag}\n`);
      await writeFile(join(context, `${file}.Dockerfile`), `FROM ${TEST_IMAGES.debian12}\nCOPY ${file} /opt/${file}\n`);
      execFileSync('docker', ['-H', TEST_DOCKER_HOST, 'build', '-q', '--network', 'none', '-t', tag, '-f', join(context, `${file}.Dockerfile`), context],
        { env: { ...process.env, DOCKER_BUILDKIT: '0' }, stdio: ['ignore', 'ignore', 'inherit'] });
    }
  });
  after(async () => {
    for (const engine of testEngines()) engineCli(engine, ['image', 'rm', '-f', SIBLING_A, SIBLING_B]);
    if (context) await rm(context, { recursive: true, force: true });
  });

  for (const engine of testEngines()) {
    describe(engine.label, { timeout: 300_000 }, () => {
      before(() => {
        if (engine.host === TEST_DOCKER_HOST) return;
        execFileSync('sh', ['-c', 'docker -H "$1" save "$3" "$4" | docker -H "$2" load -q', 'sh', TEST_DOCKER_HOST, engine.host, SIBLING_A, SIBLING_B],
          { stdio: ['ignore', 'ignore', 'inherit'] });
      });

      it('readSaveArchiveOf: each layer of `docker save a b c` once, and each image\'s end as its own save gives it', async () => {
        const facts = THREE.map((ref) => imageFacts(engine, ref));
        const together = await ends(await saveOf(engine, THREE), facts, true);
        assert.equal(together.ends.length, 3);
        const all = new Set(facts.flatMap((f) => f.diffIds));
        assert.deepEqual([...together.layers].sort(), [...all].sort(), 'every layer once, the shared base included');
        for (const [i, ref] of THREE.entries()) {
          const alone = await ends(await saveOf(engine, [ref]), [facts[i] as { id: string; diffIds: string[] }], false);
          const end = together.ends[i] as ArchiveEnd;
          assert.deepEqual(end.layers, alone.ends[0]?.layers, ref);
          assert.deepEqual(end.layers, facts[i]?.diffIds, ref);
          assert.deepEqual(end.repoTags, [ref]);
        }
      });

      if (saveLayoutOf(engine) === 'legacy') {
        it('legacy saves: the top layer\'s directory is the v1 ID computed from its json and the image\'s layers', async () => {
          const work = await mkdtemp(join(tmpdir(), 'dc-legacy-top-'));
          try {
            const file = join(work, 'three.tar');
            engineCli(engine, ['save', '-o', file, ...THREE]);
            const manifest = JSON.parse(execFileSync('tar', ['-xOf', file, 'manifest.json'], { encoding: 'utf8' })) as { RepoTags: string[]; Layers: string[] }[];
            const siblingTops = new Set<string>();
            for (const ref of [...THREE, TEST_IMAGES.multilayer]) {
              const item = manifest.find((m) => m.RepoTags.includes(ref));
              if (!item) continue;
              const dir = (item.Layers.at(-1) as string).split('/')[0] as string;
              const json = execFileSync('tar', ['-xOf', file, `${dir}/json`], { encoding: 'utf8' });
              assert.equal(legacyTopV1Id(json, imageFacts(engine, ref).diffIds), dir, ref);
              // Another image's layers give another ID.
              assert.notEqual(legacyTopV1Id(json, imageFacts(engine, TEST_IMAGES.multilayer).diffIds), dir);
              if (ref !== TEST_IMAGES.debian12) siblingTops.add((JSON.parse(json) as { parent: string }).parent);
            }
            assert.equal(siblingTops.size, 1, 'the siblings\' top layers name the same parent');
          } finally {
            await rm(work, { recursive: true, force: true });
          }
        });
      }

      it('a cold scan of three images: one export, each layer fetched once, each image\'s findings as alone; warm: no export', async () => {
        const env = { DOCKER_HOST: engine.host };
        const facts = THREE.map((ref) => imageFacts(engine, ref));
        await withDouble(async (clair) => {
          const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '-D', ...THREE], { env });
          assert.equal(run.code, 1, run.stderr);
          assert.equal(run.stats.saves, 1, 'one docker save of the three');
          assert.match(run.stderr, /exporting 3 images in one docker save/);
          const fetched = imageLayerFetches(clair).map((f) => f.digest);
          const all = [...new Set(facts.flatMap((f) => f.diffIds))];
          assert.deepEqual([...fetched].sort(), [...all].sort(), 'each layer once, the shared base once');
          const images = imagesOf(run);
          assert.deepEqual(images.map((i) => i.image.ref), THREE);
          assert.deepEqual(images.map((i) => i.image.id), facts.map((f) => f.id));

          const warm = await scanInProcess(['--clair', clair.url, '--format', 'json', ...THREE], { env });
          assert.equal(warm.code, 1, warm.stderr);
          assert.equal(warm.stats.saves, 0, 'Clair has them all: nothing exported');
          assert.equal(imageLayerFetches(clair).length, fetched.length);
          assert.deepEqual(imagesOf(warm).map(vulnIds), images.map(vulnIds));

          for (const [i, ref] of THREE.entries()) {
            const alone = await withDouble((fresh) => scanInProcess(['--clair', fresh.url, '--format', 'json', ref], { env }));
            assert.equal(alone.code, 1, alone.stderr);
            const [image] = imagesOf(alone) as [ReportImage];
            assert.deepEqual(vulnIds(images[i] as ReportImage), vulnIds(image), ref);
            assert.equal(images[i]?.packageCount, image.packageCount, ref);
          }
          assert.ok(vulnIds(images[1] as ReportImage).includes('CVE-2099-0001 libc6'));
        });
      });

      it('images Clair already has are not exported: the others go in one export of their own layers only', async () => {
        const env = { DOCKER_HOST: engine.host };
        const [base, a, b, multi] = [TEST_IMAGES.debian12, SIBLING_A, SIBLING_B, TEST_IMAGES.multilayer].map((ref) => imageFacts(engine, ref));
        await withDouble(async (clair) => {
          const first = await scanInProcess(['--clair', clair.url, '-q', SIBLING_A], { env });
          assert.equal(first.code, 1, first.stderr);
          const before = imageLayerFetches(clair).length;
          const run = await scanInProcess(['--clair', clair.url, '--format', 'json', SIBLING_A, SIBLING_B, TEST_IMAGES.multilayer], { env });
          assert.equal(run.code, 1, run.stderr);
          assert.equal(run.stats.saves, 1);
          const fetched = imageLayerFetches(clair).slice(before).map((f) => f.digest);
          const known = new Set([...(base?.diffIds ?? []), ...(a?.diffIds ?? [])]);
          const expected = [...new Set([...(b?.diffIds ?? []), ...(multi?.diffIds ?? [])])].filter((d) => !known.has(d));
          assert.deepEqual([...fetched].sort(), expected.sort(), 'only the layers Clair lacked, once each');
          assert.deepEqual(imagesOf(run).map((i) => i.image.ref), [SIBLING_A, SIBLING_B, TEST_IMAGES.multilayer]);
        });
      });

      it('an image the daemon lacks is reported on its own; the others are still exported together', async () => {
        const env = { DOCKER_HOST: engine.host };
        await withDouble(async (clair) => {
          const run = await scanInProcess(['--clair', clair.url, '--format', 'json', SIBLING_A, 'docker-clair-test/no-such-image:1', SIBLING_B], { env });
          assert.equal(run.code, 2, run.stderr);
          assert.equal(run.stats.saves, 1);
          assert.match(run.stderr, /docker-clair-test\/no-such-image:1: image "docker-clair-test\/no-such-image:1" not found/);
          const report = JSON.parse(run.stdout) as { images: { image: { ref: string } }[] };
          assert.deepEqual(report.images.map((i) => i.image.ref), [SIBLING_A, 'docker-clair-test/no-such-image:1', SIBLING_B]);
        });
      });
    });
  }
});
