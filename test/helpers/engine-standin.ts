// A stand-in for the Docker Engine API (test support, not product): a real HTTP server on a unix socket that
// serves given `docker save` tarballs as a daemon would, so the scan can be driven with `-H unix://…` against
// the formats the test daemon (Engine 20.10) cannot produce: the OCI layout of Engine >= 25 and the
// containerd image store (tarballs built by save-archives.ts from a real legacy save).
//
//   GET|HEAD /_ping, GET /version
//   GET /images/{name}/json   Id, RepoTags, RepoDigests, RootFS.Layers, Size, Os, Architecture, derived from
//                             the tarball's manifest.json and image config. Id = the config digest, except in
//                             the containerd store, where it is the image's target (index or manifest) digest
//                             from index.json (moby/moby daemon/containerd/image.go).
//   GET /images/{name}/get    the tarball, streamed (optionally cut short or with a byte flipped)
// Every path also answers under /v1.NN/. Requests are recorded, so tests can assert "no /get was called".
//
// Also here: writeLegacySaveWithV1Ids (a legacy save whose v1 directory names the diffIDs do not give) and
// scanWithStdin (an in-process scan with a given stdin and no daemon).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import type * as Save from '../../src/save/format.js';
import { explodeLegacySave } from './save-archives.js';
import { scanInProcess, type ScanRun } from './scan.js';

export interface StandinSave {
  /** A `docker save` tarball (legacy, OCI layout or containerd store). */
  path: string;
  /** The image store the daemon would run; default: containerd when the layer blobs are not the diffIDs. */
  store?: 'graphdriver' | 'containerd';
  /** Ends the /get response (cleanly) after this many bytes. */
  truncateAt?: number;
  /** Flips every bit of the byte at this offset of the /get response. */
  corruptAt?: number;
}

export interface StandinImage {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Created: string;
  Size: number;
  Os: string;
  Architecture: string;
  RootFS: { Type: 'layers'; Layers: string[] };
  /** Not in the API: the config digest and the tarball serving the image. */
  configDigest: string;
  save: StandinSave;
}

export interface StandinRequest {
  method: string;
  path: string;
}

export interface EngineStandin {
  /** `unix:///…/docker.sock`, for -H or DOCKER_HOST. */
  host: string;
  socketPath: string;
  images: StandinImage[];
  requests: StandinRequest[];
  /** How many `/images/{name}/get` were served. */
  exports(): number;
  close(): Promise<void>;
}

