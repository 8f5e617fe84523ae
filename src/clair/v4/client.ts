// HTTP calls of the Clair v4 indexer and matcher, with Clair's statuses mapped to what they mean.
// Knows nothing of Docker or tar: layer URLs arrive as plain data in the Manifest.
import type { RequestError } from 'got';
import { ClairAuthError, ClairIndexError, ClairProtocolError, type ClairIndexFailure } from '../../runtime/errors.js';
import type { PskAuth } from '../auth.js';
import { apiUrl, ClairHttpClient, createClairHttp, describeUrl, failedResponse, unreachableError, type SendOptions } from '../http.js';
import { parseErrorBody, parseIndexReport, parseUpdateOperations, parseVulnerabilityReport } from './parse.js';
import type * as V4 from './wire.js';
import type { ProxySettings } from '../../runtime/proxy.js';

export interface ClairV4Options {
  indexerUrl: URL;
  matcherUrl: URL;
  psk?: PskAuth;
  /** Extra CA certificates (PEM) for https Clair endpoints. */
  ca?: Buffer;
  proxy?: ProxySettings | undefined;
  /** Per-request timeout for everything but the synchronous index POST; ms. */
  requestTimeoutMs?: number;
  /** Retries of 429/503 answers, with exponential backoff. */
  retries?: number;
  retryBaseDelayMs?: number;
}

export type VulnerabilityReportResult =
  | { kind: 'report'; report: V4.VulnerabilityReport }
  /** 202 with an empty body: the vulnerability database is empty (Clair ≥ 4.5). Never "clean". */
  | { kind: 'empty-database' }
  /** 404: the manifest is unknown or its index is not finished. */
  | { kind: 'not-indexed' };

// claircore's words for a failed layer fetch (libindex/fetcher.go and Go's net errors), most specific first.
const DIGEST_MISMATCH = /validation failed: got "([0-9a-f]+)", expected "([0-9a-f]+)"/;
const CONNECT_FAILURE = /connection refused|no route to host|i\/o timeout|dial tcp|network is unreachable|context deadline exceeded/i;
const FETCH_FAILURE = /fetch|connection reset|unexpected status code|EOF/i;

/** What Clair's account of a failed index (`said`) means. */
function indexFailure(said: string): ClairIndexFailure {
  const mismatch = DIGEST_MISMATCH.exec(said);
  if (mismatch) return { reason: 'digest-mismatch', said, got: mismatch[1] as string, expected: mismatch[2] as string };
  if (CONNECT_FAILURE.test(said)) return { reason: 'connect-failed', said };
  if (FETCH_FAILURE.test(said)) return { reason: 'fetch-failed', said };
  return { reason: 'other' };
}

export class ClairV4Client extends ClairHttpClient<ClairV4Options> {
  static async create(options: ClairV4Options): Promise<ClairV4Client> {
    const http = await createClairHttp({
      ...options,
      // Only the "try later" answers: a POST that failed in any other way may have consumed a layer.
      retryMethods: ['GET', 'POST', 'DELETE'],
      retryStatusCodes: [429, 503],
    });
    return new ClairV4Client(http, options);
  }

  private indexer(path: string): URL {
    return apiUrl(this.options.indexerUrl, path);
  }

  private matcher(path: string): URL {
    return apiUrl(this.options.matcherUrl, path);
  }

  /** GET index_report: the stored report, or undefined when Clair does not know the manifest. */
  async getIndexReport(hash: string, signal?: AbortSignal): Promise<V4.IndexReport | undefined> {
    const url = this.indexer(`indexer/api/v1/index_report/${hash}`);
    const response = await this.send(url, { method: 'GET', signal, timeout: this.timeout() }, [200, 404]);
    if (response.statusCode === 404) return undefined;
    return parseIndexReport(this.json(url, response.body), describeUrl(url));
  }

