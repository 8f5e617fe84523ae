// Before an export (which can take minutes for a big image), prove that Clair can fetch from the layer
// server: index a tiny probe layer — a tar holding one file of random bytes, so its digest is new to Clair
// and Clair must fetch it — then delete the probe manifest. "Clair cannot reach the layer server" is the
// commonest failure of Clair tooling; here it becomes one message naming the address tried.
import { createHash, randomBytes } from 'node:crypto';
import { bufferChunks } from '../../save/chunks.js';
import type { ClairV4Client } from './client.js';
import type { LayerServer } from '../../layer-server/server.js';
import { serveWhile } from '../../layer-server/serve.js';
import { packTar } from '../../save/pack.js';
import { ClairIndexError, LayerServeError, type ClairIndexFailure } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';

export interface ProbeLayer {
  digest: string;
  bytes: Buffer;
}

/** A valid one-file layer tar whose digest no one has seen before. */
export async function makeProbeLayer(): Promise<ProbeLayer> {
  const bytes = await packTar([{ header: { name: '.docker-clair-probe', mode: 0o644, mtime: new Date(0) }, content: randomBytes(32).toString('hex') }]);
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

export interface PreflightResult {
  /** Requests the probe caused on the layer server (not layers of the image). */
  requests: number;
  /** The probe layer served in full: 1, else 0 (Clair had it, which a random layer makes unlikely). */
  layers: number;
  bytes: number;
}

/**
 * Has Clair index (and so fetch) the probe layer, then deletes the probe manifest. `fetched` is told as soon as
 * Clair has read the probe in full, which proves it reaches the layer server, before its index answer is back.
 */
export async function preflightLayerServer(
  server: LayerServer, clair: ClairV4Client, log: Logger, signal: AbortSignal, fetched?: () => void,
): Promise<PreflightResult> {
  const probe = await makeProbeLayer();
  const manifest = `sha256:${createHash('sha256').update(`docker-clair probe manifest\n${probe.digest}`).digest('hex')}`;
  const before = server.stats.requests;
  const served = await serveWhile(server, { digest: probe.digest, body: bufferChunks([probe.bytes]), size: probe.bytes.length }, () =>
    clair.index({ hash: manifest, layers: [{ hash: probe.digest, uri: server.url(probe.digest, 'probe'), headers: server.clairHeaders }] }, signal),
  (outcome) => {
    if (outcome.served) fetched?.();
  });
  const { outcome } = served;
  const requests = server.stats.requests - before;
  // Best effort: a left-over probe costs Clair one row.
  await clair.deleteIndexReports([manifest], signal).catch((error: unknown) => {
    log.debug(`could not delete the probe manifest: ${(error as Error).message}`);
  });
  if (!served.ok) {
    const { failure } = served;
    signal.throwIfAborted();
    if (!(failure instanceof ClairIndexError)) throw failure;
    // Only a failure to fetch is the layer server's; any other error (Clair's database, say) is Clair's own.
    const said = fetchFailure(failure.failure);
    if (!outcome.served && said !== undefined) {
      throw new LayerServeError(
        `Clair cannot fetch layers from the layer server at ${server.baseUrl} (a probe layer failed${requests === 0 ? ', no request arrived' : ''}: ${said})`,
        'set --layer-address to an address of this machine that Clair can reach (and open that port in any firewall)',
        { cause: failure });
    }
    throw failure;
  }
  log.debug(`preflight: Clair fetched a probe layer from ${server.baseUrl}`);
  return { requests, layers: outcome.served ? 1 : 0, bytes: outcome.served ? outcome.bytes : 0 };
}

/** Clair's account of a failure to fetch a layer (the layer server's side of things), else undefined. */
function fetchFailure(failure: ClairIndexFailure): string | undefined {
  switch (failure.reason) {
    case 'connect-failed':
    case 'fetch-failed':
    case 'digest-mismatch':
      return failure.said;
    default:
      return undefined;
  }
}
