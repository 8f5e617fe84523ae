// A GET whose response is one long stream of bytes (the image export), over a plain socket (unix or tcp without
// TLS), read into one reused buffer. Node's HTTP client hands out a new Buffer for every socket read, and at
// ~25 KB a read the dead ones pile up faster than V8 collects them: ~100 MB for an 800 MB export, against ~10 MB
// this way (docs/benchmarks.md). Only this one request is spoken by hand; everything else goes through dockerode.
import { connect, type Socket } from 'node:net';
import type { Chunks } from '../save/chunks.js';

export type SocketTarget = { path: string } | { host: string; port: number };

/** An HTTP error status, shaped as docker-modem's errors are (`statusCode`, `json`), so callers treat both alike. */
export class StatusError extends Error {
  constructor(
    readonly statusCode: number,
    readonly json: unknown,
  ) {
    const said = typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string'
      ? (json as { message: string }).message : String(json).trim();
    super(`(HTTP code ${statusCode}) ${said}`);
  }
}

const READ_SIZE = 256 * 1024;
// A stream slower than its reader (the containerd image store exports at ~65 MB/s) arrives in ~24 KB reads, each a
// wake-up of this process and a piece through every stage to Clair: most of the relay's CPU there. So after a small
// read that followed a pause, the socket is left to fill for TRICKLE_WAIT_MS before the next read (~130 KB at that
// rate, under the ~200 KB a unix socket buffers, so the daemon does not wait; 4 ms made it wait, measured), and so
// on while the reads after a wait come back short of that. A fast stream (the classic store's staged export,
// ~770 MB/s) gives large reads without pauses, and is read at once; one that fills the socket in the wait is too.
const TRICKLE_READ = 64 * 1024;
const TRICKLE_GAP_MS = 0.2;
const TRICKLE_WAIT_MS = 2;
const TRICKLE_FULL = 192 * 1024;
const HEAD_LIMIT = 64 * 1024;
const ERROR_BODY_LIMIT = 1024 * 1024;

/**
 * Sends `GET path` and waits for the response head. A 2xx answer resolves to its body as Chunks (each valid
 * until the next read: they share one buffer); another status rejects with a StatusError carrying the daemon's
 * JSON message, a socket failure with the socket's error (its errno code intact). Aborting `signal` closes the
 * connection: the daemon stops exporting.
 */
export async function streamGet(target: SocketTarget, path: string, signal?: AbortSignal): Promise<Chunks> {
  signal?.throwIfAborted();
  const response = new ResponseReader(target, path);
  const onAbort = () => response.close(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  response.onClose = () => signal?.removeEventListener('abort', onAbort);
  try {
    const status = await response.head();
    if (status >= 200 && status < 300) return response;
    const body = await readErrorBody(response);
    response.close();
    let json: unknown = body;
    try {
      json = JSON.parse(body);
    } catch {
      // plain text: kept as it is
    }
    throw new StatusError(status, json);
  } catch (error) {
    response.close(error);
    throw signal?.aborted ? signal.reason : error;
  }
}

async function readErrorBody(body: Chunks): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for (let chunk = await body.read(); chunk && size < ERROR_BODY_LIMIT; chunk = await body.read()) {
    parts.push(Buffer.from(chunk));
    size += chunk.length;
  }
  return Buffer.concat(parts).toString('utf8');
}

type Framing =
  | { kind: 'length'; remaining: number }
  | { kind: 'close' }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer' | 'done'; remaining: number; line: string };

/** The response: its head parsed from the first reads, then its body one view of the read buffer at a time. */
class ResponseReader implements Chunks {
  onClose: (() => void) | undefined;
  private readonly socket: Socket;
  private readonly buffer = Buffer.allocUnsafe(READ_SIZE);
  /** Bytes of the last read not yet handed out, as [at, end) of the buffer. */
  private at = 0;
  private end = 0;
  /** The last read was handed over (or is being parsed): the socket is paused until all of it is used. */
  private holding = false;
  /** The stream comes slower than it is read: the next read waits for the socket to fill. */
  private trickling = false;
  /** The last read followed such a wait. */
  private waited = false;
  private lastReadAt = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;
  private closed = false;
  /** The body was read to its end. */
  private finished = false;
  private wake: (() => void) | undefined;
  private framing: Framing | undefined;

