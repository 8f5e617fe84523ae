// One image through the legacy Clair v1 API (Clair 1.x/2.x).
//
// v1 indexes layer by layer, parent first (`POST /v1/layers` with ParentName; an unknown parent is 400), and
// then reports on the top layer, which covers its ancestors. `docker save` delivers layers in tar-name order,
// which for legacy saves (`<v1id>/layer.tar`) is unrelated to the image order. So, reading the save stream:
//   - the layer Clair needs next is piped straight from the stream to Clair (the layer server, as for v4);
//   - a later layer that arrives early is kept in memory if it fits under the cap (--v1-buffer, default
//     256 MiB; the sum of buffered layer sizes never exceeds it), and posted as soon as its parent is known;
//   - a later layer that does not fit is skipped (drained unread) and read again in a further `docker save`
//     pass. Nothing is ever written to disk. Each pass posts at least the layer that was next when it started,
//     so an image of N layers needs at most N passes; with a cap ≥ the image size, always one.
// Layer Names are the chain ID hex of each layer (its digest and its parents'), so the same layer under the same
// parents is the same Clair layer across images and runs. Clair is asked first: a known top layer means no
// export at all; otherwise the known base layers (a shared base) are not sent again.
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import type { ClairV1Client } from './client.js';
import { toImageScanV1 } from './normalise.js';
import type * as V1 from './wire.js';
import type { ImageRef, ImageScan } from '../../findings/model.js';
import type { LayerBinding } from '../../layer-server/advertise.js';
import type { ArchiveEnd } from '../../layers/archive.js';
import { LayerServer } from '../../layer-server/server.js';
import { chainIds } from '../../layers/legacy-ids.js';
import {
  ArchiveFormatError,
  ClairIndexError,
  ClairProtocolError,
  LegacyLayerMappingError,
} from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import type { ProgressSink } from '../../runtime/progress.js';
import type { ImageArchive } from '../../scan/image-archive.js';

/** Default cap on layer bytes held in memory while waiting for their parents: 256 MiB. */
export const DEFAULT_V1_BUFFER = 256 * 1024 * 1024;

export interface ScanImageV1Context {
  archive: ImageArchive;
  clair: ClairV1Client;
  clairUrl: string;
  binding: LayerBinding;
  log: Logger;
  progress: ProgressSink;
  signal: AbortSignal;
  /** Bytes of out-of-order layers that may be held in memory (--v1-buffer). */
  bufferCap?: number;
}

export interface ScanImageV1Result {
  scan: ImageScan;
  exported: boolean;
  layersSent: number;
  bytesSent: number;
  /** Passes over the archive this image needed (0 when Clair knew the top layer). */
  passes: number;
  /** The most layer bytes held in memory at once. */
  peakBuffered: number;
}

/** The Clair v1 layer Names of an image's layers (base first): the chain ID hex of each. */
export function v1LayerNames(digests: readonly string[]): string[] {
  return chainIds(digests).map((chain) => chain.replace(/^sha\d+:/, ''));
}

class Unsupported {
  constructor(readonly message: string) {}
}

export async function scanImageV1(ctx: ScanImageV1Context): Promise<ScanImageV1Result> {
  const { archive, clair, signal, log } = ctx;
  let order = [...(archive.layers ?? archive.order)];
  let names = v1LayerNames(order);
  const top = names.at(-1);
  const known = top !== undefined && archive.id !== undefined ? await clair.getLayer(top, { signal }) : undefined;
  let id = archive.id;
  let exported = false;
  let layersSent = 0;
  let bytesSent = 0;
  let passes = 0;
  let peakBuffered = 0;
  let unsupported: Unsupported | undefined;
  if (known && id !== undefined) {
    log.debug(`Clair v1 already has the top layer ${top}: no export`);
    ctx.progress({ stage: 'cached', image: archive.ref });
    await archive.finishUnread?.(signal);
  } else {
    exported = true;
    const indexed = await indexLayers(ctx, order);
    ({ layersSent, bytesSent, passes, peakBuffered, unsupported } = indexed);
    order = indexed.order;
    names = v1LayerNames(order);
    id = indexed.id;
  }
  log.debug(`${archive.ref}: ${archive.describePasses()}`);

  const ref: ImageRef = { ref: archive.ref, id: id ?? '', ...(archive.repoDigests[0] ? { digest: archive.repoDigests[0] } : {}) };
  const engine = { api: 'v1' as const, url: ctx.clairUrl };
  if (unsupported) {
    const scan: ImageScan = {
      image: ref, engine, packageCount: 0, findings: [],
      trust: [{ kind: 'unsupported-os', message: `Clair (v1) does not support this image: ${unsupported.message}` }],
    };
    ctx.progress({ stage: 'done', image: archive.ref, findings: 0 });
    return { scan, exported, layersSent, bytesSent, passes, peakBuffered };
  }
  const topName = names.at(-1);
  if (topName === undefined) throw new ArchiveFormatError(`${archive.ref} has no layers`);
  ctx.progress({ stage: 'match', image: archive.ref });
  const layer = await clair.getLayer(topName, { vulnerabilities: true, signal });
  if (!layer) {
    throw new ClairProtocolError(`Clair v1 does not know layer ${topName} right after indexing it`,
      'another client may have deleted it meanwhile; run the scan again');
  }
  const layerDigests = new Map(names.map((name, i) => [name, order[i] as string]));
  const scan = toImageScanV1(layer, { image: ref, url: ctx.clairUrl, layerDigests });
  if (scan.findings.length === 0 && layer.NamespaceName) {
    const empty = await emptyDatabase(ctx, layer.NamespaceName);
    if (empty) scan.trust.push({ kind: 'empty-database', message: empty });
  }
  ctx.progress({ stage: 'done', image: archive.ref, findings: scan.findings.length });
  return { scan, exported, layersSent, bytesSent, passes, peakBuffered };
}

