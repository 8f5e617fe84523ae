// HTTP(S)_PROXY/NO_PROXY for the requests to Clair: through a real forward proxy that logs what passes. Loopback is
// never proxied (as in the docker CLI), so Clair (the double) listens on this machine's non-loopback address.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startClairDouble, type ClairDouble } from '../double/server.js';
import { TEST_IMAGES } from '../helpers/daemon.js';
import { lanAddress, startLoggingProxy, type LoggingProxy } from '../helpers/http-proxy.js';
import { imageLayerFetches } from '../helpers/layer-fetches.js';
import { scanInProcess } from '../helpers/scan.js';

const lan = lanAddress();

describe('proxies for Clair', { skip: !lan && 'this machine has no non-loopback IPv4 address' }, () => {
  let clair: ClairDouble;
  let proxy: LoggingProxy;
  let url = '';
  before(async () => {
    clair = await startClairDouble({ host: '0.0.0.0' });
    url = `http://${lan}:${new URL(clair.url).port}`;
    proxy = await startLoggingProxy();
  });
  after(async () => {
    await proxy?.close();
    await clair?.close();
  });

  it('HTTP_PROXY: every request to Clair goes through the proxy; Clair still fetches the layers from the layer server directly', async () => {
    const mark = proxy.log.length;
    const run = await scanInProcess(['--clair', url, '-q', TEST_IMAGES.debian12], { env: { HTTP_PROXY: proxy.url } });
    assert.equal(run.code, 1, run.stderr);
    const seen = proxy.log.slice(mark);
    const paths = seen.map((e) => `${e.method} ${new URL(e.target).pathname}`);
    assert.ok(paths.some((p) => p.startsWith('GET /indexer/api/v1/index_report/')), paths.join('\n'));
    assert.ok(paths.includes('POST /indexer/api/v1/index_report'), paths.join('\n'));
    assert.ok(paths.some((p) => p.startsWith('GET /matcher/api/v1/vulnerability_report/')), paths.join('\n'));
    assert.ok(seen.every((e) => new URL(e.target).host === new URL(url).host), 'nothing but Clair went through it');
    assert.ok(imageLayerFetches(clair).length > 0, 'the layers were fetched');
  });

  it('lower-case http_proxy works too; NO_PROXY with Clair\'s address (or a CIDR holding it) bypasses the proxy', async () => {
    let mark = proxy.log.length;
    const lower = await scanInProcess(['--clair', url, '-q', TEST_IMAGES.debian12], { env: { http_proxy: proxy.url } });
    assert.equal(lower.code, 1, lower.stderr);
    assert.ok(proxy.log.length > mark);
    for (const noProxy of [lan as string, `${lan}/32`, 'other.example, ' + lan]) {
      mark = proxy.log.length;
      const run = await scanInProcess(['--clair', url, '-q', TEST_IMAGES.debian12], { env: { HTTP_PROXY: proxy.url, NO_PROXY: noProxy } });
      assert.equal(run.code, 1, run.stderr);
      assert.equal(proxy.log.length, mark, `NO_PROXY=${noProxy}: nothing through the proxy`);
    }
  });

  it('Clair on loopback is never proxied', async () => {
    const mark = proxy.log.length;
    const run = await scanInProcess(['--clair', clair.url.replace('0.0.0.0', '127.0.0.1'), '-q', TEST_IMAGES.debian12], { env: { HTTP_PROXY: proxy.url } });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(proxy.log.length, mark);
  });

  it('a proxy that cannot be reached: exit 2 naming Clair\'s address', async () => {
    const dead = await startLoggingProxy();
    const deadUrl = dead.url;
    await dead.close();
    const run = await scanInProcess(['--clair', url, '-q', TEST_IMAGES.debian12], { env: { HTTP_PROXY: deadUrl } });
    assert.equal(run.code, 2);
    assert.match(run.error?.message ?? '', new RegExp(`cannot reach Clair at ${url.replace(/\./g, '\\.')}`));
  });
});
