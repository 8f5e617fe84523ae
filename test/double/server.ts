/**
 * startClairDouble(): a Clair (v4 combo mode and/or legacy v1) on a local port, for tests.
 * See README.md in this folder for the behaviour and the fault switches.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { checkBearer } from './jwt.js';
import type { LayerFetchRecord } from './layer-fetch.js';
import type { ClairDoubleOptions, RequestRecord } from './options.js';
import { ClairV1 } from './v1.js';
import { ClairV4 } from './v4.js';
import { encodeIndexReport } from './v4-model.js';
import { loadVulnFile, type VulnEntry } from './vulns.js';

export type { ClairDoubleOptions, Fault, FaultHooks, ManifestInfo, RequestRecord, V1LayerInfo } from './options.js';
export type { LayerFetchRecord } from './layer-fetch.js';
export type { VulnEntry } from './vulns.js';

/** The fixture database the double loads when no `vulns` option is given. */
export const DEFAULT_VULNS_FILE = fileURLToPath(new URL('../fixtures/vulnerabilities.json', import.meta.url));

export interface ClairDouble {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  port: number;
  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void>;
  /** Every layer GET the double made (v4 and v1), in start order. */
  layerFetches: LayerFetchRecord[];
  /** Every request the double answered, in completion order. */
  requests: RequestRecord[];
  /** The most v4 layer GETs that were in flight at once. */
  maxConcurrentFetches(): number;
  /**
   * Resolves once no request is being handled (at once when none is): e.g. after a client went away, when the
   * double has finished cancelling that request's work.
   */
  idle(): Promise<void>;
  /** v4: switch the "vulnerability database is empty" (202) mode at run time. */
  setEmptyDb(empty: boolean): void;
  /** v4: end of the first vulnerability update: the database is loaded and update_operation is dated `at`. */
  finishUpdate(at?: Date): void;
  /** v4: the stored index report for a manifest, as the API would serve it, or undefined. */
  indexReport(hash: string): Record<string, unknown> | undefined;
  /** v4: true when a layer digest has been scanned (it will never be fetched again). */
  hasScannedLayer(digest: string): boolean;
  /** v1: the Names of the layers the double holds. */
  v1Layers(): string[];
  /** The vulnerability entries in force (file or option). */
  vulnerabilities: VulnEntry[];
  v4: ClairV4 | undefined;
  v1: ClairV1 | undefined;
}

function pathOf(req: IncomingMessage): URL {
  return new URL(req.url ?? '/', 'http://double.invalid');
}

export async function startClairDouble(options: ClairDoubleOptions = {}): Promise<ClairDouble> {
  const api = options.api ?? 'v4';
  const vulns: VulnEntry[] = Array.isArray(options.vulns) ? options.vulns
    : loadVulnFile(typeof options.vulns === 'string' ? options.vulns : DEFAULT_VULNS_FILE);
  const db = (): VulnEntry[] => vulns;
  const layerFetches: LayerFetchRecord[] = [];
  const requests: RequestRecord[] = [];
  const v4 = api === 'v1' ? undefined : new ClairV4(options, db);
  const v1 = api === 'v4' ? undefined : new ClairV1(options, db, (r) => layerFetches.push(r));
  const psk = options.psk === undefined ? undefined
    : { key: Buffer.from(options.psk, 'base64'), issuers: options.issuers ?? [] };
  const now = options.now ?? Date.now;
  const log = options.log ?? ((): void => undefined);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = pathOf(req);
    if (url.pathname === '/robots.txt') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('User-agent: *\nDisallow: /\n');
      return;
    }
    if (v1 !== undefined && url.pathname.startsWith('/v1/')) {
      if (await v1.handle(req, res, url)) return;
    }
    if (v4 !== undefined) {
      if (psk !== undefined) {
        const why = checkBearer(req.headers.authorization, psk, Math.floor(now() / 1000));
        if (why !== undefined) {
          log(`auth: refused (${why})`);
          res.writeHead(401, { 'Content-Length': '0' });
          res.end();
          return;
        }
      }
      if (await v4.handle(req, res, url)) return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end('404 page not found\n');
  };

  let handling = 0;
  let idleWaiters: (() => void)[] = [];
  const server = createServer((req, res) => {
    handling++;
    const startedAt = Date.now();
    res.on('close', () => {
      const rec: RequestRecord = {
        method: req.method ?? '', path: req.url ?? '', status: res.writableFinished ? res.statusCode : 499, startedAt,
        finishedAt: Date.now(),
      };
      if (req.headers.authorization !== undefined) rec.authorization = req.headers.authorization;
      requests.push(rec);
      log(`${rec.method} ${rec.path} ${rec.status} ${rec.finishedAt - startedAt}ms`);
    });
    handle(req, res).catch((err: unknown) => {
      log(`internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      try {
        if (res.headersSent) throw err;
        for (const h of res.getHeaderNames()) res.removeHeader(h);
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ code: 'internal-error', message: String(err) }));
      } catch {
        res.destroy();
      }
    }).finally(() => {
      if (--handling > 0) return;
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
    layerFetches: v4 === undefined ? layerFetches : mergeFetchLogs(v4.layerFetches, layerFetches),
    requests,
    maxConcurrentFetches: () => v4?.maxConcurrentFetches ?? 0,
    idle: () => (handling === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    setEmptyDb: (empty) => {
      if (v4 !== undefined) v4.emptyDb = empty;
    },
    finishUpdate: (at) => v4?.finishUpdate(at),
    indexReport: (hash) => {
      const r = v4?.reports.get(hash);
      return r === undefined ? undefined : encodeIndexReport(r);
    },
    hasScannedLayer: (digest) => v4?.layers.has(digest) ?? false,
    v1Layers: () => [...(v1?.layers.keys() ?? [])],
    vulnerabilities: vulns,
    v4,
    v1,
  };
}

/** v4 and v1 keep their own logs; in "both" mode the double exposes one array fed by both. */
function mergeFetchLogs(v4Log: LayerFetchRecord[], v1Log: LayerFetchRecord[]): LayerFetchRecord[] {
  const push = v1Log.push.bind(v1Log);
  v1Log.push = (...items: LayerFetchRecord[]): number => {
    v4Log.push(...items);
    return push(...items);
  };
  return v4Log;
}
