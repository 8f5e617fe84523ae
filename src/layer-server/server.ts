// The in-process HTTP server Clair fetches layers from. It serves exactly the layer currently offered
// by the scan, written straight from the `docker save` stream into the response, one chunk at a time (the
// next is read once the last is written: backpressure reaches the daemon's socket whatever Clair's speed):
// nothing is buffered or written to disk, so a layer can be served once. Clair's fetcher wants status 200, no Content-Encoding
// and the bytes exactly as hashed (quay/claircore libindex/fetcher.go); requests must carry the per-scan secret.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LayerBody } from '../save/layer-feed.js';
import { LayerServeError, errnoCode } from '../runtime/errors.js';

export interface LayerServerOptions {
  /** Address to bind, e.g. 127.0.0.1 or 0.0.0.0. */
  listenHost: string;
  /** Port to bind; 0 = any free port. */
  listenPort?: number;
  /** Host (and port, if it differs from the bound one) put into the URLs Clair is given. */
  advertiseHost?: string;
  advertisePort?: number;
  /** The digests of the current scan: anything else is 404. */
  digests?: Iterable<string>;
  signal?: AbortSignal;
}

export interface ServeStats {
  requests: number;
  rejected: number;
  bytesServed: number;
  layersServed: number;
}

interface Offer {
  digest: string;
  size?: number;
  body: LayerBody;
  claimed: boolean;
  done: Promise<OfferOutcome>;
  settle: (outcome: OfferOutcome) => void;
}

export type OfferOutcome =
  | { served: true; bytes: number }
  | { served: false; reason: 'withdrawn' }
  | { served: false; reason: 'failed'; bytes: number; error: Error };

