// Clair v1 layer report (GET /v1/layers/{top}?features&vulnerabilities) → the findings model
// (src/findings/model.ts). Pure; tested in test/unit/v1-normalise.test.ts.
//
// Rules:
// - Findings: one per (feature, vulnerability) in `Layer.Features[].Vulnerabilities[]`. The report covers the top
//   layer and all its ancestors. Features are what Clair v1 matches: for dpkg the SOURCE package (name and version
//   from `Source:`), for apk/rpm the binary package; `package` is that feature.
// - Identity, dedupe and order as for v4 (advisoryId, same (id, package name, version) = one finding, the most
//   severe copy kept; severity descending, id, package).
// - Severity: Unknown…Critical by name (case-insensitive); `Defcon1` (v1's top level) → Critical; anything else →
//   Unknown. The raw text is kept as `vendorSeverity`.
// - fixedIn: `FixedBy`, omitted by Clair when there is no fix ("" and "None" also mean none).
// - links: `Link` (v1 has one).
// - layer: `AddedBy` is the Name docker-clair gave the layer; `layerDigests` maps it back to the digest served.
//   An unknown Name is kept as is.
// - distribution: the top layer's `NamespaceName` ("debian:12" → debian 12; "alpine:v3.4" → alpine 3.4).
// - Trust: no features → no-packages; features but no namespace and nothing matched → unsupported-os. An empty
//   vulnerability database is the caller's to detect (it needs other requests).
import type { Distribution, Finding, ImageRef, ImageScan, TrustSignal } from '../../findings/model.js';
import { SEVERITIES, type Severity } from '../../findings/severity.js';
import { advisoryId } from '../advisory-id.js';
import { compareFindings, mergeDuplicates } from '../../findings/order.js';
import type * as V1 from './wire.js';

export interface NormaliseV1Context {
  image: ImageRef;
  /** Clair's URL (redacted by the caller). */
  url: string;
  /** Layer Name (as sent to Clair) → layer digest (as served). */
  layerDigests?: ReadonlyMap<string, string>;
}

export function toSeverityV1(value: string | undefined): Severity {
  const text = (value ?? '').trim().toLowerCase();
  if (text === 'defcon1') return 'Critical';
  return SEVERITIES.find((s) => s.toLowerCase() === text) ?? 'Unknown';
}

export function toFixedByV1(value: string | undefined): string | undefined {
  const text = (value ?? '').trim();
  return text === '' || text === 'None' ? undefined : text;
}

/** "debian:12" → { id: debian, version: 12 }; "alpine:v3.4" → { id: alpine, version: 3.4 }. */
export function namespaceToDistribution(namespace: string | undefined): Distribution | undefined {
  const text = (namespace ?? '').trim();
  if (text === '') return undefined;
  const colon = text.indexOf(':');
  const id = colon < 0 ? text : text.slice(0, colon);
  let version = colon < 0 ? '' : text.slice(colon + 1);
  if (id === 'alpine') version = version.replace(/^v/, '');
  return { id, version };
}

export function toImageScanV1(layer: V1.Layer, context: NormaliseV1Context): ImageScan {
  const features = layer.Features ?? [];
  const byKey = new Map<string, Finding>();
  for (const feature of features) {
    const version = feature.Version ?? '';
    const added = feature.AddedBy;
    const digest = added === undefined || added === '' ? undefined : (context.layerDigests?.get(added) ?? added);
    for (const vuln of feature.Vulnerabilities ?? []) {
      const links = vuln.Link && vuln.Link.trim() !== '' ? [vuln.Link.trim()] : [];
      const { id, title } = advisoryId(vuln.Name, links, vuln.Name);
      const finding: Finding = {
        id,
        severity: toSeverityV1(vuln.Severity),
        package: { name: feature.Name, version },
        links,
      };
      if (title !== undefined) finding.title = title;
      if (vuln.Severity !== undefined && vuln.Severity !== '') finding.vendorSeverity = vuln.Severity;
      const fixedIn = toFixedByV1(vuln.FixedBy);
      if (fixedIn !== undefined) finding.fixedIn = fixedIn;
      if (digest !== undefined) finding.layer = digest;
      const description = (vuln.Description ?? '').trim();
      if (description !== '') finding.description = description;
      const key = JSON.stringify([finding.id, feature.Name, version]);
      const seen = byKey.get(key);
      byKey.set(key, seen ? mergeDuplicates(seen, finding) : finding);
    }
  }
  const findings = [...byKey.values()].sort(compareFindings);
  const namespace = layer.NamespaceName ?? features.find((f) => f.NamespaceName)?.NamespaceName;
  const distribution = namespaceToDistribution(namespace);
  const scan: ImageScan = {
    image: context.image,
    engine: { api: 'v1', url: context.url },
    packageCount: features.length,
    findings,
    trust: trustSignals(features.length, distribution, findings.length),
  };
  if (distribution) scan.distribution = distribution;
  return scan;
}

function trustSignals(featureCount: number, distribution: Distribution | undefined, findingCount: number): TrustSignal[] {
  if (featureCount === 0) {
    return [{ kind: 'no-packages', message: 'Clair (v1) indexed no packages in the image, so finding no vulnerabilities says nothing' }];
  }
  if (!distribution && findingCount === 0) {
    return [{ kind: 'unsupported-os', message: 'Clair (v1) detected no operating system namespace for the image; its packages cannot be matched' }];
  }
  return [];
}
