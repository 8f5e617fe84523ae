import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { discardGet } from './discard-get.js';

async function serve(handler: (res: ServerResponse, path: string) => void): Promise<{ server: Server; url: (p: string) => URL }> {
  const server = createServer((req, res) => handler(res, req.url ?? ''));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { server, url: (p) => new URL(`http://127.0.0.1:${port}${p}`) };
}

const close = (server: Server) => new Promise<void>((resolve) => {
  server.closeAllConnections();
  server.close(() => resolve());
});

test('discardGet reads a body of many writes to its Content-Length and keeps only its start', async () => {
  const piece = Buffer.alloc(300_000, 7);
  const { server, url } = await serve((res) => {
    res.writeHead(200, { 'Content-Length': piece.length * 5, 'Content-Type': 'application/octet-stream' });
    let n = 0;
    const next = () => {
      if (n++ === 5) return res.end();
      res.write(piece, next);
    };
    next();
  });
  try {
    const r = await discardGet(url('/layers/x'), { Authorization: ['Bearer s'] }, new AbortController().signal);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    assert.equal(r.bytes, piece.length * 5);
    assert.equal(r.truncated, false);
    assert.equal(r.bodyStart.length, 256);
  } finally {
    await close(server);
  }
});

test('discardGet: a body cut short is truncated; a refusal keeps its status and words', async () => {
  const { server, url } = await serve((res, path) => {
    if (path === '/cut') {
      res.writeHead(200, { 'Content-Length': 1000 });
      res.write(Buffer.alloc(10), () => res.destroy());
      return;
    }
    res.writeHead(404, { 'Content-Length': 5 });
    res.end('nope\n');
  });
  try {
    const cut: unknown = await discardGet(url('/cut'), {}, new AbortController().signal).catch((e: unknown) => e);
    // The server's reset may come as the end of the stream or as an error; either way it is not a whole body.
    if (cut instanceof Error) assert.match((cut as NodeJS.ErrnoException & { code?: string }).code ?? '', /ECONNRESET|EPIPE/);
    else {
      const r = cut as Awaited<ReturnType<typeof discardGet>>;
      assert.deepEqual([r.bytes, r.truncated], [10, true]);
    }
    const refused = await discardGet(url('/missing'), {}, new AbortController().signal);
    assert.equal(refused.status, 404);
    assert.equal(refused.statusMessage, 'Not Found');
    assert.equal(refused.bodyStart.toString(), 'nope\n');
  } finally {
    await close(server);
  }
});

test('discardGet rejects with the abort reason', async () => {
  let opened!: () => void;
  const started = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const { server, url } = await serve((res) => {
    res.writeHead(200, { 'Content-Length': 1_000_000 });
    res.write(Buffer.alloc(10), () => opened());
  });
  try {
    const ac = new AbortController();
    const got = discardGet(url('/slow'), {}, ac.signal);
    await started;
    ac.abort(new Error('stop'));
    await assert.rejects(got, /stop/);
  } finally {
    await close(server);
  }
});