// /probe/ serves the preflight's probe layer exactly as /layers/ serves the image's: only the name differs, so
// logs (Clair's, a proxy's, the tests') can tell the two apart.
const DIGEST_PATH = /^\/(?:layers|probe)\/(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

export class LayerServer {
  readonly secret = randomBytes(32).toString('base64url');
  readonly stats: ServeStats = { requests: 0, rejected: 0, bytesServed: 0, layersServed: 0 };
  private readonly known = new Set<string>();
  private current: Offer | undefined;
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly baseUrl: string,
  ) {}

  /** Starts listening; the caller must close() it (it also closes itself when the signal aborts). */
  static async start(options: LayerServerOptions): Promise<LayerServer> {
    const server = createServer();
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, options.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      const code = errnoCode(error);
      const where = `${options.listenHost}:${options.listenPort ?? 0}`;
      throw new LayerServeError(
        `cannot start the layer server on ${where} (${code ?? String(error)})`,
        code === 'EADDRINUSE'
          ? 'choose another port with --layer-address HOST:PORT'
          : 'use --layer-address with an address of this machine that Clair can reach',
        { cause: error },
      );
    });
    const bound = server.address() as AddressInfo;
    const host = options.advertiseHost ?? options.listenHost;
    const port = options.advertisePort ?? bound.port;
    const layerServer = new LayerServer(server, `http://${host.includes(':') ? `[${host}]` : host}:${port}`);
    for (const digest of options.digests ?? []) layerServer.known.add(digest);
    server.on('request', (req, res) => layerServer.handle(req, res));
    if (options.signal) {
      if (options.signal.aborted) await layerServer.close();
      else options.signal.addEventListener('abort', () => void layerServer.close(), { once: true });
    }
    return layerServer;
  }

  /** The headers Clair must send with each layer GET (Clair's `layers[].headers` format). */
  get clairHeaders(): Record<string, string[]> {
    return { Authorization: [`Bearer ${this.secret}`] };
  }

  url(digest: string, kind: 'layers' | 'probe' = 'layers'): string {
    return `${this.baseUrl}/${kind}/${digest}`;
  }

  /** Adds digests that belong to this scan (known only while the archive streams, e.g. containerd blobs). */
  allow(digest: string): void {
    this.known.add(digest);
  }

  /**
   * Makes one layer available until it has been served completely or withdraw() is called. Only one
   * layer is on offer at a time: the save stream cannot move on before this one is consumed.
   */
  offer(digest: string, body: LayerBody, size?: number): Promise<OfferOutcome> {
    if (this.current) throw new Error(`layer ${this.current.digest} is still on offer`);
    this.known.add(digest);
    let settle!: (outcome: OfferOutcome) => void;
    const done = new Promise<OfferOutcome>((resolve) => {
      settle = resolve;
    });
    const offer: Offer = { digest, body, claimed: false, done, settle };
    if (size !== undefined) offer.size = size;
    this.current = offer;
    void done.then(() => {
      if (this.current === offer) this.current = undefined;
    });
    return done;
  }

  /** Ends the current offer if nobody has started fetching it (Clair already knew the layer). */
  withdraw(digest: string): boolean {
    const offer = this.current;
    if (!offer || offer.digest !== digest || offer.claimed) return false;
    this.current = undefined;
    offer.settle({ served: false, reason: 'withdrawn' });
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const offer = this.current;
    if (offer && !offer.claimed) offer.settle({ served: false, reason: 'withdrawn' });
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++;
    const reject = (status: number, message: string) => {
      this.stats.rejected++;
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(message) });
      res.end(message);
    };
    if (!this.authorised(req.headers.authorization)) return reject(403, 'forbidden\n');
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET');
      return reject(405, 'method not allowed\n');
    }
    const match = DIGEST_PATH.exec(req.url ?? '');
    const digest = match?.[1];
    if (!digest || !this.known.has(digest)) return reject(404, 'no such layer in this scan\n');
    const offer = this.current;
    if (!offer || offer.digest !== digest) {
      // Known to the scan but not streaming now: served already, or not reached yet in the save stream.
      return reject(409, `layer ${digest} is not available now: it streams once, in archive order\n`);
    }
    if (offer.claimed) return reject(409, `layer ${digest} is already being served\n`);
    offer.claimed = true;
    const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream' };
    if (offer.size !== undefined) headers['Content-Length'] = offer.size;
    res.writeHead(200, headers);
    void this.send(offer, res);
  }

  /**
   * Writes the body chunk by chunk, each read only once the one before was written (chunks may share one
   * buffer). When Clair drops the connection the save stream must survive (no further read), so the scan can
   * drain it and report what happened.
   */
  private async send(offer: Offer, res: ServerResponse): Promise<void> {
    let bytes = 0;
    let settled = false;
    const finish = (outcome: OfferOutcome) => {
      if (settled) return;
      settled = true;
      this.stats.bytesServed += bytes;
      if (outcome.served) this.stats.layersServed++;
      offer.settle(outcome);
    };
    const dropped = () => new Error(`the client closed the connection after ${bytes} bytes`);
    let writing: ((ok: boolean) => void) | undefined;
    const written = (error?: Error | null) => {
      const done = writing;
      writing = undefined;
      done?.(!error);
    };
    // Clair leaving ends the serve at once, even while a read waits on the daemon (that read finishes later, for
    // whoever drains the layer).
    res.once('close', () => {
      if (!res.writableFinished) finish({ served: false, reason: 'failed', bytes, error: dropped() });
      written(new Error('closed'));
    });
    for (;;) {
      let chunk: Buffer | null;
      try {
        chunk = await offer.body.read();
      } catch (error) {
        res.destroy(error as Error);
        return finish({ served: false, reason: 'failed', bytes, error: error as Error });
      }
      if (settled) return;
      if (chunk === null) break;
      const view = chunk;
      const ok = await new Promise<boolean>((resolve) => {
        writing = resolve;
        res.write(view, written);
      });
      if (!ok) return finish({ served: false, reason: 'failed', bytes, error: dropped() });
      bytes += chunk.length;
    }
    res.end(() => finish({ served: true, bytes }));
  }

  private authorised(header: string | undefined): boolean {
    const expected = Buffer.from(`Bearer ${this.secret}`);
    const given = Buffer.from(header ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
