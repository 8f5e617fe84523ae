// A registry over TLS with a certificate from a test CA, trusted as the daemon trusts registries (certs.d), reached
// directly and through a logging HTTPS proxy (CONNECT); Clair (the double, trusting the same CA as a Clair host
// would) fetches the blobs from it. The store is filled by `docker push` to a plain loopback registry and served
// over TLS on this machine's non-loopback address (a certificate for that IP; loopback is never proxied).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startClairDouble, type ClairDouble } from '../double/server.js';
import { TEST_IMAGES } from '../helpers/daemon.js';
import { lanAddress, startLoggingProxy, type LoggingProxy } from '../helpers/http-proxy.js';
import { imageLayerFetches, withDouble } from '../helpers/layer-fetches.js';
import { engineCli, testEngines, type TestEngine } from '../helpers/engines.js';
import { registryAvailable, startPlainRegistryOn, startRegistry, startTlsRegistry, type Registry, type TlsRegistry } from '../helpers/registry.js';
import { scanInProcess } from '../helpers/scan.js';

const lan = lanAddress();
const skip = !registryAvailable() ? 'docker-registry is not installed' : !lan ? 'this machine has no non-loopback IPv4 address' : false;

describe('a registry over TLS, and through a proxy', { skip }, () => {
  let plain: Registry;
  let registry: TlsRegistry;
  let proxy: LoggingProxy;
  let work: string;
  let trusted: string;
  let ref: string;
  before(async () => {
    plain = await startRegistry();
    await plain.push(TEST_IMAGES.multilayer, 'team/app', '1');
    registry = await startTlsRegistry(plain.storage, lan as string);
    ref = `${registry.host}/team/app:1`;
    proxy = await startLoggingProxy();
    work = await mkdtemp(join(tmpdir(), 'dc-registry-tls-'));
    // The rootless daemon's certs.d ($XDG_CONFIG_HOME/docker/certs.d/<host:port>/ca.crt).
    trusted = join(work, 'xdg');
    await mkdir(join(trusted, 'docker', 'certs.d', registry.host), { recursive: true });
    await writeFile(join(trusted, 'docker', 'certs.d', registry.host, 'ca.crt'), registry.ca);
  });
  after(async () => {
    await proxy?.close();
    await registry?.close();
    await plain?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const withClair = async <T>(fn: (clair: ClairDouble) => Promise<T>): Promise<T> => {
    const clair = await startClairDouble({ fetchConcurrency: 1, trustCa: registry.ca });
    try {
      return await fn(clair);
    } finally {
      await clair.close();
    }
  };

  it('its CA in certs.d: the manifest over https, Clair fetching every blob from https://host/v2/…', async () => {
    await withClair(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--format', 'json', '-D', '--image-src', 'remote', ref], { env: { XDG_CONFIG_HOME: trusted } });
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`registry ${registry.host.replace(/\./g, '\\.')}: TLS with .*/docker/certs\\.d/${registry.host.replace(/\./g, '\\.')}/ca\\.crt`));
      const fetches = imageLayerFetches(clair);
      assert.ok(fetches.length >= 3);
      for (const f of fetches) {
        assert.equal(f.status, 200);
        assert.ok(f.uri.startsWith(`https://${registry.host}/v2/team/app/blobs/sha256:`), f.uri);
      }
      assert.equal(proxy.log.length, 0);
    });
  });

  it('without its CA: exit 2, the registry\'s certificate is not trusted, and where to put the CA', async () => {
    await withClair(async (clair) => {
      const run = await scanInProcess(['--clair', clair.url, '--image-src', 'remote', ref], { env: { XDG_CONFIG_HOME: join(work, 'empty') } });
      assert.equal(run.code, 2);
      assert.match(run.error?.message ?? '', new RegExp(`^the registry at ${registry.host.replace(/\./g, '\\.')} presented a certificate that is not trusted here \\(`));
      assert.equal(run.error?.hint, `put its CA certificate in /etc/docker/certs.d/${registry.host}/ca.crt (or ~/.config/docker/certs.d/${registry.host}/ca.crt), as for the daemon`);
      assert.equal(clair.layerFetches.length, 0);
    });
  });

  it('HTTPS_PROXY: the registry is reached through a CONNECT tunnel, verified with its CA; NO_PROXY bypasses it', async () => {
    await withClair(async (clair) => {
      const mark = proxy.log.length;
      const run = await scanInProcess(['--clair', clair.url, '-q', '--image-src', 'remote', ref],
        { env: { XDG_CONFIG_HOME: trusted, HTTPS_PROXY: proxy.url } });
      assert.equal(run.code, 1, run.stderr);
      const seen = proxy.log.slice(mark);
      assert.ok(seen.length > 0, 'the registry went through the proxy');
      assert.deepEqual([...new Set(seen.map((e) => `${e.method} ${e.target}`))], [`CONNECT ${registry.host}`]);
      const bypass = proxy.log.length;
      const direct = await scanInProcess(['--clair', clair.url, '-q', '--image-src', 'remote', ref],
        { env: { XDG_CONFIG_HOME: trusted, HTTPS_PROXY: proxy.url, NO_PROXY: lan as string } });
      assert.equal(direct.code, 1, direct.stderr);
      assert.equal(proxy.log.length, bypass);
    });
  });
});

