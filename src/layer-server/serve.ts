// A layer is on offer at the layer server for exactly as long as the one request to Clair that may fetch it runs
// (v4's index POST, v1's layer POST, the preflight's probe): Clair fetches while the request is open, so the offer
// is withdrawn as soon as the request returns, and whatever Clair did not claim is left for the caller to drain.
import { drain } from '../save/chunks.js';
import type { LayerBody } from '../save/layer-feed.js';
import { ArchiveFormatError, LegacyLayerMappingError, type DockerClairError } from '../runtime/errors.js';
import type { LayerServer, OfferOutcome } from './server.js';

export interface OfferedLayer {
  digest: string;
  body: LayerBody;
  size?: number | undefined;
}

export type Served<T> = {
  /** What became of the offer: served in full, cut part-way, or withdrawn unread. */
  outcome: OfferOutcome;
  /** Clair started fetching the layer (false: it already had it, or its request failed before a fetch). */
  claimed: boolean;
} & ({ ok: true; value: T } | { ok: false; failure: unknown });

/**
 * Offers `layer` while `request` runs, then withdraws it; the request's failure is returned, not thrown.
 * `settled` hears what became of the offer as soon as that is known, which can be before the request returns.
 */
export async function serveWhile<T>(
  server: LayerServer, layer: OfferedLayer, request: () => Promise<T>, settled?: (outcome: OfferOutcome) => void,
): Promise<Served<T>> {
  const offered = server.offer(layer.digest, layer.body, layer.size);
  if (settled) void offered.then(settled);
  let answer: { ok: true; value: T } | { ok: false; failure: unknown };
  try {
    answer = { ok: true, value: await request() };
  } catch (failure) {
    answer = { ok: false, failure };
  }
  const claimed = !server.withdraw(layer.digest);
  return { ...answer, outcome: await offered, claimed };
}

/** A failure of the archive itself (corrupt, truncated, a legacy layer mapped wrongly): it explains Clair's. */
export function isArchiveError(error: unknown): error is DockerClairError {
  return error instanceof ArchiveFormatError || error instanceof LegacyLayerMappingError;
}

/** The archive's own error that cut a serve short, if that is what happened. */
export function archiveErrorOf(outcome: OfferOutcome): DockerClairError | undefined {
  return !outcome.served && outcome.reason === 'failed' && isArchiveError(outcome.error) ? outcome.error : undefined;
}

/** Reads what is left of a layer body: the archive's error if its bytes turn out bad, else undefined. */
export async function archiveErrorInRest(body: LayerBody): Promise<DockerClairError | undefined> {
  try {
    await drain(body);
    return undefined;
  } catch (error) {
    return isArchiveError(error) ? error : undefined;
  }
}
