// HTTP calls of the legacy Clair v1 API (Clair 1.x/2.x), with Clair's statuses mapped to what they mean
// (quay/clair v2.0.x api/v1/routes.go, Documentation/api_v1.md). Knows nothing of Docker or tar: layer URLs
// arrive as plain data.
import type { RequestError } from 'got';
import { ClairIndexError, ClairProtocolError } from '../../runtime/errors.js';
import { redactUrl } from '../../runtime/redact.js';
import { apiUrl, ClairHttpClient, createClairHttp, describeUrl, failedResponse, unreachableError, type SendOptions } from '../http.js';
import { parseErrorBody, parseLayerEnvelope, parseNamespaces, parseVulnerabilityPage } from './parse.js';
import type * as V1 from './wire.js';
import type { ProxySettings } from '../../runtime/proxy.js';

export interface ClairV1Options {
  url: URL;
  ca?: Buffer;
  proxy?: ProxySettings | undefined;
  /** Per-request timeout for everything but the (blocking) layer POST; ms. */
  requestTimeoutMs?: number;
  retries?: number;
  retryBaseDelayMs?: number;
}

export type PostLayerResult =
  | { kind: 'indexed' }
  /** 422 "OS and/or package manager are not supported": the scan cannot be trusted (exit 3), not an error. */
  | { kind: 'unsupported'; message: string };

const UNSUPPORTED = /not supported/i;

export class ClairV1Client extends ClairHttpClient<ClairV1Options> {
  static async create(options: ClairV1Options): Promise<ClairV1Client> {
    const http = await createClairHttp({
      ...options,
      // GETs only: a layer POST that timed out (503) may still be running in Clair.
      retryMethods: ['GET'],
      retryStatusCodes: [429, 500, 502, 503, 504],
    });
    return new ClairV1Client(http, options);
  }

  get url(): string {
    return redactUrl(this.options.url.href);
  }

  /** GET /v1/layers/{name}: the layer (with features and vulnerabilities when asked), or undefined (404). */
  async getLayer(name: string, options: { vulnerabilities?: boolean; signal?: AbortSignal } = {}): Promise<V1.Layer | undefined> {
    const url = this.at(`v1/layers/${encodeURIComponent(name)}`);
    // Clair 2 tests these parameters by presence only.
    const path = options.vulnerabilities ? new URL(`${url.href}?features&vulnerabilities`) : url;
    const response = await this.send(path, { method: 'GET', signal: options.signal, timeout: this.timeout() }, [200, 404]);
    if (response.statusCode === 404) return undefined;
    return parseLayerEnvelope(this.json(url, response.body), describeUrl(url));
  }

  /** POST /v1/layers: blocks until Clair has fetched and indexed the layer. */
  async postLayer(layer: V1.LayerRequest, signal?: AbortSignal): Promise<PostLayerResult> {
    const url = this.at('v1/layers');
    // No request timeout: the run's --timeout bounds it (Clair gives up itself after api.timeout, 503).
    const response = await this.send(url, { method: 'POST', json: { Layer: layer }, signal }, [200, 201, 422]);
    if (response.statusCode === 422) {
      const message = parseErrorBody(response.body)?.Message ?? response.body.trim().slice(0, 300);
      if (UNSUPPORTED.test(message)) return { kind: 'unsupported', message };
      throw new ClairIndexError(`Clair could not read layer ${layer.Name} (422: ${message})`,
        'the layer is not a readable tar archive, or holds a file over 200 MiB (Clair v1 extracts at most that)',
        { failure: { reason: 'unreadable-layer' } });
    }
    return { kind: 'indexed' };
  }

  async namespaces(signal?: AbortSignal): Promise<V1.Namespace[]> {
    const url = this.at('v1/namespaces');
    const response = await this.send(url, { method: 'GET', signal, timeout: this.timeout() }, [200]);
    return parseNamespaces(this.json(url, response.body), describeUrl(url));
  }

  /** One page of a namespace's vulnerabilities; undefined when Clair does not know the namespace (404). */
  async vulnerabilities(namespace: string, limit: number, signal?: AbortSignal): Promise<V1.VulnerabilityPage | undefined> {
    const url = this.at(`v1/namespaces/${encodeURIComponent(namespace)}/vulnerabilities`);
    url.searchParams.set('limit', String(limit));
    const response = await this.send(url, { method: 'GET', signal, timeout: this.timeout() }, [200, 404]);
    if (response.statusCode === 404) return undefined;
    return parseVulnerabilityPage(this.json(url, response.body), describeUrl(url));
  }

  private at(path: string): URL {
    return apiUrl(this.options.url, path);
  }

  protected mapError(url: URL, options: SendOptions, error: RequestError): Error {
    const where = describeUrl(url);
    const { status, body } = failedResponse(error);
    if (status === undefined) return unreachableError(url, error);
    const message = parseErrorBody(body)?.Message;
    if (options.method === 'POST') {
      const layer = (options.json as { Layer?: V1.LayerRequest } | undefined)?.Layer;
      const name = layer?.Name ?? '?';
      if (status === 400 && /could not find layer/i.test(message ?? '')) {
        return new ClairIndexError(
          `Clair could not fetch layer ${name} from the layer server at ${layer?.Path ? redactUrl(new URL(layer.Path).origin) : '?'} (400: could not find layer)`,
          'set --layer-address to an address of this machine that Clair can reach (and open that port)',
          { cause: error, failure: { reason: 'fetch-failed', said: message ?? '' } },
        );
      }
      if (status === 400 && /parent layer is unknown/i.test(message ?? '')) {
        return new ClairIndexError(
          `Clair does not know the parent ${layer?.ParentName ?? '?'} of layer ${name} (400: ${message})`,
          'another client may have deleted it meanwhile; run the scan again',
          { cause: error, failure: { reason: 'unknown-parent' } },
        );
      }
      if (status === 503) {
        return new ClairIndexError(`Clair did not index layer ${name} within its api.timeout (503)`,
          "retry; raise Clair's api.timeout for very large layers", { cause: error, failure: { reason: 'timed-out' } });
      }
      if (status === 502 || status === 504) {
        return new ClairIndexError(`a proxy in front of Clair cut the layer POST (${status}); the indexing was aborted or is still running`,
          'retry; raise the proxy timeout (e.g. nginx proxy_read_timeout)', { cause: error, failure: { reason: 'proxy-cut' } });
      }
      return new ClairIndexError(`Clair failed to index layer ${name} (${status}${message ? `: ${message}` : ''})`, undefined, { cause: error });
    }
    return new ClairProtocolError(`Clair at ${where} answered ${status}${message ? `: ${message}` : ''}`, undefined, { cause: error });
  }
}
