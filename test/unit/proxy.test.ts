// HTTP(S)_PROXY and NO_PROXY as the docker CLI reads them (Go's httpproxy): which requests go through which proxy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/runtime/errors.js';
import { proxyFor, proxySettings } from '../../src/runtime/proxy.js';

const via = (url: string, env: Record<string, string>) => proxyFor(new URL(url), proxySettings(env))?.href;

describe('proxySettings and proxyFor', () => {
  const env = { HTTP_PROXY: 'http://plain:3128', HTTPS_PROXY: 'secure:3129' };

  it('https URLs use HTTPS_PROXY, http URLs HTTP_PROXY; a proxy without a scheme is http://', () => {
    assert.equal(via('https://registry.example.com/v2/', env), 'http://secure:3129/');
    assert.equal(via('http://clair.example.com:6060/', env), 'http://plain:3128/');
    assert.equal(via('https://registry.example.com/', { HTTP_PROXY: 'http://plain:3128' }), undefined, 'no HTTPS_PROXY: https goes direct');
  });

  it('either case, upper case first', () => {
    assert.equal(via('http://a.example.com/', { http_proxy: 'http://lower:1' }), 'http://lower:1/');
    assert.equal(via('http://a.example.com/', { HTTP_PROXY: 'http://upper:1', http_proxy: 'http://lower:1' }), 'http://upper:1/');
    assert.equal(via('http://a.example.com/', { HTTP_PROXY: 'http://p:1', no_proxy: 'a.example.com' }), undefined);
  });

  it('loopback and localhost never go through a proxy', () => {
    for (const url of ['http://127.0.0.1:6060/', 'http://127.9.9.9/', 'http://localhost:5000/', 'http://[::1]:80/']) {
      assert.equal(via(url, env), undefined, url);
    }
  });

  it('NO_PROXY: names with their subdomains, leading dots, ports, IPs, CIDR ranges, *', () => {
    const np = (noProxy: string, url: string) => via(url, { ...env, NO_PROXY: noProxy });
    assert.equal(np('example.com', 'https://example.com/'), undefined);
    assert.equal(np('example.com', 'https://registry.example.com/'), undefined);
    assert.equal(np('example.com', 'https://notexample.com/'), 'http://secure:3129/');
    assert.equal(np('.example.com', 'https://example.com/'), 'http://secure:3129/', 'a leading dot: subdomains only');
    assert.equal(np('.example.com', 'https://a.example.com/'), undefined);
    assert.equal(np('*.example.com', 'https://a.example.com/'), undefined);
    assert.equal(np('example.com:8443', 'https://example.com:8443/'), undefined);
    assert.equal(np('example.com:8443', 'https://example.com/'), 'http://secure:3129/', 'another port');
    assert.equal(np('10.1.2.3', 'http://10.1.2.3:6060/'), undefined);
    assert.equal(np('10.0.0.0/8', 'http://10.200.0.1/'), undefined);
    assert.equal(np('10.0.0.0/8', 'http://11.0.0.1/'), 'http://plain:3128/');
    assert.equal(np('fd00::/8', 'http://[fd12::1]:80/'), undefined);
    assert.equal(np('fd00::/8', 'http://[fe80::1]:80/'), 'http://plain:3128/');
    assert.equal(np('a.test, b.test ,c.test', 'https://b.test/'), undefined);
    assert.equal(np('*', 'https://anything.example/'), undefined);
  });

  it('a proxy variable that is no URL is a usage error naming it, without its password', () => {
    assert.throws(() => proxySettings({ HTTPS_PROXY: 'ftp://user:secret@p:21' }), (e: unknown) =>
      e instanceof UsageError && e.message === 'HTTPS_PROXY is not a proxy URL: ftp://user:***@p:21');
  });
});
