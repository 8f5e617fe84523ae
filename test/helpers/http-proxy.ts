// A forward HTTP proxy for tests that logs what passes through it: plain http requests in absolute form (forwarded),
// and CONNECT tunnels (for https, relayed blind). On loopback, a port of its own.
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';

export interface ProxyLogEntry {
  method: string;
  /** The absolute URL of a forwarded request, or host:port of a CONNECT. */
  target: string;
  /** The Authorization header the client sent through (forwarded requests only). */
  authorization?: string;
}

export interface LoggingProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  log: ProxyLogEntry[];
  close(): Promise<void>;
}

export async function startLoggingProxy(): Promise<LoggingProxy> {
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const target = req.url ?? '';
    log.push({ method: req.method ?? '', target, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      res.writeHead(400).end('absolute URL expected');
      return;
    }
    const upstream = httpRequest(url, { method: req.method, headers: req.headers }, (answer: IncomingMessage) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.headersSent ? res.destroy() : res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    log.push({ method: 'CONNECT', target });
    const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    const upstream = connect(port, host.replace(/^\[|\]$/g, ''), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A non-loopback IPv4 address of this machine: loopback is never proxied, so proxy tests need another. */
export function lanAddress(): string | undefined {
  return Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
}
