// A layer reduced to what Clair v1 reads: a valid tar of just the matching entries, headers intact.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { clairV1Reads } from '../../src/clair/v1/clair-files.js';
import { NotATarError, reduceLayer } from '../../src/clair/v1/reduce-layer.js';

type Entry = Partial<tar.Header> & { name: string; body?: string };

async function pack(entries: Entry[]): Promise<Buffer> {
  const p = tar.pack();
  for (const { body, ...header } of entries) p.entry(header, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function list(bytes: Buffer): Promise<{ name: string; type: string; linkname: string | null; body: string }[]> {
  const out: { name: string; type: string; linkname: string | null; body: string }[] = [];
  const x = tar.extract();
  const done = (async () => {
    for await (const entry of x) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.push({ name: entry.header.name, type: entry.header.type ?? 'file', linkname: entry.header.linkname ?? null, body: Buffer.concat(chunks).toString() });
    }
  })();
  x.end(bytes);
  await done;
  return out;
}

/** Feeds `bytes` in small, odd-sized chunks, as a stream would. */
const chunked = (bytes: Buffer, size = 777) => Readable.from((function* () {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
})());

const longDir = `var/lib/pacman/local/${'x'.repeat(120)}`;
const layer: Entry[] = [
  { name: './etc/', type: 'directory' },
  { name: './etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
  { name: './usr/lib/os-release', body: 'ID=debian\nVERSION_ID="12"\n' },
  { name: './usr/bin/big', body: 'z'.repeat(300_000) },
  { name: 'var/lib/dpkg/status', body: 'Package: bash\nStatus: install ok installed\nVersion: 5.2\n' },
  { name: 'var/lib/dpkg/status-old', body: 'old' },
  { name: 'var/lib/dpkg/.wh.available', body: '' },
  { name: `${longDir}/desc`, body: 'pacman' },
  { name: 'etc/apt/sources.list', body: 'deb http://deb.debian.org/debian bookworm main' },
  { name: 'etc/hostname', body: 'h' },
];
const kept = ['./etc/os-release', './usr/lib/os-release', 'var/lib/dpkg/status', 'var/lib/dpkg/status-old', `${longDir}/desc`, 'etc/apt/sources.list'];

describe('Clair v1 file list', () => {
  it('matches at the start of the name after one "./", as Clair does; whiteouts never match', () => {
    for (const name of kept) assert.ok(clairV1Reads(name), name);
    for (const name of ['etc/hostname', 'usr/bin/big', 'var/lib/dpkg/.wh.status', '/etc/os-release', 'x/etc/os-release', 'etc/']) {
      assert.ok(!clairV1Reads(name), name);
    }
    assert.ok(clairV1Reads('etc/centos-release') && clairV1Reads('etc/alpine-release') && clairV1Reads('lib/apk/db/installed'));
  });
});

describe('reduceLayer', () => {
  it('keeps exactly the matching entries (symlinks, long names), headers and bodies intact, as a valid tar', async () => {
    const whole = await pack(layer);
    const reduced = await reduceLayer(chunked(whole), 'none', clairV1Reads);
    assert.ok(reduced.length < 8192, `${reduced.length} bytes`);
    const entries = await list(reduced);
    assert.deepEqual(entries.map((e) => e.name), kept);
    const byName = new Map((await list(whole)).map((e) => [e.name, e]));
    for (const e of entries) assert.deepEqual(e, byName.get(e.name));
  });

  it('reads gzip layers; a layer with nothing Clair reads is an empty tar', async () => {
    const whole = await pack(layer);
    assert.deepEqual(await reduceLayer(chunked(gzipSync(whole)), 'gzip', clairV1Reads), await reduceLayer(chunked(whole), 'none', clairV1Reads));
    const none = await reduceLayer(chunked(await pack([{ name: 'app/main.js', body: 'x' }])), 'none', clairV1Reads);
    assert.deepEqual(none, Buffer.alloc(1024));
    assert.deepEqual(await list(none), []);
  });

  it('bytes that are not a tar are NotATarError', async () => {
    await assert.rejects(reduceLayer(chunked(Buffer.from('not a tar at all'.repeat(64))), 'none', clairV1Reads), NotATarError);
    const whole = await pack(layer);
    await assert.rejects(reduceLayer(chunked(whole.subarray(0, 700)), 'none', clairV1Reads), NotATarError);
  });
});
