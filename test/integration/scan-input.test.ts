// `docker clair scan --input PATH|-`: a `docker save` archive instead of the daemon (none is reachable in
// these tests). Image selection in multi-image archives, what a file's reads cost (headers first, layers at
// most once), what one pass over stdin can and cannot do, and bad archives. The three formats themselves are
// covered in scan-formats.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { dockerCli, TEST_IMAGES } from '../helpers/daemon.js';
import { scanWithStdin, writeLegacySaveWithConfig, writeLegacySaveWithV1Ids } from '../helpers/engine-standin.js';
import { buildOciLayoutSave, type BuiltSave } from '../helpers/save-archives.js';
import type { ScanRun } from '../helpers/scan.js';
import { imageLayerFetches, withDouble } from '../helpers/layer-fetches.js';

// No daemon: a socket that does not exist. --input must never need one.
const env = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };

let work: string;
let multiPath: string;
let multilayerPath: string;
let oci: BuiltSave;
const ids: Record<keyof typeof TEST_IMAGES, string> = { debian12: '', multilayer: '' };
const layers: Record<keyof typeof TEST_IMAGES, string[]> = { debian12: [], multilayer: [] };

interface JsonImage {
  image: { ref: string; id: string | null };
  verdict: string;
  error?: { message: string; code: string | null };
  vulnerabilities?: { id: string; package: { name: string } }[];
}
const images = (run: ScanRun) => (JSON.parse(run.stdout) as { images: JsonImage[] }).images;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'dc-input-'));
  for (const key of Object.keys(TEST_IMAGES) as (keyof typeof TEST_IMAGES)[]) {
    ids[key] = dockerCli(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGES[key]]);
    layers[key] = JSON.parse(dockerCli(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', TEST_IMAGES[key]])) as string[];
  }
  assert.equal(layers.multilayer[0], layers.debian12[0], 'multilayer is built on debian12');
  multiPath = join(work, 'both.tar');
  dockerCli(['save', '-o', multiPath, TEST_IMAGES.debian12, TEST_IMAGES.multilayer]);
  multilayerPath = join(work, 'multilayer.tar');
  dockerCli(['save', '-o', multilayerPath, TEST_IMAGES.multilayer]);
  oci = await buildOciLayoutSave(createReadStream(multilayerPath), join(work, 'oci'));
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('--input FILE: choosing images in a multi-image archive', { timeout: 300_000 }, () => {
  it('IMAGE selects one image by tag: only its layers are sent, the others are skipped', async () => {
    await withDouble(async (clair) => {
      const run = await scanWithStdin(['--input', multiPath, '--clair', clair.url, '--format', 'json', 'docker-clair-test/debian12'], { env });
      assert.equal(run.code, 1, run.stderr);
      const [only, ...rest] = images(run);
      assert.deepEqual(rest, []);
      assert.deepEqual(only?.image, { ref: 'docker-clair-test/debian12', id: ids.debian12, digest: null, source: 'archive' });
      assert.deepEqual(imageLayerFetches(clair).map((f) => f.digest), layers.debian12);
      assert.equal(run.stats.saves, 2, 'the header walk, then one read');
    });
  });

  it('without IMAGE every image is scanned: one walk, one read per image Clair does not have', async () => {
    await withDouble(async (clair) => {
      const run = await scanWithStdin(['--input', multiPath, '--clair', clair.url, '--format', 'json', '--fail-on', 'none'], { env });
      assert.equal(run.code, 0, run.stderr);
      const byRef = new Map(images(run).map((i) => [i.image.ref, i]));
      assert.deepEqual([...byRef.keys()].sort(), [TEST_IMAGES.debian12, TEST_IMAGES.multilayer]);
      assert.equal(byRef.get(TEST_IMAGES.multilayer)?.image.id, ids.multilayer);
      assert.ok(byRef.get(TEST_IMAGES.multilayer)?.vulnerabilities?.some((v) => v.package.name === 'docker-clair-fixture'));
      assert.equal(run.stats.saves, 3);
      const fetched = imageLayerFetches(clair).map((f) => f.digest);
      assert.deepEqual([...fetched].sort(), [...new Set([...layers.debian12, ...layers.multilayer])].sort(), 'the shared base once');

      const again = await scanWithStdin(['--input', multiPath, '--clair', clair.url, '--format', 'json', '--fail-on', 'none'], { env });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stats.saves, 1, 'both images known to Clair: the header walk only');
    });
  });

  it('IMAGE as an image ID prefix; an absent IMAGE fails naming what the archive holds, the others still scanned', async () => {
    await withDouble(async (clair) => {
      const byId = await scanWithStdin(['--input', multiPath, '--clair', clair.url, '--format', 'json', '-q', ids.multilayer.slice(7, 19)], { env });
      assert.equal(byId.code, 1, byId.stderr);
      assert.equal(images(byId)[0]?.image.id, ids.multilayer);

      const absent = await scanWithStdin(['--input', multiPath, '--clair', clair.url, '-q', 'docker-clair-test/absent:1'], { env });
      assert.equal(absent.code, 2);
      assert.equal(absent.error?.code, 'IMAGE_NOT_FOUND');
      // The archive lists its images in no guaranteed order: check each name on its own.
      assert.match(absent.error?.message ?? '', /^image "docker-clair-test\/absent:1" is not in the archive .*both\.tar \(it holds /);
      assert.match(absent.error?.message ?? '', /docker-clair-test\/debian12:latest sha256:[0-9a-f]{12}/);
      assert.match(absent.error?.message ?? '', /docker-clair-test\/multilayer:latest sha256:[0-9a-f]{12}/);

      const mixed = await scanWithStdin(['--input', multiPath, '--clair', clair.url, '--format', 'json', '-q', 'docker-clair-test/absent:1', TEST_IMAGES.debian12], { env });
      assert.equal(mixed.code, 2);
      const [missing, scanned] = images(mixed);
      assert.equal(missing?.verdict, 'error');
      assert.equal(missing?.error?.code, 'IMAGE_NOT_FOUND');
      assert.equal(scanned?.verdict, 'fail');
    });
  });
});

describe('--input FILE: reads', { timeout: 300_000 }, () => {
  it('a warm rescan reads only tar headers and metadata, whatever the image size', async () => {
    await withDouble(async (clair) => {
      const cold = await scanWithStdin(['--input', multilayerPath, '--clair', clair.url, '-q'], { env });
      assert.equal(cold.code, 1, cold.stderr);
      const warm = await scanWithStdin(['-D', '--input', multilayerPath, '--clair', clair.url, '--no-progress'], { env });
      assert.equal(warm.code, 1, warm.stderr);
      assert.equal(warm.stats.saves, 1);
      const walked = Number(/(\d+) bytes of headers and metadata read/.exec(warm.stderr)?.[1]);
      const size = (await stat(multilayerPath)).size;
      assert.ok(walked > 0 && walked < 64 * 1024, `walk read ${walked} bytes`);
      assert.ok(size > 100e6, `the archive is ${size} bytes`);
      assert.match(warm.stderr, /debug: .*: 1 read of .*multilayer\.tar \(tar headers and metadata: \d+ bytes\)/);
    });
  });

  it('a legacy archive whose v1 directories the diffIDs do not name: mapped by its manifest.json, no hash pass', async () => {
    const path = await writeLegacySaveWithV1Ids(createReadStream(multilayerPath), join(work, 'v1ids'));
    await withDouble(async (clair) => {
      const run = await scanWithStdin(['--input', path, '--clair', clair.url, '--format', 'json'], { env });
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stats.saves, 2);
      assert.deepEqual(imageLayerFetches(clair).map((f) => f.digest).sort(), [...layers.multilayer].sort());
      assert.equal(images(run)[0]?.image.id, ids.multilayer);
    });
  });
});