  /** POST index_report: synchronous, returns once Clair has fetched and scanned every new layer. */
  async index(manifest: V4.Manifest, signal?: AbortSignal): Promise<V4.IndexReport> {
    const url = this.indexer('indexer/api/v1/index_report');
    // No request timeout: the run's --timeout (via signal) bounds it; aborting also cancels Clair's index.
    const response = await this.send(url, { method: 'POST', json: manifest, signal }, [201]);
    const report = parseIndexReport(this.json(url, response.body), describeUrl(url));
    if (report.state === 'IndexError' || report.success === false) {
      const message = `Clair failed to index ${manifest.hash}: ${report.err || report.state}`;
      throw new ClairIndexError(message, undefined, { failure: indexFailure(message) });
    }
    return report;
  }

  /** DELETE index_report (bulk): removes manifests; returns the digests Clair actually deleted. */
  async deleteIndexReports(hashes: string[], signal?: AbortSignal): Promise<string[]> {
    if (hashes.length === 0) return [];
    const url = this.indexer('indexer/api/v1/index_report');
    const response = await this.send(url, { method: 'DELETE', json: hashes, signal, timeout: this.timeout() }, [200]);
    const body = this.json(url, response.body);
    return Array.isArray(body) ? body.filter((d): d is string => typeof d === 'string') : [];
  }

  async vulnerabilityReport(hash: string, signal?: AbortSignal): Promise<VulnerabilityReportResult> {
    const url = this.matcher(`matcher/api/v1/vulnerability_report/${hash}`);
    const response = await this.send(url, { method: 'GET', signal, timeout: this.timeout() }, [200, 202, 404]);
    if (response.statusCode === 202) return { kind: 'empty-database' };
    if (response.statusCode === 404) return { kind: 'not-indexed' };
    return { kind: 'report', report: parseVulnerabilityReport(this.json(url, response.body), describeUrl(url)) };
  }

  /** Latest vulnerability update per updater; `{}` when no updater ever ran. */
  async updateOperations(signal?: AbortSignal): Promise<V4.UpdateOperations> {
    const url = this.matcher('matcher/api/v1/internal/update_operation');
    url.searchParams.set('kind', 'vulnerability');
    url.searchParams.set('latest', 'true');
    const response = await this.send(url, { method: 'GET', signal, timeout: this.timeout() }, [200]);
    return parseUpdateOperations(this.json(url, response.body), describeUrl(url));
  }

  protected mapError(url: URL, { method }: SendOptions, error: RequestError): Error {
    const where = describeUrl(url);
    const { status, body } = failedResponse(error);
    if (status === undefined) return unreachableError(url, error);
    const clairMessage = parseErrorBody(body)?.message;
    if (status === 401) {
      return new ClairAuthError(
        `Clair at ${where} refused the request (401 Unauthorized)`,
        this.options.psk
          ? 'check that CLAIR_PSK is Clair\'s auth.psk.key (base64) and CLAIR_PSK_ISSUER is one of its auth.psk.iss'
          : 'this Clair requires PSK auth: set CLAIR_PSK (base64 key) and CLAIR_PSK_ISSUER',
        { cause: error },
      );
    }
    if (status === 429 || status === 503) {
      return new ClairIndexError(
        `Clair at ${where} is busy (${status}) and still was after ${this.options.retries ?? 4} retries`,
        'retry later, or raise Clair\'s indexer.index_report_request_concurrency',
        { cause: error, failure: { reason: 'busy' } },
      );
    }
    if (method === 'POST' && status === 500) {
      const said = clairMessage ?? body.trim().slice(0, 500);
      return new ClairIndexError(`Clair failed to index the image: ${said}`, undefined, { cause: error, failure: indexFailure(said) });
    }
    return new ClairProtocolError(
      `Clair at ${where} answered ${status}${clairMessage ? `: ${clairMessage}` : ''}`,
      undefined,
      { cause: error },
    );
  }
}