  constructor(target: SocketTarget, path: string) {
    this.socket = connect({
      ...target,
      onread: {
        buffer: this.buffer,
        callback: (length: number) => {
          const now = performance.now();
          this.trickling = this.waited
            ? length < TRICKLE_FULL
            : length < TRICKLE_READ && now - this.lastReadAt > TRICKLE_GAP_MS;
          this.waited = false;
          this.lastReadAt = now;
          this.at = 0;
          this.end = length;
          this.holding = true;
          this.notify();
          return false; // paused until this read is used up: the next one lands in the same buffer
        },
      },
    });
    const host = 'host' in target ? `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}` : 'localhost';
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: docker-clair\r\nConnection: close\r\n\r\n`);
    this.socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    this.socket.on('error', (error) => {
      this.failure ??= { error };
      this.notify();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
  }

  /** Reads the status line and headers; returns the status. */
  async head(): Promise<number> {
    let head = Buffer.alloc(0);
    for (;;) {
      if (!(await this.bytes())) throw new Error('the daemon closed the connection before it answered');
      head = Buffer.concat([head, this.buffer.subarray(this.at, this.end)]);
      const split = head.indexOf('\r\n\r\n');
      if (split < 0) {
        if (head.length > HEAD_LIMIT) throw new Error('the daemon answered with an HTTP head larger than 64 KiB');
        this.at = this.end;
        continue;
      }
      // What follows the head in this read is body: point at it in the buffer.
      this.at = this.end - (head.length - (split + 4));
      return this.parseHead(head.toString('latin1', 0, split));
    }
  }

  private parseHead(text: string): number {
    const [statusLine = '', ...lines] = text.split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!status) throw new Error(`the daemon answered with no HTTP status line ("${statusLine.slice(0, 80)}")`);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = headers.get('content-length');
    if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      this.framing = { kind: 'chunked', state: 'size', remaining: 0, line: '' };
    } else if (length !== undefined && /^\d+$/.test(length)) {
      this.framing = { kind: 'length', remaining: Number(length) };
    } else {
      this.framing = { kind: 'close' };
    }
    return Number(status[1]);
  }

  async read(): Promise<Buffer | null> {
    try {
      return await this.next();
    } catch (error) {
      this.close(error); // a response that cannot be read on is not left open
      throw error;
    }
  }

  private async next(): Promise<Buffer | null> {
    const framing = this.framing;
    if (!framing) throw new Error('read before the response head');
    if (this.finished) return null;
    for (;;) {
      if (framing.kind === 'length' && framing.remaining === 0) return this.done();
      if (framing.kind === 'chunked' && framing.state === 'done') return this.done();
      if (!(await this.bytes())) {
        if (framing.kind === 'close') return this.done();
        throw new Error('the daemon closed the connection before the end of its response');
      }
      const view = this.take(framing);
      if (view) return view;
    }
  }

  /**
   * The body in the current read, consuming framing bytes on the way; null when none is left. A chunked body is
   * decoded in place: the data of each further chunk in the read is moved down over the framing before it, so the
   * whole read is handed out as one view. The daemon writes ~32 KB chunks and a read holds up to 256 KiB of them:
   * one view per read instead of per chunk spares every stage after it (tar walk, layer body, the write to Clair)
   * most of its per-piece work, for a move of bytes that are in cache.
   */
  private take(framing: Framing): Buffer | null {
    if (framing.kind === 'close') return this.slice(this.end - this.at);
    if (framing.kind === 'length') {
      const view = this.slice(Math.min(framing.remaining, this.end - this.at));
      framing.remaining -= view.length;
      return view;
    }
    let start = -1;
    let out = 0;
    while (this.at < this.end) {
      if (framing.state === 'data') {
        const n = Math.min(framing.remaining, this.end - this.at);
        if (start < 0) {
          start = this.at;
          out = this.at;
        } else if (out !== this.at) {
          this.buffer.copyWithin(out, this.at, this.at + n);
        }
        out += n;
        this.at += n;
        framing.remaining -= n;
        if (framing.remaining === 0) framing.state = 'data-end';
        continue;
      }
      // A line: the chunk size, the CRLF after the data, or a trailer. Latin-1 keeps one char per byte.
      const newline = this.buffer.indexOf(0x0a, this.at);
      const stop = newline < 0 || newline >= this.end ? this.end : newline + 1;
      framing.line += this.buffer.toString('latin1', this.at, stop);
      this.at = stop;
      if (framing.line.length > 4096) throw new Error('the daemon sent a malformed chunked response');
      if (!framing.line.endsWith('\n')) continue;
      const line = framing.line.trimEnd();
      framing.line = '';
      if (framing.state === 'data-end') {
        if (line !== '') throw new Error('the daemon sent a malformed chunked response');
        framing.state = 'size';
      } else if (framing.state === 'size') {
        const size = /^[0-9a-fA-F]{1,12}/.exec(line);
        if (!size) throw new Error('the daemon sent a malformed chunked response');
        framing.remaining = Number.parseInt(size[0], 16);
        framing.state = framing.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        framing.state = 'done';
        break;
      }
    }
    return start < 0 ? null : this.buffer.subarray(start, out);
  }

  private slice(n: number): Buffer {
    const view = this.buffer.subarray(this.at, this.at + n);
    this.at += n;
    return view;
  }

  /** Whether unread bytes are at hand: resumes the socket for the next read once the last is used up. */
  private async bytes(): Promise<boolean> {
    for (;;) {
      if (this.at < this.end) return true;
      if (this.failure) throw this.failure.error;
      if (this.closed) throw new Error('the connection to the daemon was closed');
      if (this.holding) {
        this.holding = false;
        if (this.trickling) {
          this.resumeTimer = setTimeout(() => {
            this.waited = true;
            this.socket.resume();
          }, TRICKLE_WAIT_MS);
        } else {
          this.socket.resume();
        }
      }
      if (this.ended) return false;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private done(): null {
    this.finished = true;
    this.close();
    return null;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  close(reason?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    if (reason !== undefined) this.failure ??= { error: reason };
    clearTimeout(this.resumeTimer);
    this.socket.destroy();
    this.notify();
    this.onClose?.();
  }
}
