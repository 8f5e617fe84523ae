// Posting an image's layers to Clair v1 in one pass, whatever order the save stream delivers them in (the default;
// --v1-full-layers uses index-layers.ts instead).
//
// Clair v1 reads only a fixed list of files from a layer (clair-files.ts), and needs layers parent first, while
// `docker save` delivers them in tar-name order. So as each layer streams by it is reduced to the entries Clair
// reads (reduce-layer.ts: a small valid tar). Clair v1 checks no digest itself, so an --input archive (a file
// from anywhere) has every layer hashed against its digest as it streams; a daemon's export is taken as the
// daemon's own copy, as `docker save` takes it, and only a digest that is a guess (a legacy top layer) is hashed:
// hashing is most of the reader's CPU (~0.6 CPU-s per GB), on the cores dockerd needs for the export. The
// reduced layers are posted from memory, parent first, as soon as their parents are known to Clair. Memory is the
// reduced layers only (tens of KiB to a few MiB per layer), so there is never a further pass for lack of it.
import { clairV1Reads } from './clair-files.js';
import { indexedResult, knownPrefix, postLayerV1, type V1Indexed, type V1Indexing } from './index-layers.js';
import { v1LayerNames } from './layer-names.js';
import { NotATarError, reduceLayer } from './reduce-layer.js';
import { LayerServer } from '../../layer-server/server.js';
import { bufferChunks } from '../../save/chunks.js';
import type { LayerEntry } from '../../save/layer-feed.js';
import type { ArchiveEnd } from '../../save/reader.js';
import type { ArchiveEvents } from '../../source/archive.js';
import { ArchiveFormatError, ClairIndexError, LegacyLayerMappingError } from '../../runtime/errors.js';

export type V1ReducedIndexing = Omit<V1Indexing, 'bufferCap'>;

/** Posts every layer Clair lacks, parent first, each reduced to what Clair v1 reads, in one read of the archive. */
export async function indexReducedV1(ctx: V1ReducedIndexing, order: string[]): Promise<V1Indexed> {
  const { binding, log, signal, archive } = ctx;
  // The export is asked for first (the caller knows Clair lacks the top layer, so it is needed): the daemon
  // prepares it while Clair says which base layers it has and the layer server starts. No layer is read before
  // both; a failure of either closes the export.
  const stopExport = new AbortController();
  const readSignal = AbortSignal.any([signal, stopExport.signal]);
  const firstRead = archive.read(readSignal, { verify: verifyOf(archive) });
  firstRead.catch(() => undefined); // awaited by the first read below
  const known = knownPrefix(ctx.clair, v1LayerNames(order), signal);
  known.catch(() => undefined); // awaited below once the server runs
  let server: LayerServer;
  try {
    server = await (ctx.server ?? LayerServer.start({ ...binding, signal }));
  } catch (error) {
    stopExport.abort(error);
    throw error;
  }
  log.debug(`layer server on ${server.baseUrl} (${binding.why})`);
  const indexer = new ReducedIndexer(ctx, server, order);
  try {
    await indexer.start(known);
    ctx.progress({ stage: 'export', image: archive.ref, ...(archive.origin === 'docker save' ? {} : { from: archive.origin }) });
    await indexer.run(firstRead);
  } catch (error) {
    stopExport.abort(error);
    throw error;
  } finally {
    indexer.reduced.clear();
    await server.close();
  }
  return indexer.result();
}

/** A daemon's export is the daemon's own copy: only guessed digests are hashed; an archive from anywhere, all. */
const verifyOf = (archive: V1ReducedIndexing['archive']): 'guesses' | 'all' => (archive.origin === 'docker save' ? 'guesses' : 'all');

class ReducedIndexer {
  /** Reduced layers not yet posted (or needed again further up), by digest. */
  readonly reduced = new Map<string, Buffer>();
  private next = 0;
  private reads = 0;
  private held = 0;
  private peakHeld = 0;
  private wholeBytes = 0;
  private end: ArchiveEnd | undefined;
  private unsupported: string | undefined;
  /** The posts in flight, one after another, while the stream is read on; and the first that failed. */
  private posting: Promise<void> = Promise.resolve();
  private postFailure: { error: unknown } | undefined;

  constructor(private readonly ctx: V1ReducedIndexing, private readonly server: LayerServer, private order: string[]) {}

  async start(known: Promise<number>): Promise<void> {
    this.next = await known;
    if (this.next > 0) this.ctx.log.debug(`Clair v1 already has the first ${this.next} layer(s): not sent again`);
  }

