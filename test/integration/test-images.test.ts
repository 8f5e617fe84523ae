// Checks the locally built test images (scripts/test-images.sh) on the real daemon, through dockerode.
// `npm test` starts the daemon and builds the images first; standalone, run `npm run test-images` before.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { before, describe, it } from 'node:test';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import type Docker from 'dockerode';
import { testDaemonSocket, testDocker } from '../helpers/daemon.js';

const BASE = 'docker-clair-test/debian12:latest';
const MULTI = 'docker-clair-test/multilayer:latest';
const DELETED_FROM_BASE = '/usr/share/doc/hostname/copyright';
const DELETED_FROM_TREE = '/opt/docker-clair-fixture/delete-me.txt';

const docker = testDocker();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Splits the multiplexed (non-TTY) log stream: 8-byte frame header [stream, 0, 0, 0, size u32be], then the payload.
function demux(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const kind = buf[off];
    const size = buf.readUInt32BE(off + 4);
    const payload = buf.subarray(off + 8, off + 8 + size);
    (kind === 2 ? err : out).push(payload);
    off += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

// Runs cmd in a throwaway container without network (the test daemon runs with --bridge=none).
async function run(image: string, cmd: string[]): Promise<RunResult> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: cmd,
    Tty: false,
    NetworkDisabled: true,
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    const waited = (await container.wait()) as { StatusCode: number };
    const logs = await container.logs({ stdout: true, stderr: true, follow: false });
    return { code: waited.StatusCode, ...demux(logs) };
  } finally {
    await container.remove({ force: true });
  }
}

async function sh(image: string, script: string): Promise<RunResult> {
  return run(image, ['sh', '-c', script]);
}