/**
 * Clair v1 has no "database loaded" signal: a clean result is believed only when the image's namespace is
 * listed and holds at least one vulnerability. Returns the reason it cannot be believed, or undefined.
 */
async function emptyDatabase(ctx: ScanImageV1Context, namespace: string): Promise<string | undefined> {
  const page = await ctx.clair.vulnerabilities(namespace, 1, ctx.signal);
  if (!page || page.Vulnerabilities.length === 0) {
    const all = await ctx.clair.namespaces(ctx.signal).catch(() => []);
    ctx.log.debug(`Clair v1 namespaces: ${all.map((n) => n.Name).join(', ') || '(none)'}`);
    return `Clair's vulnerability database holds no vulnerabilities for ${namespace} (its updaters have not run, or do not cover it); no result can be trusted`;
  }
  return undefined;
}

interface Indexed {
  id: string;
  order: string[];
  layersSent: number;
  bytesSent: number;
  passes: number;
  peakBuffered: number;
  unsupported?: Unsupported;
}

/** Posts every layer Clair lacks, parent first, reading the archive as many times as the cap requires. */
async function indexLayers(ctx: ScanImageV1Context, initialOrder: string[]): Promise<Indexed> {
  const { archive, clair, signal, log, binding } = ctx;
  const cap = ctx.bufferCap ?? DEFAULT_V1_BUFFER;
  let order = initialOrder;
  let names = v1LayerNames(order);
  // The first layer Clair does not have: known layers imply known parents, so count them from the base.
  const knownPrefix = async (): Promise<number> => {
    let i = 0;
    while (i < names.length && (await clair.getLayer(names[i] as string, { signal }))) i++;
    return i;
  };
  let next = await knownPrefix();
  if (next > 0) log.debug(`Clair v1 already has the first ${next} layer(s): not sent again`);

  const server = await LayerServer.start({ ...binding, signal });
  log.debug(`layer server on ${server.baseUrl} (${binding.why})`);
  const headers = Object.fromEntries(Object.entries(server.clairHeaders).map(([k, v]) => [k, v.join(', ')]));
  const buffers = new Map<string, Buffer[]>();
  let buffered = 0;
  let peakBuffered = 0;
  let passes = 0;
  let skipped = 0;
  let end: ArchiveEnd | undefined;
  let unsupported: Unsupported | undefined;
  const pendingAt = (digest: string) => order.indexOf(digest, next);
  const sizeOf = (chunks: Buffer[]) => chunks.reduce((n, c) => n + c.length, 0);

  /** POSTs layer `i` with its bytes on offer at the layer server. */
  const post = async (i: number, body: Readable, size: number | undefined): Promise<void> => {
    const digest = order[i] as string;
    const request: V1.LayerRequest = { Name: names[i] as string, Path: server.url(digest), Headers: headers, Format: 'Docker' };
    if (i > 0) request.ParentName = names[i - 1] as string;
    const offered = server.offer(digest, body, size);
    let failure: unknown;
    let result: Awaited<ReturnType<ClairV1Client['postLayer']>> | undefined;
    try {
      result = await clair.postLayer(request, signal);
    } catch (error) {
      failure = error;
    }
    server.withdraw(digest);
    const outcome = await offered;
    if (!outcome.served && outcome.reason === 'failed' && isArchiveError(outcome.error)) throw outcome.error;
    if (failure) throw failure;
    if (result?.kind === 'unsupported') {
      unsupported = new Unsupported(result.message);
      return;
    }
    ctx.progress({
      stage: 'layer', image: archive.ref, digest, index: i, total: order.length,
      fetched: outcome.served, bytes: outcome.served ? outcome.bytes : 0,
    });
    next = i + 1;
  };

  /** Posts what the buffers hold for the layers that are next; frees what no later layer needs. */
  const flush = async (): Promise<void> => {
    while (!unsupported && next < order.length) {
      const digest = order[next] as string;
      const chunks = buffers.get(digest);
      if (!chunks) return;
      const size = sizeOf(chunks);
      await post(next, ReadableStream.from(chunks), size);
      if (pendingAt(digest) < 0) {
        buffers.delete(digest);
        buffered -= size;
      }
    }
  };

  /** Reads a layer into memory if it fits under the cap (its declared size counts before a byte is read). */
  const keep = async (digest: string, body: Readable, size: number): Promise<boolean> => {
    if (buffered + size > cap) return false;
    const chunks: Buffer[] = [];
    buffered += size;
    peakBuffered = Math.max(peakBuffered, buffered);
    for await (const chunk of body) chunks.push(chunk as Buffer);
    buffers.set(digest, chunks);
    return true;
  };

  try {
    ctx.progress({ stage: 'export', image: archive.ref, ...(archive.origin === 'docker save' ? {} : { from: archive.origin }) });
    while (!unsupported && (next < order.length || end === undefined)) {
      const before = next;
      passes++;
      try {
        for await (const event of await archive.read(signal)) {
          if (event.kind === 'end') {
            end = event;
            continue;
          }
          if (unsupported) break; // Clair refuses the image: no further layer can be posted
          const { digest, body, size } = event.layer;
          if (buffers.has(digest)) continue;
          const inOrder = order.includes(digest);
          if (!inOrder && archive.layers) continue; // another image's layer (a multi-image archive)
          if (inOrder && order[next] === digest && order.indexOf(digest, next + 1) < 0) {
            await post(next, body, size);
          } else if (!inOrder || pendingAt(digest) >= 0) {
            // Early (or, before the order is known, unplaced; or needed twice): keep it if it fits, else read it
            // again later. The layer that is next goes to Clair now in any case.
            if (await keep(digest, body, size)) {
              // kept; flush() posts it when its turn comes
            } else if (inOrder && order[next] === digest) {
              await post(next, body, size);
            } else {
              skipped++;
              log.debug(`layer ${digest} (${size} bytes) arrived before its parent and does not fit in --v1-buffer (${buffered} of ${cap} bytes in use): read again in a further pass`);
            }
          }
          await flush();
        }
      } catch (error) {
        if (!(error instanceof LegacyLayerMappingError) || signal.aborted) throw error;
        log.debug(`${archive.ref}: ${error.message}: mapping the legacy layers with a hash pass`);
        await archive.remap(error, signal);
        order = [...(archive.layers ?? order)];
        names = v1LayerNames(order);
        continue;
      }
      if (unsupported) break;
      if (!end) throw new ArchiveFormatError('the save stream ended without its manifest');
      if (end.layers.join() !== order.join()) {
        // The stream named the layers only at its end (containerd-store blobs): now their order is known.
        order = [...end.layers];
        names = v1LayerNames(order);
        next = await knownPrefix();
        await flush();
        continue;
      }
      await flush();
      if (next === before && next < order.length) {
        throw new ClairIndexError(`layer ${order[next]} of ${archive.ref} was not delivered by ${archive.origin}`);
      }
    }
  } finally {
    buffers.clear();
    await server.close();
  }
  const id = end ? archive.identify(end).id : (archive.id ?? '');
  log.debug(`Clair v1: ${passes} pass(es) over ${archive.origin}; ${skipped} layer read(s) skipped for a further pass; ` +
    `at most ${peakBuffered} bytes held in memory (--v1-buffer ${cap})`);
  return {
    id, order, layersSent: server.stats.layersServed, bytesSent: server.stats.bytesServed, passes, peakBuffered,
    ...(unsupported ? { unsupported } : {}),
  };
}

function isArchiveError(error: unknown): boolean {
  return error instanceof ArchiveFormatError || error instanceof LegacyLayerMappingError;
}
