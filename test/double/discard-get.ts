/**
 * The discarding stand-in's GET: one HTTP/1.1 request on a plain socket, the response body read into one reused
 * buffer, counted and dropped. Node's HTTP client allocates a Buffer for every read and hands each to a stream;
 * on the 2 cores the benchmarks share with the daemon and the plugin, that cost (about 1.5 CPU-s per GB) was the
 * stand-in's own and slowed the relay it was meant to leave alone. No redirects and no TLS: the layer server
 * under test answers plain http with a Content-Length.
 */
import * as net from 'node:net';

export interface DiscardedResponse {
  status: number;
  statusMessage: string;
  /** Header names lowercased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Body bytes read (and dropped). */
  bytes: number;
  /** The body's first bytes, for a status error's message. */
  bodyStart: Buffer;
  /** The body ended before its Content-Length. */
  truncated: boolean;
}

/** Thrown when the connection cannot be made or breaks off (code as Node's socket gave it). */
export class DiscardGetError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
  }
}

const READ_BUFFER = 1 << 20;
const HEAD_LIMIT = 64 * 1024;
const BODY_START = 256;

function requestHead(url: URL, headers: Record<string, string[]>): string {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  for (const [k, vs] of Object.entries(headers)) for (const v of vs) lines.push(`${k}: ${v}`);
  lines.push('Connection: close', '', '');
  return lines.join('\r\n');
}

function parseHead(text: string): Pick<DiscardedResponse, 'status' | 'statusMessage' | 'headers'> {
  const [statusLine = '', ...rest] = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
  if (m === null) throw new DiscardGetError(`malformed HTTP response ${JSON.stringify(statusLine)}`, undefined);
  const headers: Record<string, string> = {};
  for (const line of rest) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  return { status: Number(m[1]), statusMessage: m[2] ?? '', headers };
}

/**
 * GETs `url` and reads the body to its end (Content-Length, or the connection's close), at most `rate` bytes per
 * second when given. Resolves once the body is read; rejects with `signal.reason` when aborted.
 */
export function discardGet(url: URL, headers: Record<string, string[]>, signal: AbortSignal, rate?: number): Promise<DiscardedResponse> {
  if (url.protocol !== 'http:') return Promise.reject(new DiscardGetError(`the discarding stand-in reads plain http only, not ${url.protocol}`, undefined));
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const buffer = Buffer.allocUnsafe(READ_BUFFER);
    let head: Buffer | undefined = Buffer.alloc(0);
    let res: DiscardedResponse | undefined;
    let length = Infinity;
    let started = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const bodyStart: Buffer[] = [];
    let bodyStartLen = 0;

    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err !== undefined) reject(err);
      else if (res === undefined) reject(new DiscardGetError('EOF', 'ECONNRESET'));
      else resolve({ ...res, bodyStart: Buffer.concat(bodyStart) });
    };
    const onAbort = (): void => finish(signal.reason);

    const body = (chunk: Buffer): void => {
      if (res === undefined) return;
      const n = Math.min(chunk.length, length - res.bytes);
      if (bodyStartLen < BODY_START && n > 0) {
        const keep = Buffer.from(chunk.subarray(0, Math.min(n, BODY_START - bodyStartLen)));
        bodyStart.push(keep);
        bodyStartLen += keep.length;
      }
      res.bytes += n;
      if (res.bytes >= length) complete();
    };

    // With a rate, each read is followed by the wait that keeps the average at the rate, the last one included
    // (the body is not over sooner than its length allows).
    const due = (): number => (rate === undefined || res === undefined ? 0 : started + (res.bytes / rate) * 1000 - Date.now());
    let completing = false;
    const complete = (): void => {
      completing = true;
      const wait = due();
      if (wait <= 0) finish();
      else timer = setTimeout(() => finish(), wait);
    };
    const pace = (): boolean => {
      if (completing) return false;
      const wait = due();
      if (wait <= 0) return true;
      timer = setTimeout(() => {
        timer = undefined;
        if (!settled) socket.resume();
      }, wait);
      return false;
    };

    const socket = net.connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port === '' ? 80 : url.port),
      onread: {
        buffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          const chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
          if (head !== undefined) {
            const all = Buffer.concat([head, chunk]);
            const end = all.indexOf('\r\n\r\n');
            if (end < 0) {
              if (all.length > HEAD_LIMIT) finish(new DiscardGetError('response header too long', undefined));
              head = all;
              return true;
            }
            head = undefined;
            try {
              res = { ...parseHead(all.subarray(0, end).toString('latin1')), bytes: 0, bodyStart: Buffer.alloc(0), truncated: false };
            } catch (err) {
              finish(err);
              return false;
            }
            const cl = res.headers['content-length'];
            if (cl !== undefined) length = Number(cl);
            started = Date.now();
            if (length === 0) {
              finish();
              return false;
            }
            body(all.subarray(end + 4));
          } else {
            body(chunk);
          }
          return settled || completing ? false : pace();
        },
      },
    });
    socket.on('connect', () => socket.write(requestHead(url, headers)));
    socket.on('end', () => {
      if (completing) return;
      if (res !== undefined && Number.isFinite(length)) res.truncated = res.bytes < length;
      complete();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!completing) finish(new DiscardGetError(err.message, err.code));
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
