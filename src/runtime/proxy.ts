// HTTP proxies as the docker CLI honours them (Go's golang.org/x/net/http/httpproxy): HTTPS_PROXY for https URLs,
// HTTP_PROXY for http URLs, either case (upper first); NO_PROXY a comma-separated list of hosts (a name matches
// itself and its subdomains, a leading "." its subdomains only), IP addresses, CIDR ranges, each optionally with a
// port, or "*" for none. Loopback and `localhost` are never proxied: a proxy elsewhere cannot reach them. Applied
// to the requests made with got (Clair, registries, token servers) by a hook choosing each request's agent, so a
// redirect to another host is judged again.
import { Agent as HttpAgent, type ClientRequest, type RequestOptions } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import type { BeforeRequestHook } from 'got';
import { inCidr, isLoopbackName } from './cidr.js';
import { UsageError } from './errors.js';
import { redactUrl } from './redact.js';

export interface ProxySettings {
  httpProxy?: URL | undefined;
  httpsProxy?: URL | undefined;
  noProxy: string[];
}

/** The proxy settings of an environment; a proxy variable that is no URL is a usage error naming it. */
export function proxySettings(env: Record<string, string | undefined>): ProxySettings {
  const read = (name: string) => env[name] || env[name.toLowerCase()] || undefined;
  return {
    httpProxy: proxyUrl(read('HTTP_PROXY'), 'HTTP_PROXY'),
    httpsProxy: proxyUrl(read('HTTPS_PROXY'), 'HTTPS_PROXY'),
    noProxy: (read('NO_PROXY') ?? '').split(/[,\s]+/).map((e) => e.trim().toLowerCase()).filter(Boolean),
  };
}

function proxyUrl(value: string | undefined, name: string): URL | undefined {
  if (!value) return undefined;
  try {
    // Go reads a proxy without a scheme as http://.
    const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(url.protocol);
    return url;
  } catch {
    throw new UsageError(`${name} is not a proxy URL: ${redactUrl(value)}`, `set it to http://host:port (or unset it)`);
  }
}

/** The proxy for a request to `url`, or undefined: straight there. */
export function proxyFor(url: URL, settings: ProxySettings): URL | undefined {
  const proxy = url.protocol === 'https:' ? settings.httpsProxy : url.protocol === 'http:' ? settings.httpProxy : undefined;
  if (!proxy) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (isLoopbackName(host)) return undefined;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return settings.noProxy.some((entry) => excludes(entry, host, port)) ? undefined : proxy;
}

function excludes(entry: string, host: string, port: string): boolean {
  if (entry === '*') return true;
  const cidr = /^([^/]+)\/(\d{1,3})$/.exec(entry);
  if (cidr) return isIP(host) !== 0 && inCidr(host, cidr[1] as string, Number(cidr[2]));
  let name = entry;
  let wantPort: string | undefined;
  const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
  if (withPort) {
    name = withPort[1] as string;
    wantPort = withPort[2];
  }
  name = name.replace(/^\[|\]$/g, '');
  if (wantPort !== undefined && wantPort !== port) return false;
  if (isIP(name) !== 0) return name === host;
  if (name.startsWith('*.')) name = name.slice(1);
  if (name.startsWith('.')) return host.endsWith(name);
  return host === name || host.endsWith(`.${name}`);
}

/** What https requests through a proxy verify the server with, and present to it. */
export interface ProxyTls {
  ca?: Buffer | string[] | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

/**
 * The got hooks sending each request through its proxy (or none): no hook at all when no proxy is set, else one
 * with one agent per proxy and scheme, kept for the run; `tls` is what https requests through a proxy verify the
 * server with (the CA of a private Clair or registry), and present to it.
 */
export function proxyHooks(settings: ProxySettings | undefined, tls: ProxyTls = {}): BeforeRequestHook[] {
  if (!settings || (settings.httpProxy === undefined && settings.httpsProxy === undefined)) return [];
  return [proxyHook(settings, tls)];
}

function proxyHook(settings: ProxySettings, tls: ProxyTls): BeforeRequestHook {
  const agents = new Map<string, HttpAgent | HttpsAgent>();
  return async (options) => {
    const url = options.url instanceof URL ? options.url : new URL(String(options.url));
    const proxy = proxyFor(url, settings);
    if (!proxy) return;
    const https = url.protocol === 'https:';
    const key = `${https ? 'https' : 'http'} ${proxy.href}`;
    let agent = agents.get(key);
    if (!agent) {
      // http: the request in absolute form to the proxy; https: a CONNECT tunnel, the server verified through it.
      // Loaded only when a request goes through a proxy: most runs have none, and every run pays for its start-up.
      const { HttpsProxyAgent } = https ? await import('https-proxy-agent') : { HttpsProxyAgent: undefined };
      agent = HttpsProxyAgent
        ? new HttpsProxyAgent(proxy, { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}) })
        : new ForwardProxyAgent(proxy);
      agents.set(key, agent);
    }
    options.agent = https ? { https: agent as HttpsAgent } : { http: agent as HttpAgent };
    // The tunnel's TLS is set up without the target's name when it is an IP address (https-proxy-agent passes no
    // servername then, and Node checks the certificate against "localhost"): check it against the address itself.
    const target = url.hostname.replace(/^\[|\]$/g, '');
    if (https && isIP(target) !== 0) options.https.checkServerIdentity = (_host, cert) => checkServerIdentity(target, cert);
  };
}

/**
 * Plain http through a proxy as Go's transport sends it: the request line carries the absolute URL and the
 * connection goes to the proxy (no CONNECT, which proxies commonly allow to port 443 only).
 */
class ForwardProxyAgent extends HttpAgent {
  constructor(private readonly proxy: URL) {
    super({ keepAlive: false });
  }

  // Node's ClientRequest writes its request line on the first write, after the agent took the request: the
  // path set here is the one sent.
  addRequest(req: ClientRequest, options: RequestOptions): void {
    const host = req.getHeader('host') ?? `${options.hostname ?? options.host}${options.port ? `:${options.port}` : ''}`;
    req.path = `http://${String(host)}${req.path}`;
    if (this.proxy.username) {
      const user = `${decodeURIComponent(this.proxy.username)}:${decodeURIComponent(this.proxy.password)}`;
      req.setHeader('proxy-authorization', `Basic ${Buffer.from(user).toString('base64')}`);
    }
    const add = (HttpAgent.prototype as unknown as { addRequest(r: ClientRequest, o: RequestOptions): void }).addRequest;
    add.call(this, req, { ...options, host: this.proxy.hostname.replace(/^\[|\]$/g, ''), hostname: this.proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(this.proxy.port || 80) });
  }
}
