// Image references read as the docker CLI reads them, registry challenges, and choosing a platform's manifest.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChallenge } from '../../src/registry/challenge.js';
import { insecureRegistriesOf, isInsecureRegistry } from '../../src/registry/insecure.js';
import { choosePlatform, parseManifest, parsePlatform, MEDIA } from '../../src/registry/manifest.js';
import { familiarName, isLoopbackHost, parseRemoteReference } from '../../src/registry/reference.js';
import { RegistryError, UsageError } from '../../src/runtime/errors.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('parseRemoteReference', () => {
  const cases: [string, { registry: string; host: string; repository: string; tag?: string; digest?: string }][] = [
    ['debian', { registry: 'registry-1.docker.io', host: 'docker.io', repository: 'library/debian', tag: 'latest' }],
    ['debian:12', { registry: 'registry-1.docker.io', host: 'docker.io', repository: 'library/debian', tag: '12' }],
    ['team/app:1', { registry: 'registry-1.docker.io', host: 'docker.io', repository: 'team/app', tag: '1' }],
    ['docker.io/debian', { registry: 'registry-1.docker.io', host: 'docker.io', repository: 'library/debian', tag: 'latest' }],
    ['index.docker.io/team/app', { registry: 'registry-1.docker.io', host: 'docker.io', repository: 'team/app', tag: 'latest' }],
    ['127.0.0.1:5000/app:1', { registry: '127.0.0.1:5000', host: '127.0.0.1:5000', repository: 'app', tag: '1' }],
    ['localhost/a/b/c', { registry: 'localhost', host: 'localhost', repository: 'a/b/c', tag: 'latest' }],
    ['ghcr.io/org/app@' + DIGEST, { registry: 'ghcr.io', host: 'ghcr.io', repository: 'org/app', digest: DIGEST }],
    ['ghcr.io/org/app:1.2@' + DIGEST, { registry: 'ghcr.io', host: 'ghcr.io', repository: 'org/app', tag: '1.2', digest: DIGEST }],
    ['[::1]:5000/app', { registry: '[::1]:5000', host: '[::1]:5000', repository: 'app', tag: 'latest' }],
  ];
  for (const [given, want] of cases) {
    it(given, () => {
      const { given: g, ...parsed } = parseRemoteReference(given);
      assert.equal(g, given);
      assert.deepEqual(parsed, want);
    });
  }

  it('rejects what docker rejects, naming the reference', () => {
    for (const bad of ['App:1', 'app:', 'a//b', 'app@sha256:short', '', 'host:5000/']) {
      assert.throws(() => parseRemoteReference(bad), (e: unknown) => e instanceof UsageError && e.message.includes(`"${bad}"`), bad);
    }
  });

  it('familiar names and loopback hosts', () => {
    assert.equal(familiarName(parseRemoteReference('debian')), 'debian');
    assert.equal(familiarName(parseRemoteReference('team/app')), 'team/app');
    assert.equal(familiarName(parseRemoteReference('127.0.0.1:5000/app')), '127.0.0.1:5000/app');
    for (const host of ['127.0.0.1:5000', '127.1.2.3', 'localhost:80', '[::1]:5000']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['registry.example.com', '10.0.0.1:5000', '128.0.0.1', 'localhost.example.com']) assert.equal(isLoopbackHost(host), false, host);
  });
});

describe('parseChallenge', () => {
  it('a Bearer challenge with quoted parameters (escapes, commas inside quotes)', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example.com/token",service="reg, \\"x\\"",scope="repository:a/b:pull"'), {
      scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'reg, "x"', scope: 'repository:a/b:pull' },
    });
  });
  it('Basic, case-insensitive schemes and names, the first usable challenge of several', () => {
    assert.deepEqual(parseChallenge('basic Realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
    assert.deepEqual(parseChallenge(['Negotiate abc', 'Digest realm="x", BEARER realm=r']), { scheme: 'bearer', params: { realm: 'r' } });
    assert.equal(parseChallenge(undefined), undefined);
    assert.equal(parseChallenge('Negotiate'), undefined);
  });
});