export interface StandinOptions {
  saves: StandinSave[];
  /** Engine version reported by /version and /_ping; default 25.0.0 with API 1.44. */
  engineVersion?: string;
  apiVersion?: string;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const EXPORT = /^\/images\/.+\/get$/;

export async function startEngineStandin(options: StandinOptions): Promise<EngineStandin> {
  const images = (await Promise.all(options.saves.map(describeSave))).flat();
  const engineVersion = options.engineVersion ?? '25.0.0';
  const apiVersion = options.apiVersion ?? '1.44';
  const requests: StandinRequest[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'dc-engine-'));
  const socketPath = join(dir, 'docker.sock');

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    requests.push({ method: req.method ?? '', path: url.pathname });
    const path = url.pathname.replace(/^\/v1\.\d+(?=\/)/, '');
    const json = (status: number, body: unknown) => {
      const data = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length, 'Api-Version': apiVersion });
      res.end(data);
    };
    if (path === '/_ping' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, {
        'Content-Type': 'text/plain; charset=utf-8', 'Api-Version': apiVersion, 'Docker-Experimental': 'false',
        Ostype: 'linux', 'Builder-Version': '2', Server: `Docker/${engineVersion} (linux)`, 'Cache-Control': 'no-cache, no-store, must-revalidate',
      });
      res.end(req.method === 'GET' ? 'OK' : undefined);
      return;
    }
    if (req.method !== 'GET') return json(405, { message: 'method not allowed' });
    if (path === '/version') {
      return json(200, {
        Platform: { Name: 'Docker Engine stand-in (docker-clair tests)' }, Version: engineVersion, ApiVersion: apiVersion,
        MinAPIVersion: '1.24', Os: 'linux', Arch: 'amd64', KernelVersion: '6.0.0', GoVersion: 'go1.21', GitCommit: 'standin',
      });
    }
    const m = /^\/images\/(.+)\/(json|get)$/.exec(path);
    if (!m) return json(404, { message: 'page not found' });
    const name = decodeURIComponent(m[1] as string);
    const image = images.find((i) => names(i, name));
    if (!image) return json(404, { message: `No such image: ${name}` });
    if (m[2] === 'json') {
      const { configDigest: _c, save: _s, ...inspect } = image;
      return json(200, { ...inspect, Parent: '', Comment: '', Config: {}, VirtualSize: image.Size });
    }
    serveTarball(image.save, res, req);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    host: `unix://${socketPath}`,
    socketPath,
    images,
    requests,
    exports: () => requests.filter((r) => EXPORT.test(r.path.replace(/^\/v1\.\d+(?=\/)/, ''))).length,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function serveTarball(save: StandinSave, res: ServerResponse, req: IncomingMessage): void {
  res.writeHead(200, { 'Content-Type': 'application/x-tar', 'Transfer-Encoding': 'chunked' });
  const file = createReadStream(save.path, save.truncateAt !== undefined ? { end: save.truncateAt - 1 } : {});
  let offset = 0;
  const corrupt = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const at = save.corruptAt;
      if (at !== undefined && at >= offset && at < offset + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[at - offset] = (chunk[at - offset] ?? 0) ^ 0xff;
      }
      offset += chunk.length;
      callback(null, chunk);
    },
  });
  // A client going away (the scan stopped reading) ends the export, as it does for the daemon.
  req.socket.once('close', () => file.destroy());
  pipeline(file, corrupt, res).catch(() => res.destroy());
}

