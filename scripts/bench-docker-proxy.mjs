// A counting proxy for the Docker daemon's unix socket, used by `npm run bench -- scan` to observe from the
// outside how many `docker save` exports (`GET /images/{name}/get`, `GET /images/get?names=…`) a scan makes.
//
// Bytes are piped unchanged in both directions (with backpressure). The client-to-daemon bytes are scanned for
// HTTP/1.x request lines; daemon-to-client bytes are attributed to the latest request on that connection, which
// gives the time to the first byte of an export (the daemon staging it) and when its last byte went through.
// Benchmark support only: it understands just enough HTTP to count requests.
import { createServer, createConnection } from 'node:net';
import { rmSync } from 'node:fs';

const REQUEST_LINE = /(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (\/\S*) HTTP\/1\.[01]\r\n/g;
const SAVE_PATH = /^(?:\/v[0-9.]+)?\/images\/(?:[^?]+\/get(?:\?|$)|get\?)/;

/** True for the Engine API calls behind `docker save` (one image by name, or several with ?names=). */
export function isSaveRequest(path) {
  return SAVE_PATH.test(path);
}

/**
 * Starts the proxy on `listenPath`, forwarding to the daemon socket `upstreamPath`.
 * Returns { path, requests, saves(), reset(), close() }; `requests` holds
 * { method, path, at, firstByteAt?, lastByteAt?, bytes } with times from performance.now().
 */
export async function startDockerProxy({ listenPath, upstreamPath }) {
  const requests = [];
  const sockets = new Set();
  rmSync(listenPath, { force: true });
  const server = createServer((client) => {
    const upstream = createConnection(upstreamPath);
    sockets.add(client);
    sockets.add(upstream);
    let carry = '';
    let current;
    client.on('data', (chunk) => {
      const text = carry + chunk.toString('latin1');
      REQUEST_LINE.lastIndex = 0;
      let end = 0;
      for (let m = REQUEST_LINE.exec(text); m; m = REQUEST_LINE.exec(text)) {
        current = { method: m[1], path: m[2], at: performance.now(), bytes: 0 };
        requests.push(current);
        end = REQUEST_LINE.lastIndex;
      }
      // Keep an unmatched tail: a request line may straddle two chunks.
      carry = text.slice(Math.max(end, text.length - 4096));
    });
    upstream.on('data', (chunk) => {
      if (!current) return;
      const now = performance.now();
      current.firstByteAt ??= now;
      current.lastByteAt = now;
      current.bytes += chunk.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done);
    upstream.on('error', done);
    client.on('close', done);
    upstream.on('close', done);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPath, () => resolve());
  });
  return {
    path: listenPath,
    requests,
    saves: () => requests.filter((r) => r.method === 'GET' && isSaveRequest(r.path)),
    reset: () => {
      requests.length = 0;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
      rmSync(listenPath, { force: true });
    },
  };
}
