// Resolves which Docker daemon to talk to, exactly as the docker CLI does (docker/cli cli/command/cli.go
// resolveContextName): the CLI passes no resolved endpoint to a plugin, so the plugin repeats that precedence:
//   --context > -H > DOCKER_HOST > DOCKER_CONTEXT > config.json currentContext > default socket.
// The result is plain data; docker/client.ts turns it into dockerode options.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { DockerGlobalFlags } from './global-flags.js';
import { EndpointError, errnoCode } from '../runtime/errors.js';
import { redactUrl } from '../runtime/redact.js';

const DEFAULT_UNIX_HOST = 'unix:///var/run/docker.sock';
const DEFAULT_TLS_HOST = 'tcp://localhost:2376';
const DEFAULT_TCP_PORT = 2375;

export type Transport =
  | { kind: 'unix'; path: string }
  | { kind: 'npipe'; path: string }
  | { kind: 'tcp'; hostname: string; port: number }
  | { kind: 'ssh'; user?: string; hostname: string; port?: number; socketPath?: string };

export interface TlsMaterial {
  /** false when TLS is on but the server certificate is not verified (`--tls` alone, SkipTLSVerify). */
  verify: boolean;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface Endpoint {
  /** "default" or the name of the context in use. */
  contextName: string;
  /** Why this endpoint was chosen, for messages and --debug: "-H flag", "DOCKER_HOST", "context …". */
  source: string;
  /** The host URL as configured, user-info password redacted: what messages name. */
  host: string;
  transport: Transport;
  /** Present when TLS is on; only applies to tcp transports, as in the docker CLI. */
  tls?: TlsMaterial;
  /** Non-fatal problems met on the way, e.g. an unreadable config.json (the CLI warns and goes on). */
  warnings: string[];
}

export interface ResolveEnv {
  [name: string]: string | undefined;
}

/** --config > DOCKER_CONFIG > ~/.docker (docker cli/config). */
export function configDir(flags: Pick<DockerGlobalFlags, 'config'>, env: ResolveEnv, home = homedir()): string {
  return flags.config || env.DOCKER_CONFIG || join(home, '.docker');
}

export async function resolveEndpoint(flags: DockerGlobalFlags, env: ResolveEnv, home = homedir()): Promise<Endpoint> {
  if (flags.hosts.length > 1) {
    throw new EndpointError('specify only one -H', 'pass a single -H/--host (or set DOCKER_HOST)');
  }
  if (flags.context && flags.hosts.length > 0) {
    throw new EndpointError(
      'conflicting options: cannot specify both --host and --context',
      'use either -H/--host or --context, not both',
    );
  }
  const dir = configDir(flags, env, home);
  const warnings: string[] = [];
  const chosen = await resolveContextName(flags, env, dir, warnings);
  const endpoint =
    chosen.name === 'default'
      ? await defaultEndpoint(flags, env, home, chosen.why)
      : await contextEndpoint(chosen.name, chosen.why, dir);
  endpoint.warnings.push(...warnings);
  return endpoint;
}

async function resolveContextName(
  flags: DockerGlobalFlags,
  env: ResolveEnv,
  dir: string,
  warnings: string[],
): Promise<{ name: string; why: string }> {
  if (flags.context) return { name: flags.context, why: '--context' };
  if (flags.hosts.length > 0) return { name: 'default', why: '-H flag' };
  if (env.DOCKER_HOST) return { name: 'default', why: 'DOCKER_HOST' };
  if (env.DOCKER_CONTEXT) return { name: env.DOCKER_CONTEXT, why: 'DOCKER_CONTEXT' };
  const current = await readCurrentContext(dir, warnings);
  if (current) return { name: current, why: `currentContext in ${join(dir, 'config.json')}` };
  return { name: 'default', why: 'default' };
}

async function readCurrentContext(dir: string, warnings: string[]): Promise<string | undefined> {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') warnings.push(`cannot read ${file} (${errnoCode(error) ?? String(error)})`);
    return undefined;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && 'currentContext' in parsed) {
      const value = (parsed as { currentContext: unknown }).currentContext;
      if (typeof value === 'string' && value !== '') return value;
    }
  } catch (error) {
    // The docker CLI warns and carries on with defaults on a malformed config file; so do we.
    warnings.push(`ignoring ${file}: ${(error as Error).message}`);
  }
  return undefined;
}

