// The order in which a legacy (Engine < 25) `docker save` streams an image's layers.
//
// The legacy exporter walks its export directory lexically, and names the layer directories by v1 IDs: the top
// layer's hashes the image config (its `created` changes with every build), the others the layer digests. So
// the order of `<v1id>/layer.tar` in a daemon's save belongs to one build of an image, not to the image. Tests
// whose point is an order write it (splitLegacySave, then write()); tests on the daemon's own save read its
// order (legacyLayerOrder, daemonLayerOrder) and assert what follows from it, naming it (describeOrder).
//
// Orders are image layer indexes (0 = the base) in stream order: [3, 0, 2, 1] streams the top layer first.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import type * as Save from '../../src/save/format.js';
import { testDocker } from './daemon.js';
import { tarFileWriter } from './save-archives.js';

/** `image layers 4, 1, 3, 2` (counted from 1 = the base, as the README does), for messages. */
export function describeOrder(order: readonly number[]): string {
  return `image layers ${order.map((i) => i + 1).join(', ')}`;
}

/**
 * The passes a Clair v1 scan makes over an archive streaming distinct layers in `order` when it can hold none in
 * memory (a --v1-buffer smaller than every layer): each pass posts the layers it meets parent first, starting
 * from the first one Clair lacks (`known`: how many base layers Clair already has, fewer than all).
 */
export function unbufferedV1Passes(order: readonly number[], known = 0): number {
  const at = (layer: number) => order.indexOf(layer);
  let passes = 1;
  for (let layer = known + 1; layer < order.length; layer++) if (at(layer) < at(layer - 1)) passes++;
  return passes;
}

const entryName = (name: string) => name.replace(/^(?:\.?\/)+/, '');

function readTar(source: string | Readable): tar.Extract {
  const stream = typeof source === 'string' ? createReadStream(source) : source;
  const extract = tar.extract();
  stream.on('error', (error: Error) => extract.destroy(error));
  stream.pipe(extract);
  return extract;
}

async function bytesOf(entry: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of entry) parts.push(chunk);
  return Buffer.concat(parts);
}

/** The directory of each of the image's layers, base first, from a one-image legacy manifest.json. */
function layerDirs(manifestJson: Buffer | undefined): string[] {
  const manifest = manifestJson && (JSON.parse(manifestJson.toString('utf8')) as Save.Manifest);
  const item = manifest?.[0];
  if (!item || manifest.length !== 1) throw new Error('legacy-order: expected a legacy save of exactly one image');
  return item.Layers.map((layer) => posix.dirname(entryName(layer)));
}

/** The order in which a legacy save (a file or a stream) delivers the image's layers. */
export async function legacyLayerOrder(save: string | Readable): Promise<number[]> {
  const streamed: string[] = [];
  let manifest: Buffer | undefined;
  for await (const entry of readTar(save)) {
    const name = entryName(entry.header.name);
    if (name.endsWith('/layer.tar')) streamed.push(posix.dirname(name));
    if (name === 'manifest.json') manifest = await bytesOf(entry as AsyncIterable<Buffer>);
    else entry.resume();
  }
  const dirs = layerDirs(manifest);
  return streamed.map((dir) => dirs.indexOf(dir));
}

/** The order of the layers in the test daemon's own `docker save` of `image`. */
export async function daemonLayerOrder(image: string): Promise<number[]> {
  return legacyLayerOrder(await testDocker().getImage(image).get() as Readable);
}

export interface LegacySaveParts {
  /** The order of the save that was split. */
  order: number[];
  /**
   * Writes the save again, the same entries and bodies (headers re-encoded by tar-stream), with its layer
   * directories in `order`, the image config first (as the exporter writes it when its hash sorts first; a
   * legacy stream needs it before the layers), manifest.json and repositories last. Returns `out`.
   */
  write(order: readonly number[], out: string): Promise<string>;
}

/** Splits a one-image legacy save (a file) by directory, spilling the layer bodies to `workDir`. */
export async function splitLegacySave(path: string, workDir: string): Promise<LegacySaveParts> {
  await mkdir(workDir, { recursive: true });
  type Part = { header: tar.Header; body: Buffer | { path: string } };
  const topLevel: Part[] = [];
  const byDir = new Map<string, Part[]>();
  for await (const entry of readTar(path)) {
    const name = entryName(entry.header.name);
    const slash = name.indexOf('/');
    let body: Part['body'];
    if (entry.header.type === 'file' && name.endsWith('/layer.tar')) {
      body = { path: join(workDir, `${posix.dirname(name)}.tar`) };
      await pipeline(entry as AsyncIterable<Buffer>, createWriteStream(body.path));
    } else {
      body = await bytesOf(entry as AsyncIterable<Buffer>);
    }
    if (slash < 0) topLevel.push({ header: entry.header, body });
    else {
      const dir = name.slice(0, slash);
      byDir.set(dir, [...(byDir.get(dir) ?? []), { header: entry.header, body }]);
    }
  }
  const manifest = topLevel.find((p) => entryName(p.header.name) === 'manifest.json');
  const dirs = layerDirs(Buffer.isBuffer(manifest?.body) ? manifest.body : undefined);
  if (dirs.length !== byDir.size || dirs.some((dir) => !byDir.has(dir))) {
    throw new Error(`legacy-order: ${path} holds directories ${[...byDir.keys()].join(', ')}, its manifest names ${dirs.join(', ')}`);
  }
  const isConfig = (p: Part) => /^[0-9a-f]{64}\.json$/.test(entryName(p.header.name));
  return {
    order: [...byDir.keys()].map((dir) => dirs.indexOf(dir)),
    async write(order, out) {
      if ([...order].sort((a, b) => a - b).join() !== dirs.map((_, i) => i).join()) {
        throw new Error(`legacy-order: [${order.join(', ')}] does not order the ${dirs.length} layers`);
      }
      const writer = tarFileWriter(out);
      const parts = [
        ...topLevel.filter(isConfig),
        ...order.flatMap((layer) => byDir.get(dirs[layer] as string) ?? []),
        ...topLevel.filter((p) => !isConfig(p)),
      ];
      for (const part of parts) await writer.add(part.header, part.body);
      await writer.finish();
      return out;
    },
  };
}
