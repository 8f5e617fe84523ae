// HTTP calls of the Clair v4 indexer and matcher, with Clair's statuses mapped to what they mean.
// Knows nothing of Docker or tar: layer URLs arrive as plain data in the Manifest.
import type { Got, HTTPError, RequestError } from 'got';
import {
  ClairAuthError,
  ClairIndexError,
  ClairProtocolError,
  ClairUnreachableError,
  errnoCode,
} from '../../runtime/errors.js';
import { redactUrl } from '../../runtime/redact.js';
import { signPskToken, type PskAuth } from '../auth.js';
import { parseErrorBody, parseIndexReport, parseUpdateOperations, parseVulnerabilityReport } from './parse.js';
import type * as V4 from './wire.js';

export interface ClairV4Options {
  indexerUrl: URL;
  matcherUrl: URL;
  psk?: PskAuth;
  /** Extra CA certificates (PEM) for https Clair endpoints. */
  ca?: Buffer;
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

const JSON_ACCEPT = 'application/json';

export class ClairV4Client {
  private constructor(
    private readonly http: Got,
    private readonly options: ClairV4Options,
  ) {}

  static async create(options: ClairV4Options): Promise<ClairV4Client> {
    const { default: got } = await import('got');
    const retries = options.retries ?? 4;
    const base = options.retryBaseDelayMs ?? 500;
    const http = got.extend({
      headers: { accept: JSON_ACCEPT, 'user-agent': 'docker-clair' },
      retry: {
        limit: retries,
        // Only the "try later" answers: a POST that failed in any other way may have consumed a layer.
        methods: ['GET', 'POST', 'DELETE'],
        statusCodes: [429, 503],
        errorCodes: [],
        calculateDelay: ({ attemptCount, computedValue }) =>
          computedValue === 0 ? 0 : Math.min(base * 2 ** (attemptCount - 1), 30_000),
      },
      https: options.ca ? { certificateAuthority: options.ca } : {},
      hooks: {
        beforeRequest: [
          (request) => {
            if (options.psk) request.headers.authorization = `Bearer ${signPskToken(options.psk)}`;
          },
        ],
      },
    });
    return new ClairV4Client(http, options);
  }

  private indexer(path: string): URL {
    return join(this.options.indexerUrl, path);
  }

  private matcher(path: string): URL {
    return join(this.options.matcherUrl, path);
  }

  /** GET index_report: the stored report, or undefined when Clair does not know the manifest. */
  async getIndexReport(hash: string, signal?: AbortSignal): Promise<V4.IndexReport | undefined> {
    const url = this.indexer(`indexer/api/v1/index_report/${hash}`);
    const response = await this.send(url, { method: 'GET', signal, timeout: this.timeout() }, [200, 404]);
    if (response.statusCode === 404) return undefined;
    return parseIndexReport(this.json(url, response.body), describe(url));
  }

  /** POST index_report: synchronous, returns once Clair has fetched and scanned every new layer. */
  async index(manifest: V4.Manifest, signal?: AbortSignal): Promise<V4.IndexReport> {
    const url = this.indexer('indexer/api/v1/index_report');
    // No request timeout: the run's --timeout (via signal) bounds it; aborting also cancels Clair's index.
    const response = await this.send(url, { method: 'POST', json: manifest, signal }, [201]);
    const report = parseIndexReport(this.json(url, response.body), describe(url));
    if (report.state === 'IndexError' || report.success === false) {
      throw new ClairIndexError(`Clair failed to index ${manifest.hash}: ${report.err || report.state}`);
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
    return { kind: 'report', report: parseVulnerabilityReport(this.json(url, response.body), describe(url)) };
  }

  /** Latest vulnerability update per updater; `{}` when no updater ever ran. */
  async updateOperations(signal?: AbortSignal): Promise<V4.UpdateOperations> {
    const url = this.matcher('matcher/api/v1/internal/update_operation');
    url.searchParams.set('kind', 'vulnerability');
    url.searchParams.set('latest', 'true');
    const response = await this.send(url, { method: 'GET', signal, timeout: this.timeout() }, [200]);
    return parseUpdateOperations(this.json(url, response.body), describe(url));
  }

  private timeout() {
    return { request: this.options.requestTimeoutMs ?? 60_000 };
  }

  private json(url: URL, body: string): unknown {
    try {
      return JSON.parse(body);
    } catch {
      // Clair reports errors after the body has started only in a trailer: a cut body looks like this.
      throw new ClairProtocolError(`Clair at ${describe(url)} sent a body that is not JSON (truncated?)`);
    }
  }

  private async send(
    url: URL,
    options: { method: 'GET' | 'POST' | 'DELETE'; json?: unknown; signal?: AbortSignal | undefined; timeout?: { request: number } },
    expected: number[],
  ): Promise<{ statusCode: number; body: string }> {
    try {
      const response = await this.http(url, {
        method: options.method,
        ...(options.json !== undefined ? { json: options.json } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.timeout ? { timeout: options.timeout } : {}),
        throwHttpErrors: true,
        responseType: 'text',
        // got treats 2xx as success; anything else arrives as HTTPError below.
      });
      if (!expected.includes(response.statusCode)) {
        throw new ClairProtocolError(`Clair at ${describe(url)} answered ${response.statusCode}, expected ${expected.join(' or ')}`);
      }
      return { statusCode: response.statusCode, body: response.body };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      const http = error as HTTPError;
      const status = http.response?.statusCode;
      if (status !== undefined && expected.includes(status)) {
        return { statusCode: status, body: String(http.response.body ?? '') };
      }
      throw this.mapError(url, options.method, error as RequestError);
    }
  }

  private mapError(url: URL, method: string, error: RequestError): Error {
    if (error instanceof ClairProtocolError) return error;
    const where = describe(url);
    const status = (error as HTTPError).response?.statusCode;
    if (status === undefined) {
      const code = error.code ?? errnoCode(error);
      const tls = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(code ?? '');
      return new ClairUnreachableError(
        `cannot reach Clair at ${where} (${tls ? `TLS: ${error.message}` : (code ?? error.message)})`,
        tls
          ? 'give Clair\'s CA certificate with --clair-cacert, or use http://'
          : 'check --clair (or CLAIR_ADDR) and that Clair is running and reachable from here',
        { cause: error },
      );
    }
    const body = String((error as HTTPError).response?.body ?? '');
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
        { cause: error },
      );
    }
    if (method === 'POST' && status === 500) {
      return new ClairIndexError(`Clair failed to index the image: ${clairMessage ?? body.trim().slice(0, 500)}`, undefined, {
        cause: error,
      });
    }
    return new ClairProtocolError(
      `Clair at ${where} answered ${status}${clairMessage ? `: ${clairMessage}` : ''}`,
      undefined,
      { cause: error },
    );
  }
}

/** Appends an API path to a base URL that may carry a path prefix (reverse proxies). */
function join(base: URL, path: string): URL {
  const url = new URL(base.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/${path}`;
  return url;
}

function describe(url: URL): string {
  return redactUrl(`${url.origin}${url.pathname}`);
}
