// Indexing one image's layers with Clair v4 while `docker save` streams by, once.
//
// Clair fetches a manifest's layers in image order, a few at a time, and never re-fetches a layer it has
// scanned; the save stream delivers layers in tar-name order and can be read only once. So each layer is
// indexed on its own, in the order the stream delivers it (a one-layer "helper" manifest whose only
// layer is piped straight from the stream), and then the real manifest is indexed: every layer is known
// to Clair by then, so it fetches nothing. Any layer order, any layer count, any set of layers Clair
// already knows: one pass, one layer's bytes in flight, nothing buffered (Clair indexes a layer while the next
// one streams). The helper manifests are deleted once the real one is indexed (claircore keeps layers that a
// remaining manifest references). Several images exported together are indexed the same way: every layer once as
// it streams by, shared ones included, then each image's manifest.
//
// Progress counts layers "K/N" by their position in the image when the digest is known up front (diffIDs
// for legacy and OCI saves, every layer of an --input file), in stream order otherwise (containerd blobs).
import { createHash } from 'node:crypto';
import type { ClairV4Client } from './client.js';
import type * as V4 from './wire.js';
import type { LayerBinding } from '../../layer-server/advertise.js';
import { archiveErrorInRest, archiveErrorOf, serveWhile, type Served } from '../../layer-server/serve.js';
import { LayerServer, type OfferOutcome } from '../../layer-server/server.js';
import type { LayerEntry } from '../../save/layer-feed.js';
import type { ArchiveEnd } from '../../save/reader.js';
import { ArchiveFormatError, ClairIndexError, LegacyLayerMappingError } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import type { ProgressSink } from '../../runtime/progress.js';
import type { ArchiveEvents, ArchiveGroup, ImageArchive, ReadOptions } from '../../source/archive.js';
import { preflightLayerServer } from './preflight.js';

export interface StreamIndexing {
  archive: ImageArchive;
  clair: ClairV4Client;
  binding: LayerBinding;
  /** A layer server already starting on `binding` (startEarly), used instead of starting one. */
  server?: Promise<LayerServer>;
  log: Logger;
  progress: ProgressSink;
  signal: AbortSignal;
}

export interface StreamIndexed {
  /** The image's manifest hash, as Clair now knows it. */
  id: string;
  layersSent: number;
  bytesSent: number;
  /** The one-layer manifests' deletion, under way (best effort: it never rejects); to be awaited before exiting. */
  cleanup: Promise<void>;
}

/** The hash of the one-layer manifest for `layer`: stable, so a re-run reuses what Clair already has. */
export function helperManifestHash(layer: string): string {
  return `sha256:${createHash('sha256').update(`docker-clair one-layer manifest\n${layer}`).digest('hex')}`;
}

/** Reads the archive (twice when legacy layers need a hash pass), indexes its layers, then the image's manifest. */
export async function indexFromSaveStream(ctx: StreamIndexing): Promise<StreamIndexed> {
  const { archive, signal, log } = ctx;
  const pass: Pass = { archives: [archive], read: (readSignal, options) => archive.read(readSignal, options) };
  return (await withLayerServer(ctx, async (server, helpers, gate) => {
    try {
      return await indexPass(ctx, server, helpers, pass, gate);
    } catch (error) {
      if (!(error instanceof LegacyLayerMappingError) || signal.aborted) throw error;
      // The layers indexed so far stay known to Clair: the next pass sends only the others.
      log.debug(`${archive.ref}: ${error.message}: mapping the legacy layers with a hash pass`);
      await archive.remap(error, signal);
      return await indexPass(ctx, server, helpers, pass, gate);
    }
  }))[0] as StreamIndexed;
}

/**
 * Several images from one pass (ArchiveGroup): every layer once, shared layers included, then each image's
 * manifest. The layers sent are counted on the first image's result. A LegacyLayerMappingError is thrown as it
 * is: the caller reads the images one by one (the layers indexed so far stay known to Clair).
 */
