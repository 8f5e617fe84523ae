/**
 * Clair v4's HTTP API (combo mode: indexer + matcher on one listener), as httptransport/indexer_v1.go and
 * matcher_v1.go behave at v4.9 — including where the OpenAPI spec (httptransport/api/v1/openapi.yaml) disagrees.
 */
import { createHash, randomInt, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { coalesce } from './coalesce.js';
import { DigestError, parseDigest } from './digest.js';
import { applyFault, clientGone, sendTruncated } from './fault.js';
import { acceptable, goJson, readBody, send, v4Error } from './http-util.js';
import { fetchAll, LayerFetchError, LayerFormatError, type LayerFetchRecord } from './layer-fetch.js';
import { scanLayerV4, wantedPath, type V4LayerArtifacts } from './layer-scan.js';
import type { ClairDoubleOptions, ManifestInfo } from './options.js';
import { V4Matcher } from './v4-matcher.js';
import { encodeIndexReport, IdTable, type IndexReportRecord } from './v4-model.js';
import { defaultUpdater, type VulnEntry } from './vulns.js';

export const INDEX_REPORT_PATH = '/indexer/api/v1/index_report';
export const VULN_REPORT_PATH = '/matcher/api/v1/vulnerability_report';
const LINK_INDEX = (p: string): string => `<${p}>; rel="https://projectquay.io/clair/v1/index_report"`;
const LINK_REPORT = (p: string): string => `<${p}>; rel="https://projectquay.io/clair/v1/vulnerability_report"`;

/** MD5 over the configured scanners, like libindex's state: changes only when scanners change. */
const INDEX_STATE = createHash('md5')
  .update(['apk:v0.0.1:package', 'dpkg:5:package', 'os-release:v0.0.1:distribution'].sort().join(''))
  .digest('hex');

export interface UpdateOperation {
  ref: string;
  updater: string;
  fingerprint: string;
  date: string;
  kind: 'vulnerability';
}

function unmodified(req: IncomingMessage, validator: string): boolean {
  const inm = req.headers['if-none-match'];
  if (inm === undefined) return false;
  return inm.split(',').map((s) => s.trim()).some((t) => t === validator || t === '*');
}

class BadManifest extends Error {}

function parseManifest(body: Buffer): ManifestInfo {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new BadManifest(`failed to deserialize manifest: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new BadManifest('failed to deserialize manifest: json: cannot unmarshal into Go value of type claircore.Manifest');
  }
  const o = json as Record<string, unknown>;
  try {
    const hash = o['hash'] === undefined || o['hash'] === null || o['hash'] === '' ? '' : parseDigest(o['hash']).text;
    const rawLayers = o['layers'] ?? [];
    if (!Array.isArray(rawLayers)) throw new BadManifest('failed to deserialize manifest: "layers" is not an array');
    const layers = rawLayers.map((l: unknown) => {
      const lo = (typeof l === 'object' && l !== null ? l : {}) as Record<string, unknown>;
      const headers: Record<string, string[]> = {};
      const rh = lo['headers'];
      if (rh !== undefined && rh !== null) {
        if (typeof rh !== 'object' || Array.isArray(rh)) throw new BadManifest('failed to deserialize manifest: "headers" is not an object');
        for (const [k, v] of Object.entries(rh as Record<string, unknown>)) {
          if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
            throw new BadManifest(`failed to deserialize manifest: header ${JSON.stringify(k)}: expected an array of strings`);
          }
          headers[k] = v as string[];
        }
      }
      const uri = lo['uri'];
      if (uri !== undefined && typeof uri !== 'string') throw new BadManifest('failed to deserialize manifest: "uri" is not a string');
      return { hash: parseDigest(lo['hash']).text, uri: uri ?? '', headers };
    });
    return { hash, layers };
  } catch (err) {
    if (err instanceof DigestError) throw new BadManifest(`failed to deserialize manifest: ${err.message}`);
    throw err;
  }
}

export class ClairV4 {
  /** Scanned layers by digest: never fetched again. */
  readonly layers = new Map<string, V4LayerArtifacts>();
  readonly reports = new Map<string, IndexReportRecord>();
  readonly layerFetches: LayerFetchRecord[] = [];
  private readonly locks = new Map<string, Promise<void>>();
  private readonly ids = { packages: new IdTable(1), distributions: new IdTable(1) };
  private readonly matcher: V4Matcher;
  private indexInFlight = 0;
  private fetchesInFlight = 0;
  /** The most layer GETs seen in flight at once (all index requests together). */
  maxConcurrentFetches = 0;
  emptyDb: boolean;
  private updateOps: Map<string, UpdateOperation>;

  constructor(private readonly opts: ClairDoubleOptions, private readonly db: () => VulnEntry[]) {
    this.matcher = new V4Matcher(db);
    this.emptyDb = opts.emptyDb ?? false;
    this.updateOps = this.makeUpdateOps(new Date());
  }

  /** One update operation per updater of the database, all dated `at` (seconds precision, as Go's RFC 3339). */
  private makeUpdateOps(at: Date): Map<string, UpdateOperation> {
    const ops = new Map<string, UpdateOperation>();
    const date = at.toISOString().replace(/\.\d+Z$/, 'Z');
    for (const e of this.db()) {
      const updater = e.updater ?? defaultUpdater(e.namespace);
      if (!ops.has(updater)) ops.set(updater, { ref: randomUUID(), updater, fingerprint: '', date, kind: 'vulnerability' });
    }
    return ops;
  }

  /**
   * Emulates the end of an update run: the database is no longer empty and update_operation reports a fresh
   * operation (new ref, so a new ETag) per updater, dated `at`.
   */
  finishUpdate(at: Date = new Date()): void {
    this.updateOps = this.makeUpdateOps(at);
    this.emptyDb = false;
  }

  /** True when the vulnerability store counts as empty (the 202 signal). */
  isDbEmpty(): boolean {
    return this.emptyDb || this.db().length === 0;
  }

  /** Handles a v4 path; false when the path is not part of the v4 API. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const p = url.pathname;
    const err = (status: number, message: string): void => v4Error(req, res, status, message);
    if (p === INDEX_REPORT_PATH) {
      if (req.method === 'POST') await this.postIndex(req, res);
      else if (req.method === 'DELETE') await this.bulkDelete(req, res);
      else err(405, `method disallowed: ${req.method ?? ''}`);
      return true;
    }
    if (p.startsWith(`${INDEX_REPORT_PATH}/`)) {
      await this.indexReportOne(req, res, decodeURIComponent(p.slice(INDEX_REPORT_PATH.length + 1)));
      return true;
    }
    if (p === '/indexer/api/v1/index_state') {
      if (req.method !== 'GET') err(405, `method disallowed: ${req.method ?? ''}`);
      else this.indexState(req, res);
      return true;
    }
    if (p.startsWith(`${VULN_REPORT_PATH}/`)) {
      await this.vulnerabilityReport(req, res, decodeURIComponent(p.slice(VULN_REPORT_PATH.length + 1)));
      return true;
    }
    if (p === '/matcher/api/v1/internal/update_operation') {
      if (req.method !== 'GET') err(405, `method disallowed: ${req.method ?? ''}`);
      else this.updateOperation(req, res, url);
      return true;
    }
    if (p.startsWith('/matcher/api/v1/internal/update_operation/')) {
      if (req.method !== 'DELETE') err(405, `method disallowed: ${req.method ?? ''}`);
      else send(req, res, 200, '');
      return true;
    }
    if (p === '/matcher/api/v1/internal/update_diff') {
      this.updateDiff(req, res, url);
      return true;
    }
    return false;
  }

  private async withLock<T>(hash: string, f: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(hash) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    const chained = prev.then(() => mine);
    this.locks.set(hash, chained);
    await prev;
    try {
      return await f();
    } finally {
      release();
      if (this.locks.get(hash) === chained) this.locks.delete(hash);
    }
  }

  private async postIndex(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const cap = this.opts.indexConcurrency ?? 8;
    if (this.indexInFlight >= cap) {
      v4Error(req, res, 429, 'server handling too many requests');
      return;
    }
    this.indexInFlight++;
    try {
      await this.postIndexInner(req, res);
    } finally {
      this.indexInFlight--;
    }
  }

  private async postIndexInner(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const signal = clientGone(res);
    let manifest: ManifestInfo;
    try {
      manifest = parseManifest(await readBody(req));
    } catch (e) {
      if (e instanceof BadManifest) {
        v4Error(req, res, 400, e.message);
        return;
      }
      throw e;
    }
    if (manifest.hash === '' || manifest.layers.length === 0) {
      v4Error(req, res, 400, 'bogus manifest');
      return;
    }
    const next = `${INDEX_REPORT_PATH}/${manifest.hash}`;
    res.setHeader('Link', [LINK_INDEX(next), LINK_REPORT(`${VULN_REPORT_PATH}/${manifest.hash}`)]);
    const validator = `"${INDEX_STATE}"`;
    if (unmodified(req, validator)) {
      res.writeHead(412);
      res.end();
      return;
    }
    const fault = await applyFault(await this.opts.faults?.index?.(manifest), res, signal,
      (s, m) => v4Error(req, res, s, m)).catch(() => 'handled' as const);
    if (fault === 'handled' || signal.aborted) return;
    let outcome: { status: 201; report: IndexReportRecord } | { status: number; message: string };
    try {
      outcome = await this.withLock(manifest.hash, () => this.index(manifest, signal));
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
    if (signal.aborted) return;
    if (outcome.status !== 201 || !('report' in outcome)) {
      v4Error(req, res, outcome.status, 'message' in outcome ? outcome.message : '');
      return;
    }
    const headers = { 'Content-Type': 'application/json', ETag: validator, Location: next };
    const body = goJson(encodeIndexReport(outcome.report));
    if (fault !== undefined) sendTruncated(req, res, 201, body, headers, fault.bytes);
    else send(req, res, 201, body, headers);
  }

  /** The controller: CheckManifest → FetchLayers → ScanLayers → Coalesce → IndexManifest → IndexFinished. */
  private async index(manifest: ManifestInfo, signal: AbortSignal):
    Promise<{ status: 201; report: IndexReportRecord } | { status: number; message: string }> {
    const known = this.reports.get(manifest.hash);
    if (known?.state === 'IndexFinished') return { status: 201, report: known };
    const report: IndexReportRecord = {
      manifest_hash: manifest.hash, state: 'CheckManifest', packages: new Map(), distributions: new Map(),
      environments: new Map(), success: false, err: '',
    };
    this.reports.set(manifest.hash, report);
    report.state = 'FetchLayers';
    const toFetch = manifest.layers.filter((l) => !this.layers.has(l.hash));
    let fetched;
    try {
      if (this.opts.noTmpfile === true && toFetch.length > 0) {
        // claircore v4.9.0 spools each layer into an O_TMPFILE file; without O_TMPFILE its fallback opens a name
        // that does not exist (quay/clair#2362). The double fails before any GET (whether Clair's GET has already
        // started by then is not modelled; the client sees the same 500).
        throw new LayerFetchError(`openat fetcher.${randomInt(1, 2 ** 31)}: no such file or directory`);
      }
      fetched = await fetchAll(toFetch, {
        concurrency: Math.max(1, this.opts.fetchConcurrency ?? 2),
        signal,
        rejectContentEncoding: this.opts.rejectContentEncoding ?? true,
        rangeProbe: this.opts.rangeProbe ?? false,
        ...(this.opts.layers ? { layers: this.opts.layers } : {}),
        ...(this.opts.layerRate !== undefined ? { layerRate: this.opts.layerRate } : {}),
        ...(this.opts.trustCa !== undefined ? { trustCa: this.opts.trustCa } : {}),
        wanted: wantedPath,
        record: (r) => this.track(r),
        finished: (r) => {
          if (r.reason === 'fetch') this.fetchesInFlight--;
        },
      });
    } catch (e) {
      if (signal.aborted) throw e;
      const cause = e instanceof Error ? e.message : String(e);
      report.state = 'IndexError';
      report.err = `failed to fetch layers: fetcher: encountered errors: ${cause}`;
      const status = e instanceof LayerFormatError ? 400 : 500;
      if (!(e instanceof LayerFetchError)) report.err = `failed to fetch layers: ${cause}`;
      return { status, message: `failed to start scan: ${report.err}` };
    }
    report.state = 'ScanLayers';
    for (const [digest, layer] of fetched) this.layers.set(digest, scanLayerV4(digest, layer.contents));
    report.state = 'Coalesce';
    const artifacts = manifest.layers.map((l) => this.layers.get(l.hash)).filter((a): a is V4LayerArtifacts => a !== undefined);
    const merged = coalesce(manifest.hash, artifacts, this.ids);
    report.packages = merged.packages;
    report.distributions = merged.distributions;
    report.environments = merged.environments;
    report.state = 'IndexManifest';
    report.state = 'IndexFinished';
    report.success = true;
    return { status: 201, report };
  }

  /** Records a layer GET and keeps the in-flight high-water mark. */
  private track(r: LayerFetchRecord): void {
    this.layerFetches.push(r);
    if (r.reason !== 'fetch') return;
    this.fetchesInFlight++;
    this.maxConcurrentFetches = Math.max(this.maxConcurrentFetches, this.fetchesInFlight);
  }

  private async bulkDelete(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let list: unknown;
    try {
      list = JSON.parse((await readBody(req)).toString('utf8'));
      if (!Array.isArray(list)) throw new Error('json: cannot unmarshal object into Go value of type []claircore.Digest');
      list = list.map((d) => parseDigest(d).text);
    } catch (e) {
      v4Error(req, res, 400, `failed to deserialize bulk delete: ${(e as Error).message}`);
      return;
    }
    const deleted = (list as string[]).filter((d) => this.reports.delete(d));
    send(req, res, 200, goJson(deleted), { 'Content-Type': 'application/json' });
  }

  private async indexReportOne(req: IncomingMessage, res: ServerResponse, digestText: string): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'DELETE') {
      v4Error(req, res, 405, `method disallowed: ${req.method ?? ''}`);
      return;
    }
    let digest: string;
    try {
      digest = parseDigest(digestText).text;
    } catch (e) {
      v4Error(req, res, 400, `malformed path: ${(e as Error).message}`);
      return;
    }
    if (req.method === 'DELETE') {
      this.reports.delete(digest);
      res.writeHead(204);
      res.end();
      return;
    }
    const allow = ['application/vnd.clair.index_report.v1+json', 'application/json'];
    if (!acceptable(req.headers.accept, allow)) {
      v4Error(req, res, 415, `unable to negotiate common media type for [${allow.join(' ')}]`);
      return;
    }
    const validator = `"${INDEX_STATE}"`;
    if (unmodified(req, validator)) {
      res.writeHead(304);
      res.end();
      return;
    }
    const report = this.reports.get(digest);
    if (report === undefined) {
      v4Error(req, res, 404, 'index report not found');
      return;
    }
    send(req, res, 200, goJson(encodeIndexReport(report)), { 'Content-Type': allow[0] ?? '', ETag: validator });
  }

  private indexState(req: IncomingMessage, res: ServerResponse): void {
    const allow = ['application/vnd.clair.index_state.v1+json', 'application/json'];
    if (!acceptable(req.headers.accept, allow)) {
      v4Error(req, res, 415, `unable to negotiate common media type for [${allow.join(' ')}]`);
      return;
    }
    const tag = `"${INDEX_STATE}"`;
    res.setHeader('ETag', tag);
    if (unmodified(req, tag)) {
      res.writeHead(304);
      res.end();
      return;
    }
    send(req, res, 200, goJson({ state: INDEX_STATE }), { 'Content-Type': allow[0] ?? '' });
  }

  private async vulnerabilityReport(req: IncomingMessage, res: ServerResponse, digestText: string): Promise<void> {
    if (req.method !== 'GET') {
      v4Error(req, res, 405, 'endpoint only allows GET');
      return;
    }
    let digest: string;
    try {
      digest = parseDigest(digestText).text;
    } catch (e) {
      v4Error(req, res, 400, `malformed path: ${(e as Error).message}`);
      return;
    }
    const signal = clientGone(res);
    const fault = await applyFault(await this.opts.faults?.vulnerabilityReport?.(digest), res, signal,
      (s, m) => v4Error(req, res, s, m)).catch(() => 'handled' as const);
    if (fault === 'handled' || signal.aborted) return;
    if (this.isDbEmpty()) {
      res.writeHead(202);
      res.end();
      return;
    }
    const index = this.reports.get(digest);
    if (index === undefined || index.state !== 'IndexFinished') {
      v4Error(req, res, 404, `index report for manifest ${JSON.stringify(digest)} not found`);
      return;
    }
    const body = goJson(this.matcher.report(index, this.opts.enrichments === undefined ? {} : this.opts.enrichments));
    const headers = {
      // Clair v4.9 labels the vulnerability report as an index report (quay/clair httptransport/matcher_v1.go).
      'Content-Type': 'application/vnd.clair.index_report.v1+json',
      'Cache-Control': `max-age=${this.opts.reportCacheAge ?? 21600}`,
    };
    if (fault !== undefined) sendTruncated(req, res, 200, body, headers, fault.bytes);
    else send(req, res, 200, body, headers);
  }

  private updateOperation(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const kind = url.searchParams.get('kind') ?? '';
    if (kind !== '' && kind !== 'vulnerability' && kind !== 'enrichment') {
      v4Error(req, res, 400, `unknown kind: ${JSON.stringify(kind)}`);
      return;
    }
    const ops = kind === 'enrichment' || this.isDbEmpty() ? [] : [...this.updateOps.values()];
    const latest = ops[ops.length - 1];
    if (latest !== undefined) {
      const validator = `"${latest.ref}"`;
      if (unmodified(req, validator)) {
        res.writeHead(304);
        res.end();
        return;
      }
      res.setHeader('ETag', validator);
    }
    const body: Record<string, UpdateOperation[]> = {};
    for (const op of ops) body[op.updater] = [op];
    // Clair sets no Content-Type here: Go's server sniffs the JSON body as text.
    send(req, res, 200, goJson(body), { 'Content-Type': 'text/plain; charset=utf-8' });
  }

  private updateDiff(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (req.method !== 'GET') {
      v4Error(req, res, 405, 'endpoint only allows GET');
      return;
    }
    const cur = url.searchParams.get('cur');
    if (cur === null || cur === '') {
      v4Error(req, res, 400, '"cur" query param is required');
      return;
    }
    const op = [...this.updateOps.values()].find((o) => o.ref === cur);
    if (op === undefined) {
      v4Error(req, res, 400, 'could not parse "cur" query param into uuid');
      return;
    }
    send(req, res, 200, goJson({ prev: null, cur: op, added: [], removed: [] }), { 'Content-Type': 'application/json' });
  }
}
