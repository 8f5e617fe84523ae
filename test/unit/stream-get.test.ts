// streamGet, the one request spoken by hand (the export), against a real peer on a unix socket that writes its
// response byte-exact and cut at awkward places: heads and chunk-size lines split across writes, chunk extensions
// and trailers, the three ways a body ends, error statuses, a peer that dies mid-body, an abort, no peer at all.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { daemonMessage } from '../../src/docker/daemon-message.js';
import { StatusError, streamGet } from '../../src/docker/stream-get.js';
import { collectChunks, type Chunks } from '../../src/save/chunks.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stream-get-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Peer {
  path: string;
  /** The request head the peer received. */
  request: Promise<string>;
  /** Resolves when the client's connection is gone. */
  closed: Promise<void>;
  server: Server;
}

let peers = 0;
/** A peer that reads the request head, then runs `respond` on the raw socket. */
async function peer(respond: (socket: Socket) => Promise<void> | void): Promise<Peer> {
  const path = join(dir, `peer-${peers++}.sock`);
  let resolveRequest!: (head: string) => void;
  let resolveClosed!: () => void;
  const request = new Promise<string>((resolve) => {
    resolveRequest = resolve;
  });
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  const server = createServer((socket) => {
    let head = '';
    socket.on('error', () => {});
    socket.on('close', () => resolveClosed());
    const onData = (data: Buffer) => {
      head += data.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      resolveRequest(head);
      void respond(socket);
    };
    socket.on('data', onData);
  });
  server.listen(path);
  await once(server, 'listening');
  return { path, request, closed, server };
}

/** Writes the pieces one by one, each in its own write, waiting for it to drain: reads see them apart. */
async function writeApart(socket: Socket, pieces: (string | Buffer)[]): Promise<void> {
  for (const piece of pieces) {
    await new Promise<void>((resolve) => socket.write(piece, () => resolve()));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function body(chunks: Chunks): Promise<string> {
  return (await collectChunks(chunks)).toString('latin1');
}

describe('streamGet', () => {
  it('a chunked body cut everywhere (head, size lines, CRLFs), with extensions and trailers, arrives whole', async () => {
    const p = await peer((s) => writeApart(s, [
      'HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-',
      'Encoding: chunked\r\n\r',
      '\n5\r\nhello\r',
      '\n1',
      '0;name=value\r\n0123456789abcdef\r\n',
      '3\r\n', 'a', 'bc', '\r\n0\r\nTrailer: x\r\n', '\r\n',
    ]));
    try {
      const chunks = await streamGet({ path: p.path }, '/images/sha256:abc/get');
      assert.equal(await body(chunks), 'hello0123456789abcdefabc');
      assert.match(await p.request, /^GET \/images\/sha256:abc\/get HTTP\/1\.1\r\n/);
      assert.match(await p.request, /\r\nConnection: close\r\n/);
      assert.equal(await chunks.read(), null, 'read after the end: still the end');
      await p.closed;
    } finally {
      p.server.close();
    }
  });

  it('the chunks that arrive in one read come out as one piece, the framing between them removed', async () => {
    const data = Array.from({ length: 8 }, (_, i) => String.fromCharCode(97 + i).repeat(1000 + i));
    const chunked = data.map((d) => `${d.length.toString(16)}\r\n${d}\r\n`).join('') + '0\r\n\r\n';
    // The head apart, then the whole body in one write (~8 KB, one read).
    const p = await peer((s) => writeApart(s, ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', chunked]));
    try {
      const chunks = await streamGet({ path: p.path }, '/images/x/get');
      const pieces: string[] = [];
      for (let piece = await chunks.read(); piece; piece = await chunks.read()) pieces.push(piece.toString('latin1'));
      assert.equal(pieces.join(''), data.join(''));
      assert.equal(pieces.length, 1, `one piece for the read, not one per chunk: ${pieces.map((x) => x.length).join(', ')}`);
    } finally {
      p.server.close();
    }
  });

  it('a Content-Length body ends at its length; a body with neither ends when the peer closes', async () => {
    const sized = await peer((s) => writeApart(s, ['HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc', 'def']));
    const unsized = await peer(async (s) => {
      await writeApart(s, ['HTTP/1.0 200 OK\r\n\r\nuntil', ' the end']);
      s.end();
    });
    try {
      assert.equal(await body(await streamGet({ path: sized.path }, '/x')), 'abcdef');
      assert.equal(await body(await streamGet({ path: unsized.path }, '/x')), 'until the end');
    } finally {
      sized.server.close();
      unsized.server.close();
    }
  });

  it('an error status rejects with the daemon\'s JSON message, as dockerode\'s errors carry it', async () => {
    const text = JSON.stringify({ message: 'No such image: sha256:abc' });
    const p = await peer((s) => writeApart(s, [`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${text.length}\r\n\r\n`, text]));
    try {
      await assert.rejects(streamGet({ path: p.path }, '/images/sha256:abc/get'), (error: unknown) => {
        assert.ok(error instanceof StatusError);
        assert.equal(error.statusCode, 404);
        assert.equal(daemonMessage(error), 'No such image: sha256:abc');
        assert.equal(error.message, '(HTTP code 404) No such image: sha256:abc');
        return true;
      });
      await p.closed;
    } finally {
      p.server.close();
    }
  });

  it('a peer that dies inside a chunk: the read fails, it does not end quietly', async () => {
    const p = await peer(async (s) => {
      await writeApart(s, ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', '10\r\nonly half']);
      s.destroy();
    });
    try {
      const chunks = await streamGet({ path: p.path }, '/x');
      await assert.rejects(body(chunks), /closed the connection before the end of its response/);
    } finally {
      p.server.close();
    }
  });

  it('a malformed chunk size fails the read and closes the connection', async () => {
    const p = await peer((s) => writeApart(s, ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'zz\r\nnope\r\n0\r\n\r\n']));
    try {
      await assert.rejects(body(await streamGet({ path: p.path }, '/x')), /malformed chunked response/);
      await p.closed; // not left open: the peer sees it go
    } finally {
      p.server.close();
    }
  });

  it('aborting while a read waits closes the connection and rejects with the reason', async () => {
    const p = await peer((s) => writeApart(s, ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nfirst\r\n']));
    const controller = new AbortController();
    const reason = new Error('stop');
    try {
      const chunks = await streamGet({ path: p.path }, '/x', controller.signal);
      assert.equal((await chunks.read())?.toString(), 'first');
      const waiting = chunks.read(); // the peer sends nothing more
      controller.abort(reason);
      await assert.rejects(waiting, (error: unknown) => error === reason);
      await p.closed; // the peer sees the connection go
    } finally {
      p.server.close();
    }
  });

  it('no daemon at the path: the socket error, with its code, for the caller to explain', async () => {
    await assert.rejects(streamGet({ path: join(dir, 'nobody.sock') }, '/x'), (error: unknown) => {
      assert.equal((error as NodeJS.ErrnoException).code, 'ENOENT');
      return true;
    });
  });
});