export async function indexGroupFromSaveStream(ctx: Omit<StreamIndexing, 'archive'>, group: ArchiveGroup): Promise<StreamIndexed[]> {
  const [first] = group.archives;
  if (!first) return [];
  const pass: Pass = { archives: group.archives, read: (readSignal, options) => group.read(readSignal, options) };
  return withLayerServer({ ...ctx, archive: first }, (server, helpers, gate) => indexPass({ ...ctx, archive: first }, server, helpers, pass, gate));
}

/** One read of one image, or of several together. */
interface Pass {
  archives: readonly ImageArchive[];
  read(signal: AbortSignal, options: ReadOptions): Promise<ArchiveEvents>;
}

/** What a pass waits on: the export is read under `signal`, and no layer is offered before `ready`. */
interface Gate {
  signal: AbortSignal;
  ready: Promise<unknown>;
}

/**
 * A layer server for the length of `work`, checked first; the one-layer manifests deleted after.
 * `work` gives the images' manifest hashes; what the server sent beyond the probe is counted on the first image.
 */
async function withLayerServer(
  ctx: StreamIndexing, work: (server: LayerServer, helpers: string[], gate: Gate) => Promise<string[]>,
): Promise<StreamIndexed[]> {
  const { clair, signal, log, binding } = ctx;
  const server = await (ctx.server ?? LayerServer.start({ ...binding, signal }));
  log.debug(`layer server on ${server.baseUrl} (${binding.why})`);
  const helpers: string[] = [];
  let indexed: StreamIndexed[];
  // Best effort, and under way while the caller asks for the vulnerability report: left-over helper manifests only
  // cost Clair some rows. Started once the images' manifests are indexed (they keep the layers).
  let cleanup: Promise<void> = Promise.resolve();
  const deleteHelpers = (): void => {
    cleanup = clair.deleteIndexReports(helpers, signal).then(
      (deleted) => log.debug(`deleted ${deleted.length} one-layer manifest(s) from Clair`),
      (error: unknown) => log.debug(`could not delete the one-layer manifests: ${(error as Error).message}`),
    );
  };
  // The export is requested as soon as Clair has fetched the probe layer (so it reaches the layer server), while
  // the probe's index answer and delete are still to come: those hide in the daemon's preparing of the export.
  // No layer is offered before the probe is through, and a probe that fails after all stops the export.
  const stop = new AbortController();
  let reached!: () => void;
  const fetched = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const preflight = preflightLayerServer(server, clair, log, signal, reached);
  preflight.catch(() => stop.abort());
  try {
    await Promise.race([fetched, preflight]);
    const ids = await work(server, helpers, { signal: AbortSignal.any([signal, stop.signal]), ready: preflight });
    deleteHelpers();
    const probe = await preflight;
    const sent = { layersSent: server.stats.layersServed - probe.layers, bytesSent: server.stats.bytesServed - probe.bytes };
    indexed = ids.map((id, i) => (i === 0 ? { id, ...sent, cleanup } : { id, layersSent: 0, bytesSent: 0, cleanup }));
  } catch (error) {
    await preflight; // a failed probe is the cause of whatever failed after it
    throw error;
  } finally {
    await server.close();
  }
  return indexed;
}

/** One pass: the layers as they stream by, then each image's manifest (Clair has every layer by then); their hashes. */
async function indexPass(ctx: StreamIndexing, server: LayerServer, helpers: string[], pass: Pass, gate: Gate): Promise<string[]> {
  for (const archive of pass.archives) {
    ctx.progress({ stage: 'export', image: archive.ref, ...(archive.origin === 'docker save' ? {} : { from: archive.origin }) });
  }
  const ends = await indexLayers(ctx, server, helpers, pass, gate);
  // The images' manifests two at a time (Clair has every layer, so each is a lookup, not a fetch): index requests
  // count against Clair's cap (GOMAXPROCS×4, 429 above it), which other clients share.
  const ids = pass.archives.map((archive, i) => archive.identify(ends[i] as ArchiveEnd).id);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < pass.archives.length && !failed; i = next++) {
      try {
        await indexImageManifest({ ...ctx, archive: pass.archives[i] as ImageArchive }, server, ids[i] as string, (ends[i] as ArchiveEnd).layers);
      } catch (error) {
        failed = true; // the other worker starts no further manifest
        throw error;
      }
    }
  };
  await Promise.all([worker(), worker()]);
  return ids;
}