describe('manifests and platforms', () => {
  const index = {
    schemaVersion: 2,
    manifests: [
      { digest: 'sha256:a', platform: { os: 'linux', architecture: 'amd64' } },
      { digest: 'sha256:b', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { digest: 'sha256:c', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      { digest: 'sha256:d', platform: { os: 'unknown', architecture: 'unknown' } },
    ],
  };
  it('chooses by os and architecture, and by variant when one is asked (arm64 means v8)', () => {
    assert.equal(choosePlatform(index, parsePlatform('linux/amd64'), 'x').digest, 'sha256:a');
    assert.equal(choosePlatform(index, parsePlatform('linux/arm64'), 'x').digest, 'sha256:b');
    assert.equal(choosePlatform(index, parsePlatform('linux/arm64/v8'), 'x').digest, 'sha256:b');
    assert.equal(choosePlatform(index, parsePlatform('linux/arm/v7'), 'x').digest, 'sha256:c');
    assert.equal(choosePlatform(index, parsePlatform('linux/x86_64'), 'x').digest, 'sha256:a');
  });
  it('no fit: the error lists what the index has, never the attestation', () => {
    assert.throws(() => choosePlatform(index, parsePlatform('linux/s390x'), 'app:1'), (e: unknown) =>
      e instanceof RegistryError && e.message === 'app:1 has no manifest for linux/s390x (it has: linux/amd64, linux/arm64/v8, linux/arm/v7)');
    assert.throws(() => choosePlatform(index, parsePlatform('linux/arm/v6'), 'app:1'), RegistryError);
  });
  it('tells an index from an image manifest by media type, and refuses schema 1', () => {
    const body = (o: unknown) => Buffer.from(JSON.stringify(o));
    assert.equal(parseManifest(body(index), MEDIA.ociIndex, 'x').kind, 'index');
    assert.equal(parseManifest(body(index), `${MEDIA.dockerList}; charset=utf-8`, 'x').kind, 'index');
    const image = { schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: { digest: 'sha256:c' }, layers: [] };
    assert.equal(parseManifest(body(image), undefined, 'x').kind, 'image');
    assert.equal(parseManifest(body({ ...image, mediaType: MEDIA.ociManifest }), MEDIA.ociManifest, 'x').kind, 'image', 'OCI is not schema 1');
    assert.throws(() => parseManifest(body({ schemaVersion: 1 }), 'application/vnd.docker.distribution.manifest.v1+json', 'x'), /schema 1/);
    assert.throws(() => parseManifest(body({ schemaVersion: 1, fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'x'), /schema 1/);
    assert.throws(() => parseManifest(Buffer.from('<html>'), 'text/html', 'x'), /not JSON/);
  });
});

describe("the daemon's insecure registries", () => {
  // The shape `GET /info` answers with (RegistryConfig), the daemon's defaults plus one named registry.
  const info = {
    InsecureRegistryCIDRs: ['127.0.0.0/8', '10.20.0.0/16', '::1/128'],
    IndexConfigs: {
      'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true },
      'registry.internal:5000': { Name: 'registry.internal:5000', Mirrors: [], Secure: false, Official: false },
    },
  };
  const insecure = insecureRegistriesOf(info);

  it('reads the CIDRs and the registries marked not secure', () => {
    assert.deepEqual(insecure, { cidrs: ['127.0.0.0/8', '10.20.0.0/16', '::1/128'], hosts: ['registry.internal:5000'] });
    assert.deepEqual(insecureRegistriesOf(undefined), { cidrs: [], hosts: [] });
  });

  it('a registry is insecure by name (with its port), or by an address in a CIDR (names resolved)', async () => {
    assert.equal(await isInsecureRegistry('registry.internal:5000', insecure), true);
    assert.equal(await isInsecureRegistry('registry.internal:5001', insecure), false);
    assert.equal(await isInsecureRegistry('127.0.0.1:5000', insecure), true);
    assert.equal(await isInsecureRegistry('10.20.3.4', insecure), true);
    assert.equal(await isInsecureRegistry('10.21.3.4:443', insecure), false);
    assert.equal(await isInsecureRegistry('[::1]:5000', insecure), true);
    assert.equal(await isInsecureRegistry('localhost:5000', insecure), true, 'localhost resolves into 127.0.0.0/8 or ::1');
    assert.equal(await isInsecureRegistry('no-such-host.invalid:5000', insecure), false);
    assert.equal(await isInsecureRegistry('127.0.0.1:5000', { cidrs: [], hosts: [] }), false);
  });
});
