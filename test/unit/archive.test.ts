// readSaveArchive and hashSaveArchive on small synthetic `docker save` archives of all three formats
// (legacy, OCI layout, containerd store), each fed whole and in 1-byte chunks, plus the failure cases: truncated,
// not a tar, wrong digest, no manifest.json, a layer never delivered, an unmappable legacy directory, abandoned
// bodies, abort.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { sniffBlob } from '../../src/save/format.js';
import type { LayerEntry } from '../../src/save/layer-feed.js';
import {
  readSaveArchive as readSaveChunks,
  type ArchiveEnd,
  type ReadSaveArchiveOptions,
  type SaveImage,
} from '../../src/save/reader.js';
import { METADATA_LIMIT } from '../../src/save/tar.js';
import { hashSaveArchive as hashSaveChunks, type HashSaveArchiveOptions } from '../../src/save/hash-pass.js';
import { collectChunks, readableChunks } from '../../src/save/chunks.js';
import { chainIds, LEGACY_EPOCH_CREATED, legacyV1Ids, ZERO_CONTAINER_CONFIG_JSON } from '../../src/save/legacy-ids.js';
import type * as Save from '../../src/save/format.js';
import { ArchiveFormatError, IncompleteArchiveError, LegacyLayerMappingError } from '../../src/runtime/errors.js';
import { chunked, MEDIA, packTar, sha256, type TarSpec, zstdFrame } from '../helpers/save-archives.js';

// The archives here are Node streams: read through readableChunks, as --input - is.
const readSaveArchive = (source: Readable, image: SaveImage, options?: ReadSaveArchiveOptions) =>
  readSaveChunks(readableChunks(source), image, options);
const hashSaveArchive = (source: Readable, options?: HashSaveArchiveOptions) => hashSaveChunks(readableChunks(source), options);

const hex = (digest: string) => digest.slice(digest.indexOf(':') + 1);
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const FEEDS = [['whole', 0], ['1-byte chunks', 1]] as const;

