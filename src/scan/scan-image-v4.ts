// One image through Clair v4, reading `docker save` once.
//
// Clair fetches a manifest's layers in image order, a few at a time, and never re-fetches a layer it has
// scanned; the save stream delivers layers in tar-name order and can be read only once. So each layer is
// indexed on its own, in the order the stream delivers it (a one-layer "helper" manifest whose only
// layer is piped straight from the stream), and then the real manifest is indexed: every layer is known
// to Clair by then, so it fetches nothing. Any layer order, any layer count, any set of layers Clair
// already knows: one pass, one layer in flight, nothing buffered. The helper manifests are deleted once
// the real one is indexed (claircore keeps layers that a remaining manifest references).
import { createHash } from 'node:crypto';
import type { ClairV4Client } from '../clair/v4/client.js';
import { toImageScan } from '../clair/v4/normalise.js';
import type * as V4 from '../clair/v4/wire.js';
import type { ImageInfo, ImageSource } from '../docker/image-source.js';
import type { ImageScan, TrustSignal } from '../findings/model.js';
import type { LayerBinding } from '../layers/advertise.js';
import { readSaveArchive } from '../layers/archive.js';
import { LayerServer } from '../layers/layer-server.js';
import { ClairIndexError, ClairProtocolError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import type { ProgressSink } from '../runtime/progress.js';

export interface ScanImageV4Context {
  image: ImageInfo;
  source: ImageSource;
  clair: ClairV4Client;
  clairUrl: string;
  binding: LayerBinding;
  log: Logger;
  progress: ProgressSink;
  signal: AbortSignal;
}

export interface ScanImageV4Result {
  scan: ImageScan;
  /** Whether `docker save` was called (false when Clair already had the image). */
  exported: boolean;
  layersSent: number;
  bytesSent: number;
}

/** The hash of the one-layer manifest for `layer`: stable, so a re-run reuses what Clair already has. */
export function helperManifestHash(layer: string): string {
  return `sha256:${createHash('sha256').update(`docker-clair one-layer manifest\n${layer}`).digest('hex')}`;
}

export async function scanImageV4(ctx: ScanImageV4Context): Promise<ScanImageV4Result> {
  const { image, clair, signal, log } = ctx;
  const existing = await clair.getIndexReport(image.id, signal);
  let exported = false;
  let layersSent = 0;
  let bytesSent = 0;
  if (existing?.state === 'IndexFinished') {
    log.debug(`Clair already indexed ${image.id}: no export`);
    ctx.progress({ stage: 'cached', image: image.ref });
  } else {
    exported = true;
    ({ layersSent, bytesSent } = await indexFromSaveStream(ctx));
  }

  ctx.progress({ stage: 'match', image: image.ref });
  const result = await clair.vulnerabilityReport(image.id, signal);
  const engine = { api: 'v4' as const, url: ctx.clairUrl };
  const ref = { ref: image.ref, id: image.id, ...(image.repoDigests[0] ? { digest: image.repoDigests[0] } : {}) };
  let scan: ImageScan;
  if (result.kind === 'not-indexed') {
    throw new ClairProtocolError(`Clair reports no finished index for ${image.id} right after indexing it`,
      'another client may have deleted it meanwhile; run the scan again');
  } else if (result.kind === 'empty-database') {
    const report = await clair.getIndexReport(image.id, signal);
    scan = { image: ref, engine, packageCount: Object.keys(report?.packages ?? {}).length, findings: [], trust: [] };
    scan.trust.push({
      kind: 'empty-database',
      message: "Clair's vulnerability database is empty (its updaters have not finished a first run); no result can be trusted yet",
    });
  } else {
    scan = toImageScan(result.report, { image: ref, url: ctx.clairUrl });
    scan.trust.push(...(await updaterSignals(ctx, scan)));
  }
  ctx.progress({ stage: 'done', image: image.ref, findings: scan.findings.length });
  return { scan, exported, layersSent, bytesSent };
}

async function indexFromSaveStream(ctx: ScanImageV4Context): Promise<{ layersSent: number; bytesSent: number }> {
  const { image, clair, signal, log, binding } = ctx;
  const server = await LayerServer.start({
    listenHost: binding.listenHost,
    listenPort: binding.listenPort,
    advertiseHost: binding.advertiseHost,
    ...(binding.advertisePort !== undefined ? { advertisePort: binding.advertisePort } : {}),
    signal,
  });
  log.debug(`layer server on ${server.baseUrl} (${binding.why})`);
  const helpers: string[] = [];
  try {
    ctx.progress({ stage: 'export', image: image.ref });
    const stream = await ctx.source.save(image.id, { signal });
    let order: string[] | undefined;
    let index = 0;
    for await (const event of readSaveArchive(stream, { id: image.id, diffIds: image.diffIds }, { signal })) {
      if (event.kind === 'end') {
        order = event.layers;
        continue;
      }
      const { digest, body, size } = event.layer;
      const helper = helperManifestHash(digest);
      const offered = server.offer(digest, body, size);
      let failure: unknown;
      try {
        await clair.index({ hash: helper, layers: [{ hash: digest, uri: server.url(digest), headers: server.clairHeaders }] }, signal);
        helpers.push(helper);
      } catch (error) {
        failure = error;
      }
      // Not claimed: Clair already had this layer and fetched nothing; the archive drains it.
      const fetched = !server.withdraw(digest);
      const outcome = await offered;
      if (failure) throw explainIndexFailure(failure, server, digest);
      if (fetched && !outcome.served) {
        throw new ClairIndexError(`Clair reported layer ${digest} indexed, but it did not read it to the end`);
      }
      if (outcome.served) {
        ctx.progress({ stage: 'layer', image: image.ref, digest, index, fetched: true, bytes: outcome.bytes });
      } else {
        ctx.progress({ stage: 'layer', image: image.ref, digest, index, fetched: false, bytes: 0 });
      }
      index++;
    }
    if (!order) throw new ClairProtocolError('the save stream ended without its manifest');

    ctx.progress({ stage: 'index', image: image.ref });
    const manifest: V4.Manifest = {
      hash: image.id,
      layers: order.map((digest) => ({ hash: digest, uri: server.url(digest), headers: server.clairHeaders })),
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
  return { layersSent: server.stats.layersServed, bytesSent: server.stats.bytesServed };
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
