// One image through Clair v4, reading `docker save` once.
//
// Clair fetches a manifest's layers in image order, a few at a time, and never re-fetches a layer it has
// scanned; the save stream delivers layers in tar-name order and can be read only once. So each layer is
// indexed on its own, in the order the stream delivers it (a one-layer "helper" manifest whose only
// layer is piped straight from the stream), and then the real manifest is indexed: every layer is known
// to Clair by then, so it fetches nothing. Any layer order, any layer count, any set of layers Clair
// already knows: one pass, one layer in flight, nothing buffered. The helper manifests are deleted once
// the real one is indexed (claircore keeps layers that a remaining manifest references).
//
// The archive comes from the daemon, a file or a stream (image-archive.ts, which also counts the passes: a
// legacy save whose layers the diffIDs cannot map costs a hash pass and another read). A stream of blobs
// tells the image's identity only at its end, so Clair is asked about the image first only when it is known.
// Progress counts layers "K/N" by their position in the image when the digest is known up front (diffIDs
// for legacy and OCI saves, every layer of an --input file), in stream order otherwise (containerd blobs).
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ClairV4Client } from './client.js';
import { toImageScan } from './normalise.js';
import { staleDataWarning } from './update-age.js';
import type * as V4 from './wire.js';
import type { ImageScan, TrustSignal } from '../../findings/model.js';
import type { LayerBinding } from '../../layer-server/advertise.js';
import type { ArchiveEnd } from '../../layers/archive.js';
import { LayerServer } from '../../layer-server/server.js';
import {
  ArchiveFormatError,
  ClairIndexError,
  ClairProtocolError,
  DockerClairError,
  LegacyLayerMappingError,
} from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import type { ProgressSink } from '../../runtime/progress.js';
import type { ImageArchive } from '../../scan/image-archive.js';
import { preflightLayerServer } from './preflight.js';

export interface ScanImageV4Context {
  archive: ImageArchive;
  clair: ClairV4Client;
  clairUrl: string;
  binding: LayerBinding;
  log: Logger;
  progress: ProgressSink;
  signal: AbortSignal;
  /** --max-db-age: one warning per run (`warned`, shared by its images) when Clair's data is older than maxAgeMs. */
  dataAge?: { maxAgeMs: number; now: () => Date; warned: boolean };
}

export interface ScanImageV4Result {
  scan: ImageScan;
  /** Whether layers were read from the archive (false when Clair already had the image). */
  exported: boolean;
  layersSent: number;
  bytesSent: number;
}

/** The hash of the one-layer manifest for `layer`: stable, so a re-run reuses what Clair already has. */
export function helperManifestHash(layer: string): string {
  return `sha256:${createHash('sha256').update(`docker-clair one-layer manifest\n${layer}`).digest('hex')}`;
}

export async function scanImageV4(ctx: ScanImageV4Context): Promise<ScanImageV4Result> {
  const { archive, clair, signal, log } = ctx;
  let id = archive.id;
  const existing = id === undefined ? undefined : await clair.getIndexReport(id, signal);
  let exported = false;
  let layersSent = 0;
  let bytesSent = 0;
  if (id !== undefined && existing?.state === 'IndexFinished') {
    log.debug(`Clair already indexed ${id}: no export`);
    ctx.progress({ stage: 'cached', image: archive.ref });
    await archive.finishUnread?.(signal);
  } else {
    exported = true;
    ({ id, layersSent, bytesSent } = await indexFromSaveStream(ctx));
  }
  log.debug(`${archive.ref}: ${archive.describePasses()}`);

  ctx.progress({ stage: 'match', image: archive.ref });
  const result = await clair.vulnerabilityReport(id, signal);
  const ref = { ref: archive.ref, id, ...(archive.repoDigests[0] ? { digest: archive.repoDigests[0] } : {}) };
  let scan: ImageScan;
  if (result.kind === 'not-indexed') {
    throw new ClairProtocolError(`Clair reports no finished index for ${id} right after indexing it`,
      'another client may have deleted it meanwhile; run the scan again');
  } else if (result.kind === 'empty-database') {
    // No matching ran, but the index report still says what the image is (packages, distribution).
    const indexReport = await clair.getIndexReport(id, signal);
    const nothingMatched = { manifest_hash: id, packages: {}, distributions: {}, environments: {}, vulnerabilities: {}, package_vulnerabilities: {} };
    scan = { ...toImageScan(nothingMatched, { image: ref, url: ctx.clairUrl, ...(indexReport ? { indexReport } : {}) }), trust: [] };
    scan.trust.push({
      kind: 'empty-database',
      message: "Clair's vulnerability database is empty (its updaters have not finished a first run); no result can be trusted yet",
    });
  } else {
    scan = toImageScan(result.report, { image: ref, url: ctx.clairUrl });
    scan.trust.push(...(await updaterSignals(ctx, scan)));
  }
  ctx.progress({ stage: 'done', image: archive.ref, findings: scan.findings.length });
  return { scan, exported, layersSent, bytesSent };
}

