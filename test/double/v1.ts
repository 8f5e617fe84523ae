/**
 * The legacy v1 REST API of Clair 1.x/2.0 (api/v1/routes.go, worker.go): layer by layer, parent first, no
 * digest check, any 2xx accepted, features named after dpkg source packages, PascalCase `omitempty` envelopes,
 * errors as `{"Error":{"Message":…}}`. No authentication (Clair 2 had none).
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { applyFault, clientGone } from './fault.js';
import { BodyTooLargeError, goJson, readBody } from './http-util.js';
import { goGet, type LayerFetchRecord } from './layer-fetch.js';
import { scanLayerV1, wantedPathV1 } from './layer-scan.js';
import { decompressor, sniffCompression, TarSink, type LayerContents } from './layer-unpack.js';
import type { ClairDoubleOptions, V1LayerInfo } from './options.js';
import { isAffected, parseVulnEntry, SEVERITIES, severityRank, type VulnEntry } from './vulns.js';

/** Clair 2.0's engine version, echoed as IndexedByVersion. */
export const ENGINE_VERSION = 3;
const BODY_LIMIT = 1 << 20;

const MSG = {
  notFound: 'the resource cannot be found',
  couldNotFind: 'could not find layer',
  parentUnknown: 'worker: parent layer is unknown, it must be processed first',
  couldNotExtract: 'tarutil: could not extract the archive',
  unsupported: 'worker: OS and/or package manager are not supported',
} as const;

interface V1Feature {
  name: string;
  version: string;
  namespace: string;
  addedBy: string;
}

interface V1Layer {
  info: V1LayerInfo;
  namespace?: string;
  features: V1Feature[];
}

class V1Error extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function versionFormat(ns: string): string {
  return /^(centos|rhel|oracle|fedora|amzn|opensuse|sles)\b/.test(ns) ? 'rpm' : 'dpkg';
}

export class ClairV1 {
  readonly layers = new Map<string, V1Layer>();
  /** Vulnerabilities inserted through `POST /v1/namespaces/{ns}/vulnerabilities`. */
  readonly inserted: VulnEntry[] = [];

  constructor(
    private readonly opts: ClairDoubleOptions,
    private readonly fileDb: () => VulnEntry[],
    private readonly record: (r: LayerFetchRecord) => void,
  ) {}

  private db(): VulnEntry[] {
    return [...this.fileDb(), ...this.inserted];
  }

