import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { namespaceToDistribution, toFixedByV1, toImageScanV1, toSeverityV1 } from '../../src/clair/v1/normalise.js';
import { parseErrorBody, parseLayerEnvelope, parseNamespaces, parseVulnerabilityPage } from '../../src/clair/v1/parse.js';
import type * as V1 from '../../src/clair/v1/wire.js';
import { v1LayerNames } from '../../src/clair/v1/layer-names.js';
import { ClairProtocolError } from '../../src/runtime/errors.js';

// Recorded Clair responses from public repositories; provenance in test/fixtures/clair/README.md.
const FIXTURES = fileURLToPath(new URL('../fixtures/clair/', import.meta.url));
const ENDPOINT = 'GET /v1/layers/x';
const raw = (file: string): unknown => JSON.parse(readFileSync(FIXTURES + file, 'utf8'));
const image = { ref: 'app:1', id: 'sha256:abc' };

describe('Clair v1 parse guards', () => {
  it('parses the recorded Portus (Debian 8) and Harbor (Alpine 3.4) layer bodies', () => {
    const portus = parseLayerEnvelope(raw('v1-layer-portus-node8-debian8.json'), ENDPOINT);
    assert.equal(portus.NamespaceName, 'debian:8');
    assert.equal(portus.IndexedByVersion, 3);
    assert.equal(portus.Features?.length, 190);
    assert.equal(portus.Features?.reduce((n, f) => n + (f.Vulnerabilities?.length ?? 0), 0), 653);
    const harbor = parseLayerEnvelope(raw('v1-layer-harbor-alpine3.4.json'), ENDPOINT);
    assert.equal(harbor.Features?.length, 12);
  });

  it('parses the namespace listing and a vulnerability page', () => {
    const namespaces = parseNamespaces(raw('v1-namespaces-harbor.json'), 'GET /v1/namespaces');
    assert.ok(namespaces.some((n) => n.Name === 'debian:8' && n.VersionFormat === 'dpkg'));
    const page = parseVulnerabilityPage({ Vulnerabilities: [{ Name: 'CVE-1', Severity: 'Low' }], NextPage: 'x' }, 'GET …');
    assert.equal(page.Vulnerabilities[0]?.Name, 'CVE-1');
    assert.equal(page.NextPage, 'x');
    assert.deepEqual(parseVulnerabilityPage({}, 'GET …').Vulnerabilities, []);
  });

  it('rejects wrong shapes with ClairProtocolError naming the member', () => {
    assert.throws(() => parseLayerEnvelope({}, ENDPOINT), ClairProtocolError);
    assert.throws(() => parseLayerEnvelope({ Layer: { Name: 'x', Features: {} } }, ENDPOINT), /Layer\.Features is not an array/);
    assert.throws(() => parseLayerEnvelope({ Layer: { Name: 'x', Features: [{ Name: 1 }] } }, ENDPOINT), /Features\[0\]\.Name/);
  });

  it('reads {"Error":{"Message"}} bodies and never throws on others', () => {
    assert.deepEqual(parseErrorBody('{"Error":{"Message":"could not find layer"}}\n'), { Message: 'could not find layer' });
    assert.equal(parseErrorBody('not json'), undefined);
    assert.equal(parseErrorBody(''), undefined);
    assert.equal(parseErrorBody({ code: 'x' }), undefined);
  });
});

