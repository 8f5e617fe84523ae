// Posting an image's layers to Clair v1, parent first, from the save stream.
//
// v1 indexes layer by layer, parent first (`POST /v1/layers` with ParentName; an unknown parent is 400).
// `docker save` delivers layers in tar-name order, which for legacy saves (`<v1id>/layer.tar`) is unrelated to
// the image order. So, reading the save stream:
//   - the layer Clair needs next is piped straight from the stream to Clair (the layer server, as for v4);
//   - a later layer that arrives early is kept in memory if it fits under the cap (--v1-buffer, default
//     256 MiB; the sum of buffered layer sizes never exceeds it), and posted as soon as its parent is known;
//   - a later layer that does not fit is skipped (drained unread) and read again in a further `docker save`
//     pass. Nothing is ever written to disk. Each pass posts at least the layer that was next when it started,
//     so an image of N layers needs at most N passes; with a cap ≥ the image size, always one.
// The known base layers (a shared base) are not sent again.
import type { ClairV1Client } from './client.js';
import { v1LayerNames } from './layer-names.js';
import type * as V1 from './wire.js';
import type { LayerBinding } from '../../layer-server/advertise.js';
import { archiveErrorOf, serveWhile } from '../../layer-server/serve.js';
import { LayerServer } from '../../layer-server/server.js';
import { bufferChunks } from '../../save/chunks.js';
import type { LayerBody, LayerEntry } from '../../save/layer-feed.js';
import type { ArchiveEnd } from '../../save/reader.js';
import { ArchiveFormatError, ClairIndexError, LegacyLayerMappingError } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import type { ProgressSink } from '../../runtime/progress.js';
import type { ImageArchive } from '../../source/archive.js';

export interface V1Indexing {
  archive: ImageArchive;
  clair: ClairV1Client;
  binding: LayerBinding;
  /** A layer server already starting on `binding` (startEarly), used instead of starting one. */
  server?: Promise<LayerServer>;
  log: Logger;
  progress: ProgressSink;
  signal: AbortSignal;
  /** Bytes of out-of-order layers that may be held in memory (--v1-buffer). */
  bufferCap: number;
}

export interface V1Indexed {
  id: string;
  /** The image's layers, base first, as the archive served them. */
  order: string[];
  layersSent: number;
  bytesSent: number;
  /** Clair's words when it refuses the image (422 "not supported"): nothing further was posted. */
  unsupported?: string;
}

/** What an indexing run ends with, whichever way it read the archive: the image's id from the archive's end. */
export function indexedResult(archive: ImageArchive, end: ArchiveEnd | undefined, order: string[], server: LayerServer,
  unsupported: string | undefined): V1Indexed {
  return {
    id: end ? archive.identify(end).id : (archive.id ?? ''), order,
    layersSent: server.stats.layersServed, bytesSent: server.stats.bytesServed,
    ...(unsupported !== undefined ? { unsupported } : {}),
  };
}

/** Posts every layer Clair lacks, parent first, reading the archive as many times as the cap requires. */
export async function indexLayersV1(ctx: V1Indexing, order: string[]): Promise<V1Indexed> {
  const { binding, log, signal } = ctx;
  const next = await knownPrefix(ctx.clair, v1LayerNames(order), signal);
  if (next > 0) log.debug(`Clair v1 already has the first ${next} layer(s): not sent again`);
  const server = await (ctx.server ?? LayerServer.start({ ...binding, signal }));
  log.debug(`layer server on ${server.baseUrl} (${binding.why})`);
  const indexer = new LayerIndexer(ctx, server, order, next);
  try {
    ctx.progress({ stage: 'export', image: ctx.archive.ref, ...(ctx.archive.origin === 'docker save' ? {} : { from: ctx.archive.origin }) });
    await indexer.run();
  } finally {
    indexer.dropBuffers();
    await server.close();
  }
  return indexer.result();
}