/** A test engine listing a non-loopback /32 among its insecure registries (scripts/engines.sh: classic26), and that address. */
function insecureEngine(): { engine: TestEngine; address: string } | undefined {
  for (const engine of testEngines()) {
    const cidrs = JSON.parse(engineCli(engine, ['info', '--format', '{{json .RegistryConfig.InsecureRegistryCIDRs}}'])) as string[] | null;
    const address = (cidrs ?? []).find((c) => c.endsWith('/32') && !c.startsWith('127.'))?.slice(0, -3);
    if (address) return { engine, address };
  }
  return undefined;
}

describe("a registry the daemon lists as insecure (plain http, not loopback)", { skip: !registryAvailable() && 'docker-registry is not installed' }, () => {
  it('a daemon listing it: https is tried without verification, then plain http, as the daemon does; one not listing it: exit 2 saying so', async (t) => {
    const found = insecureEngine();
    if (!found) {
      t.skip('no test engine lists a non-loopback insecure registry (scripts/engines.sh gives classic26 this machine\'s address)');
      return;
    }
    const plain = await startRegistry();
    try {
      await plain.push(TEST_IMAGES.multilayer, 'team/app', '1');
      const registry = await startPlainRegistryOn(plain.storage, found.address);
      try {
        const ref = `${registry.host}/team/app:1`;
        await withDouble(async (clair) => {
          const run = await scanInProcess(['--clair', clair.url, '-q', '-D', ref], { env: { DOCKER_HOST: found.engine.host } });
          assert.equal(run.code, 1, run.stderr);
          assert.match(run.stderr, new RegExp(`registry ${registry.host.replace(/\./g, '\\.')}: https failed \\([^)]+\\); trying http`));
          assert.ok(imageLayerFetches(clair).length > 0);
          assert.ok(imageLayerFetches(clair).every((f) => f.uri.startsWith(`http://${registry.host}/`)));
        });
        await withDouble(async (clair) => {
          const run = await scanInProcess(['--clair', clair.url, '-q', ref]); // the system daemon does not list it
          assert.equal(run.code, 2);
          assert.match(run.error?.message ?? '', new RegExp(`nor in its registry: the registry at ${registry.host.replace(/\./g, '\\.')} does not answer https \\(`));
          assert.match(run.error?.hint ?? '', /pull or build it first/);
          assert.equal(clair.layerFetches.length, 0);
        });
      } finally {
        await registry.close();
      }
    } finally {
      await plain.close();
    }
  });
});