async function indexFromSaveStream(ctx: ScanImageV4Context): Promise<{ id: string; layersSent: number; bytesSent: number }> {
  const { archive, clair, signal, log, binding } = ctx;
  const server = await LayerServer.start({ ...binding, signal });
  log.debug(`layer server on ${server.baseUrl} (${binding.why})`);
  const helpers: string[] = [];
  let id: string;
  let probe = { layers: 0, bytes: 0 };
  try {
    // Before the export: a Clair that cannot reach us is told in one message, not after minutes of staging.
    const preflight = await preflightLayerServer(server, clair, log, signal);
    probe = { layers: server.stats.layersServed, bytes: preflight.bytes };
    ctx.progress({ stage: 'export', image: archive.ref, ...(archive.origin === 'docker save' ? {} : { from: archive.origin }) });
    let end: ArchiveEnd;
    try {
      end = await indexLayers(ctx, server, helpers);
    } catch (error) {
      if (!(error instanceof LegacyLayerMappingError) || signal.aborted) throw error;
      // The layers indexed so far stay known to Clair: the next pass sends only the others.
      log.debug(`${archive.ref}: ${error.message}: mapping the legacy layers with a hash pass`);
      await archive.remap(error, signal);
      end = await indexLayers(ctx, server, helpers);
    }
    ({ id } = archive.identify(end));

    ctx.progress({ stage: 'index', image: archive.ref });
    const manifest: V4.Manifest = {
      hash: id,
      layers: end.layers.map((digest) => ({ hash: digest, uri: server.url(digest), headers: server.clairHeaders })),
    };
    const before = server.stats.requests;
    try {
      await clair.index(manifest, signal);
    } catch (error) {
      throw explainIndexFailure(error, server);
    }
    if (server.stats.requests !== before) log.debug(`Clair made ${server.stats.requests - before} layer request(s) for the image manifest`);
  } finally {
    await server.close();
  }
  // Best effort: left-over helper manifests only cost Clair some rows.
  await clair.deleteIndexReports(helpers, signal).then(
    (deleted) => log.debug(`deleted ${deleted.length} one-layer manifest(s) from Clair`),
    (error: unknown) => log.debug(`could not delete the one-layer manifests: ${(error as Error).message}`),
  );
  return { id, layersSent: server.stats.layersServed - probe.layers, bytesSent: server.stats.bytesServed - probe.bytes };
}

/** One pass over the archive: each of the image's layers indexed as a one-layer manifest as it streams by. */
async function indexLayers(ctx: ScanImageV4Context, server: LayerServer, helpers: string[]): Promise<ArchiveEnd> {
  const { archive, clair, signal } = ctx;
  let end: ArchiveEnd | undefined;
  let streamed = 0;
  const total = archive.order.length > 0 ? archive.order.length : undefined;
  // Clair hashes every layer it fetches and fails the index on a mismatch (quay/claircore libindex/fetcher.go), so
  // the archive hashes only the digests that are guesses (a legacy top layer): ~0.45 CPU-s per GB less on the relay.
  for await (const event of await archive.read(signal, { verify: 'guesses' })) {
    if (event.kind === 'end') {
      end = event;
      continue;
    }
    const { digest, body, size, checked, tarName } = event.layer;
    // Another image's layer (a multi-image archive): left to the archive, which drains it.
    if (archive.layers && !archive.layers.includes(digest)) continue;
    // "layer K/N" in image order where the digest is known up front; containerd blobs count in stream order.
    const position = archive.order.indexOf(digest);
    const index = position >= 0 ? position : streamed;
    streamed++;
    const helper = helperManifestHash(digest);
    const offered = server.offer(digest, body, size);
    let failure: unknown;
    try {
      await clair.index({ hash: helper, layers: [{ hash: digest, uri: server.url(digest), headers: server.clairHeaders }] }, signal);
      if (!helpers.includes(helper)) helpers.push(helper);
    } catch (error) {
      failure = error;
    }
    // Not claimed: Clair already had this layer and fetched nothing; the archive drains it.
    const fetched = !server.withdraw(digest);
    const outcome = await offered;
    // The archive's own failure (corrupt, truncated, a legacy layer mapped wrongly) explains Clair's: when
    // Clair gave up on a layer part-way, the rest of it is read (and checked) to know.
    if (!outcome.served && outcome.reason === 'failed') {
      const archiveError = isArchiveError(outcome.error) ? outcome.error : failure ? await archiveErrorOf(body) : undefined;
      if (archiveError) throw archiveError;
    }
    if (failure && !checked) {
      const corrupt = corruptLayerError(failure, digest, tarName, outcome.served ? outcome.bytes : size);
      if (corrupt) throw corrupt;
    }
    if (failure) throw explainIndexFailure(failure, server, digest);
    if (fetched && !outcome.served) {
      throw new ClairIndexError(`Clair reported layer ${digest} indexed, but it did not read it to the end`);
    }
    ctx.progress({
      stage: 'layer', image: archive.ref, digest, index, ...(total !== undefined ? { total } : {}),
      fetched: outcome.served, bytes: outcome.served ? outcome.bytes : 0,
    });
  }
  if (!end) throw new ArchiveFormatError('the save stream ended without its manifest');
  return end;
}