/** How many layers, from the base, Clair has already: known layers imply known parents. */
export async function knownPrefix(clair: ClairV1Client, names: readonly string[], signal: AbortSignal): Promise<number> {
  let i = 0;
  while (i < names.length && (await clair.getLayer(names[i] as string, { signal }))) i++;
  return i;
}

/**
 * The POST for layer `i` of an image whose layers Clair names `names`: fetched from `path` with `headers` (v4's
 * multi-valued form, joined as v1 takes one value per name), its parent the layer before it.
 */
export function v1LayerRequest(names: readonly string[], i: number, path: string, headers: Record<string, string[]>): V1.LayerRequest {
  const request: V1.LayerRequest = {
    Name: names[i] as string, Path: path, Headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.join(', ')])), Format: 'Docker',
  };
  if (i > 0) request.ParentName = names[i - 1] as string;
  return request;
}

/** POSTs layer `i` of `order` with `body` on offer at the layer server; Clair's words when it refuses the image. */
export async function postLayerV1(
  ctx: Omit<V1Indexing, 'binding' | 'bufferCap'>, server: LayerServer, order: readonly string[], i: number, body: LayerBody, size: number | undefined,
): Promise<string | undefined> {
  const { archive, clair, signal } = ctx;
  const digest = order[i] as string;
  const request = v1LayerRequest(v1LayerNames(order), i, server.url(digest), server.clairHeaders);
  const served = await serveWhile(server, { digest, body, size }, () => clair.postLayer(request, signal));
  const archiveError = archiveErrorOf(served.outcome);
  if (archiveError) throw archiveError;
  if (!served.ok) throw served.failure;
  if (served.value.kind === 'unsupported') return served.value.message;
  const { outcome } = served;
  ctx.progress({
    stage: 'layer', image: archive.ref, digest, index: i, total: order.length,
    fetched: outcome.served, bytes: outcome.served ? outcome.bytes : 0,
  });
  return undefined;
}

class LayerIndexer {
  private names: string[];
  private readonly buffers = new Map<string, Buffer[]>();
  private buffered = 0;
  private peakBuffered = 0;
  private passes = 0;
  private skipped = 0;
  private end: ArchiveEnd | undefined;
  private unsupported: string | undefined;

  constructor(
    private readonly ctx: V1Indexing,
    private readonly server: LayerServer,
    private order: string[],
    /** The layer Clair needs next (all before it are known to Clair). */
    private next: number,
  ) {
    this.names = v1LayerNames(order);
  }

  /** Passes over the archive until every layer is posted, or Clair refuses the image. */
  async run(): Promise<void> {
    const { archive } = this.ctx;
    while (!this.unsupported && (this.next < this.order.length || this.end === undefined)) {
      const before = this.next;
      this.passes++;
      if (!(await this.readPass())) continue;
      if (this.unsupported) break;
      if (!this.end) throw new ArchiveFormatError('the save stream ended without its manifest');
      if (this.end.layers.join() !== this.order.join()) {
        // The stream named the layers only at its end (containerd-store blobs): now their order is known.
        this.reorder(this.end.layers);
        this.next = await knownPrefix(this.ctx.clair, this.names, this.ctx.signal);
        await this.flush();
        continue;
      }
      await this.flush();
      if (this.next === before && this.next < this.order.length) {
        throw new ClairIndexError(`layer ${this.order[this.next]} of ${archive.ref} was not delivered by ${archive.origin}`);
      }
    }
  }

  dropBuffers(): void {
    this.buffers.clear();
  }

  result(): V1Indexed {
    const { archive, log, bufferCap } = this.ctx;
    log.debug(`Clair v1: ${this.passes} pass(es) over ${archive.origin}; ${this.skipped} layer read(s) skipped for a further pass; ` +
      `at most ${this.peakBuffered} bytes held in memory (--v1-buffer ${bufferCap})`);
    return indexedResult(archive, this.end, this.order, this.server, this.unsupported);
  }

