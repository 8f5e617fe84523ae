// The two digests of a layer body, taken in one pass: its bytes as stored (what Clair checks) and decompressed
// (its diffID), for gzip and zstd blobs as the containerd store keeps them.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { eachChunk } from '../../src/save/chunks.js';
import type { LayerEntry } from '../../src/save/layer-feed.js';

/** One pass over a layer body: the digest of its bytes as stored (what Clair checks) and decompressed (its diffID). */
export async function digestsOf(layer: LayerEntry): Promise<{ stored: string; diffId: string }> {
  const stored = createHash('sha256');
  const plain = createHash('sha256');
  const sha = (h: ReturnType<typeof createHash>) => `sha256:${h.digest('hex')}`;
  if (layer.compression === 'none') {
    for await (const chunk of eachChunk(layer.body)) {
      stored.update(chunk as Buffer);
      plain.update(chunk as Buffer);
    }
  } else if (layer.compression === 'gzip') {
    const gunzip = createGunzip();
    gunzip.on('data', (chunk: Buffer) => plain.update(chunk));
    const ended = once(gunzip, 'end');
    for await (const chunk of eachChunk(layer.body)) {
      stored.update(chunk as Buffer);
      // Written before the next read: the chunk is valid only until then.
      await new Promise<void>((resolve, reject) => gunzip.write(chunk, (error) => (error ? reject(error) : resolve())));
    }
    gunzip.end();
    await ended;
  } else {
    const zstd = new Decompress((chunk) => {
      plain.update(chunk);
    });
    for await (const chunk of eachChunk(layer.body)) {
      stored.update(chunk as Buffer);
      zstd.push(chunk as Uint8Array);
    }
    zstd.push(new Uint8Array(0), true);
  }
  return { stored: sha(stored), diffId: sha(plain) };
}
