// The managed Clair's API as its own commands use it: a client with the stored PSK, and what the update
// operations say about the vulnerability data.
import { ClairV4Client } from '../clair/v4/client.js';
import { newestUpdate } from '../clair/v4/update-age.js';
import type * as V4 from '../clair/v4/wire.js';
import { PSK_ISSUER } from './names.js';
import type { ManagedSecrets } from './secrets.js';

/** The vulnerability data Clair holds: updaters that have run (or were imported), and the newest update. */
export interface UpdateSummary {
  lastUpdate: string | undefined;
  updaters: number;
}

export function updateSummary(operations: V4.UpdateOperations): UpdateSummary {
  return { lastUpdate: newestUpdate(operations)?.toISOString(), updaters: Object.keys(operations).length };
}

export async function clientFor(url: URL, secrets: ManagedSecrets, extra: { retries?: number } = {}): Promise<ClairV4Client> {
  return ClairV4Client.create({
    indexerUrl: url, matcherUrl: url, psk: { key: secrets.pskKey, issuer: PSK_ISSUER },
    retries: extra.retries ?? 0, requestTimeoutMs: 10_000,
  });
}