  private send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
    let payload = Buffer.from(`${goJson(body)}\n`);
    res.setHeader('Content-Type', 'application/json;charset=utf-8');
    res.setHeader('Server', 'clair');
    if ((req.headers['accept-encoding'] ?? '').includes('gzip')) {
      payload = gzipSync(payload);
      res.setHeader('Content-Encoding', 'gzip');
    }
    res.setHeader('Content-Length', String(payload.length));
    res.writeHead(status);
    res.end(payload);
  }

  private error(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
    this.send(req, res, status, { Error: { Message: message } });
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const p = url.pathname;
    if (!p.startsWith('/v1/')) return false;
    const parts = p.split('/').slice(2).map((s) => decodeURIComponent(s));
    try {
      if (parts[0] === 'layers' && parts.length === 1 && req.method === 'POST') await this.postLayer(req, res);
      else if (parts[0] === 'layers' && parts.length === 2 && req.method === 'GET') await this.getLayer(req, res, parts[1] ?? '', url);
      else if (parts[0] === 'layers' && parts.length === 2 && req.method === 'DELETE') this.deleteLayer(req, res, parts[1] ?? '');
      else if (parts[0] === 'namespaces' && parts.length === 1 && req.method === 'GET') this.namespaces(req, res);
      else if (parts[0] === 'namespaces' && parts.length === 3 && parts[2] === 'vulnerabilities' && req.method === 'POST') {
        await this.postVulnerability(req, res, parts[1] ?? '');
      } else if (parts[0] === 'namespaces' && parts.length === 3 && parts[2] === 'vulnerabilities' && req.method === 'GET') {
        this.listVulnerabilities(req, res, parts[1] ?? '', url);
      } else this.error(req, res, 404, MSG.notFound);
    } catch (e) {
      if (e instanceof V1Error) this.error(req, res, e.status, e.message);
      else throw e;
    }
    return true;
  }

  private async readEnvelope(req: IncomingMessage): Promise<Record<string, unknown>> {
    let body: Buffer;
    try {
      body = await readBody(req, BODY_LIMIT);
    } catch (e) {
      if (e instanceof BodyTooLargeError) throw new V1Error(400, e.message);
      throw e;
    }
    try {
      const json: unknown = JSON.parse(body.toString('utf8'));
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('json: cannot unmarshal into envelope');
      return json as Record<string, unknown>;
    } catch (e) {
      throw new V1Error(400, (e as Error).message);
    }
  }

  private async postLayer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const env = await this.readEnvelope(req);
    const raw = env['Layer'];
    if (typeof raw !== 'object' || raw === null) throw new V1Error(400, 'failed to provide layer');
    const l = raw as Record<string, unknown>;
    const str = (k: string): string => (typeof l[k] === 'string' ? l[k] : '');
    const headers: Record<string, string> = {};
    if (typeof l['Headers'] === 'object' && l['Headers'] !== null) {
      for (const [k, v] of Object.entries(l['Headers'] as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new V1Error(400, `json: cannot unmarshal into Go struct field Layer.Headers of type string`);
        headers[k] = v;
      }
    }
    const info: V1LayerInfo = { Name: str('Name'), Path: str('Path'), ParentName: str('ParentName'), Format: str('Format'), Headers: headers };
    const signal = clientGone(res);
    const fault = await applyFault(await this.opts.faults?.v1PostLayer?.(info), res, signal,
      (s, m) => this.error(req, res, s, m)).catch(() => 'handled' as const);
    if (fault === 'handled' || signal.aborted) return;
    await this.processLayer(info, signal);
    const echo: Record<string, unknown> = { Name: info.Name };
    if (info.Path !== '') echo['Path'] = info.Path;
    if (Object.keys(headers).length > 0) echo['Headers'] = headers;
    if (info.ParentName !== '') echo['ParentName'] = info.ParentName;
    if (info.Format !== '') echo['Format'] = info.Format;
    echo['IndexedByVersion'] = ENGINE_VERSION;
    if (signal.aborted) return;
    this.send(req, res, 201, { Layer: echo });
  }

  private async processLayer(info: V1LayerInfo, signal: AbortSignal): Promise<void> {
    if (info.Name === '') throw new V1Error(400, 'could not process a layer which does not have a name');
    if (info.Path === '') throw new V1Error(400, 'could not process a layer which does not have a path');
    if (info.Format === '') throw new V1Error(400, 'could not process a layer which does not have a format');
    if (this.layers.has(info.Name)) return;
    let parent: V1Layer | undefined;
    if (info.ParentName !== '') {
      parent = this.layers.get(info.ParentName);
      if (parent === undefined) throw new V1Error(400, MSG.parentUnknown);
    }
    if (!['docker', 'aci'].includes(info.Format.toLowerCase())) {
      throw new V1Error(400, `unsupported image format '${info.Format}'`);
    }
    const contents = await this.extract(info, signal);
    const scanned = scanLayerV1(contents);
    const namespace = scanned.namespace ?? parent?.namespace;
    let features: V1Feature[];
    if (scanned.features === undefined || scanned.features.length === 0) {
      features = parent?.features.map((f) => ({ ...f })) ?? [];
    } else {
      if (namespace === undefined) throw new V1Error(422, MSG.unsupported);
      features = scanned.features.map((f) => {
        const inherited = parent?.features.find((pf) => pf.name === f.name && pf.version === f.version);
        return { name: f.name, version: f.version, namespace, addedBy: inherited?.addedBy ?? info.Name };
      });
    }
    const layer: V1Layer = { info, features };
    if (namespace !== undefined) layer.namespace = namespace;
    this.layers.set(info.Name, layer);
  }

  /** Downloads (any 2xx) or opens the layer and reads it; fetch failures are 400, unreadable archives 422. */
  private async extract(info: V1LayerInfo, signal: AbortSignal): Promise<LayerContents> {
    let body: Readable;
    const isUrl = /^https?:\/\//.test(info.Path);
    const rec: LayerFetchRecord = {
      digest: info.Name, uri: info.Path, reason: 'fetch', requestHeaders: {}, startedAt: Date.now(), bytes: 0,
    };
    try {
      if (isUrl) {
        const headers: Record<string, string[]> = { 'User-Agent': ['Go-http-client/1.1'], 'Accept-Encoding': ['gzip'] };
        for (const [k, v] of Object.entries(info.Headers)) {
          for (const existing of Object.keys(headers)) if (existing.toLowerCase() === k.toLowerCase()) delete headers[existing];
          headers[k] = [v];
        }
        rec.requestHeaders = headers;
        this.record(rec);
        let res;
        try {
          ({ res } = await goGet(info.Path, headers, signal));
        } catch (e) {
          rec.error = (e as Error).message;
          throw new V1Error(400, MSG.couldNotFind);
        }
        rec.status = res.statusCode;
        rec.contentType = res.headers['content-type'];
        rec.contentEncoding = res.headers['content-encoding'];
        if (Math.floor((res.statusCode ?? 0) / 100) !== 2) {
          res.resume();
          rec.error = `unexpected status ${res.statusCode ?? 0}`;
          throw new V1Error(400, MSG.couldNotFind);
        }
        body = res;
        if ((rec.contentEncoding ?? '').toLowerCase() === 'gzip') body = res.pipe(decompressor('KindGzip'));
      } else {
        this.record(rec);
        body = createReadStream(info.Path);
        await new Promise<void>((resolve, reject) => {
          body.once('open', () => resolve());
          body.once('error', reject);
        }).catch(() => {
          throw new V1Error(400, MSG.couldNotFind);
        });
      }
      return await this.untar(body, rec, signal);
    } catch (e) {
      rec.error ??= (e as Error).message;
      throw e;
    } finally {
      rec.finishedAt = Date.now();
    }
  }

  private async untar(body: Readable, rec: LayerFetchRecord, signal: AbortSignal): Promise<LayerContents> {
    const iterator = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let n = 0;
    let ended = false;
    try {
      while (n < 4) {
        const step = await iterator.next();
        if (step.done === true) {
          ended = true;
          break;
        }
        head.push(step.value);
        n += step.value.length;
      }
    } catch {
      throw new V1Error(422, MSG.couldNotExtract);
    }
    const first = Buffer.concat(head);
    const kind = sniffCompression(first);
    rec.compression = kind;
    // Clair 2 reads gzip, bzip2, xz and plain tar. The double has no bzip2/xz decoder, and zstd postdates Clair 2.
    if (kind !== 'KindGzip' && kind !== 'KindNone') throw new V1Error(422, MSG.couldNotExtract);
    async function* all(): AsyncGenerator<Buffer> {
      if (first.length > 0) yield first;
      if (ended) return;
      for (;;) {
        const step = await iterator.next();
        if (step.done === true) return;
        rec.bytes += step.value.length;
        yield step.value;
      }
    }
    rec.bytes = first.length;
    // As Clair 1.x/2.x: only the files a detector asked for are read from the layer.
    const sink = new TarSink(wantedPathV1);
    try {
      await pipeline(Readable.from(all()), decompressor(kind), sink, { signal });
    } catch (e) {
      if (signal.aborted) throw e;
      throw new V1Error(422, MSG.couldNotExtract);
    }
    if (sink.tarError !== undefined) throw new V1Error(422, MSG.couldNotExtract);
    return sink.contents;
  }

  private async getLayer(req: IncomingMessage, res: ServerResponse, name: string, url: URL): Promise<void> {
    const signal = clientGone(res);
    const fault = await applyFault(await this.opts.faults?.v1GetLayer?.(name), res, signal,
      (s, m) => this.error(req, res, s, m)).catch(() => 'handled' as const);
    if (fault === 'handled' || signal.aborted) return;
    const layer = this.layers.get(name);
    if (layer === undefined) throw new V1Error(404, MSG.notFound);
    const withVulns = url.searchParams.has('vulnerabilities');
    const withFeatures = withVulns || url.searchParams.has('features');
    const out: Record<string, unknown> = { Name: layer.info.Name };
    if (layer.namespace !== undefined) out['NamespaceName'] = layer.namespace;
    if (layer.info.ParentName !== '') out['ParentName'] = layer.info.ParentName;
    out['IndexedByVersion'] = ENGINE_VERSION;
    if (withFeatures && layer.features.length > 0) {
      const db = this.db();
      out['Features'] = layer.features.map((f) => {
        const feature: Record<string, unknown> = {
          Name: f.name, NamespaceName: f.namespace, VersionFormat: versionFormat(f.namespace), Version: f.version,
        };
        if (withVulns) {
          const vulns = db
            .filter((e) => e.namespace === f.namespace && e.package === f.name && isAffected(f.version, e.fixed))
            .sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || a.id.localeCompare(b.id))
            .map((e) => this.encodeVuln(e, true));
          if (vulns.length > 0) feature['Vulnerabilities'] = vulns;
        }
        feature['AddedBy'] = f.addedBy;
        return feature;
      });
    }
    this.send(req, res, 200, { Layer: out });
  }

  private encodeVuln(e: VulnEntry, withFixedBy: boolean): Record<string, unknown> {
    const v: Record<string, unknown> = { Name: e.id, NamespaceName: e.namespace };
    if (e.description !== undefined && e.description !== '') v['Description'] = e.description;
    const link = e.links?.[0];
    if (link !== undefined && link !== '') v['Link'] = link;
    v['Severity'] = e.severity;
    if (e.cvssV2 !== undefined) v['Metadata'] = { NVD: { CVSSv2: { Score: e.cvssV2.score, Vectors: e.cvssV2.vectors } } };
    if (withFixedBy && e.fixed !== undefined) v['FixedBy'] = e.fixed;
    return v;
  }

  private deleteLayer(req: IncomingMessage, res: ServerResponse, name: string): void {
    if (!this.layers.has(name)) throw new V1Error(404, MSG.notFound);
    const doomed = new Set([name]);
    for (let grew = true; grew;) {
      grew = false;
      for (const [n, l] of this.layers) {
        if (!doomed.has(n) && doomed.has(l.info.ParentName)) {
          doomed.add(n);
          grew = true;
        }
      }
    }
    for (const n of doomed) this.layers.delete(n);
    res.setHeader('Server', 'clair');
    res.writeHead(200);
    res.end();
    void req;
  }

  private allNamespaces(): string[] {
    const set = new Set<string>();
    for (const e of this.db()) set.add(e.namespace);
    for (const l of this.layers.values()) if (l.namespace !== undefined) set.add(l.namespace);
    return [...set];
  }

  private namespaces(req: IncomingMessage, res: ServerResponse): void {
    this.send(req, res, 200, {
      Namespaces: this.allNamespaces().map((n) => ({ Name: n, VersionFormat: versionFormat(n) })),
    });
  }

  private async postVulnerability(req: IncomingMessage, res: ServerResponse, ns: string): Promise<void> {
    const env = await this.readEnvelope(req);
    const raw = env['Vulnerability'];
    if (typeof raw !== 'object' || raw === null) throw new V1Error(400, 'failed to provide vulnerability');
    const v = raw as Record<string, unknown>;
    const severity = typeof v['Severity'] === 'string' ? v['Severity'] : '';
    if (!(SEVERITIES as readonly string[]).includes(severity)) throw new V1Error(400, 'failed to parse Severity from input');
    const namespace = typeof v['NamespaceName'] === 'string' && v['NamespaceName'] !== '' ? v['NamespaceName'] : ns;
    const fixedIn = Array.isArray(v['FixedIn']) ? (v['FixedIn'] as Record<string, unknown>[]) : [];
    const entries: VulnEntry[] = [];
    for (const f of fixedIn) {
      if (typeof f['VersionFormat'] !== 'string' || !['dpkg', 'rpm'].includes(f['VersionFormat'])) {
        throw new V1Error(400, 'unknown version format');
      }
      const version = typeof f['Version'] === 'string' ? f['Version'] : '';
      try {
        entries.push(parseVulnEntry({
          id: v['Name'],
          namespace: typeof f['NamespaceName'] === 'string' && f['NamespaceName'] !== '' ? f['NamespaceName'] : namespace,
          package: f['Name'],
          fixed: version === 'None' ? undefined : version,
          severity,
          description: typeof v['Description'] === 'string' ? v['Description'] : undefined,
          links: typeof v['Link'] === 'string' && v['Link'] !== '' ? [v['Link']] : undefined,
        }, 'Vulnerability'));
      } catch (e) {
        throw new V1Error(400, (e as Error).message);
      }
    }
    if (typeof v['Name'] !== 'string' || v['Name'] === '') throw new V1Error(400, 'could not insert a vulnerability that has an empty name');
    this.inserted.push(...entries);
    this.send(req, res, 201, { Vulnerability: raw });
  }

  private listVulnerabilities(req: IncomingMessage, res: ServerResponse, ns: string, url: URL): void {
    const limit = Number(url.searchParams.get('limit') ?? '');
    if (!Number.isInteger(limit) || limit <= 0) throw new V1Error(400, 'must provide limit query parameter');
    if (!this.allNamespaces().includes(ns)) throw new V1Error(404, MSG.notFound);
    const byName = new Map<string, VulnEntry>();
    for (const e of this.db()) if (e.namespace === ns && !byName.has(e.id)) byName.set(e.id, e);
    const all = [...byName.values()];
    const start = Number(url.searchParams.get('page') ?? '0') || 0;
    const page = all.slice(start, start + limit).map((e) => this.encodeVuln(e, false));
    const out: Record<string, unknown> = { Vulnerabilities: page };
    if (start + limit < all.length) out['NextPage'] = String(start + limit);
    this.send(req, res, 200, out);
  }
}
