/**
 * Fetching layers the way claircore's fetcher does (libindex/fetcher.go, released v1.5.x):
 * one plain GET per digest carrying exactly `layers[].headers` (plus the `User-Agent` and `Accept-Encoding`
 * Go's transport adds), redirects followed up to 10 times, status exactly 200, Content-Type checked against the
 * sniffed compression, the raw body hashed before decompression. At most N fetches run at once, started in
 * manifest order; the first error cancels the rest.
 */
import { createHash, type Hash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DiscardGetError, discardGet } from './discard-get.js';
import { goQuote } from './go-quote.js';
import { parseDigest } from './digest.js';
import { decompressor, sniffCompression, TarSink, type Compression, type LayerContents } from './layer-unpack.js';

export interface LayerDescriptor {
  hash: string;
  uri: string;
  headers: Record<string, string[]>;
}

/** One GET the double made, for tests to inspect. */
export interface LayerFetchRecord {
  digest: string;
  uri: string;
  /** `fetch`, or `probe` for the emulated cc-main range probe. */
  reason: 'fetch' | 'probe';
  requestHeaders: Record<string, string[]>;
  startedAt: number;
  finishedAt?: number;
  status?: number;
  contentType?: string;
  contentEncoding?: string;
  acceptRanges?: string;
  bytes: number;
  compression?: Compression;
  error?: string;
  /** True when the GET was aborted because another fetch failed or the client went away. */
  cancelled?: boolean;
}

export interface FetchedLayer {
  digest: string;
  contents: LayerContents;
  compression: Compression;
  bytes: number;
}

export interface FetchOptions {
  signal: AbortSignal;
  /** Reject any response that carries Content-Encoding (default). Off: decode gzip before hashing, as Go does. */
  rejectContentEncoding: boolean;
  /** Emulate unreleased claircore (cc-main): a `Range: bytes=0-15` probe before each fetch. */
  rangeProbe: boolean;
  wanted: (path: string) => boolean;
  /**
   * What becomes of a fetched body: `scan` (hashed, checked, unpacked, as Clair does), or `discard` (read to its
   * end and thrown away: no hash, no unpacking; the layer indexes as empty). `discard` is a stand-in that costs
   * next to nothing, so a benchmark sees the plugin's own cost.
   */
  layers?: 'scan' | 'discard';
  /** Read bodies at most this fast (bytes per second): a slow Clair, for backpressure. Default: as fast as they come. */
  layerRate?: number;
  /** Extra CA certificates (PEM) for https URIs, beside the system's. */
  trustCa?: string;
  record: (r: LayerFetchRecord) => void;
  /** Called when a recorded GET is over (done, failed or cancelled). */
  finished?: (r: LayerFetchRecord) => void;
}

/** A failure with Clair's wording for the cause (the text after `fetcher: encountered errors: `). */
export class LayerFetchError extends Error {}

/**
 * The body arrived and matched its digest but is not a readable tar (claircore's `tarfs.ErrFormat`, raised while
 * the fetched layer is opened, so it also cancels the other fetches; Clair answers 400 for it).
 */
export class LayerFormatError extends LayerFetchError {}

const MAX_REDIRECTS = 10;

interface Response {
  res: http.IncomingMessage;
  url: URL;
}

function goErrorText(err: unknown, url: URL): string {
  const e = err as NodeJS.ErrnoException;
  const hostPort = `${url.hostname}:${url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80'}`;
  switch (e.code) {
    case 'ECONNREFUSED': return `dial tcp ${hostPort}: connect: connection refused`;
    case 'EHOSTUNREACH': return `dial tcp ${hostPort}: connect: no route to host`;
    case 'ENETUNREACH': return `dial tcp ${hostPort}: connect: network is unreachable`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN': return `dial tcp: lookup ${url.hostname}: no such host`;
    case 'ETIMEDOUT': return `dial tcp ${hostPort}: i/o timeout`;
    case 'ECONNRESET': return 'EOF';
    default: return e.message;
  }
}

