import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseApkInstalled } from './apk.js';
import { dpkgFeaturesV1, isInstalled, parseDpkgStatus, parseSourceField } from './dpkg.js';
import { goQuote } from './go-quote.js';
import { checkContentType } from './layer-fetch.js';
import { sniffCompression } from './layer-unpack.js';
import { parseOsRelease, toDistribution, toV1Namespace } from './os-release.js';
import { dpkgStanza } from './test-support.js';

const STATUS = [
  dpkgStanza({ name: 'bash', version: '5.2.15-2+b13', source: 'bash (5.2.15-2)' }),
  dpkgStanza({ name: 'libc6', version: '2.36-9+deb12u14', source: 'glibc', arch: 'amd64' }),
  dpkgStanza({ name: 'libc-bin', version: '2.36-9+deb12u14', source: 'glibc' }),
  dpkgStanza({ name: 'tar', version: '1.34+dfsg-1.2+deb12u1' }),
  dpkgStanza({ name: 'oldpkg', version: '1.0-1', status: 'deinstall ok config-files' }),
  dpkgStanza({ name: 'half', version: '2.0-1', status: 'install reinstreq half-installed' }),
].join('\n');

test('dpkg status: fields, continuation lines, Source forms', () => {
  const recs = parseDpkgStatus(STATUS);
  assert.deepEqual(recs.map((r) => r.name), ['bash', 'libc6', 'libc-bin', 'tar', 'oldpkg', 'half']);
  assert.equal(recs[0]?.sourceField, 'bash (5.2.15-2)');
  assert.equal(recs[3]?.sourceField, '');
  assert.deepEqual(recs.map(isInstalled), [true, true, true, true, false, false]);
  assert.deepEqual(parseSourceField('gcc-12 (12.2.0-14+deb12u1)'), { name: 'gcc-12', version: '12.2.0-14+deb12u1' });
  assert.deepEqual(parseSourceField('glibc'), { name: 'glibc' });
  assert.equal(parseSourceField(''), undefined);
});

test('dpkg status without a trailing blank line and with CRLF still parses', () => {
  const recs = parseDpkgStatus('Package: a\r\nStatus: install ok installed\r\nVersion: 1\r\n\r\nPackage: b\nVersion: 2');
  assert.deepEqual(recs.map((r) => [r.name, r.version]), [['a', '1'], ['b', '2']]);
});

test('v1 features are source-named, take the Source version, dedupe on name#version, ignore Status', () => {
  const f = dpkgFeaturesV1(parseDpkgStatus(STATUS));
  assert.deepEqual(f, [
    { name: 'bash', version: '5.2.15-2' },
    { name: 'glibc', version: '2.36-9+deb12u14' },
    { name: 'tar', version: '1.34+dfsg-1.2+deb12u1' },
    { name: 'oldpkg', version: '1.0-1' },
    { name: 'half', version: '2.0-1' },
  ]);
});

test('apk installed database', () => {
  const recs = parseApkInstalled('C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nP:busybox-binsh\nV:1.36.1-r15\no:busybox\n');
  assert.deepEqual(recs, [
    { name: 'musl', version: '1.2.4-r2', architecture: 'x86_64', origin: 'musl' },
    { name: 'busybox-binsh', version: '1.36.1-r15', architecture: '', origin: 'busybox' },
  ]);
});

test('os-release quoting and the distributions derived from it', () => {
  const os = parseOsRelease('# c\nNAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n' +
    "VERSION_CODENAME=bookworm\nPRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\nX=\"a \\\"q\\\" b\"\n");
  assert.equal(os.get('X'), 'a "q" b');
  assert.deepEqual(toDistribution(os), {
    did: 'debian', name: 'Debian GNU/Linux', version: '12 (bookworm)', version_code_name: 'bookworm',
    version_id: '12', arch: '', cpe: '', pretty_name: 'Debian GNU/Linux 12 (bookworm)',
  });
  assert.equal(toV1Namespace(os), 'debian:12');
  assert.equal(toV1Namespace(parseOsRelease('ID=alpine\nVERSION_ID=3.19.1\n')), 'alpine:v3.19');
  assert.equal(toDistribution(parseOsRelease('NAME=x\n')), undefined);
});

test('compression sniffing uses the magic numbers only', () => {
  assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 0x08, 0])), 'KindGzip');
  assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 0x09, 0])), 'KindNone');
  assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'KindZstd');
  assert.equal(sniffCompression(Buffer.from('BZh9')), 'KindBzip2');
  assert.equal(sniffCompression(Buffer.from('BZh0')), 'KindNone');
  assert.equal(sniffCompression(Buffer.from('')), 'KindNone');
});

test('Content-Type rule: generic types take the sniffed kind, specific ones must agree', () => {
  for (const ct of ['application/octet-stream', 'binary/octet-stream', 'text/plain', 'Application/Octet-Stream; x=1']) {
    checkContentType(ct, 'KindGzip');
    checkContentType(ct, 'KindNone');
    checkContentType(ct, 'KindZstd');
  }
  checkContentType('application/vnd.docker.image.rootfs.diff.tar.gzip', 'KindGzip');
  checkContentType('application/vnd.oci.image.layer.v1.tar+gzip', 'KindGzip');
  checkContentType('application/x-gzip', 'KindGzip');
  checkContentType('application/vnd.oci.image.layer.v1.tar+zstd', 'KindZstd');
  checkContentType('application/vnd.oci.image.layer.v1.tar', 'KindNone');
  checkContentType('application/x-tar', 'KindNone');
  assert.throws(() => checkContentType('application/x-tar', 'KindGzip'),
    { message: 'fetcher: mismatched compression ("KindGzip") and content-type ("application/x-tar")' });
  assert.throws(() => checkContentType('application/gzip', 'KindNone'), /mismatched compression \("KindNone"\)/);
  assert.throws(() => checkContentType('application/x-gtar', 'KindGzip'), { message: 'fetcher: unknown content-type "application/x-gtar"' });
  assert.throws(() => checkContentType('application/octet-stream', 'KindBzip2'), /disallowed compression kind: "KindBzip2"/);
  assert.throws(() => checkContentType(undefined, 'KindNone'), { message: 'fetcher: mime: no media type' });
});

test('Go %q quoting of a body prefix', () => {
  assert.equal(goQuote(Buffer.from('no such blob\n')), '"no such blob\\n"');
  assert.equal(goQuote(Buffer.from('a"b\\c\t\x00\x7f')), '"a\\"b\\\\c\\t\\x00\\x7f"');
  assert.equal(goQuote(Buffer.from('café')), '"café"');
  assert.equal(goQuote(Buffer.from([0xff, 0x41])), '"\\xffA"');
  assert.equal(goQuote(Buffer.from('\u200b')), '"\\u200b"');
});