/** Whether the daemon would resolve `name` to `image`: a tag (default `:latest`, docker.io spelled or not), or an ID (prefix). */
function names(image: StandinImage, name: string): boolean {
  const id = /^(?:sha256:)?([0-9a-f]{4,64})$/.exec(name);
  if (id && image.Id.startsWith(`sha256:${id[1]}`)) return true;
  const norm = (ref: string) => {
    const withTag = ref.lastIndexOf(':') > ref.lastIndexOf('/') ? ref : `${ref}:latest`;
    return withTag.replace(/^docker\.io\//, '').replace(/^library\//, '');
  };
  return image.RepoTags.some((tag) => norm(tag) === norm(name));
}

/** The images a tarball holds, read with tar-stream (metadata kept, layer bodies only counted). */
async function describeSave(save: StandinSave): Promise<StandinImage[]> {
  const extract = tar.extract();
  const source = createReadStream(save.path);
  source.on('error', (error) => extract.destroy(error));
  source.pipe(extract);
  const small = new Map<string, Buffer>();
  const sizes = new Map<string, number>();
  const links = new Map<string, string>();
  for await (const entry of extract) {
    const name = entry.header.name.replace(/^(?:\.?\/)+/, '');
    const { type, size = 0, linkname } = entry.header;
    if ((type === 'symlink' || type === 'link') && linkname) {
      links.set(name, type === 'link' ? linkname : posix.normalize(posix.join(posix.dirname(name), linkname)));
    }
    const parts: Buffer[] = [];
    for await (const chunk of entry as AsyncIterable<Buffer>) if (size <= 1024 * 1024) parts.push(chunk);
    if (type !== 'file') continue;
    sizes.set(name, size);
    if (size <= 1024 * 1024) small.set(name, Buffer.concat(parts));
  }
  const resolve = (name: string) => {
    let current = name;
    for (let i = 0; i < 8 && links.has(current); i++) current = links.get(current) as string;
    return current;
  };
  const manifest = JSON.parse((small.get('manifest.json') ?? Buffer.from('[]')).toString('utf8')) as Save.Manifest;
  const index = small.has('index.json') ? JSON.parse((small.get('index.json') as Buffer).toString('utf8')) as Save.Index : undefined;
  return manifest.map((item) => {
    const configBytes = small.get(resolve(item.Config));
    if (!configBytes) throw new Error(`engine stand-in: ${save.path} has no config ${item.Config}`);
    const config = JSON.parse(configBytes.toString('utf8')) as Save.ImageConfig;
    const configDigest = sha256(configBytes);
    const diffIds = config.rootfs.diff_ids;
    const blobsAreDiffIds = item.Layers.every((l, i) => !l.startsWith('blobs/') || l === `blobs/sha256/${diffIds[i]?.slice(7)}`);
    const store = save.store ?? (blobsAreDiffIds ? 'graphdriver' : 'containerd');
    let id = configDigest;
    if (store === 'containerd') {
      // The target descriptor naming this image (by its io.containerd.image.name), else the first one.
      const tags = new Set((item.RepoTags ?? []).map((t) => (t.lastIndexOf(':') > t.lastIndexOf('/') ? t : `${t}:latest`)));
      const named = index?.manifests.find((m) => {
        const full = m.annotations?.['io.containerd.image.name'] ?? '';
        return [...tags].some((t) => full === t || full.endsWith(`/${t}`));
      });
      id = (named ?? index?.manifests[0])?.digest ?? configDigest;
    }
    return {
      Id: id,
      RepoTags: item.RepoTags ?? [],
      RepoDigests: [],
      Created: config.created ?? '1970-01-01T00:00:00Z',
      Size: item.Layers.reduce((sum, l) => sum + (sizes.get(resolve(l)) ?? 0), 0),
      Os: config.os ?? 'linux',
      Architecture: config.architecture ?? 'amd64',
      RootFS: { Type: 'layers' as const, Layers: diffIds },
      configDigest,
      save,
    };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// A legacy save whose v1 directories the diffIDs do not name

/**
 * Rewrites a real legacy save (Engine < 25) as the same daemon would write it for an image whose layers kept
 * the v1 IDs of a pre-1.10 graph (images migrated from Docker < 1.10 do): every `<v1id>/` renamed to an ID
 * the formula of legacy-ids.ts does not give, its `json` and manifest.json following suit, entries in the
 * lexical order of the exporter's walk. Layer bytes, config and image ID are unchanged. Returns the tarball.
 */
export async function writeLegacySaveWithV1Ids(legacySave: Readable, workDir: string): Promise<string> {
  const parts = await explodeLegacySave(legacySave, join(workDir, 'parts'));
  if (new Set(parts.diffIds).size !== parts.diffIds.length) throw new Error('writeLegacySaveWithV1Ids: duplicate layers are not supported');
  const dirs = parts.v1.map((v) => createHash('sha256').update(`migrated from a v1 graph: ${v.dir}`).digest('hex'));
  const jsons = parts.v1.map((v, i) => {
    const json = JSON.parse(v.json.toString('utf8')) as Save.V1Json;
    json.id = dirs[i] as string;
    if (i > 0) json.parent = dirs[i - 1] as string;
    return Buffer.from(JSON.stringify(json));
  });
  const configName = `${parts.configDigest.slice(7)}.json`;
  type Entry = { name: string; data?: Buffer; path?: string; size?: number; type?: 'directory' };
  const entries: Entry[] = [{ name: configName, data: parts.config }];
  parts.diffIds.forEach((diffId, i) => {
    const dir = dirs[i] as string;
    const file = parts.files.get(diffId);
    if (!file) throw new Error(`writeLegacySaveWithV1Ids: no file for ${diffId}`);
    entries.push({ name: `${dir}/`, type: 'directory' }, { name: `${dir}/VERSION`, data: Buffer.from('1.0') },
      { name: `${dir}/json`, data: jsons[i] as Buffer }, { name: `${dir}/layer.tar`, path: file.path, size: file.size });
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  const manifest: Save.Manifest = [{ Config: configName, RepoTags: parts.repoTags, Layers: dirs.map((d) => `${d}/layer.tar`) }];
  const repositories: Save.Repositories = {};
  for (const tag of parts.repoTags) {
    const at = tag.lastIndexOf(':');
    (repositories[tag.slice(0, at)] ??= {})[tag.slice(at + 1)] = dirs[dirs.length - 1] as string;
  }
  entries.push({ name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) },
    { name: 'repositories', data: Buffer.from(`${JSON.stringify(repositories)}\n`) });

  const out = join(workDir, 'legacy-v1-ids.tar');
  const pack = tar.pack();
  const written = pipeline(Readable.from(pack as AsyncIterable<Buffer>), createWriteStream(out));
  const mtime = new Date('2026-01-02T03:04:05Z');
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.type === 'directory') {
        pack.entry({ name: e.name, type: 'directory', mode: 0o755, mtime }, done);
      } else if (e.path !== undefined) {
        const sink = pack.entry({ name: e.name, size: e.size, mode: 0o644, mtime }, done);
        const file = createReadStream(e.path);
        file.on('error', reject);
        file.pipe(sink as unknown as NodeJS.WritableStream);
      } else {
        pack.entry({ name: e.name, mode: 0o644, mtime }, e.data ?? Buffer.alloc(0), done);
      }
    });
  }
  pack.finalize();
  await written;
  return out;
}

/**
 * Copies a legacy save with its image config (`<hex>.json`) moved to the front or to the back (just before
 * manifest.json). The exporter walks its directory lexically, so where the config lands depends on how its
 * hash sorts against the v1 directory names: this pins each case down whatever the test images hash to.
 */
export async function writeLegacySaveWithConfig(legacyPath: string, where: 'first' | 'last', out: string): Promise<string> {
  const isConfig = (name: string) => /^[0-9a-f]{64}\.json$/.test(name);
  let config: { header: tar.Header; data: Buffer } | undefined;
  for await (const entry of readTar(legacyPath)) {
    const parts: Buffer[] = [];
    for await (const chunk of entry as AsyncIterable<Buffer>) if (isConfig(entry.header.name)) parts.push(chunk);
    if (isConfig(entry.header.name)) config = { header: entry.header, data: Buffer.concat(parts) };
  }
  if (!config) throw new Error(`writeLegacySaveWithConfig: ${legacyPath} has no image config`);
  const pack = tar.pack();
  const written = pipeline(Readable.from(pack as AsyncIterable<Buffer>), createWriteStream(out));
  const put = (header: tar.Header, data: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry(header, data, (err) => (err ? reject(err) : resolve())));
  if (where === 'first') await put(config.header, config.data);
  for await (const entry of readTar(legacyPath)) {
    const { header } = entry;
    if (isConfig(header.name)) {
      for await (const _ of entry as AsyncIterable<Buffer>);
      continue;
    }
    if (header.name === 'manifest.json' && where === 'last') await put(config.header, config.data);
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      pipeline(entry as AsyncIterable<Buffer>, sink as unknown as NodeJS.WritableStream).catch(reject);
    });
  }
  pack.finalize();
  await written;
  return out;
}

function readTar(path: string): tar.Extract {
  const extract = tar.extract();
  const source = createReadStream(path);
  source.on('error', (error) => extract.destroy(error));
  source.pipe(extract);
  return extract;
}

// ---------------------------------------------------------------------------------------------------------------
// In-process scans with a given stdin and no daemon.

export function scanWithStdin(args: string[], options: { stdin?: Readable; env?: Record<string, string>; stderrIsTTY?: boolean } = {}): Promise<ScanRun> {
  return scanInProcess(args, { ...options, daemon: false });
}