function headersOf(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** One GET with Go's client behaviour: added headers, redirects, Authorization dropped across hosts. */
export async function goGet(
  uri: string,
  headers: Record<string, string[]>,
  signal: AbortSignal,
  trustCa?: string,
): Promise<Response> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new LayerFetchError(`failed to parse remote path uri: parse ${JSON.stringify(uri)}: invalid URI for request`);
  }
  let hdrs = structuredClone(headers);
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new LayerFetchError(`fetcher: request failed: Get ${JSON.stringify(url.href)}: unsupported protocol scheme ${JSON.stringify(url.protocol.replace(/:$/, ''))}`);
    }
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      const ca = trustCa !== undefined && url.protocol === 'https:' ? { ca: [...tls.rootCertificates, trustCa] } : {};
      const req = mod.request(url, { method: 'GET', headers: hdrs, signal, agent: false, ...ca }, resolve);
      req.on('error', (err) => {
        if (signal.aborted) reject(signal.reason);
        else reject(new LayerFetchError(`fetcher: request failed: Get ${JSON.stringify(url.href)}: ${goErrorText(err, url)}`));
      });
      req.end();
    });
    const status = res.statusCode ?? 0;
    const location = headersOf(res, 'location');
    if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
      res.resume();
      if (hop + 1 >= MAX_REDIRECTS) {
        throw new LayerFetchError(`fetcher: request failed: Get ${JSON.stringify(location)}: stopped after 10 redirects`);
      }
      const next = new URL(location, url);
      if (next.host !== url.host) {
        hdrs = Object.fromEntries(Object.entries(hdrs).filter(([k]) =>
          !['authorization', 'www-authenticate', 'cookie', 'cookie2'].includes(k.toLowerCase())));
      }
      url = next;
      continue;
    }
    return { res, url };
  }
}

/** Go's mime.ParseMediaType, reduced to what the fetcher needs: the lowercased type or its error. */
export function parseMediaType(value: string | undefined): string {
  const base = (value ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (base === '') throw new LayerFetchError('fetcher: mime: no media type');
  if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+(\/[!#$%&'*+\-.^_`|~0-9a-z]+)?$/.test(base)) {
    throw new LayerFetchError('fetcher: mime: expected token after slash');
  }
  if (!base.includes('/')) throw new LayerFetchError('fetcher: mime: expected slash after first token');
  return base;
}

const isOctetStream = (ct: string): boolean => /^(application|binary)\/octet-stream$/.test(ct);

/** The Content-Type rule: generic types take the sniffed kind; any other must agree with it. */
export function checkContentType(rawCt: string | undefined, kind: Compression): void {
  let ct = parseMediaType(rawCt);
  if (ct === 'text/plain' || isOctetStream(ct)) {
    switch (kind) {
      case 'KindGzip': ct = 'application/gzip'; break;
      case 'KindZstd': ct = 'application/zstd'; break;
      case 'KindNone': ct = 'application/x-tar'; break;
      default: throw new LayerFetchError(`fetcher: disallowed compression kind: ${JSON.stringify(kind)}`);
    }
  }
  let want: Compression;
  if (ct === 'application/vnd.docker.image.rootfs.diff.tar.gzip' || ct === 'application/gzip' ||
      ct === 'application/x-gzip' || ct.endsWith('.tar+gzip')) want = 'KindGzip';
  else if (ct === 'application/zstd' || ct.endsWith('.tar+zstd')) want = 'KindZstd';
  else if (ct === 'application/x-tar' || ct.endsWith('.tar')) want = 'KindNone';
  else throw new LayerFetchError(`fetcher: unknown content-type ${JSON.stringify(ct)}`);
  if (kind !== want) {
    throw new LayerFetchError(`fetcher: mismatched compression (${JSON.stringify(kind)}) and content-type (${JSON.stringify(ct)})`);
  }
}

function statusText(res: http.IncomingMessage): string {
  return statusLine(res.statusCode ?? 0, res.statusMessage);
}

/** Go's resp.Status: the code and the reason phrase the server sent. */
function statusLine(code: number, message: string | undefined): string {
  return `${code} ${message ?? http.STATUS_CODES[code] ?? ''}`.trimEnd();
}

async function readPrefix(res: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res as AsyncIterable<Buffer>) {
      chunks.push(c);
      n += c.length;
      if (n >= limit) break;
    }
  } catch {
    // A body that breaks off still gives what was read.
  }
  res.destroy();
  return Buffer.concat(chunks).subarray(0, limit);
}

/** CheckResponse: exactly the accepted statuses, else the status line and the first 256 body bytes. */
async function checkStatus(res: http.IncomingMessage, ok: number[], prefix: string): Promise<void> {
  if (ok.includes(res.statusCode ?? 0)) return;
  const body = await readPrefix(res, 256);
  throw new LayerFetchError(`${prefix}unexpected status code: ${statusText(res)} (body starts: ${goQuote(body)})`);
}

function goHeaders(desc: LayerDescriptor, extra: Record<string, string>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(desc.headers)) out[k] = [...v];
  const has = (name: string): boolean => Object.keys(out).some((k) => k.toLowerCase() === name);
  for (const [k, v] of Object.entries(extra)) out[k] = [v];
  if (!has('user-agent')) out['User-Agent'] = ['Go-http-client/1.1'];
  if (!has('accept-encoding') && !has('range')) out['Accept-Encoding'] = ['gzip'];
  return out;
}