  /** One read of the archive; false when it stopped to map legacy layers (the next pass reads with the map). */
  private async readPass(): Promise<boolean> {
    const { archive, signal, log } = this.ctx;
    try {
      for await (const event of await archive.read(signal)) {
        if (event.kind === 'end') {
          this.end = event;
          continue;
        }
        if (this.unsupported) break; // Clair refuses the image: no further layer can be posted
        await this.arrived(event.layer);
      }
      return true;
    } catch (error) {
      if (!(error instanceof LegacyLayerMappingError) || signal.aborted) throw error;
      log.debug(`${archive.ref}: ${error.message}: mapping the legacy layers with a hash pass`);
      await archive.remap(error, signal);
      this.reorder(archive.layers ?? this.order);
      return false;
    }
  }

  /** A layer as the stream delivers it: posted now, kept for its turn, or left for a further pass. */
  private async arrived({ digest, body, size }: LayerEntry): Promise<void> {
    if (this.buffers.has(digest)) return;
    const inOrder = this.order.includes(digest);
    if (!inOrder && this.ctx.archive.layers) return; // another image's layer (a multi-image archive)
    if (inOrder && this.order[this.next] === digest && this.order.indexOf(digest, this.next + 1) < 0) {
      await this.post(this.next, body, size);
    } else if (!inOrder || this.pendingAt(digest) >= 0) {
      // Early (or, before the order is known, unplaced; or needed twice): keep it if it fits, else read it
      // again later. The layer that is next goes to Clair now in any case.
      if (await this.keep(digest, body, size)) {
        // kept; flush() posts it when its turn comes
      } else if (inOrder && this.order[this.next] === digest) {
        await this.post(this.next, body, size);
      } else {
        this.skipped++;
        this.ctx.log.debug(`layer ${digest} (${size} bytes) arrived before its parent and does not fit in --v1-buffer ` +
          `(${this.buffered} of ${this.ctx.bufferCap} bytes in use): read again in a further pass`);
      }
    }
    await this.flush();
  }

  /** POSTs layer `i` with its bytes on offer at the layer server. */
  private async post(i: number, body: LayerBody, size: number | undefined): Promise<void> {
    const unsupported = await postLayerV1(this.ctx, this.server, this.order, i, body, size);
    if (unsupported !== undefined) this.unsupported = unsupported;
    else this.next = i + 1;
  }

  /** Posts what the buffers hold for the layers that are next; frees what no later layer needs. */
  private async flush(): Promise<void> {
    while (!this.unsupported && this.next < this.order.length) {
      const digest = this.order[this.next] as string;
      const chunks = this.buffers.get(digest);
      if (!chunks) return;
      const size = chunks.reduce((n, c) => n + c.length, 0);
      await this.post(this.next, bufferChunks(chunks), size);
      if (this.pendingAt(digest) < 0) {
        this.buffers.delete(digest);
        this.buffered -= size;
      }
    }
  }

  /** Reads a layer into memory if it fits under the cap (its declared size counts before a byte is read). */
  private async keep(digest: string, body: LayerBody, size: number): Promise<boolean> {
    if (this.buffered + size > this.ctx.bufferCap) return false;
    const chunks: Buffer[] = [];
    this.buffered += size;
    this.peakBuffered = Math.max(this.peakBuffered, this.buffered);
    // Copies: a chunk is valid only until the next read.
    for (let chunk = await body.read(); chunk; chunk = await body.read()) chunks.push(Buffer.from(chunk));
    this.buffers.set(digest, chunks);
    return true;
  }

  /** Where `digest` is still to be posted (from the next layer on), or -1. */
  private pendingAt(digest: string): number {
    return this.order.indexOf(digest, this.next);
  }

  private reorder(order: readonly string[]): void {
    this.order = [...order];
    this.names = v1LayerNames(this.order);
  }
}