function isArchiveError(error: unknown): error is DockerClairError {
  return error instanceof ArchiveFormatError || error instanceof LegacyLayerMappingError;
}

/** Reads what is left of a layer body: the archive's error if its bytes turn out bad, else undefined. */
async function archiveErrorOf(body: Readable): Promise<DockerClairError | undefined> {
  if (body.errored) return isArchiveError(body.errored) ? body.errored : undefined;
  if (body.destroyed || body.readableEnded) return undefined;
  return new Promise((resolve) => {
    body.once('error', (error) => resolve(isArchiveError(error) ? error : undefined));
    body.once('end', () => resolve(undefined));
    body.once('close', () => resolve(isArchiveError(body.errored) ? body.errored : undefined));
    body.resume();
  });
}

/**
 * Clair's digest check failed on a layer the archive did not hash itself: the archive is corrupt, reported as the
 * archive's own check would have (ArchiveFormatError, exit 2), with the hash Clair computed.
 */
function corruptLayerError(error: unknown, digest: string, tarName: string, bytes: number): ArchiveFormatError | undefined {
  if (!(error instanceof ClairIndexError)) return undefined;
  const m = /validation failed: got "([0-9a-f]+)", expected "([0-9a-f]+)"/.exec(error.message);
  const [algorithm, hex] = digest.split(':');
  if (!m || m[2] !== hex || m[1] === hex) return undefined;
  return new ArchiveFormatError(`layer ${tarName} does not match its digest: expected ${digest}, the ${bytes} bytes read hash to ${algorithm}:${m[1]}`,
    'the archive is corrupt, or the image changed while it was exported', { cause: error });
}

/** Turns Clair's fetch failures into the message a user can act on. */
function explainIndexFailure(error: unknown, server: LayerServer, digest?: string): unknown {
  if (!(error instanceof ClairIndexError)) return error;
  const text = error.message;
  const where = server.baseUrl;
  if (/connection refused|no route to host|i\/o timeout|dial tcp|network is unreachable|context deadline exceeded/i.test(text) && server.stats.requests === 0) {
    return new ClairIndexError(`Clair cannot reach the layer server at ${where}: ${text.replace(/^Clair failed to index the image: /, '')}`,
      'set --layer-address to an address of this machine that Clair can reach (and open that port)', { cause: error });
  }
  if (digest && server.stats.rejected > 0) {
    return new ClairIndexError(`${text} (layer ${digest} streams from docker save once; Clair asked for it again)`, undefined, { cause: error });
  }
  return error;
}

/**
 * Clair's report is only as good as its database: no updater run at all (Clair < 4.5 answers with an
 * empty report instead of 202), or none for this distribution, means "no findings" says nothing.
 */
async function updaterSignals(ctx: ScanImageV4Context, scan: ImageScan): Promise<TrustSignal[]> {
  let operations: V4.UpdateOperations;
  try {
    operations = await ctx.clair.updateOperations(ctx.signal);
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    ctx.log.debug(`update_operation not available: ${(error as Error).message}`);
    return [];
  }
  const names = Object.keys(operations);
  if (names.length === 0) {
    return [{ kind: 'empty-database', message: 'Clair has never completed a vulnerability update (update_operation is empty)' }];
  }
  // Old data is not untrusted data: the findings it gives are real, only newer advisories are missing.
  if (ctx.dataAge && !ctx.dataAge.warned) {
    const warning = staleDataWarning(operations, ctx.dataAge.maxAgeMs, ctx.dataAge.now());
    if (warning) {
      ctx.dataAge.warned = true;
      ctx.log.warn(warning);
    }
  }
  const did = scan.distribution?.id;
  if (did && !names.some((n) => updaterMatches(n, did))) {
    ctx.log.warn(`no Clair updater for distribution "${did}" (updaters: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''})`);
    return [{ kind: 'no-updater', message: `Clair's database has no vulnerability source for ${did}; OS packages cannot be matched` }];
  }
  return [];
}

// Updater names embed the distribution, but not always under Clair's distribution id.
const UPDATER_ALIASES: Record<string, string[]> = {
  amzn: ['aws'],
  ol: ['oracle'],
  rhel: ['rhel', 'redhat'],
  sles: ['suse'],
  opensuse: ['suse'],
  'opensuse-leap': ['suse'],
};

function updaterMatches(updater: string, did: string): boolean {
  const name = updater.toLowerCase();
  return [did.toLowerCase(), ...(UPDATER_ALIASES[did.toLowerCase()] ?? [])].some((alias) => name.includes(alias));
}