/** The real manifest, once every layer is known to Clair: nothing is fetched for it. */
async function indexImageManifest(ctx: StreamIndexing, server: LayerServer, id: string, layers: string[]): Promise<void> {
  ctx.progress({ stage: 'index', image: ctx.archive.ref });
  const manifest: V4.Manifest = {
    hash: id,
    layers: layers.map((digest) => ({ hash: digest, uri: server.url(digest), headers: server.clairHeaders })),
  };
  const before = server.stats.requests;
  try {
    await ctx.clair.index(manifest, ctx.signal);
  } catch (error) {
    throw explainIndexFailure(error, server);
  }
  if (server.stats.requests !== before) ctx.log.debug(`Clair made ${server.stats.requests - before} layer request(s) for the image manifest`);
}

/**
 * One read: each layer of the images indexed as a one-layer manifest as it streams by; the ends, in image order.
 * Once Clair has fetched a layer to its end the stream moves on while Clair indexes it: one index answer may be
 * outstanding beside the layer on offer (two index requests at most, far under Clair's cap of GOMAXPROCS×4). An
 * answer that fails stops the read, and is the error.
 */
async function indexLayers(ctx: StreamIndexing, server: LayerServer, helpers: string[], pass: Pass, gate: Gate): Promise<ArchiveEnd[]> {
  const ends: ArchiveEnd[] = [];
  let streamed = 0;
  let outstanding: Promise<void> | undefined;
  // Set from an answer's callback; read between awaits (an object, so the checks are not narrowed away).
  const failed: { error?: unknown; yes: boolean } = { yes: false };
  const stop = new AbortController();
  try {
    // Clair hashes every layer it fetches and fails the index on a mismatch (quay/claircore libindex/fetcher.go), so
    // the archive hashes only the digests that are guesses (a legacy top layer): ~0.45 CPU-s per GB less on the relay.
    for await (const event of await pass.read(AbortSignal.any([gate.signal, stop.signal]), { verify: 'guesses' })) {
      if (event.kind === 'end') {
        ends.push(event);
        continue;
      }
      const { digest } = event.layer;
      // A layer of none of the images (a multi-image archive): left to the archive, which drains it.
      if (!pass.archives.some((a) => !a.layers || a.layers.includes(digest))) continue;
      // Progress names the first image that has the layer (in stream order when no image's order names it).
      const archive = pass.archives.find((a) => a.order.includes(digest)) ?? pass.archives[0] as ImageArchive;
      // "layer K/N" in image order where the digest is known up front; containerd blobs count in stream order.
      const position = archive.order.indexOf(digest);
      const index = position >= 0 ? position : streamed;
      const total = archive.order.length > 0 ? archive.order.length : undefined;
      streamed++;
      await gate.ready;
      if (failed.yes) throw failed.error;
      const { outcome, answered } = await indexLayer(ctx, server, event.layer, helpers);
      // The answer before this layer's is in before the next layer is offered.
      await outstanding;
      if (failed.yes) throw failed.error;
      outstanding = answered.catch((error: unknown) => {
        if (failed.yes) return;
        Object.assign(failed, { yes: true, error });
        stop.abort(error);
      });
      ctx.progress({
        stage: 'layer', image: archive.ref, digest, index, ...(total !== undefined ? { total } : {}),
        fetched: outcome.served, bytes: outcome.served ? outcome.bytes : 0,
      });
    }
    await outstanding;
  } catch (error) {
    await outstanding;
    throw failed.yes ? failed.error : error;
  }
  if (failed.yes) throw failed.error;
  if (ends.length !== pass.archives.length) throw new ArchiveFormatError('the save stream ended without its manifest');
  return ends;
}

/**
 * One layer as a one-layer manifest, its body on offer meanwhile. Resolves once the stream may move on: Clair
 * fetched the whole layer (`answered` then brings Clair's answer), or Clair answered without (a layer it had,
 * or a failure); a failure is thrown, or rejects `answered`, as the best explanation.
 */