const norm = (name: string): string => name.replace(/^\.?\//, '');

// Entry names of a tar given as a stream, or null when the stream is not a tar (config/manifest JSON blobs).
async function tarNames(entry: AsyncIterable<Buffer>): Promise<string[] | null> {
  const it = entry[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let len = 0;
  while (len < 512) {
    const r = await it.next();
    if (r.done) break;
    head.push(r.value);
    len += r.value.length;
  }
  const first = Buffer.concat(head);
  const gzip = first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b;
  const plain = first.length >= 512 && first.toString('latin1', 257, 262) === 'ustar';
  async function* all(): AsyncGenerator<Buffer> {
    yield first;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  if (!gzip && !plain) {
    for await (const _ of all()); // drain
    return null;
  }
  let source: NodeJS.ReadableStream = Readable.from(all());
  if (gzip) source = source.pipe(createGunzip());
  const inner = tar.extract();
  source.pipe(inner as unknown as NodeJS.WritableStream);
  const names: string[] = [];
  for await (const e of inner) {
    names.push(norm(e.header.name));
    e.resume();
  }
  return names;
}

// The layers of an image export (any `docker save` format), each as the list of its entry names.
async function exportedLayers(image: string): Promise<string[][]> {
  const stream = await docker.getImage(image).get();
  const outer = tar.extract();
  stream.pipe(outer as unknown as NodeJS.WritableStream);
  const layers: string[][] = [];
  for await (const entry of outer) {
    const name = entry.header.name;
    const candidate = entry.header.type === 'file' && (name.endsWith('/layer.tar') || name.startsWith('blobs/sha256/'));
    if (!candidate) {
      entry.resume();
      continue;
    }
    const names = await tarNames(entry as AsyncIterable<Buffer>);
    if (names) layers.push(names);
  }
  return layers;
}

describe('test images (scripts/test-images.sh)', { timeout: 180_000 }, () => {
  let base: Docker.ImageInspectInfo;
  let multi: Docker.ImageInspectInfo;

  before(async () => {
    await docker.ping().catch((err: unknown) => {
      throw new Error(`no Docker daemon at ${testDaemonSocket()} (scripts/docker-daemon.sh start): ${String(err)}`);
    });
    const inspect = (tag: string) =>
      docker
        .getImage(tag)
        .inspect()
        .catch((err: unknown) => {
          throw new Error(`${tag} is missing; run \`npm run test-images\`: ${String(err)}`);
        });
    base = await inspect(BASE);
    multi = await inspect(MULTI);
  });

  it('has both tags', () => {
    assert.ok(base.RepoTags.includes(BASE), `${BASE} in ${base.RepoTags.join(', ')}`);
    assert.ok(multi.RepoTags.includes(MULTI), `${MULTI} in ${multi.RepoTags.join(', ')}`);
  });

  it('debian12 is a single imported layer of Debian bookworm', async () => {
    assert.equal(base.RootFS.Type, 'layers');
    assert.equal(base.RootFS.Layers?.length, 1);
    assert.deepEqual(base.Config.Cmd, ['bash']);
    const r = await run(BASE, ['cat', '/etc/os-release']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^VERSION_CODENAME=bookworm$/m);
    assert.match(r.stdout, /^ID=debian$/m);
    // The file multilayer deletes really is in the base, so its absence there comes from a whiteout.
    const has = await sh(BASE, `test -f ${DELETED_FROM_BASE}`);
    assert.equal(has.code, 0, `${DELETED_FROM_BASE} should exist in ${BASE}`);
    const lists = await sh(BASE, 'ls /var/lib/apt/lists | grep -v "^partial$" | wc -l');
    assert.equal(lists.stdout.trim(), '0', 'apt lists are removed from the rootfs');
  });

  it('multilayer is the base plus three layers (COPY, dpkg -i, rm)', async () => {
    const layers = multi.RootFS.Layers ?? [];
    assert.equal(layers.length, 4);
    assert.equal(layers[0], base.RootFS.Layers?.[0], 'built on the current debian12');
    assert.equal(new Set(layers).size, 4, 'all layers differ');
    assert.ok(multi.Config.Env?.includes('DOCKER_CLAIR_FIXTURE=multilayer'));
    assert.equal(multi.Config.Labels?.['org.opencontainers.image.title'], 'docker-clair multilayer test image');

    const history = (await docker.getImage(MULTI).history()) as Array<{ CreatedBy: string }>;
    const steps = history.map((h) => h.CreatedBy).join('\n');
    assert.match(steps, /COPY dir:\S+ in \/opt\/docker-clair-fixture\//);
    assert.match(steps, /dpkg -i \/opt\/docker-clair-fixture\/debs\/docker-clair-fixture_1\.2\.3-1_all\.deb/);
    assert.match(steps, /rm \/usr\/share\/doc\/hostname\/copyright/);
  });

  it('multilayer has the local package installed with dpkg', async () => {
    const r = await run(MULTI, ['dpkg-query', '-W', 'docker-clair-fixture']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'docker-clair-fixture\t1.2.3-1');
    const f = await run(MULTI, ['cat', '/usr/share/docker-clair-fixture/fixture.txt']);
    assert.equal(f.stdout, 'docker-clair-fixture 1.2.3-1\n');
    const none = await run(BASE, ['dpkg-query', '-W', 'docker-clair-fixture']);
    assert.notEqual(none.code, 0, 'the base image does not have the fixture package');
  });

  it('multilayer has the copied tree, without the deleted files', async () => {
    const r = await sh(
      MULTI,
      [
        `test ! -e ${DELETED_FROM_BASE} || echo "still there: ${DELETED_FROM_BASE}"`,
        `test ! -e ${DELETED_FROM_TREE} || echo "still there: ${DELETED_FROM_TREE}"`,
        'cat /opt/docker-clair-fixture/data/link-to-file.txt',
        'test -x /opt/docker-clair-fixture/bin/fixture-hello && /opt/docker-clair-fixture/bin/fixture-hello',
      ].join('; '),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'level three\nhello from the docker-clair fixture tree\n');
  });

  it('the export of multilayer holds the deletions as whiteouts in one layer', async () => {
    const layers = await exportedLayers(MULTI);
    assert.equal(layers.length, 4, 'one layer tar per RootFS layer');
    const wh = (p: string) => norm(p.replace(/\/([^/]+)$/, '/.wh.$1'));
    const withWhiteouts = layers.filter((l) => l.includes(wh(DELETED_FROM_BASE)));
    assert.equal(withWhiteouts.length, 1, `exactly one layer has ${wh(DELETED_FROM_BASE)}`);
    assert.ok(withWhiteouts[0]?.includes(wh(DELETED_FROM_TREE)), `same layer has ${wh(DELETED_FROM_TREE)}`);
    assert.ok(
      layers.some((l) => l.includes('usr/share/docker-clair-fixture/fixture.txt')),
      'a layer adds the package files',
    );
  });
});