/** The "default" context: -H or DOCKER_HOST, with TLS from flags and DOCKER_TLS* / DOCKER_CERT_PATH. */
async function defaultEndpoint(flags: DockerGlobalFlags, env: ResolveEnv, home: string, why: string): Promise<Endpoint> {
  // docker cli/flags/options.go: giving --tlsverify at all (even =false) or a non-empty DOCKER_TLS_VERIFY
  // turns TLS on; verification is on unless it was only --tls / DOCKER_TLS.
  const tlsVerify = flags.tlsVerify ?? Boolean(env.DOCKER_TLS_VERIFY);
  const tlsOn = flags.tlsVerify !== undefined || tlsVerify || (flags.tls ?? Boolean(env.DOCKER_TLS));
  const raw = flags.hosts[0] ?? env.DOCKER_HOST ?? '';
  const host = raw === '' ? (tlsOn ? DEFAULT_TLS_HOST : DEFAULT_UNIX_HOST) : raw;
  const transport = parseHost(host, why);
  const endpoint: Endpoint = { contextName: 'default', source: why, host: redactUrl(host), transport, warnings: [] };
  if (tlsOn && transport.kind === 'tcp') {
    // The CLI takes the default cert directory from DOCKER_CERT_PATH, else DOCKER_CONFIG or ~/.docker.
    const certDir = env.DOCKER_CERT_PATH || env.DOCKER_CONFIG || join(home, '.docker');
    const certHint = env.DOCKER_CERT_PATH
      ? `DOCKER_CERT_PATH (${certDir}) must hold ca.pem, cert.pem and key.pem; fix it or unset DOCKER_CERT_PATH`
      : `pass --tlscacert/--tlscert/--tlskey or set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem`;
    const tls: TlsMaterial = { verify: tlsVerify };
    if (tlsVerify) {
      tls.ca = await readTlsFile('CA certificate', flags.tlsCaCert ?? join(certDir, 'ca.pem'), certHint);
    }
    // Client cert and key are optional when they were not asked for explicitly and the defaults are absent.
    tls.cert = await readOptionalTlsFile('client certificate', flags.tlsCert, join(certDir, 'cert.pem'), certHint);
    tls.key = await readOptionalTlsFile('client key', flags.tlsKey, join(certDir, 'key.pem'), certHint);
    requireKeyPair(tls, certHint);
    endpoint.tls = tls;
  }
  return endpoint;
}

async function contextEndpoint(name: string, why: string, dir: string): Promise<Endpoint> {
  const id = createHash('sha256').update(name).digest('hex');
  const metaFile = join(dir, 'contexts', 'meta', id, 'meta.json');
  const source = `context "${name}" (${why})`;
  let meta: unknown;
  try {
    meta = JSON.parse(await readFile(metaFile, 'utf8'));
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') {
      throw new EndpointError(
        `context "${name}" not found (selected by ${why})`,
        `list contexts with 'docker context ls'; choose another with --context or DOCKER_CONTEXT, or 'docker context use default'`,
        { cause: error },
      );
    }
    throw new EndpointError(`cannot read context "${name}" from ${metaFile}: ${(error as Error).message}`,
      `repair or recreate the context with 'docker context create'`, { cause: error });
  }
  const docker = (meta as { Endpoints?: { docker?: { Host?: unknown; SkipTLSVerify?: unknown } } })?.Endpoints?.docker;
  const host = typeof docker?.Host === 'string' && docker.Host !== '' ? docker.Host : DEFAULT_UNIX_HOST;
  const transport = parseHost(host, source);
  const endpoint: Endpoint = { contextName: name, source, host: redactUrl(host), transport, warnings: [] };

  const tlsDir = join(dir, 'contexts', 'tls', id, 'docker');
  const hint = `repair the TLS files of context "${name}" with 'docker context update' or recreate it`;
  const ca = await readIfPresent(join(tlsDir, 'ca.pem'), 'CA certificate', hint);
  const cert = await readIfPresent(join(tlsDir, 'cert.pem'), 'client certificate', hint);
  const key = await readIfPresent(join(tlsDir, 'key.pem'), 'client key', hint);
  const skipVerify = docker?.SkipTLSVerify === true;
  // docker cli context/docker/load.go: TLS is on when the context stores TLS data or skips verification.
  if (transport.kind === 'tcp' && (ca || cert || key || skipVerify)) {
    const tls: TlsMaterial = { verify: !skipVerify };
    if (ca) tls.ca = ca;
    if (cert) tls.cert = cert;
    if (key) tls.key = key;
    requireKeyPair(tls, hint);
    endpoint.tls = tls;
  }
  return endpoint;
}

