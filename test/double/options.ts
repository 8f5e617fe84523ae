/** The double's configuration and fault switches, shared by server.ts, v4.ts and v1.ts. */
import type { LayerFetchRecord } from './layer-fetch.js';
import type { VulnEntry } from './vulns.js';

/**
 * What a fault hook can make the double do instead of (or before) answering normally:
 * - `error`: answer this status; v4 uses Clair's `{code,message}` body (401 has none), v1 `{"Error":{"Message"}}`
 * - `disconnect`: destroy the connection without answering
 * - `delay`: wait `ms` (aborted when the client goes away), then answer normally
 * - `truncate`: answer normally but cut the body off after `bytes` bytes (default: half) and drop the connection,
 *   like a Clair that fails mid-response (its error is only in a trailer)
 */
export type Fault =
  | { kind: 'error'; status: number; message?: string }
  | { kind: 'disconnect' }
  | { kind: 'delay'; ms: number }
  | { kind: 'truncate'; bytes?: number };

export interface ManifestInfo {
  hash: string;
  layers: { hash: string; uri: string; headers: Record<string, string[]> }[];
}

export interface V1LayerInfo {
  Name: string;
  Path: string;
  ParentName: string;
  Format: string;
  Headers: Record<string, string>;
}

export interface FaultHooks {
  /** Before indexing a (well-formed) v4 manifest. */
  index?: (manifest: ManifestInfo) => Fault | undefined | Promise<Fault | undefined>;
  /** Before answering a v4 vulnerability report. */
  vulnerabilityReport?: (hash: string) => Fault | undefined | Promise<Fault | undefined>;
  /** Before processing a v1 `POST /v1/layers`. */
  v1PostLayer?: (layer: V1LayerInfo) => Fault | undefined | Promise<Fault | undefined>;
  /** Before answering a v1 `GET /v1/layers/{name}`. */
  v1GetLayer?: (name: string) => Fault | undefined | Promise<Fault | undefined>;
}

export interface ClairDoubleOptions {
  /** Which API to serve: Clair v4 (indexer + matcher, combo mode), legacy v1 (Clair 1.x/2.x), or both. Default v4. */
  api?: 'v4' | 'v1' | 'both';
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Vulnerability database: entries, or a path to a `--vulns` file. Default: test/fixtures/vulnerabilities.json. */
  vulns?: VulnEntry[] | string;
  /** v4: answer 202 with an empty body on vulnerability_report and `{}` on update_operation. */
  emptyDb?: boolean;
  /** v4 PSK auth: standard base64 key. Enables 401 for requests without a valid token. */
  psk?: string;
  /** Allowed `iss` values besides `clair-intraservice`. */
  issuers?: string[];
  /** v4: layer GETs in flight at once per index request (Clair: GOMAXPROCS). Default 2. */
  fetchConcurrency?: number;
  /** v4: concurrent index POSTs before 429 (Clair: GOMAXPROCS×4). Default 8. */
  indexConcurrency?: number;
  /** v4: refuse layer responses carrying Content-Encoding (default true); false decodes gzip first, as Go does. */
  rejectContentEncoding?: boolean;
  /** v4: `scan` fetched layers as Clair does (default), or `discard` them unread (layer-fetch.ts FetchOptions). */
  layers?: 'scan' | 'discard';
  /** v4: read layer bodies at most this many bytes per second (a slow Clair). Default: unpaced. */
  layerRate?: number;
  /** v4: extra CA certificates (PEM) trusted for https layer URIs, as a Clair host's trust store would hold them. */
  trustCa?: string;
  /** v4: emulate unreleased claircore's `Range: bytes=0-15` + `claircore-reason: inspect` probe. Default false. */
  rangeProbe?: boolean;
  /** v4: `enrichments` member of vulnerability reports. Default `{}`. */
  enrichments?: Record<string, unknown[]> | null;
  /** v4: `Cache-Control: max-age` of vulnerability reports, seconds. Default 21600 (6 h). */
  reportCacheAge?: number;
  /**
   * v4: emulate Clair v4.9.0 on a temp dir without `O_TMPFILE` (quay/clair#2362): every layer fetch fails with
   * `openat fetcher.NNN: no such file or directory` (500, report `IndexError`) and no layer GET is made.
   */
  noTmpfile?: boolean;
  faults?: FaultHooks;
  /** One line per request (method, path, status). Default: nothing; the CLI logs to stderr. */
  log?: (line: string) => void;
  /** Clock for JWT checks, in ms. */
  now?: () => number;
}

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  authorization?: string;
  startedAt: number;
  finishedAt: number;
}

export type { LayerFetchRecord };