// Three small layers (real tars) and a duplicate of the first.
const layerA = await packTar([
  { name: 'etc/', type: 'directory' },
  { name: 'etc/os-release', data: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' },
]);
const layerB = await packTar([{ name: 'opt/app/hello.txt', data: 'hello, world\n'.repeat(200) }]);
const layerC = await packTar([{ name: 'opt/app/.wh.hello.txt', data: '' }]);

// ---------------------------------------------------------------------------------------------------------------
// Archive builders, shaped as the exporters write each format (moby/moby image/tarexport/save.go, containerd
// core/images/archive/exporter.go).

interface Built {
  archive: Buffer;
  image: SaveImage;
  /** end.layers expected. */
  layers: string[];
  config: string;
}

function imageConfig(diffIds: string[], created = '2026-01-01T00:00:00Z'): Buffer {
  return json({ architecture: 'amd64', os: 'linux', created, rootfs: { type: 'layers', diff_ids: diffIds } });
}

interface LegacyOptions {
  layers: Buffer[];
  /** The top layer's v1 ID (the real one hashes the image's own config: any name will do). */
  topDir?: string;
  /** The epoch as the daemon marshals it. */
  created?: string;
  /** v1 directories to use instead of the computed ones (a daemon whose IDs the formula does not give). */
  dirs?: string[];
  omitLayerOf?: number;
  manifest?: boolean;
  extra?: TarSpec[];
}

/** Engine < 25: `<config>.json`, `<v1id>/{VERSION,json,layer.tar}` (later duplicates as symlinks), manifest.json. */
async function legacySave(o: LegacyOptions): Promise<Built & { dirs: string[] }> {
  const diffIds = o.layers.map((l) => sha256(l));
  const created = o.created ?? LEGACY_EPOCH_CREATED;
  const dirs = o.dirs ?? [...legacyV1Ids(diffIds, { created }), o.topDir ?? 'e'.repeat(64)];
  const config = imageConfig(diffIds);
  const entries: TarSpec[] = [{ name: `${hex(sha256(config))}.json`, data: config }, ...(o.extra ?? [])];
  const first = new Map<string, string>();
  dirs.forEach((dir, i) => {
    const top = i === dirs.length - 1;
    const v1 = {
      id: dir,
      ...(i > 0 ? { parent: dirs[i - 1] } : {}),
      created: top ? '2026-01-01T00:00:00Z' : created,
      container_config: JSON.parse(ZERO_CONTAINER_CONFIG_JSON) as unknown,
      ...(top ? { config: { Cmd: ['bash'] }, architecture: 'amd64' } : {}),
      os: 'linux',
    };
    entries.push({ name: `${dir}/`, type: 'directory' }, { name: `${dir}/VERSION`, data: '1.0' }, { name: `${dir}/json`, data: json(v1) });
    if (i === o.omitLayerOf) return;
    const diffId = diffIds[i] as string;
    const target = first.get(diffId);
    if (target) entries.push({ name: `${dir}/layer.tar`, type: 'symlink', linkname: `../${target}/layer.tar` });
    else {
      first.set(diffId, dir);
      entries.push({ name: `${dir}/layer.tar`, data: o.layers[i] as Buffer });
    }
  });
  if (o.manifest !== false) {
    const manifest: Save.Manifest = [{
      Config: `${hex(sha256(config))}.json`,
      RepoTags: ['example/legacy:1'],
      Layers: dirs.map((d) => `${d}/layer.tar`),
    }];
    entries.push({ name: 'manifest.json', data: `${JSON.stringify(manifest)}\n` });
    entries.push({ name: 'repositories', data: JSON.stringify({ 'example/legacy': { 1: dirs[dirs.length - 1] } }) });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  return {
    archive: await packTar(entries),
    image: { id: sha256(config), diffIds },
    layers: diffIds,
    config: sha256(config),
    dirs,
  };
}

function blobEntries(blobs: Buffer[]): TarSpec[] {
  const unique = new Map(blobs.map((b) => [sha256(b), b]));
  return [
    { name: 'blobs/', type: 'directory' },
    { name: 'blobs/sha256/', type: 'directory' },
    ...[...unique].sort(([a], [b]) => (a < b ? -1 : 1)).map(([d, data]) => ({ name: `blobs/sha256/${hex(d)}`, data })),
  ];
}

/** Engine >= 25 (graphdriver): config, v1 json, layers (by diffID) and the OCI manifest as blobs; then the rest. */
async function ociSave(layers: Buffer[], o: { manifest?: boolean; corrupt?: number } = {}): Promise<Built> {
  const diffIds = layers.map((l) => sha256(l));
  const config = imageConfig(diffIds);
  const v1 = legacyV1Ids(diffIds).map((id, i) => json({ id, created: LEGACY_EPOCH_CREATED, os: 'linux', ...(i ? { parent: 'x' } : {}) }));
  const manifest = json({
    schemaVersion: 2, mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: MEDIA.layerTar, digest: sha256(l), size: l.length })),
  });
  const stored = layers.map((l, i) => {
    if (i !== o.corrupt) return l;
    const bad = Buffer.from(l);
    bad[600] = (bad[600] ?? 0) ^ 0xff; // same size, other bytes: the name no longer matches
    return bad;
  });
  const entries = blobEntries([config, ...v1, manifest]);
  for (const [i, l] of stored.entries()) entries.push({ name: `blobs/sha256/${hex(diffIds[i] as string)}`, data: l });
  entries.push(
    { name: 'index.json', data: json({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.ociManifest, digest: sha256(manifest), size: manifest.length }] }) },
    { name: 'oci-layout', data: '{"imageLayoutVersion": "1.0.0"}' },
    { name: 'repositories', data: '{}' },
  );
  if (o.manifest !== false) {
    entries.push({ name: 'manifest.json', data: json([{ Config: `blobs/sha256/${hex(sha256(config))}`, RepoTags: null, Layers: diffIds.map((d) => `blobs/sha256/${hex(d)}`) }]) });
  }
  const dedup = new Map(entries.map((e) => [e.name, e]));
  return {
    archive: await packTar([...dedup.values()].sort((a, b) => (a.name < b.name ? -1 : 1))),
    image: { id: sha256(config), diffIds },
    layers: diffIds,
    config: sha256(config),
  };
}

type Stored = { data: Buffer; as: 'gzip' | 'zstd' | 'none' };

function store(s: Stored): Buffer {
  return s.as === 'gzip' ? gzipSync(s.data) : s.as === 'zstd' ? zstdFrame(s.data) : s.data;
}

/**
 * containerd store: compressed blobs; the image ID is the target index (image manifest + attestation), and a
 * second image in manifest.json, so the reader must find its image through the blobs.
 */
