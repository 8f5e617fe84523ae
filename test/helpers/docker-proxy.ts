// A counting proxy in front of the test Docker daemon: a unix socket that forwards every connection, byte
// for byte in both directions, to the daemon's socket, and records the request line (method and path) of each
// HTTP request that passes from client to daemon. Tests point `docker -H unix://<proxy.socketPath>` at it and
// then assert what the plugin asked the daemon (e.g. how many `GET /images/{name}/get` exports).
//
// Transparent: responses are piped untouched (streams of any length, chunked or not), half-closes are
// forwarded, and the request parser only reads a copy of the client's bytes. It follows keep-alive
// connections request by request (Content-Length and chunked bodies are skipped) and stops parsing a
// connection once it is upgraded or hijacked (attach/exec) or no longer looks like HTTP/1.x.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface ProxiedRequest {
  /** Order of arrival over all connections, from 0. */
  seq: number;
  /** Which proxied connection carried it, from 0. */
  connection: number;
  method: string;
  /** The request target as sent, e.g. `/v1.41/images/docker-clair-test%2Fdebian12:latest/json`. */
  path: string;
  /** The path without query string, percent-decoded (`/v1.41/images/docker-clair-test/debian12:latest/json`). */
  pathname: string;
  at: number;
}

export interface DockerProxy {
  /** Filesystem path of the proxy's unix socket. */
  socketPath: string;
  /** `unix://<socketPath>`, for `-H` / DOCKER_HOST. */
  host: string;
  /** Every request seen so far, in arrival order. */
  requests: ProxiedRequest[];
  /** Number of connections accepted so far. */
  connections(): number;
  /** Requests recorded after `mark` (a previous `requests.length`). */
  since(mark: number): ProxiedRequest[];
  /** Stops listening, drops open connections and removes the socket's directory. Idempotent. */
  close(): Promise<void>;
}

/** Where the proxy forwards to: a `unix://` path or a `tcp://host:port` daemon address. */
export type DockerTarget = { path: string } | { host: string; port: number };

export function targetOf(dockerHost: string): DockerTarget {
  const url = new URL(dockerHost);
  switch (url.protocol) {
    case 'unix:':
      return { path: decodeURIComponent(url.pathname) };
    case 'tcp:':
    case 'http:':
      return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) || 2375 };
    default:
      throw new Error(`docker-proxy: cannot forward to ${dockerHost} (only unix:// and plain tcp:// daemons)`);
  }
}

/** `GET /images/{name}/get` or `GET /images/get?names=…`: an export (`docker save`). */
export function isImageExport(r: Pick<ProxiedRequest, 'method' | 'pathname'>): boolean {
  return r.method === 'GET' && /^(?:\/v[0-9.]+)?\/images\/(?:.+\/)?get$/.test(r.pathname);
}

const MAX_HEAD = 1 << 20;
const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/;

/** Follows the client→daemon byte stream of one connection and reports each request line. */
class RequestScanner {
  private state: 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'opaque' = 'head';
  private buf: Buffer = Buffer.alloc(0);
  private remaining = 0;

  constructor(private readonly onRequest: (method: string, target: string) => void) {}