describe('--input - (and FIFOs): one pass', { timeout: 300_000 }, () => {
  it('a legacy archive whose config comes after its first layer: exit 2 before anything is sent, pointing to a file', async () => {
    const path = await writeLegacySaveWithConfig(multilayerPath, 'last', join(work, 'config-last.tar'));
    await withDouble(async (clair) => {
      const run = await scanWithStdin(['--input', '-', '--clair', clair.url], { env, stdin: createReadStream(path) });
      assert.equal(run.code, 2);
      assert.equal(run.error?.code, 'USAGE');
      assert.match(run.error?.message ?? '', /^cannot scan the legacy \(Engine < 25\) archive on stdin in one pass: its image config comes after its first layer/);
      assert.match(run.error?.hint ?? '', /--input FILE/);
      assert.deepEqual(imageLayerFetches(clair), []);
      // The same archive as a file is fine.
      const file = await scanWithStdin(['--input', path, '--clair', clair.url, '-q'], { env });
      assert.equal(file.code, 1, file.stderr);
    });
  });

  it('warm from stdin: Clair is asked first (legacy, config first); the stream is still read to its end for the reference', async () => {
    const path = await writeLegacySaveWithConfig(multilayerPath, 'first', join(work, 'config-first.tar'));
    await withDouble(async (clair) => {
      const cold = await scanWithStdin(['--input', '-', '--clair', clair.url, '-q'], { env, stdin: createReadStream(path) });
      assert.equal(cold.code, 1, cold.stderr);
      const fetches = imageLayerFetches(clair).length;
      const stdin = createReadStream(path);
      const warm = await scanWithStdin(['--input', '-', '--clair', clair.url, '--format', 'json'], { env, stdin, stderrIsTTY: true });
      assert.equal(warm.code, 1, warm.stderr);
      assert.match(warm.stderr, /Clair already indexed this image/);
      assert.equal(imageLayerFetches(clair).length, fetches);
      assert.equal(stdin.bytesRead, (await stat(path)).size, 'the producer is not cut off');
      assert.deepEqual(images(warm)[0]?.image, { ref: TEST_IMAGES.multilayer, id: ids.multilayer, digest: null, source: 'archive' });
    });
  });

  it('a FIFO is read as a stream, once', async () => {
    const fifo = join(work, 'save.fifo');
    execFileSync('mkfifo', [fifo]);
    await withDouble(async (clair) => {
      const writer = pipeline(createReadStream(oci.path), createWriteStream(fifo));
      const run = await scanWithStdin(['--input', fifo, '--clair', clair.url, '--format', 'json'], { env });
      await writer;
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stats.saves, 1);
      assert.equal(images(run)[0]?.image.id, ids.multilayer);
      assert.deepEqual(new Set(imageLayerFetches(clair).map((f) => f.digest)), new Set(layers.multilayer));
    });
  });

  it('IMAGE with stdin: at most one, and it must be the image on stdin', async () => {
    await withDouble(async (clair) => {
      const two = await scanWithStdin(['--input', '-', '--clair', clair.url, 'a', 'b'], { env, stdin: createReadStream(oci.path) });
      assert.equal(two.code, 2);
      assert.match(two.error?.message ?? '', /holds one image, but 2 images were named/);
      const other = await scanWithStdin(['--input', '-', '--clair', clair.url, '-q', TEST_IMAGES.debian12], { env, stdin: createReadStream(oci.path) });
      assert.equal(other.code, 2);
      assert.equal(other.error?.code, 'IMAGE_NOT_FOUND');
      const named = await scanWithStdin(['--input', '-', '--clair', clair.url, '--format', 'json', 'docker-clair-test/multilayer'], { env, stdin: createReadStream(oci.path) });
      assert.equal(named.code, 1, named.stderr);
      assert.equal(images(named)[0]?.image.ref, 'docker-clair-test/multilayer');
    });
  });
});

