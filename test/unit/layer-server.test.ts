// The layer server on its own: secret, status codes, one streaming pass, and a client that drops the
// connection mid-layer. Real HTTP on loopback; no mocks.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { LayerServer } from '../../src/layer-server/server.js';
import { readableChunks, type Chunks } from '../../src/save/chunks.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const servers: LayerServer[] = [];
after(async () => Promise.all(servers.map((s) => s.close())));

async function start(): Promise<LayerServer> {
  const server = await LayerServer.start({ listenHost: '127.0.0.1' });
  servers.push(server);
  return server;
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const auth = (server: LayerServer) => ({ Authorization: server.clairHeaders.Authorization?.[0] ?? '' });

describe('LayerServer', () => {
  it('serves the offered layer once, as 200 application/octet-stream, no Content-Encoding, no ranges', async () => {
    const server = await start();
    const payload = Buffer.from('layer bytes '.repeat(1000));
    const done = server.offer(D1, readableChunks(Readable.from([payload])), payload.length);
    const res = await get(server.url(D1), { ...auth(server), Range: 'bytes=0-15', 'Accept-Encoding': 'gzip' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.equal(res.headers['content-encoding'], undefined);
    assert.equal(res.headers['accept-ranges'], undefined);
    assert.equal(res.headers['content-length'], String(payload.length));
    assert.deepEqual(res.body, payload);
    assert.deepEqual(await done, { served: true, bytes: payload.length });
    // It streamed once: asking again is a conflict, not a second copy.
    const again = await get(server.url(D1), auth(server));
    assert.equal(again.status, 409);
  });

  it('refuses requests without the per-scan secret with 403 and serves nothing', async () => {
    const server = await start();
    const body = new PassThrough();
    body.end(Buffer.from('secret layer'));
    void server.offer(D1, readableChunks(body), 12);
    const attempts: Record<string, string>[] = [{}, { Authorization: 'Bearer wrong' }, { Authorization: `Bearer ${server.secret}x` }];
    for (const headers of attempts) {
      const res = await get(server.url(D1), headers);
      assert.equal(res.status, 403);
      assert.doesNotMatch(res.body.toString(), /secret layer/);
    }
    assert.equal(body.readableLength, 12, 'nothing was read from the layer');
    assert.ok(server.withdraw(D1));
  });

  it('answers 404 for a digest outside this scan and 405 for other methods', async () => {
    const server = await start();
    void server.offer(D1, readableChunks(Readable.from([Buffer.from('x')])), 1);
    assert.equal((await get(server.url(D2), auth(server))).status, 404);
    assert.equal((await get(`${server.baseUrl}/etc/passwd`, auth(server))).status, 404);
    assert.equal((await get(server.url(D1), auth(server), 'HEAD')).status, 405);
    assert.ok(server.withdraw(D1));
  });

  it('a known layer that is not streaming now is 409', async () => {
    const server = await start();
    server.allow(D2);
    void server.offer(D1, readableChunks(Readable.from([Buffer.from('x')])), 1);
    const res = await get(server.url(D2), auth(server));
    assert.equal(res.status, 409);
    assert.match(res.body.toString(), /streams once, in archive order/);
    assert.ok(server.withdraw(D1));
  });

  it('withdraw() ends an offer nobody claimed, and leaves the body unread', async () => {
    const server = await start();
    const body = new PassThrough();
    body.end(Buffer.from('unread'));
    const done = server.offer(D1, readableChunks(body), 6);
    assert.equal(server.withdraw(D1), true);
    assert.deepEqual(await done, { served: false, reason: 'withdrawn' });
    assert.equal(body.readableLength, 6);
  });

  it('a client dropping the connection mid-layer fails the offer and leaves the stream intact for draining', async () => {
    const server = await start();
    const body = new PassThrough({ highWaterMark: 1024 });
    const done = server.offer(D1, readableChunks(body), 10_000_000);
    body.write(Buffer.alloc(64 * 1024, 1));
    await new Promise<void>((resolve) => {
      const req = request(server.url(D1), { headers: auth(server) }, (res) => {
        res.once('data', () => {
          req.destroy(); // Clair goes away after the first chunk
          resolve();
        });
      });
      req.on('error', () => {});
      req.on('close', () => resolve());
      req.end();
    });
    const outcome = await done;
    assert.equal(outcome.served, false);
    assert.ok(!outcome.served && outcome.reason === 'failed');
    assert.match((outcome as { error: Error }).error.message, /closed the connection after \d+ bytes/);
    assert.equal(body.destroyed, false, 'the save stream survives so the scan can report and clean up');
    // A second request for the same layer cannot be satisfied from a one-pass stream.
    assert.equal((await get(server.url(D1), auth(server))).status, 409);
    body.destroy();
  });

  it('a body whose chunks share one buffer arrives intact at a slow client: each chunk is written before the next is read', async () => {
    const server = await start();
    const chunkSize = 64 * 1024;
    const count = 64;
    // Like the daemon's export: every read lands in the same buffer, so a chunk is valid only until the next read.
    const shared = Buffer.alloc(chunkSize);
    let made = 0;
    let reads = 0;
    const body: Chunks = {
      async read() {
        if (made === count) return null;
        shared.fill(made++ % 251);
        reads++;
        return shared;
      },
      close() {},
    };
    const done = server.offer(D1, body, chunkSize * count);
    const received = await new Promise<Buffer>((resolve, reject) => {
      const req = request(server.url(D1), { headers: auth(server) }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          parts.push(c);
          // A slow reader: the server's writes back up while it pauses.
          res.pause();
          setImmediate(() => res.resume());
        });
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(reads, count);
    assert.equal(received.length, chunkSize * count);
    for (let i = 0; i < count; i++) {
      const part = received.subarray(i * chunkSize, (i + 1) * chunkSize);
      assert.ok(part.every((b) => b === i % 251), `chunk ${i} arrived as it was when read`);
    }
    assert.deepEqual(await done, { served: true, bytes: chunkSize * count });
  });

  it('close() stops listening and releases an unclaimed offer', async () => {
    const server = await start();
    const done = server.offer(D1, readableChunks(Readable.from([Buffer.from('x')])), 1);
    await server.close();
    assert.deepEqual(await done, { served: false, reason: 'withdrawn' });
    await assert.rejects(get(server.url(D1), auth(server)), /ECONNREFUSED/);
    await server.close(); // idempotent
  });

  it('closes itself when the scan is aborted', async () => {
    const controller = new AbortController();
    const server = await LayerServer.start({ listenHost: '127.0.0.1', signal: controller.signal });
    servers.push(server);
    // Abort listeners run synchronously, and close() stops listening before its first await: no wait needed.
    controller.abort();
    await assert.rejects(get(server.url(D1), auth(server)), /ECONNREFUSED/);
  });

  it('advertises the address it is told, bracketing IPv6', async () => {
    const a = await LayerServer.start({ listenHost: '127.0.0.1', advertiseHost: 'build-host.example', advertisePort: 8080 });
    const b = await LayerServer.start({ listenHost: '127.0.0.1', advertiseHost: 'fd00::1' });
    servers.push(a, b);
    assert.equal(a.url(D1), `http://build-host.example:8080/layers/${D1}`);
    assert.match(b.baseUrl, /^http:\/\/\[fd00::1\]:\d+$/);
  });
});