class HashTap extends Transform {
  bytes = 0;
  constructor(private readonly hash: Hash) {
    super();
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

async function rangeProbe(desc: LayerDescriptor, opts: FetchOptions): Promise<void> {
  const headers = goHeaders(desc, { 'claircore-reason': 'inspect', Range: 'bytes=0-15' });
  const rec: LayerFetchRecord = {
    digest: desc.hash, uri: desc.uri, reason: 'probe', requestHeaders: headers, startedAt: Date.now(), bytes: 0,
  };
  opts.record(rec);
  await recorded(rec, opts, async () => {
    const { res } = await goGet(desc.uri, headers, opts.signal, opts.trustCa);
    rec.status = res.statusCode;
    rec.contentType = headersOf(res, 'content-type');
    rec.acceptRanges = headersOf(res, 'accept-ranges');
    await checkStatus(res, [200, 206], 'fetcher: ');
    const head = await readPrefix(res, 16);
    rec.bytes = head.length;
    if (head.length < 16) throw new LayerFetchError('fetcher: unexpected read: unexpected EOF');
  });
}

/** Runs one recorded GET: its error (and whether it was a cancellation) and its end are written on the record. */
async function recorded<T>(rec: LayerFetchRecord, opts: FetchOptions, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    rec.error = err instanceof Error ? err.message : String(err);
    rec.cancelled = opts.signal.aborted;
    throw err;
  } finally {
    rec.finishedAt = Date.now();
    opts.finished?.(rec);
  }
}

/** Fetches, verifies and unpacks one layer. Throws LayerFetchError with Clair's wording. */
export async function fetchLayer(desc: LayerDescriptor, opts: FetchOptions): Promise<FetchedLayer> {
  if (desc.uri === '') throw new LayerFetchError(`empty uri for layer ${desc.hash}`);
  const digest = parseDigest(desc.hash);
  if (opts.rangeProbe) await rangeProbe(desc, opts);
  const headers = goHeaders(desc, opts.rangeProbe ? { 'claircore-reason': 'fetch' } : {});
  const addedAcceptEncoding = !Object.keys(desc.headers).some((k) => ['accept-encoding', 'range'].includes(k.toLowerCase()));
  const rec: LayerFetchRecord = {
    digest: desc.hash, uri: desc.uri, reason: 'fetch', requestHeaders: headers, startedAt: Date.now(), bytes: 0,
  };
  opts.record(rec);
  if (opts.layers === 'discard') return discardLayer(desc, headers, rec, opts);
  let response: http.IncomingMessage | undefined;
  return recorded(rec, opts, async () => {
    try {
      const { res } = await goGet(desc.uri, headers, opts.signal, opts.trustCa);
      response = res;
      rec.status = res.statusCode;
      rec.contentType = headersOf(res, 'content-type');
      rec.contentEncoding = headersOf(res, 'content-encoding');
      rec.acceptRanges = headersOf(res, 'accept-ranges');
      await checkStatus(res, [200], '');
      let body: Readable = opts.layerRate === undefined ? res : Readable.from(paced(res, opts.layerRate));
      if (rec.contentEncoding !== undefined && rec.contentEncoding !== '') {
        if (opts.rejectContentEncoding || !addedAcceptEncoding || rec.contentEncoding.toLowerCase() !== 'gzip') {
          res.destroy();
          throw new LayerFetchError(
            `fetcher: layer response carries Content-Encoding ${JSON.stringify(rec.contentEncoding)} ` +
            '(this double refuses it; real Clair decodes gzip before hashing, so the digest check fails)');
        }
        body = res.pipe(createGunzip());
      }
      const hash = createHash(digest.algorithm);
      const iterator = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      const headChunks: Buffer[] = [];
      let headLen = 0;
      let ended = false;
      while (headLen < 4) {
        const step = await iterator.next().catch((err: unknown) => { throw bodyError(err, opts.signal); });
        if (step.done === true) {
          ended = true;
          break;
        }
        headChunks.push(step.value);
        headLen += step.value.length;
      }
      const head = Buffer.concat(headChunks);
      const kind = sniffCompression(head);
      rec.compression = kind;
      checkContentType(rec.contentType, kind);
      const tap = new HashTap(hash);
      const sink = new TarSink(opts.wanted);
      async function* all(): AsyncGenerator<Buffer> {
        if (head.length > 0) yield head;
        if (ended) return;
        for (;;) {
          const step = await iterator.next();
          if (step.done === true) return;
          yield step.value;
        }
      }
      try {
        await pipeline(Readable.from(all()), tap, decompressor(kind), sink, { signal: opts.signal });
      } catch (err) {
        throw bodyError(err, opts.signal);
      } finally {
        rec.bytes = tap.bytes;
      }
      const got = hash.digest('hex');
      if (got !== digest.hex) {
        throw new LayerFetchError(`fetcher: validation failed: got ${JSON.stringify(got)}, expected ${JSON.stringify(digest.hex)}`);
      }
      if (sink.tarError !== undefined) throw new LayerFormatError(`tarfs: format error: ${sink.tarError.message}`);
      return { digest: desc.hash, contents: sink.contents, compression: kind, bytes: tap.bytes };
    } catch (err) {
      response?.destroy();
      throw err;
    }
  });
}

/**
 * The `discard` stand-in's fetch: the body read to its end through discardGet (one reused buffer, nothing
 * hashed or unpacked), the layer indexed as empty. The status rule and the error wording are the fetcher's.
 */
async function discardLayer(desc: LayerDescriptor, headers: Record<string, string[]>, rec: LayerFetchRecord, opts: FetchOptions): Promise<FetchedLayer> {
  return recorded(rec, opts, async () => {
    let url: URL;
    try {
      url = new URL(desc.uri);
    } catch {
      throw new LayerFetchError(`failed to parse remote path uri: parse ${JSON.stringify(desc.uri)}: invalid URI for request`);
    }
    let res;
    try {
      res = await discardGet(url, headers, opts.signal, opts.layerRate);
    } catch (err) {
      if (opts.signal.aborted) throw opts.signal.reason;
      const e = err as DiscardGetError;
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') throw new LayerFetchError('unexpected EOF');
      throw new LayerFetchError(`fetcher: request failed: Get ${JSON.stringify(url.href)}: ${goErrorText(e, url)}`);
    }
    rec.status = res.status;
    rec.contentType = res.headers['content-type'];
    rec.contentEncoding = res.headers['content-encoding'];
    rec.acceptRanges = res.headers['accept-ranges'];
    rec.bytes = res.bytes;
    if (res.status !== 200) {
      throw new LayerFetchError(`unexpected status code: ${statusLine(res.status, res.statusMessage)} (body starts: ${goQuote(res.bodyStart)})`);
    }
    if (res.truncated) throw new LayerFetchError('unexpected EOF');
    const contents: LayerContents = { files: new Map(), symlinks: new Map(), dirs: new Set(), whiteouts: [], opaqueDirs: [], paths: [] };
    return { digest: desc.hash, contents, compression: 'KindNone', bytes: res.bytes };
  });
}

/** The chunks of `body`, at most `rate` bytes per second on average (undefined: unpaced). */
async function* paced(body: AsyncIterable<unknown>, rate: number | undefined): AsyncGenerator<Buffer> {
  const start = Date.now();
  let bytes = 0;
  for await (const chunk of body) {
    yield chunk as Buffer;
    bytes += (chunk as Buffer).length;
    if (rate === undefined) continue;
    const due = start + (bytes / rate) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

function bodyError(err: unknown, signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  if (err instanceof LayerFetchError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ECONNRESET' || e.code === 'ERR_STREAM_PREMATURE_CLOSE' || /aborted|unexpected end/i.test(e.message)) {
    return new LayerFetchError('unexpected EOF');
  }
  if (e.code === 'Z_DATA_ERROR') return new LayerFetchError('gzip: invalid header');
  return new LayerFetchError(e.message);
}

export interface FetchAllOptions extends Omit<FetchOptions, 'signal'> {
  concurrency: number;
  signal: AbortSignal;
}

/**
 * errgroup with a limit: starts fetches in manifest order, at most `concurrency` at once; the first failure
 * aborts the in-flight ones, starts no more, and is the error returned. One GET per distinct digest.
 */
export async function fetchAll(descs: LayerDescriptor[], opts: FetchAllOptions): Promise<Map<string, FetchedLayer>> {
  const unique: LayerDescriptor[] = [];
  const seen = new Set<string>();
  for (const d of descs) {
    if (!seen.has(d.hash)) {
      seen.add(d.hash);
      unique.push(d);
    }
  }
  const group = new AbortController();
  const onOuterAbort = (): void => group.abort(opts.signal.reason);
  opts.signal.addEventListener('abort', onOuterAbort, { once: true });
  const results = new Map<string, FetchedLayer>();
  let firstError: unknown;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < unique.length && !group.signal.aborted) {
      const desc = unique[next++];
      if (desc === undefined) return;
      try {
        results.set(desc.hash, await fetchLayer(desc, { ...opts, signal: group.signal }));
      } catch (err) {
        if (firstError === undefined) {
          firstError = err;
          group.abort(err);
        }
        return;
      }
    }
  };
  try {
    const n = Math.max(1, Math.min(opts.concurrency, unique.length));
    await Promise.all(Array.from({ length: n }, worker));
  } finally {
    opts.signal.removeEventListener('abort', onOuterAbort);
  }
  if (opts.signal.aborted) throw opts.signal.reason;
  if (firstError !== undefined) throw firstError;
  return results;
}
