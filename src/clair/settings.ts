// What talking to Clair takes from the command line.
import type { ClairApiChoice } from './detect.js';

export interface ClairSettings {
  /** Clair's base URL (--clair or CLAIR_ADDR); undefined when neither is given (then the managed Clair). */
  clairUrl?: URL;
  /** Split deployments: the indexer's and the matcher's own base URLs (default: clairUrl). */
  indexerUrl?: URL;
  matcherUrl?: URL;
  /** PEM file with CA certificates for https Clair endpoints. */
  clairCaCert?: string;
  /** --clair-api: auto (probe, the default when undefined), v4 or v1 (Clair 1.x/2.x). */
  clairApi?: ClairApiChoice;
  /** --v1-buffer: bytes of out-of-order layers Clair v1 scans may hold in memory (default 256 MiB). */
  v1BufferBytes?: number;
  /** --v1-full-layers: send Clair v1 whole layers rather than the files stock Clair 1.x/2.x reads. */
  v1FullLayers?: boolean;
  /** --max-db-age: warn when Clair's newest vulnerability update is older (milliseconds); 0 = never warn. */
  maxDbAgeMs: number;
}
