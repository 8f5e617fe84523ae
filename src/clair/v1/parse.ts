// Guards for Clair v1 responses: unknown JSON in, the wire types out, or ClairProtocolError naming the
// endpoint and the offending member. Lenient where Clair is (every key omitempty), strict on types.
import { ClairProtocolError } from '../../runtime/errors.js';
import { lenientJson } from '../http.js';
import type * as V1 from './wire.js';

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(endpoint: string, where: string, what: string): ClairProtocolError {
  return new ClairProtocolError(`Clair at ${endpoint} sent an unexpected body: ${where} ${what}`);
}

function optString(o: Obj, key: string, endpoint: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(endpoint, `${where}.${key}`, 'is not a string');
  return v;
}

function reqString(o: Obj, key: string, endpoint: string, where: string): string {
  const v = optString(o, key, endpoint, where);
  if (v === undefined) throw bad(endpoint, `${where}.${key}`, 'is missing');
  return v;
}

function optArray(o: Obj, key: string, endpoint: string, where: string): unknown[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw bad(endpoint, `${where}.${key}`, 'is not an array');
  return v;
}

function assign<T extends object>(target: T, key: keyof T, value: unknown): void {
  if (value !== undefined) (target as Record<string, unknown>)[key as string] = value;
}

export function parseVulnerability(json: unknown, endpoint: string, where = 'Vulnerability'): V1.Vulnerability {
  if (!isObject(json)) throw bad(endpoint, where, 'is not an object');
  const v: V1.Vulnerability = { Name: reqString(json, 'Name', endpoint, where) };
  for (const key of ['NamespaceName', 'Description', 'Link', 'Severity', 'FixedBy'] as const) {
    assign(v, key, optString(json, key, endpoint, where));
  }
  if (isObject(json.Metadata)) v.Metadata = json.Metadata;
  return v;
}

export function parseFeature(json: unknown, endpoint: string, where = 'Feature'): V1.Feature {
  if (!isObject(json)) throw bad(endpoint, where, 'is not an object');
  const f: V1.Feature = { Name: reqString(json, 'Name', endpoint, where) };
  for (const key of ['NamespaceName', 'VersionFormat', 'Version', 'AddedBy'] as const) {
    assign(f, key, optString(json, key, endpoint, where));
  }
  const vulns = optArray(json, 'Vulnerabilities', endpoint, where);
  if (vulns) f.Vulnerabilities = vulns.map((v, i) => parseVulnerability(v, endpoint, `${where}.Vulnerabilities[${i}]`));
  return f;
}

/** `{"Layer":{…}}` of GET /v1/layers/{name} (or the POST echo). */
export function parseLayerEnvelope(json: unknown, endpoint: string): V1.Layer {
  if (!isObject(json)) throw bad(endpoint, 'the body', 'is not an object');
  const layer = json.Layer;
  if (!isObject(layer)) throw bad(endpoint, 'Layer', 'is missing');
  const out: V1.Layer = { Name: reqString(layer, 'Name', endpoint, 'Layer') };
  assign(out, 'NamespaceName', optString(layer, 'NamespaceName', endpoint, 'Layer'));
  assign(out, 'ParentName', optString(layer, 'ParentName', endpoint, 'Layer'));
  if (typeof layer.IndexedByVersion === 'number') out.IndexedByVersion = layer.IndexedByVersion;
  const features = optArray(layer, 'Features', endpoint, 'Layer');
  if (features) out.Features = features.map((f, i) => parseFeature(f, endpoint, `Layer.Features[${i}]`));
  return out;
}

export function parseNamespaces(json: unknown, endpoint: string): V1.Namespace[] {
  if (!isObject(json)) throw bad(endpoint, 'the body', 'is not an object');
  const list = optArray(json, 'Namespaces', endpoint, 'the body') ?? [];
  return list.map((n, i) => {
    if (!isObject(n)) throw bad(endpoint, `Namespaces[${i}]`, 'is not an object');
    const ns: V1.Namespace = { Name: reqString(n, 'Name', endpoint, `Namespaces[${i}]`) };
    assign(ns, 'VersionFormat', optString(n, 'VersionFormat', endpoint, `Namespaces[${i}]`));
    return ns;
  });
}

export function parseVulnerabilityPage(json: unknown, endpoint: string): V1.VulnerabilityPage {
  if (!isObject(json)) throw bad(endpoint, 'the body', 'is not an object');
  const list = optArray(json, 'Vulnerabilities', endpoint, 'the body') ?? [];
  const page: V1.VulnerabilityPage = {
    Vulnerabilities: list.map((v, i) => parseVulnerability(v, endpoint, `Vulnerabilities[${i}]`)),
  };
  assign(page, 'NextPage', optString(json, 'NextPage', endpoint, 'the body'));
  return page;
}

/** `{"Error":{"Message":…}}`, from raw text or parsed JSON; undefined when the body is not one. Never throws. */
export function parseErrorBody(body: unknown): V1.ErrorBody | undefined {
  const value = lenientJson(body);
  if (!isObject(value) || !isObject(value.Error)) return undefined;
  const out: V1.ErrorBody = {};
  if (typeof value.Error.Message === 'string') out.Message = value.Error.Message;
  if (typeof value.Error.Type === 'string') out.Type = value.Error.Type;
  return out;
}
