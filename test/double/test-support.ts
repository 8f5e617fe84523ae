/** Helpers for the double's own tests: small layer tars, compression, and a scripted layer server. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  content?: string | Buffer;
  linkname?: string;
}

export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('data', (c: unknown) => { chunks.push(c as Buffer); });
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header: tar.Header = {
      name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(1700000000000), size: 0,
      linkname: e.linkname ?? '', uid: 0, gid: 0, uname: 'root', gname: 'root', devmajor: 0, devminor: 0,
    };
    if (type === 'file') {
      await new Promise<void>((resolve, reject) =>
        pack.entry(header, Buffer.from(e.content ?? ''), (err) => (err ? reject(err) : resolve())));
    } else {
      pack.entry(header);
    }
  }
  pack.finalize();
  return done;
}

export const gzip = (b: Buffer): Buffer => gzipSync(b);

/** zstd with the `zstd` CLI when present, else a valid frame of raw (stored) blocks. */
export function zstd(b: Buffer): Buffer {
  const r = spawnSync('zstd', ['-q', '-c', '-3'], { input: b, maxBuffer: 1 << 30 });
  if (r.status === 0 && r.stdout.length > 0) return r.stdout;
  return zstdStored(b);
}

/** A zstd frame made of raw blocks (no compression), built by hand per RFC 8878. */
export function zstdStored(b: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd])];
  // Frame header: single segment, 8-byte content size (FCS flag 3).
  const fhd = Buffer.alloc(9);
  fhd[0] = (3 << 6) | (1 << 5);
  fhd.writeBigUInt64LE(BigInt(b.length), 1);
  parts.push(fhd);
  const max = 128 * 1024;
  let off = 0;
  do {
    const n = Math.min(max, b.length - off);
    const last = off + n >= b.length ? 1 : 0;
    const hdr = (n << 3) | (0 << 1) | last;
    parts.push(Buffer.from([hdr & 0xff, (hdr >> 8) & 0xff, (hdr >> 16) & 0xff]), b.subarray(off, off + n));
    off += n;
  } while (off < b.length);
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface ServedBlob {
  body: Buffer;
  status?: number;
  headers?: Record<string, string>;
  /**
   * Answer only once this settles: the test decides when the layer arrives (a promise that never settles holds
   * the request until the client drops it or the server closes).
   */
  hold?: Promise<unknown>;
  /** Send half the body, then drop the connection. */
  truncate?: boolean;
}

export interface LayerServerRequest {
  path: string;
  headers: IncomingHttpHeaders;
  at: number;
}

export interface TestLayerServer {
  url: string;
  requests: LayerServerRequest[];
  /** The most requests that were being answered at once. */
  maxInFlight: number;
  set(path: string, blob: ServedBlob): void;
  /** Resolves once `cond` holds, checked now and after each request the server receives or finishes. */
  when(cond: () => boolean): Promise<void>;
  /** Resolves once a request for `path` has been received. */
  received(path: string): Promise<void>;
  close(): Promise<void>;
}

/** A layer server answering from a table of paths; 404 for anything else. */
export async function startLayerServer(blobs: Record<string, ServedBlob> = {}): Promise<TestLayerServer> {
  const table = new Map(Object.entries(blobs));
  let inFlight = 0;
  const waiters = new Set<() => void>();
  const changed = (): void => {
    for (const check of [...waiters]) check();
  };
  const when = (cond: () => boolean): Promise<void> => new Promise((resolve) => {
    const check = (): void => {
      if (!cond()) return;
      waiters.delete(check);
      resolve();
    };
    waiters.add(check);
    check();
  });
  const state: TestLayerServer = {
    url: '', requests: [], maxInFlight: 0, set: (p, b) => table.set(p, b), when,
    received: (p) => when(() => state.requests.some((r) => r.path === p)),
    close: async () => undefined,
  };
  const answer = (res: ServerResponse, blob: ServedBlob): void => {
    const headers = { 'Content-Type': 'application/octet-stream', ...blob.headers };
    res.writeHead(blob.status ?? 200, { ...headers, 'Content-Length': String(blob.body.length) });
    if (blob.truncate === true) {
      res.write(blob.body.subarray(0, Math.floor(blob.body.length / 2)), () => res.socket?.destroy());
      return;
    }
    res.end(blob.body);
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    state.requests.push({ path, headers: req.headers, at: Date.now() });
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    let closed = false;
    res.on('close', () => {
      closed = true;
      inFlight--;
      changed();
    });
    const blob = table.get(path);
    if (blob === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('no such blob');
    } else if (blob.hold !== undefined) {
      // The client may have gone while the answer was held.
      const go = (): void => {
        if (!closed) answer(res, blob);
      };
      blob.hold.then(go, go);
    } else {
      answer(res, blob);
    }
    changed();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return state;
}

/** A dpkg status stanza. */
export function dpkgStanza(p: { name: string; version: string; source?: string; status?: string; arch?: string }): string {
  const lines = [`Package: ${p.name}`, `Status: ${p.status ?? 'install ok installed'}`, 'Priority: optional',
    `Architecture: ${p.arch ?? 'amd64'}`];
  if (p.source !== undefined) lines.push(`Source: ${p.source}`);
  lines.push(`Version: ${p.version}`, `Description: test package ${p.name}`, ' continued description line');
  return `${lines.join('\n')}\n`;
}

export const DEBIAN12_OS_RELEASE = [
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'NAME="Debian GNU/Linux"', 'VERSION_ID="12"',
  'VERSION="12 (bookworm)"', 'VERSION_CODENAME=bookworm', 'ID=debian', 'HOME_URL="https://www.debian.org/"', '',
].join('\n');

/** A Debian-like base layer: os-release behind the usual symlink, and a dpkg database. */
export async function debianBaseLayer(stanzas: string[]): Promise<Buffer> {
  return makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
    { name: 'usr/', type: 'directory' },
    { name: 'usr/lib/', type: 'directory' },
    { name: 'usr/lib/os-release', content: DEBIAN12_OS_RELEASE },
    { name: 'var/', type: 'directory' },
    { name: 'var/lib/', type: 'directory' },
    { name: 'var/lib/dpkg/', type: 'directory' },
    { name: 'var/lib/dpkg/info/', type: 'directory' },
    { name: 'var/lib/dpkg/status', content: stanzas.join('\n') },
  ]);
}

export interface IndexCall {
  status: number;
  headers: Headers;
  json: unknown;
  text: string;
}

export async function call(url: string, init: RequestInit = {}): Promise<IndexCall> {
  const r = await fetch(url, init);
  const text = await r.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, json, text };
}

export function postIndex(base: string, manifest: unknown, headers: Record<string, string> = {}): Promise<IndexCall> {
  return call(`${base}/indexer/api/v1/index_report`, {
    method: 'POST', body: JSON.stringify(manifest), headers: { 'Content-Type': 'application/json', ...headers },
  });
}

export function layerRef(server: TestLayerServer, path: string, body: Buffer, headers: Record<string, string[]> = {}):
  { hash: string; uri: string; headers: Record<string, string[]> } {
  return { hash: sha256(body), uri: `${server.url}${path}`, headers };
}