async function indexLayer(
  ctx: StreamIndexing, server: LayerServer, layer: LayerEntry, helpers: string[],
): Promise<{ outcome: OfferOutcome; answered: Promise<void> }> {
  const { digest, body, size } = layer;
  const helper = helperManifestHash(digest);
  let fetchedInFull!: (outcome: OfferOutcome) => void;
  const fetched = new Promise<OfferOutcome>((resolve) => {
    fetchedInFull = resolve;
  });
  const serving = serveWhile(server, { digest, body, size }, () =>
    ctx.clair.index({ hash: helper, layers: [{ hash: digest, uri: server.url(digest), headers: server.clairHeaders }] }, ctx.signal),
  (outcome) => {
    if (outcome.served) fetchedInFull(outcome);
  });
  const answered = serving.then((served) => checkIndexed(server, layer, helpers, helper, served));
  const early = await Promise.race([fetched, answered.then(() => undefined)]);
  if (early) return { outcome: early, answered };
  return { outcome: (await serving).outcome, answered };
}

/** Clair's answer for one layer: its helper manifest kept for deletion, or the failure's best explanation thrown. */
async function checkIndexed(
  server: LayerServer, layer: LayerEntry, helpers: string[], helper: string, served: Served<unknown>,
): Promise<void> {
  const { digest, body, size, checked, tarName } = layer;
  if (served.ok && !helpers.includes(helper)) helpers.push(helper);
  const { outcome } = served;
  // The archive's own failure (corrupt, truncated, a legacy layer mapped wrongly) explains Clair's: when
  // Clair gave up on a layer part-way, the rest of it is read (and checked) to know.
  if (!outcome.served && outcome.reason === 'failed') {
    const archiveError = archiveErrorOf(outcome) ?? (served.ok ? undefined : await archiveErrorInRest(body));
    if (archiveError) throw archiveError;
  }
  if (!served.ok) {
    const corrupt = checked ? undefined : corruptLayerError(served.failure, digest, tarName, outcome.served ? outcome.bytes : size);
    throw corrupt ?? explainIndexFailure(served.failure, server, digest);
  }
  // Not claimed: Clair already had this layer and fetched nothing; the archive drains it.
  if (served.claimed && !outcome.served) {
    throw new ClairIndexError(`Clair reported layer ${digest} indexed, but it did not read it to the end`);
  }
}

/**
 * Clair's digest check failed on a layer the archive did not hash itself: the archive is corrupt, reported as the
 * archive's own check would have (ArchiveFormatError, exit 2), with the hash Clair computed.
 */
function corruptLayerError(error: unknown, digest: string, tarName: string, bytes: number): ArchiveFormatError | undefined {
  if (!(error instanceof ClairIndexError) || error.failure.reason !== 'digest-mismatch') return undefined;
  const { got, expected } = error.failure;
  const [algorithm, hex] = digest.split(':');
  if (expected !== hex || got === hex) return undefined;
  return new ArchiveFormatError(`layer ${tarName} does not match its digest: expected ${digest}, the ${bytes} bytes read hash to ${algorithm}:${got}`,
    'the archive is corrupt, or the image changed while it was exported', { cause: error });
}

/** Turns Clair's fetch failures into the message a user can act on. */
function explainIndexFailure(error: unknown, server: LayerServer, digest?: string): unknown {
  if (!(error instanceof ClairIndexError)) return error;
  if (error.failure.reason === 'connect-failed' && server.stats.requests === 0) {
    return new ClairIndexError(`Clair cannot reach the layer server at ${server.baseUrl}: ${error.failure.said}`,
      'set --layer-address to an address of this machine that Clair can reach (and open that port)', { cause: error, failure: error.failure });
  }
  if (digest && server.stats.rejected > 0) {
    return new ClairIndexError(`${error.message} (layer ${digest} streams from docker save once; Clair asked for it again)`, undefined,
      { cause: error, failure: error.failure });
  }
  return error;
}
