// --clair-api auto: which API does the Clair at --clair speak? One probe, at most two requests:
//   GET <clair>/indexer/api/v1/index_state   200 (or 401: a PSK-protected v4) → v4
//   GET <clair>/v1/namespaces                200 → v1 (Clair 1.x/2.x)
// v4 is tried first: it is the current API, and a Clair with both (none exists upstream) is best used as v4.
// When Clair cannot be reached at all the answer is v4, so its client reports the failure as it always has.
import type { Got } from 'got';
import { ClairProtocolError, UsageError } from '../runtime/errors.js';
import { redactUrl } from '../runtime/redact.js';
import { proxyHooks, type ProxySettings } from '../runtime/proxy.js';

export type ClairApi = 'v4' | 'v1';
export type ClairApiChoice = ClairApi | 'auto';

export interface Detection {
  api: ClairApi;
  /** For --debug: what the probe saw. */
  why: string;
}

export interface DetectOptions {
  ca?: Buffer | undefined;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
  proxy?: ProxySettings | undefined;
}

export async function detectClairApi(base: URL, options: DetectOptions = {}): Promise<Detection> {
  const { default: got } = await import('got');
  const http: Got = got.extend({
    headers: { accept: 'application/json', 'user-agent': 'docker-clair' },
    retry: { limit: 0 },
    throwHttpErrors: false,
    followRedirect: false,
    timeout: { request: options.timeoutMs ?? 15_000 },
    https: options.ca ? { certificateAuthority: options.ca } : {},
    ...(options.signal ? { signal: options.signal } : {}),
    hooks: { beforeRequest: proxyHooks(options.proxy, { ca: options.ca }) },
  });
  const at = (path: string) => {
    const url = new URL(base.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/${path}`;
    return url;
  };
  const status = async (url: URL): Promise<number | string> => {
    try {
      return (await http(url, { method: 'GET' })).statusCode;
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      return (error as { code?: string }).code ?? (error as Error).message;
    }
  };
  const v4 = at('indexer/api/v1/index_state');
  const v4Status = await status(v4);
  if (v4Status === 200 || v4Status === 401) return { api: 'v4', why: `GET ${describe(v4)} answered ${v4Status}` };
  if (typeof v4Status === 'string') return { api: 'v4', why: `GET ${describe(v4)} failed (${v4Status}); assuming v4` };
  const v1 = at('v1/namespaces');
  const v1Status = await status(v1);
  if (v1Status === 200) return { api: 'v1', why: `GET ${describe(v4)} answered ${v4Status}, GET ${describe(v1)} answered 200` };
  throw new ClairProtocolError(
    `Clair at ${redactUrl(base.href)} speaks neither the v4 API (GET ${describe(v4)}: ${v4Status}) nor the v1 API (GET ${describe(v1)}: ${v1Status})`,
    'check --clair points at Clair itself (v4: the indexer or combo port; v1: the API port, usually 6060), or pass --clair-api v4|v1',
  );
}

function describe(url: URL): string {
  return redactUrl(`${url.origin}${url.pathname}`);
}

/** --clair-api as given, settled: auto probes `clairUrl` once. A split indexer/matcher is v4 only. */
export async function resolveClairApi(
  choice: ClairApiChoice,
  urls: { clairUrl?: URL | undefined; indexerUrl?: URL | undefined; matcherUrl?: URL | undefined },
  options: DetectOptions = {},
): Promise<Detection> {
  const split = urls.indexerUrl !== undefined || urls.matcherUrl !== undefined;
  if (choice === 'v1' && split) {
    throw new UsageError('--indexer and --matcher are Clair v4 options; Clair v1 has one API address',
      'pass --clair URL alone with --clair-api v1');
  }
  if (choice !== 'auto') return { api: choice, why: `--clair-api ${choice}` };
  if (split) return { api: 'v4', why: '--indexer/--matcher given (a split deployment is v4)' };
  const base = urls.clairUrl;
  if (!base) return { api: 'v4', why: 'no --clair to probe' };
  return detectClairApi(base, options);
}