describe('--input: bad archives (exit 2, one clear line)', { timeout: 300_000 }, () => {
  const cases: { name: string; make: () => Promise<string>; message: RegExp; code: string }[] = [
    { name: 'a missing file', make: async () => join(work, 'absent.tar'), message: /^cannot read --input .*absent\.tar \(ENOENT\)$/, code: 'USAGE' },
    {
      name: 'not a tar', code: 'ARCHIVE_FORMAT', message: /^not a docker save archive: the input is not a tar file$/,
      make: async () => {
        const path = join(work, 'notes.txt');
        await writeFile(path, 'not a tar at all\n'.repeat(100));
        return path;
      },
    },
    {
      name: 'a gzipped save', code: 'ARCHIVE_FORMAT', message: /^not a docker save archive: the input is gzip-compressed$/,
      make: async () => {
        const path = join(work, 'small.tar.gz');
        const head = Buffer.alloc(64 * 1024);
        const fh = await open(oci.path);
        await fh.read(head, 0, head.length, 0);
        await fh.close();
        await writeFile(path, gzipSync(head));
        return path;
      },
    },
    {
      name: 'a truncated file', code: 'ARCHIVE_FORMAT', message: /^the save archive is truncated: it ends inside entry "[0-9a-f]{64}\/layer\.tar"$/,
      make: async () => {
        const path = join(work, 'truncated.tar');
        const size = (await stat(multilayerPath)).size;
        await copyFile(multilayerPath, path);
        const fh = await open(path, 'r+');
        await fh.truncate(Math.floor(size / 2));
        await fh.close();
        return path;
      },
    },
    {
      name: 'a corrupt layer', code: 'ARCHIVE_FORMAT', message: /^layer [0-9a-f]{64}\/layer\.tar does not match its digest: expected sha256:[0-9a-f]{64}, the \d+ bytes read hash to sha256:[0-9a-f]{64}$/,
      make: async () => {
        const path = join(work, 'corrupt.tar');
        const size = (await stat(multilayerPath)).size;
        await copyFile(multilayerPath, path);
        const fh = await open(path, 'r+');
        const byte = Buffer.alloc(1);
        const at = Math.floor(size / 2);
        await fh.read(byte, 0, 1, at);
        byte[0] = (byte[0] ?? 0) ^ 0xff;
        await fh.write(byte, 0, 1, at);
        await fh.close();
        return path;
      },
    },
  ];
  for (const c of cases) {
    it(`${c.name}`, async () => {
      const path = await c.make();
      await withDouble(async (clair) => {
        const run = await scanWithStdin(['--input', path, '--clair', clair.url, '-q'], { env });
        assert.equal(run.code, 2, run.stderr);
        assert.equal(run.error?.code, c.code, run.error?.message);
        assert.match(run.error?.message ?? '', c.message);
        assert.doesNotMatch(run.error?.message ?? '', /\n/);
      });
    });
  }

  it('not a tar on stdin', async () => {
    const path = join(work, 'notes.txt');
    await withDouble(async (clair) => {
      const run = await scanWithStdin(['--input', '-', '--clair', clair.url, '-q'], { env, stdin: createReadStream(path) });
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.error?.code, 'ARCHIVE_FORMAT');
      assert.match(run.error?.message ?? '', /not a docker save archive: the input is not a tar file/);
    });
  });
});