async function containerdSave(layers: Stored[]): Promise<Built & { stored: Buffer[] }> {
  const stored = layers.map(store);
  const diffIds = layers.map((l) => sha256(l.data));
  const config = imageConfig(diffIds);
  const manifest = json({
    schemaVersion: 2, mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha256(config), size: config.length },
    layers: stored.map((b, i) => ({
      mediaType: layers[i]?.as === 'gzip' ? MEDIA.layerGzip : layers[i]?.as === 'zstd' ? MEDIA.layerZstd : MEDIA.layerTar,
      digest: sha256(b), size: b.length,
    })),
  });
  const statement = json({ _type: 'https://in-toto.io/Statement/v0.1', predicateType: 'https://spdx.dev/Document', subject: [] });
  const attestation = json({
    schemaVersion: 2, mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha256('{}'), size: 2 },
    layers: [{ mediaType: MEDIA.inToto, digest: sha256(statement), size: statement.length }],
  });
  const target = json({
    schemaVersion: 2, mediaType: MEDIA.ociIndex,
    manifests: [
      { mediaType: MEDIA.ociManifest, digest: sha256(manifest), size: manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: MEDIA.ociManifest, digest: sha256(attestation), size: attestation.length, platform: { architecture: 'unknown', os: 'unknown' } },
    ],
  });
  // Another image in the same archive, sharing the first layer.
  const otherLayer = gzipSync(layerB);
  const otherConfig = imageConfig([diffIds[0] as string, sha256(layerB)], '2025-05-05T00:00:00Z');
  const items: Save.Manifest = [
    { Config: `blobs/sha256/${hex(sha256(otherConfig))}`, RepoTags: ['example/other:1'], Layers: [stored[0], otherLayer].map((b) => `blobs/sha256/${hex(sha256(b as Buffer))}`) },
    { Config: `blobs/sha256/${hex(sha256(config))}`, RepoTags: ['example/ctr:1'], Layers: stored.map((b) => `blobs/sha256/${hex(sha256(b))}`) },
  ];
  const entries = [
    ...blobEntries([config, manifest, statement, Buffer.from('{}'), attestation, target, otherConfig, otherLayer, ...stored]),
    { name: 'index.json', data: json({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.ociIndex, digest: sha256(target), size: target.length, annotations: { 'io.containerd.image.name': 'docker.io/example/ctr:1' } }] }) },
    { name: 'manifest.json', data: json(items) },
    { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
  ];
  return {
    archive: await packTar(entries),
    image: { id: sha256(target), diffIds },
    layers: stored.map((b) => sha256(b)),
    config: sha256(config),
    stored,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// A consumer like the layer server: reads each body to its end and checks what it got.

interface Seen extends Omit<LayerEntry, 'body'> {
  bytes: Buffer;
}

const readAll = (body: LayerEntry['body']): Promise<Buffer> => collectChunks(body);

async function collect(source: Readable, image: SaveImage, options?: ReadSaveArchiveOptions): Promise<{ layers: Seen[]; end: ArchiveEnd }> {
  const layers: Seen[] = [];
  let end: ArchiveEnd | undefined;
  for await (const event of readSaveArchive(source, image, options)) {
    assert.equal(end, undefined, 'nothing after the end event');
    if (event.kind === 'end') {
      end = event;
      continue;
    }
    const { body, ...info } = event.layer;
    const bytes = await readAll(body);
    assert.equal(sha256(bytes), info.digest, `${info.tarName}: body bytes hash to the announced digest`);
    assert.equal(bytes.length, info.size);
    layers.push({ ...info, bytes });
  }
  assert.ok(end, 'an end event');
  return { layers, end };
}

/** Runs to the first error, returning it with what came before. */
async function failing(source: Readable, image: SaveImage, options?: ReadSaveArchiveOptions) {
  const layers: string[] = [];
  const bodyErrors: unknown[] = [];
  try {
    for await (const event of readSaveArchive(source, image, options)) {
      if (event.kind === 'end') continue;
      layers.push(event.layer.digest);
      await readAll(event.layer.body).catch((error: unknown) => bodyErrors.push(error));
    }
  } catch (error) {
    return { error, layers, bodyErrors };
  }
  assert.fail('readSaveArchive should have failed');
}

// ---------------------------------------------------------------------------------------------------------------

describe('legacy v1 IDs (moby image/v1/imagev1.go CreateID)', () => {
  // Recorded from `docker save docker-clair-test/multilayer:latest` on the test daemon (Engine 20.10.24): its
  // RootFS.Layers and the names of the 3 non-top `<v1id>/` directories (parent chain checked in their json).
  const diffIds = [
    'sha256:edfe625d3f98aeba634b19d5b58526957e40f74370db1da84ae71ce82a0ef83d',
    'sha256:870833a3dfdb3388bafd0f7521481d534f1a02b79b49d44c220d029676b6187c',
    'sha256:bfeaecac09ef101a249064eb4feec882bd7d5a8c0306a10b9325713dd86afb25',
    'sha256:1778d6d176758491daf3465822bfa1317eced1a038113d329bc547c17eabdf91',
  ];
  const dirs = [
    '22f23e0065196afcb65136e06868c853a6d78f802e4f6f518c83c303cebf4065',
    'e1e1939fc240c9cd3ad61e5628db00948ea3c43c9a7d9b983db67009dd1ed00d',
    '5f44e18c2b589fa458af90990cea412295699973a8b58098ff836cdb85dcc53c',
  ];

  it('computes the directories Engine 20.10 wrote, for all but the top layer', () => {
    assert.deepEqual(legacyV1Ids(diffIds), dirs);
    assert.deepEqual(legacyV1Ids(diffIds.slice(0, 2)), dirs.slice(0, 1));
    assert.deepEqual(legacyV1Ids(diffIds.slice(0, 1)), [], 'a one-layer image has only its top layer');
  });

  it('chains diffIDs as `sha256(chain + " " + diffID)`', () => {
    const chains = chainIds(diffIds);
    assert.equal(chains[0], diffIds[0]);
    assert.equal(chains[1], sha256(`${diffIds[0]} ${diffIds[1]}`));
    assert.equal(chains[3], sha256(`${chains[2]} ${diffIds[3]}`));
  });

  it('depends on the marshalled epoch (a daemon in another time zone names directories differently)', () => {
    assert.notDeepEqual(legacyV1Ids(diffIds, { created: '1970-01-01T01:00:00+01:00' }), dirs);
  });
});

describe('sniffing blobs', () => {
  it('tells layers (gzip, zstd, tar, empty tar) from JSON and other bytes', () => {
    assert.equal(sniffBlob(gzipSync(layerA).subarray(0, 512), 600), 'gzip');
    assert.equal(sniffBlob(zstdFrame(layerA).subarray(0, 512), 600), 'zstd');
    assert.equal(sniffBlob(layerA.subarray(0, 512), layerA.length), 'none');
    assert.equal(sniffBlob(Buffer.alloc(512), 1024), 'none');
    assert.equal(sniffBlob(Buffer.from(' {"schemaVersion":2}'), 20), 'json');
    assert.equal(sniffBlob(Buffer.from('hello'), 5), undefined);
    assert.equal(sniffBlob(Buffer.alloc(512), 512), undefined, 'one zero block is not a tar');
  });

  it('zstdFrame (test helper) writes frames a real decoder reads', () => {
    const big = Buffer.concat([layerA, layerB, Buffer.alloc(300_000, 7)]);
    assert.deepEqual(Buffer.from(zstdDecompress(zstdFrame(big))), big);
    assert.deepEqual(Buffer.from(zstdDecompress(zstdFrame(Buffer.alloc(0)))), Buffer.alloc(0));
  });
});

for (const [feed, size] of FEEDS) {
  const open = (archive: Buffer) => chunked(archive, size || archive.length);

  describe(`readSaveArchive, archive fed ${feed}`, () => {
    it('legacy: computed v1 IDs, top layer left over, symlinked duplicate before its target skipped', async () => {
      const save = await legacySave({ layers: [layerA, layerB, layerC, layerA], topDir: '0'.repeat(64) });
      const names = (await readNames(save.archive));
      const link = names.indexOf(`${'0'.repeat(64)}/layer.tar`);
      assert.ok(link >= 0 && link < names.indexOf(`${save.dirs[0]}/layer.tar`), 'the symlink comes first');
      const { layers, end } = await collect(open(save.archive), save.image);
      assert.equal(layers.length, 3, 'the duplicate is delivered once');
      assert.deepEqual(layers.map((l) => l.tarName), save.dirs.slice(0, 3).sort().map((d) => `${d}/layer.tar`), 'stream (name) order');
      assert.ok(layers.every((l) => l.compression === 'none'));
      assert.deepEqual(new Set(layers.map((l) => l.digest)), new Set(save.layers));
      assert.deepEqual(end, { kind: 'end', format: 'legacy', layers: save.layers, config: save.config, repoTags: ['example/legacy:1'] });
      assert.equal(end.layers[3], end.layers[0], 'image order keeps the duplicate');
    });

    it('legacy: a daemon outside UTC (epoch marshalled with an offset), its top layer first, is still mapped', async () => {
      const save = await legacySave({ layers: [layerA, layerB, layerC], created: '1970-01-01T01:00:00+01:00', topDir: '0'.repeat(64) });
      assert.notDeepEqual(save.dirs.slice(0, 2), legacyV1Ids(save.image.diffIds), 'not the UTC names');
      assert.equal((await readNames(save.archive)).find((n) => n.endsWith('/json')), `${'0'.repeat(64)}/json`, 'the top layer comes first');
      const { layers, end } = await collect(open(save.archive), save.image);
      assert.equal(layers.length, 3);
      assert.deepEqual(end.layers, save.layers);
    });

    it('OCI layout (Engine >= 25): layers are the blobs named by diffIDs; config, v1 json and manifests are not', async () => {
      const save = await ociSave([layerA, layerB, layerC]);
      const { layers, end } = await collect(open(save.archive), save.image);
      assert.deepEqual(layers.map((l) => l.digest), [...save.layers].sort(), 'blobs in name order');
      assert.ok(layers.every((l) => l.compression === 'none' && l.tarName === `blobs/sha256/${hex(l.digest)}`));
      assert.deepEqual(end, { kind: 'end', format: 'oci', layers: save.layers, config: save.config, repoTags: [] });
    });

    it('containerd store: gzip, zstd and plain blobs served as stored; the image found through its index', async () => {
      const save = await containerdSave([{ data: layerA, as: 'gzip' }, { data: layerB, as: 'zstd' }, { data: layerC, as: 'none' }]);
      const { layers, end } = await collect(open(save.archive), save.image);
      const other = sha256(gzipSync(layerB));
      assert.deepEqual(layers.map((l) => l.digest), [...save.layers, other].sort(), 'every layer-like blob, in name order');
      const byDigest = new Map(layers.map((l) => [l.digest, l]));
      assert.equal(byDigest.get(save.layers[0] as string)?.compression, 'gzip');
      assert.equal(byDigest.get(save.layers[1] as string)?.compression, 'zstd');
      assert.equal(byDigest.get(save.layers[2] as string)?.compression, 'none');
      assert.deepEqual(Buffer.from(zstdDecompress(byDigest.get(save.layers[1] as string)?.bytes as Buffer)), layerB);
      assert.deepEqual(end, { kind: 'end', format: 'containerd', layers: save.layers, config: save.config, repoTags: ['example/ctr:1'] });
    });

    it('containerd store without RootFS diffIDs (an --input archive): the plain tar blob is sniffed', async () => {
      const save = await containerdSave([{ data: layerA, as: 'gzip' }, { data: layerC, as: 'none' }]);
      const { layers, end } = await collect(open(save.archive), { id: save.image.id, diffIds: [] });
      assert.equal(layers.find((l) => l.digest === save.layers[1])?.compression, 'none');
      assert.deepEqual(end.layers, save.layers);
    });

    it('a truncated archive: the body in flight and the iterator fail with ArchiveFormatError', async () => {
      const save = await legacySave({ layers: [layerA, layerB] });
      const names = await readNames(save.archive);
      assert.ok(names.length > 3);
      // Cut inside the body of the first layer.tar in the stream.
      const first = save.archive.indexOf(Buffer.from('hello, world'));
      const cut = save.archive.subarray(0, (first > 0 ? first : save.archive.length / 2) + 100);
      const r = await failing(open(cut), save.image);
      assert.ok(r.error instanceof ArchiveFormatError, String(r.error));
      assert.match((r.error as Error).message, /truncated/);
      assert.ok(r.bodyErrors.length === 1 && r.bodyErrors[0] instanceof ArchiveFormatError, 'the body saw the error');
    });

    it('a layer whose bytes do not match its name: the body errors, naming both digests', async () => {
      const save = await ociSave([layerA, layerB], { corrupt: 1 });
      const r = await failing(open(save.archive), save.image);
      assert.ok(r.error instanceof ArchiveFormatError);
      const message = (r.error as Error).message;
      assert.ok(message.includes(save.layers[1] as string), message);
      assert.match(message, /expected sha256:[0-9a-f]{64}, the \d+ bytes read hash to sha256:[0-9a-f]{64}/);
      assert.equal(r.bodyErrors[0], r.error, 'the same error ends the body');
    });

    it("verify: 'guesses': bodies whose digest the entry's name gives are not hashed here, so a corrupt one reaches its consumer", async () => {
      const good = await ociSave([layerA, layerB]);
      assert.ok((await collect(open(good.archive), good.image)).layers.every((l) => l.checked), 'the default hashes every layer');
      const { layers, end } = await collect(open(good.archive), good.image, { verify: 'guesses' });
      assert.ok(layers.every((l) => !l.checked));
      assert.deepEqual(end.layers, good.layers);
      // Clair v4 hashes what it fetches: the archive leaves a corrupt body to it (scan-image-v4 turns Clair's
      // "validation failed" into the same ArchiveFormatError; test/integration/scan-formats.test.ts).
      const bad = await ociSave([layerA, layerB], { corrupt: 1 });
      const bodies: Buffer[] = [];
      let last: ArchiveEnd | undefined;
      for await (const event of readSaveArchive(open(bad.archive), bad.image, { verify: 'guesses' })) {
        if (event.kind === 'end') last = event;
        else bodies.push(await readAll(event.layer.body));
      }
      assert.deepEqual(last?.layers, bad.layers);
      assert.equal(bodies.filter((b) => !bad.layers.includes(sha256(b))).length, 1, 'one body is not what its name says');
    });

    it("verify: 'guesses': a legacy top layer not yet confirmed is still hashed; a wrong guess is still a LegacyLayerMappingError", async () => {
      const save = await legacySave({ layers: [layerA, layerB, layerC], created: '1970-01-01T01:00:00+01:00', topDir: '0'.repeat(64) });
      const { layers, end } = await collect(open(save.archive), save.image, { verify: 'guesses' });
      assert.deepEqual(end.layers, save.layers);
      const top = layers.find((l) => l.tarName === `${'0'.repeat(64)}/layer.tar`);
      assert.equal(top?.checked, true, 'the top layer, first in the stream, is a guess');
      assert.ok(layers.filter((l) => l !== top).every((l) => !l.checked), 'the computed v1 IDs are certain');
      const stranger = '0'.repeat(64);
      const wrong = await legacySave({
        layers: [layerA, layerB],
        extra: [
          { name: `${stranger}/json`, data: json({ id: stranger, parent: 'f'.repeat(64), created: '2020-01-01T00:00:00Z', config: {} }) },
          { name: `${stranger}/layer.tar`, data: layerC },
        ],
      });
      const r = await failing(open(wrong.archive), wrong.image, { verify: 'guesses' });
      assert.ok(r.error instanceof LegacyLayerMappingError, String(r.error));
      assert.match((r.error as Error).message, new RegExp(`legacy directory ${stranger} was taken for the top layer, but it is not`));
    });

    it('no manifest.json: ArchiveFormatError once the stream ends', async () => {
      const save = await ociSave([layerA], { manifest: false });
      const r = await failing(open(save.archive), save.image);
      assert.ok(r.error instanceof ArchiveFormatError);
      assert.match((r.error as Error).message, /no manifest\.json/);
      assert.equal(r.layers.length, 1, 'layers before the end were delivered');
    });

    it('a RootFS layer never delivered', async () => {
      const save = await legacySave({ layers: [layerA, layerB, layerC], omitLayerOf: 1 });
      const r = await failing(open(save.archive), save.image);
      assert.ok(r.error instanceof IncompleteArchiveError, String(r.error));
      assert.equal(r.error.missing, save.layers[1]);
      assert.match(r.error.message, new RegExp(`lacks layer 2 of 3 \\(${save.layers[1]}\\), which its own manifest\\.json lists`));
      assert.doesNotMatch(r.error.hint ?? '', /save the image again/);
    });

    it('not a tar, a gzipped save, and a tar that is no save: ArchiveFormatError', async () => {
      const save = await legacySave({ layers: [layerA] });
      const cases: [Buffer, RegExp][] = [
        [Buffer.from('not a tar at all\n'.repeat(64)), /^not a docker save archive: the input is not a tar file$/],
        [gzipSync(save.archive), /^not a docker save archive: the input is gzip-compressed$/],
      ];
      for (const [input, message] of cases) {
        const r = await failing(open(input), save.image);
        assert.ok(r.error instanceof ArchiveFormatError);
        assert.match((r.error as Error).message, message);
      }
      const r = await failing(open(layerB), save.image);
      assert.match((r.error as Error).message, /not a docker save archive: no manifest\.json/);
    });

    it('legacy: an unknown directory below the top is a LegacyLayerMappingError before any layer', async () => {
      const stranger = '0'.repeat(64);
      const save = await legacySave({
        layers: [layerA, layerB],
        extra: [
          { name: `${stranger}/json`, data: json({ id: stranger, parent: 'f'.repeat(64), created: LEGACY_EPOCH_CREATED }) },
          { name: `${stranger}/layer.tar`, data: layerC },
        ],
      });
      const r = await failing(open(save.archive), save.image);
      assert.ok(r.error instanceof LegacyLayerMappingError, String(r.error));
      assert.match((r.error as Error).message, new RegExp(`legacy directory ${stranger} holds`));
      assert.deepEqual(r.layers, []);
    });

    it('legacy: another image\'s top layer taken for ours: its hash disproves it, as a LegacyLayerMappingError', async () => {
      const stranger = '0'.repeat(64);
      const save = await legacySave({
        layers: [layerA, layerB],
        extra: [
          { name: `${stranger}/json`, data: json({ id: stranger, parent: 'f'.repeat(64), created: '2020-01-01T00:00:00Z', config: {} }) },
          { name: `${stranger}/layer.tar`, data: layerC },
        ],
      });
      const r = await failing(open(save.archive), save.image);
      assert.ok(r.error instanceof LegacyLayerMappingError, String(r.error));
      assert.match((r.error as Error).message, new RegExp(`legacy directory ${stranger} was taken for the top layer, but it is not`));
    });

    it('legacy: another image\'s directory after the top was confirmed is skipped', async () => {
      const stranger = 'f'.repeat(64);
      const save = await legacySave({
        layers: [layerA, layerB],
        topDir: '1'.repeat(64),
        extra: [
          { name: `${stranger}/json`, data: json({ id: stranger, created: '2020-01-01T00:00:00Z', config: {} }) },
          { name: `${stranger}/layer.tar`, data: layerC },
        ],
      });
      const { layers, end } = await collect(open(save.archive), save.image);
      assert.deepEqual(layers.map((l) => l.digest).sort(), [...save.layers].sort());
      assert.deepEqual(end.layers, save.layers);
    });

    it('legacy IDs the formula does not give: mapping error, then a hash pass and a second read', async () => {
      const dirs = ['a', 'b', 'c'].map((c) => c.repeat(64));
      const save = await legacySave({ layers: [layerA, layerB, layerC], dirs });
      const r = await failing(open(save.archive), save.image);
      assert.ok(r.error instanceof LegacyLayerMappingError);
      assert.deepEqual(r.layers, [], 'it fails before any layer is handed out');
      const pass = await hashSaveArchive(open(save.archive));
      assert.deepEqual(pass.image, save.image);
      assert.deepEqual(pass.digests, new Map(dirs.map((d, i) => [`${d}/layer.tar`, save.layers[i] as string])));
      const { layers, end } = await collect(open(save.archive), pass.image, { digests: pass.digests });
      assert.equal(layers.length, 3);
      assert.deepEqual(end.layers, save.layers);
    });

    it('a body the consumer never reads is drained by the iterator; reading it afterwards fails', async () => {
      const save = await legacySave({ layers: [layerA, layerB, layerC] });
      const skipped: LayerEntry['body'][] = [];
      let end: ArchiveEnd | undefined;
      let read = 0;
      for await (const event of readSaveArchive(open(save.archive), save.image)) {
        if (event.kind === 'end') end = event;
        else if (skipped.length < 2) skipped.push(event.layer.body);
        else read += (await readAll(event.layer.body)).length;
      }
      assert.deepEqual(end?.layers, save.layers);
      assert.ok(read > 0);
      for (const body of skipped) await assert.rejects(body.read(), /read past the point where the archive moved on/);
    });

    it('a body the consumer stops reading half-way is drained and still checked', async () => {
      const good = await ociSave([layerA, layerB]);
      const seen: string[] = [];
      for await (const event of readSaveArchive(open(good.archive), good.image)) {
        if (event.kind === 'end') break;
        await event.layer.body.read();
        seen.push(event.layer.digest);
      }
      assert.equal(seen.length, 2);
      const bad = await ociSave([layerA, layerB], { corrupt: 1 });
      await assert.rejects(async () => {
        for await (const event of readSaveArchive(open(bad.archive), bad.image)) {
          if (event.kind === 'layer') await event.layer.body.read();
        }
      }, (error: unknown) => error instanceof ArchiveFormatError && /does not match its digest/.test(error.message));
    });

    it('leaving the loop early destroys the source and fails the body in flight', async () => {
      const save = await ociSave([layerA, layerB]);
      const source = open(save.archive);
      let body: LayerEntry['body'] | undefined;
      for await (const event of readSaveArchive(source, save.image)) {
        if (event.kind === 'layer') body = event.layer.body;
        break;
      }
      await assert.rejects(async () => body?.read(), /stopped before layer .* was complete/);
      assert.ok(source.destroyed);
    });

    it('abort: the body in flight and the iterator fail with the reason; the source is destroyed', async () => {
      const save = await ociSave([layerB, layerA]);
      const source = open(save.archive);
      const controller = new AbortController();
      const reason = new Error('stop here');
      let bodyError: unknown;
      await assert.rejects(async () => {
        for await (const event of readSaveArchive(source, save.image, { signal: controller.signal })) {
          if (event.kind !== 'layer') continue;
          await event.layer.body.read();
          controller.abort(reason);
          await readAll(event.layer.body).catch((error: unknown) => (bodyError = error));
        }
      }, (error: unknown) => error === reason);
      assert.equal(bodyError, reason);
      assert.ok(source.destroyed);
    });
  });
}

describe('readSaveArchive: its source and limits', () => {
  it('a source failing before the first next() does not crash the process; the iterator reports it', async () => {
    const save = await ociSave([layerA, layerB]);
    const source = chunked(save.archive, 100);
    const events = readSaveArchive(source, save.image);
    source.destroy(new Error('ECONNRESET early'));
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(events.next(), (error: unknown) => error instanceof ArchiveFormatError &&
      /^reading the save archive failed at its start: ECONNRESET early$/.test(error.message) &&
      (error.cause as Error).message === 'ECONNRESET early');
  });

  it('a source failing mid-layer: the body and the iterator fail with an ArchiveFormatError naming the entry', async () => {
    const big = await packTar([{ name: 'big.bin', data: Buffer.alloc(4 << 20, 'layer ') }]);
    const save = await ociSave([big]);
    const source = chunked(save.archive, 64 * 1024);
    let bodyError: unknown;
    await assert.rejects(async () => {
      for await (const event of readSaveArchive(source, save.image)) {
        if (event.kind !== 'layer') continue;
        await event.layer.body.read();
        source.destroy(new Error('socket hang up'));
        await readAll(event.layer.body).catch((error: unknown) => (bodyError = error));
      }
    }, (error: unknown) => error instanceof ArchiveFormatError &&
      error.message === `reading the save archive failed at entry "blobs/sha256/${hex(sha256(big))}": socket hang up`);
    assert.ok(bodyError instanceof ArchiveFormatError);
  });

  it('metadata over the 1 MiB limit is not read into memory: an oversized manifest.json is an error', async () => {
    const archive = await packTar([{ name: 'manifest.json', data: Buffer.alloc(METADATA_LIMIT + 1, 0x20) }]);
    await assert.rejects(collect(chunked(archive), { id: 'sha256:x', diffIds: [] }), /manifest\.json is larger than 1048576 bytes/);
  });
});

describe('hashSaveArchive', () => {
  it('gives each format\'s layers, config and diffIDs without being told the image', async () => {
    const legacy = await legacySave({ layers: [layerA, layerB, layerA], topDir: '0'.repeat(64) });
    const oci = await ociSave([layerA, layerB]);
    const ctr = await containerdSave([{ data: layerA, as: 'gzip' }, { data: layerB, as: 'zstd' }]);
    for (const [save, format, image] of [
      [legacy, 'legacy', undefined],
      [oci, 'oci', undefined],
      [ctr, 'containerd', ctr.image.id],
    ] as const) {
      for (const [, size] of FEEDS) {
        const pass = await hashSaveArchive(chunked(save.archive, size || save.archive.length), image ? { image } : {});
        assert.equal(pass.format, format);
        assert.deepEqual(pass.layers, save.layers);
        assert.equal(pass.config, save.config);
        assert.deepEqual(pass.image, { id: save.config, diffIds: save.image.diffIds });
        for (const [name, digest] of pass.digests) assert.ok(save.layers.includes(digest) || format === 'containerd', name);
      }
    }
    // The duplicate's symlink resolves to its target's digest.
    const pass = await hashSaveArchive(chunked(legacy.archive));
    assert.equal(pass.digests.get(`${'0'.repeat(64)}/layer.tar`), legacy.layers[0]);
  });

  it('rejects a blob that does not match its name, and a truncated archive', async () => {
    const bad = await ociSave([layerA, layerB], { corrupt: 0 });
    await assert.rejects(hashSaveArchive(chunked(bad.archive)), /does not match its name/);
    const good = await ociSave([layerA, layerB]);
    await assert.rejects(hashSaveArchive(chunked(good.archive.subarray(0, 3000))),
      (error: unknown) => error instanceof ArchiveFormatError && /truncated/.test(error.message));
  });
});

/** Entry names of a tar, in order (to check how a fixture is laid out). */
async function readNames(archive: Buffer): Promise<string[]> {
  const tar = await import('tar-stream');
  const extract = tar.extract();
  Readable.from([archive]).pipe(extract);
  const names: string[] = [];
  for await (const entry of extract) {
    names.push(entry.header.name);
    entry.resume();
  }
  return names;
}

describe('readSaveArchive on a header whose size is past what can be read exactly', () => {
  it('a base-256 size of 2^88: a clear error, not a wait for data that never comes', async () => {
    const header = Buffer.alloc(512);
    header.write('manifest.json', 0);
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header[124] = 0x81; // base-256 with a high byte tar-stream does not take
    header[135] = 5;
    header.write('00000000000\0', 136);
    header.write('        ', 148);
    header[156] = 0x30;
    header.write('ustar\0', 257);
    header.write('00', 263);
    header.write(`${header.reduce((n, b) => n + b, 0).toString(8).padStart(6, '0')}\0 `, 148);
    const input = Buffer.concat([header, Buffer.alloc(512, 1), Buffer.alloc(1024)]);
    const events = readSaveArchive(Readable.from([input]), { id: 'sha256:'.padEnd(71, '0'), diffIds: [] });
    await assert.rejects(async () => {
      for await (const event of events) void event;
    }, (error: unknown) => error instanceof ArchiveFormatError && /^the save archive is corrupt: a tar header at its start has no valid size$/.test(error.message));
  });
});