function requireKeyPair(tls: TlsMaterial, hint: string): void {
  if (Boolean(tls.cert) !== Boolean(tls.key)) {
    throw new EndpointError(
      `TLS client ${tls.cert ? 'certificate' : 'key'} given without its ${tls.cert ? 'key' : 'certificate'}`,
      hint,
    );
  }
}

async function readTlsFile(what: string, file: string, hint: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new EndpointError(`cannot read the TLS ${what} ${file} (${errnoCode(error) ?? String(error)})`, hint, {
      cause: error,
    });
  }
}

async function readOptionalTlsFile(
  what: string,
  explicit: string | undefined,
  fallback: string,
  hint: string,
): Promise<Buffer | undefined> {
  if (explicit !== undefined) return readTlsFile(what, explicit, hint);
  return readIfPresent(fallback, what, hint);
}

async function readIfPresent(file: string, what: string, hint: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw new EndpointError(`cannot read the TLS ${what} ${file} (${errnoCode(error) ?? String(error)})`, hint, {
      cause: error,
    });
  }
}

/** docker opts/hosts.go ParseHost, client side: tcp (default for a bare host:port), unix, npipe, ssh. */
export function parseHost(host: string, source: string): Transport {
  const value = host.trim();
  const sep = value.indexOf('://');
  const scheme = sep < 0 ? 'tcp' : value.slice(0, sep).toLowerCase();
  const rest = sep < 0 ? value : value.slice(sep + 3);
  const bad = (why: string) =>
    new EndpointError(
      `invalid Docker host "${redactUrl(value)}" from ${source}: ${why}`,
      'use unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]',
    );
  switch (scheme) {
    case 'unix':
      return { kind: 'unix', path: rest || '/var/run/docker.sock' };
    case 'npipe':
      return { kind: 'npipe', path: rest || '//./pipe/docker_engine' };
    case 'tcp': {
      let url: URL;
      try {
        url = new URL(`tcp://${rest}`);
      } catch {
        throw bad('not a valid tcp address');
      }
      if (url.pathname !== '' && url.pathname !== '/') throw bad('a tcp address takes no path');
      const port = url.port === '' ? DEFAULT_TCP_PORT : Number(url.port);
      const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
      return { kind: 'tcp', hostname, port };
    }
    case 'ssh': {
      let url: URL;
      try {
        url = new URL(`ssh://${rest}`);
      } catch {
        throw bad('not a valid ssh URL');
      }
      if (url.password) throw bad('plain-text passwords are not supported; use an ssh key or agent');
      if (url.search || url.hash) throw bad('an ssh URL takes no query or fragment');
      if (!url.hostname) throw bad('no host name');
      const transport: Transport = { kind: 'ssh', hostname: url.hostname.replace(/^\[(.*)\]$/, '$1') };
      if (url.username) transport.user = decodeURIComponent(url.username);
      if (url.port) transport.port = Number(url.port);
      if (url.pathname && url.pathname !== '/') transport.socketPath = decodeURIComponent(url.pathname);
      return transport;
    }
    default:
      throw bad(`unsupported scheme "${scheme}"`);
  }
}