describe('Clair v1 → findings model', () => {
  it('severities: the six names in any case, Defcon1 → Critical, anything else Unknown', () => {
    assert.equal(toSeverityV1('Defcon1'), 'Critical');
    assert.equal(toSeverityV1('defcon1'), 'Critical');
    assert.equal(toSeverityV1('High'), 'High');
    assert.equal(toSeverityV1('negligible'), 'Negligible');
    assert.equal(toSeverityV1('Important'), 'Unknown');
    assert.equal(toSeverityV1(undefined), 'Unknown');
  });

  it('FixedBy: omitted, empty and "None" mean no fix', () => {
    assert.equal(toFixedByV1(undefined), undefined);
    assert.equal(toFixedByV1(''), undefined);
    assert.equal(toFixedByV1('None'), undefined);
    assert.equal(toFixedByV1('1.0.1t-1+deb8u7'), '1.0.1t-1+deb8u7');
  });

  it('namespaces become distributions', () => {
    assert.deepEqual(namespaceToDistribution('debian:8'), { id: 'debian', version: '8' });
    assert.deepEqual(namespaceToDistribution('alpine:v3.4'), { id: 'alpine', version: '3.4' });
    assert.deepEqual(namespaceToDistribution('ubuntu:16.04'), { id: 'ubuntu', version: '16.04' });
    assert.equal(namespaceToDistribution(''), undefined);
  });

  it('the Portus recording: one finding per (feature, vulnerability), counts and severities preserved', () => {
    const layer = parseLayerEnvelope(raw('v1-layer-portus-node8-debian8.json'), ENDPOINT);
    const scan = toImageScanV1(layer, { image, url: 'http://clair:6060' });
    assert.equal(scan.engine.api, 'v1');
    assert.equal(scan.packageCount, 190);
    assert.equal(scan.findings.length, 653);
    const count = (s: string) => scan.findings.filter((f) => f.severity === s).length;
    assert.deepEqual([count('High'), count('Medium'), count('Low'), count('Negligible'), count('Unknown')], [91, 229, 119, 188, 26]);
    assert.equal(scan.findings.filter((f) => f.fixedIn !== undefined).length, 37);
    assert.deepEqual(scan.distribution, { id: 'debian', version: '8' });
    assert.deepEqual(scan.trust, []);
    // Sorted: severity descending first.
    assert.equal(scan.findings[0]?.severity, 'High');
    assert.equal(scan.findings.at(-1)?.severity, 'Unknown');
  });

  it('the Harbor recording: AddedBy mapped to the digest served, Link kept, fix versions kept', () => {
    const layer = parseLayerEnvelope(raw('v1-layer-harbor-alpine3.4.json'), ENDPOINT);
    const added = '63e57014ab640f34a397c174f7cd085729aec27eca7715832786412ac7ffbd71';
    const scan = toImageScanV1(layer, { image, url: 'http://clair:6060', layerDigests: new Map([[added, 'sha256:base']]) });
    assert.equal(scan.findings.length, 6);
    const musl = scan.findings.find((f) => f.id === 'CVE-2016-8859');
    assert.deepEqual(musl?.package, { name: 'musl', version: '1.1.14-r11' });
    assert.equal(musl?.fixedIn, '1.1.14-r13');
    assert.equal(musl?.layer, 'sha256:base');
    assert.deepEqual(musl?.links, ['https://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2016-8859']);
    assert.equal(musl?.vendorSeverity, 'High');
    assert.deepEqual(scan.distribution, { id: 'alpine', version: '3.4' });
  });

  it('Defcon1, duplicates merged, unknown AddedBy kept verbatim', () => {
    const layer: V1.Layer = {
      Name: 'top', NamespaceName: 'debian:12',
      Features: [{
        Name: 'perl', Version: '5.36.0-7', AddedBy: 'other',
        Vulnerabilities: [
          { Name: 'CVE-2099-0005', Severity: 'Defcon1', FixedBy: '5.36.0-8' },
          { Name: 'CVE-2099-0005', Severity: 'Low', Link: 'https://x' },
        ],
      }],
    };
    const scan = toImageScanV1(layer, { image, url: 'u' });
    assert.equal(scan.findings.length, 1);
    assert.equal(scan.findings[0]?.severity, 'Critical');
    assert.equal(scan.findings[0]?.vendorSeverity, 'Defcon1');
    assert.equal(scan.findings[0]?.fixedIn, '5.36.0-8');
    assert.deepEqual(scan.findings[0]?.links, ['https://x']);
    assert.equal(scan.findings[0]?.layer, 'other');
  });

  it('trust: no features → no-packages; features without a namespace and no match → unsupported-os', () => {
    assert.equal(toImageScanV1({ Name: 'x' }, { image, url: 'u' }).trust[0]?.kind, 'no-packages');
    const noNs = toImageScanV1({ Name: 'x', Features: [{ Name: 'a', Version: '1' }] }, { image, url: 'u' });
    assert.equal(noNs.trust[0]?.kind, 'unsupported-os');
  });

  it('layer Names: the chain ID hex, so a layer under different parents is a different Clair layer', () => {
    const a = `sha256:${'a'.repeat(64)}`;
    const b = `sha256:${'b'.repeat(64)}`;
    const [base, onA] = v1LayerNames([a, b]);
    const [, onB] = v1LayerNames([b, b]);
    assert.equal(base, 'a'.repeat(64));
    assert.match(onA ?? '', /^[0-9a-f]{64}$/);
    assert.notEqual(onA, onB);
    assert.notEqual(onA, 'b'.repeat(64));
  });
});

describe('--clair-api and --v1-buffer parsing', () => {
  it('sizes: bytes, binary k/m/g and KiB/MiB/GiB, decimal KB/MB/GB; anything else is a usage error', async () => {
    const { parseSize, parseClairApi } = await import('../../src/cli/options/scan-options.js');
    assert.equal(parseSize('1', '--v1-buffer'), 1);
    assert.equal(parseSize('256MiB', '--v1-buffer'), 256 * 1024 * 1024);
    assert.equal(parseSize('64m', '--v1-buffer'), 64 * 1024 * 1024);
    assert.equal(parseSize('1.5G', '--v1-buffer'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('512MB', '--v1-buffer'), 512e6);
    assert.throws(() => parseSize('lots', '--v1-buffer'), /invalid --v1-buffer "lots"/);
    assert.throws(() => parseSize('-1', '--v1-buffer'), /invalid --v1-buffer/);
    assert.equal(parseClairApi('V1'), 'v1');
    assert.equal(parseClairApi('auto'), 'auto');
    assert.throws(() => parseClairApi('v3'), /invalid --clair-api "v3"/);
  });
});