  push(chunk: Buffer): void {
    if (this.state === 'opaque') return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.step()) { /* consume what can be consumed */ }
    if (this.buf.length > MAX_HEAD && this.state !== 'body' && this.state !== 'chunk-data') this.giveUp();
  }

  private giveUp(): void {
    this.state = 'opaque';
    this.buf = Buffer.alloc(0);
  }

  /** One parsing step; false when more bytes are needed (or parsing stopped). */
  private step(): boolean {
    switch (this.state) {
      case 'opaque':
        return false;
      case 'head': {
        // Tolerate stray CRLFs between requests (RFC 9112 §2.2).
        while (this.buf.length >= 2 && this.buf[0] === 0x0d && this.buf[1] === 0x0a) this.buf = this.buf.subarray(2);
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) return false;
        const head = this.buf.subarray(0, end).toString('latin1');
        this.buf = this.buf.subarray(end + 4);
        const [line = '', ...fields] = head.split('\r\n');
        const m = REQUEST_LINE.exec(line);
        if (!m) {
          this.giveUp();
          return false;
        }
        this.onRequest(m[1] as string, m[2] as string);
        const headers = new Map<string, string>();
        for (const f of fields) {
          const colon = f.indexOf(':');
          if (colon > 0) headers.set(f.slice(0, colon).trim().toLowerCase(), f.slice(colon + 1).trim());
        }
        if (headers.has('upgrade') || /\bupgrade\b/i.test(headers.get('connection') ?? '')) {
          this.giveUp(); // hijacked (attach, exec, dial-stdio): raw bytes from here on
          return false;
        }
        if (/\bchunked\b/i.test(headers.get('transfer-encoding') ?? '')) {
          this.state = 'chunk-size';
        } else {
          const length = Number(headers.get('content-length') ?? '0');
          if (!Number.isSafeInteger(length) || length < 0) {
            this.giveUp();
            return false;
          }
          this.remaining = length;
          this.state = length > 0 ? 'body' : 'head';
        }
        return true;
      }
      case 'body':
      case 'chunk-data': {
        const n = Math.min(this.remaining, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.remaining -= n;
        if (this.remaining > 0) return false;
        this.state = this.state === 'body' ? 'head' : 'chunk-crlf';
        return true;
      }
      case 'chunk-crlf': {
        if (this.buf.length < 2) return false;
        this.buf = this.buf.subarray(2);
        this.state = 'chunk-size';
        return true;
      }
      case 'chunk-size': {
        const end = this.buf.indexOf('\r\n');
        if (end < 0) return false;
        const size = parseInt(this.buf.subarray(0, end).toString('latin1').split(';')[0]?.trim() ?? '', 16);
        this.buf = this.buf.subarray(end + 2);
        if (!Number.isSafeInteger(size) || size < 0) {
          this.giveUp();
          return false;
        }
        if (size === 0) {
          this.state = 'trailers';
        } else {
          this.remaining = size;
          this.state = 'chunk-data';
        }
        return true;
      }
      case 'trailers': {
        const end = this.buf.indexOf('\r\n');
        if (end < 0) return false;
        this.buf = this.buf.subarray(end + 2);
        if (end === 0) this.state = 'head'; // the empty line that ends the trailer section
        return true;
      }
    }
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Starts the proxy on a fresh socket in a private temporary directory (short enough for sun_path).
 * `target` is the daemon, e.g. `targetOf(TEST_DOCKER_HOST)`.
 */
export async function startDockerProxy(target: DockerTarget): Promise<DockerProxy> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dcp-'));
  const socketPath = path.join(dir, 'docker.sock');
  const requests: ProxiedRequest[] = [];
  const open = new Set<Socket>();
  let connectionCount = 0;

  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const id = connectionCount++;
    const upstream = connect({ ...target, allowHalfOpen: true });
    open.add(client);
    open.add(upstream);
    const scanner = new RequestScanner((method, target) => {
      const q = target.indexOf('?');
      requests.push({
        seq: requests.length, connection: id, method, path: target,
        pathname: safeDecode(q < 0 ? target : target.slice(0, q)), at: Date.now(),
      });
    });
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', () => {
      open.delete(client);
      upstream.end(); // flush what the client sent, then FIN: the daemon closes its side on EOF
    });
    upstream.on('close', () => {
      open.delete(upstream);
      client.destroy();
    });
    upstream.once('connect', () => {
      // Scan a copy of what the client sends while forwarding it. pipe() keeps backpressure (a paused client
      // feeds neither listener) and forwards end() as a half-close, which hijacked connections rely on.
      client.on('data', (chunk: Buffer) => scanner.push(chunk));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    host: `unix://${socketPath}`,
    requests,
    connections: () => connectionCount,
    since: (mark) => requests.slice(mark),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
        for (const s of open) s.destroy();
      });
      return closing;
    },
  };
}
