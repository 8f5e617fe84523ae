// HTTP plumbing shared by the Clair v4 and v1 clients: a got instance with Clair's retry rules, one request
// primitive that returns the expected statuses and hands everything else to the protocol's error mapping,
// and the messages every protocol words the same way (unreachable, not JSON). URLs in messages carry no
// user-info, query or secret.
import type { Got, HTTPError, Method, RequestError } from 'got';
import { ClairProtocolError, ClairUnreachableError, errnoCode } from '../runtime/errors.js';
import { proxyHooks, type ProxySettings } from '../runtime/proxy.js';
import { redactUrl } from '../runtime/redact.js';
import { signPskToken, type PskAuth } from './auth.js';

export interface ClairHttpOptions {
  ca?: Buffer;
  /** HTTP(S)_PROXY/NO_PROXY, when any proxy is set. */
  proxy?: ProxySettings | undefined;
  psk?: PskAuth;
  /** Default 4. */
  retries?: number | undefined;
  /** Default 500 ms, doubled per retry up to 30 s. */
  retryBaseDelayMs?: number | undefined;
  /** Which methods may be retried, and on which statuses ("try later" answers only). */
  retryMethods: Method[];
  retryStatusCodes: number[];
}

export async function createClairHttp(options: ClairHttpOptions): Promise<Got> {
  const { default: got } = await import('got');
  const { psk } = options;
  return got.extend({
    headers: { accept: 'application/json', 'user-agent': 'docker-clair' },
    retry: {
      limit: options.retries ?? 4,
      methods: options.retryMethods,
      statusCodes: options.retryStatusCodes,
      errorCodes: [],
      calculateDelay: ({ attemptCount, computedValue }) =>
        computedValue === 0 ? 0 : Math.min((options.retryBaseDelayMs ?? 500) * 2 ** (attemptCount - 1), 30_000),
    },
    https: options.ca ? { certificateAuthority: options.ca } : {},
    hooks: {
      beforeRequest: [
        (request) => {
          if (psk) request.headers.authorization = `Bearer ${signPskToken(psk)}`;
        },
        ...proxyHooks(options.proxy, { ca: options.ca }),
      ],
    },
  });
}

export interface SendOptions {
  method: 'GET' | 'POST' | 'DELETE';
  json?: unknown;
  signal?: AbortSignal | undefined;
  timeout?: { request: number };
}

export interface TextResponse {
  statusCode: number;
  body: string;
}

/**
 * One request. Statuses in `expected` come back (2xx or not); anything else goes through `mapError`, whose
 * protocol knows what Clair meant. A cancelled run rethrows its own reason.
 */
export async function sendText(
  http: Got,
  url: URL,
  options: SendOptions,
  expected: number[],
  mapError: (error: RequestError) => Error,
): Promise<TextResponse> {
  try {
    const response = await http(url, {
      method: options.method,
      ...(options.json !== undefined ? { json: options.json } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeout ? { timeout: options.timeout } : {}),
      throwHttpErrors: true,
      responseType: 'text',
    });
    if (!expected.includes(response.statusCode)) {
      throw new ClairProtocolError(`Clair at ${describeUrl(url)} answered ${response.statusCode}, expected ${expected.join(' or ')}`);
    }
    return { statusCode: response.statusCode, body: response.body };
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (error instanceof ClairProtocolError) throw error;
    const status = (error as HTTPError).response?.statusCode;
    if (status !== undefined && expected.includes(status)) {
      return { statusCode: status, body: String((error as HTTPError).response.body ?? '') };
    }
    throw mapError(error as RequestError);
  }
}

/** The status of a failed request, and its body; undefined status = no answer at all. */
export function failedResponse(error: RequestError): { status: number | undefined; body: string } {
  const response = (error as HTTPError).response;
  return { status: response?.statusCode, body: String(response?.body ?? '') };
}

/** No HTTP answer: refused, unresolvable, timed out, or a TLS failure. */
export function unreachableError(url: URL, error: RequestError): ClairUnreachableError {
  const code = error.code ?? errnoCode(error);
  const tls = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(code ?? '');
  return new ClairUnreachableError(
    `cannot reach Clair at ${describeUrl(url)} (${tls ? `TLS: ${error.message}` : (code ?? error.message)})`,
    tls
      ? "give Clair's CA certificate with --clair-cacert, or use http://"
      : 'check --clair (or CLAIR_ADDR) and that Clair is running and reachable from here',
    { cause: error },
  );
}

/**
 * What the v4 and v1 clients share: their got instance, the per-request timeout, and the one request primitive
 * whose failures go through the protocol's own error mapping.
 */
export abstract class ClairHttpClient<Options extends { requestTimeoutMs?: number | undefined }> {
  protected constructor(
    private readonly http: Got,
    protected readonly options: Options,
  ) {}

  /** For everything but the blocking index POST (v4) and layer POST (v1), which the run's --timeout bounds. */
  protected timeout(): { request: number } {
    return { request: this.options.requestTimeoutMs ?? 60_000 };
  }

  protected json(url: URL, body: string): unknown {
    return parseJsonBody(url, body);
  }

  protected send(url: URL, options: SendOptions, expected: number[]): Promise<TextResponse> {
    return sendText(this.http, url, options, expected, (error) => this.mapError(url, options, error));
  }

  /** A failed request as this protocol means it (Clair's statuses and error bodies). */
  protected abstract mapError(url: URL, options: SendOptions, error: RequestError): Error;
}

/** An error body as JSON, from raw text or already parsed; undefined when it is not JSON. Never throws. */
export function lenientJson(body: unknown): unknown {
  if (typeof body !== 'string' && !Buffer.isBuffer(body)) return body;
  try {
    return JSON.parse(String(body));
  } catch {
    return undefined;
  }
}

export function parseJsonBody(url: URL, body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    // Clair v4 reports errors after the body has started only in a trailer: a cut body looks like this.
    throw new ClairProtocolError(`Clair at ${describeUrl(url)} sent a body that is not JSON (truncated?)`);
  }
}

/** Appends an API path to a base URL that may carry a path prefix (reverse proxies). */
export function apiUrl(base: URL, path: string): URL {
  const url = new URL(base.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/${path}`;
  return url;
}

export function describeUrl(url: URL): string {
  return redactUrl(`${url.origin}${url.pathname}`);
}
