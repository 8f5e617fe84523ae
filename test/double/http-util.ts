/** HTTP plumbing shared by the v4 and v1 handlers: bodies, Go-style JSON, negotiated compression. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync, deflateSync } from 'node:zlib';

export class BodyTooLargeError extends Error {}

export async function readBody(req: IncomingMessage, limit = Infinity): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new BodyTooLargeError('http: request body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** JSON as Go's encoders write it: `<`, `>`, `&`, U+2028 and U+2029 escaped. */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Picks a response encoding from Accept-Encoding the way Clair's compress middleware does (gzip, deflate). */
export function pickEncoding(acceptEncoding: string | undefined): 'gzip' | 'deflate' | undefined {
  if (acceptEncoding === undefined) return undefined;
  const offered = acceptEncoding.split(',').map((s) => {
    const [name = '', ...params] = s.trim().toLowerCase().split(';');
    const q = params.map((x) => x.trim()).find((x) => x.startsWith('q='));
    return { name: name.trim(), q: q === undefined ? 1 : Number(q.slice(2)) };
  }).filter((o) => o.q > 0);
  if (offered.some((o) => o.name === 'gzip')) return 'gzip';
  if (offered.some((o) => o.name === 'deflate')) return 'deflate';
  return undefined;
}

/** Writes a body, compressed when the client asked for it. */
export function send(req: IncomingMessage, res: ServerResponse, status: number, body: string | Buffer,
  headers: Record<string, string | string[]> = {}, compress = true): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  let payload = typeof body === 'string' ? Buffer.from(body) : body;
  const enc = compress && payload.length > 0 ? pickEncoding(req.headers['accept-encoding']) : undefined;
  if (enc !== undefined) {
    payload = enc === 'gzip' ? gzipSync(payload) : deflateSync(payload);
    res.setHeader('Content-Encoding', enc);
    res.setHeader('Vary', 'Accept-Encoding');
  }
  if (res.hasHeader('Trailer')) res.setHeader('Transfer-Encoding', 'chunked');
  else res.setHeader('Content-Length', String(payload.length));
  res.writeHead(status);
  res.end(payload);
}

/** Clair v4's error body: `{"code":…,"message":…}` with its headers; Link headers are dropped. */
export function v4Error(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  const code = status === 400 ? 'bad-request' : status === 404 ? 'not-found' : status === 405 ? 'method-not-allowed'
    : status === 429 ? 'too-many-requests' : 'internal-error';
  res.removeHeader('Link');
  const body = message === '' ? { code } : { code, message };
  send(req, res, status, goJson(body), {
    'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', Trailer: 'Clair-Error',
  });
}

/** Accept negotiation: true when one of `allowed` (or a wildcard) is acceptable. */
export function acceptable(accept: string | undefined, allowed: string[]): boolean {
  if (accept === undefined || accept.trim() === '') return true;
  return accept.split(',').some((part) => {
    const [type = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((x) => x.trim()).find((x) => x.startsWith('q='));
    if (q !== undefined && Number(q.slice(2)) === 0) return false;
    const t = type.trim();
    return t === '*/*' || allowed.some((a) => a === t || (t.endsWith('/*') && a.startsWith(t.slice(0, -1))));
  });
}