  /** One read of the archive, already asked for (a second only when legacy layers must first be mapped by a hash pass). */
  async run(firstRead: Promise<ArchiveEvents>): Promise<void> {
    const { archive, signal, log } = this.ctx;
    let started: Promise<ArchiveEvents> | undefined = firstRead;
    for (;;) {
      try {
        const events = started ?? archive.read(signal, { verify: verifyOf(archive) });
        started = undefined;
        await this.readOnce(events);
        break;
      } catch (error) {
        if (!(error instanceof LegacyLayerMappingError) || signal.aborted) throw error;
        log.debug(`${archive.ref}: ${error.message}: mapping the legacy layers with a hash pass`);
        await archive.remap(error, signal);
        this.order = [...(archive.layers ?? this.order)];
        this.next = Math.min(this.next, await knownPrefix(this.ctx.clair, v1LayerNames(this.order), signal));
      }
    }
    if (this.unsupported) return;
    if (!this.end) throw new ArchiveFormatError('the save stream ended without its manifest');
    if (this.end.layers.join() !== this.order.join()) {
      // The stream named the layers only at its end (containerd-store blobs): now their order is known.
      this.order = [...this.end.layers];
      this.next = await knownPrefix(this.ctx.clair, v1LayerNames(this.order), signal);
      await this.flush();
    }
    if (!this.unsupported && this.next < this.order.length) {
      throw new ClairIndexError(`layer ${this.order[this.next]} of ${archive.ref} was not delivered by ${archive.origin}`);
    }
  }

  result(): V1Indexed {
    const { archive, log } = this.ctx;
    log.debug(`Clair v1: one pass over ${archive.origin} (${this.reads} read(s)), layers reduced to the files Clair v1 reads: ` +
      `${this.wholeBytes} layer bytes read, at most ${this.peakHeld} bytes held in memory`);
    return indexedResult(archive, this.end, this.order, this.server, this.unsupported);
  }

  private async readOnce(events: Promise<ArchiveEvents>): Promise<void> {
    this.reads++;
    try {
      for await (const event of await events) {
        if (event.kind === 'end') {
          this.end = event;
          continue;
        }
        // Clair refuses the image, or a post failed: no further layer can be posted
        if (this.unsupported || this.postFailure) break;
        await this.arrived(event.layer);
        this.schedulePosts();
      }
    } finally {
      await this.posting;
    }
    if (this.postFailure) throw this.postFailure.error;
  }

  /**
   * Posts what is ready once the posts before it are through, while the stream is read on: a post waits for Clair
   * to fetch and index the layer, and the daemon's export would wait with it.
   */
  private schedulePosts(): void {
    this.posting = this.posting.then(() => this.flush()).catch((error: unknown) => {
      this.postFailure ??= { error };
    });
  }

  /** A layer as the stream delivers it: reduced and held for its turn, or left (read and hashed) when not needed. */
  private async arrived({ digest, body, compression, size }: LayerEntry): Promise<void> {
    const at = this.order.indexOf(digest);
    const placed = this.ctx.archive.layers !== undefined || this.end !== undefined;
    if (this.reduced.has(digest)) return;
    if (at < 0 && placed) return; // another image's layer (a multi-image archive)
    if (at >= 0 && this.order.lastIndexOf(digest) < this.next) return; // Clair has it
    let tar: Buffer;
    try {
      tar = await reduceLayer(body, compression, clairV1Reads);
    } catch (error) {
      if (!(error instanceof NotATarError)) throw error;
      throw new ClairIndexError(`layer ${digest} of ${this.ctx.archive.ref} is not a tar archive Clair v1 can read: ${error.message}`);
    }
    this.wholeBytes += size;
    this.reduced.set(digest, tar);
    this.held += tar.length;
    this.peakHeld = Math.max(this.peakHeld, this.held);
    this.ctx.log.debug(`layer ${digest}: ${size} bytes reduced to ${tar.length} for Clair v1`);
  }

  /** Posts the held layers that are next, from memory; frees what no later layer needs. */
  private async flush(): Promise<void> {
    while (!this.unsupported && !this.postFailure && this.next < this.order.length) {
      const digest = this.order[this.next] as string;
      const tar = this.reduced.get(digest);
      if (!tar) return;
      const unsupported = await postLayerV1(this.ctx, this.server, this.order, this.next, bufferChunks([tar]), tar.length);
      if (unsupported !== undefined) {
        this.unsupported = unsupported;
        return;
      }
      this.next++;
      if (this.order.indexOf(digest, this.next) < 0) {
        this.reduced.delete(digest);
        this.held -= tar.length;
      }
    }
  }
}
