// An in-process token server for distribution's token auth, speaking the token protocol registries and Docker
// Hub speak: `GET /token?service=…&scope=…` with optional Basic credentials, and the OAuth2 form `POST /token`
// (grant_type=password or refresh_token). Its JWTs carry the signing certificate in `x5c`, which the registry
// trusts through its rootcertbundle. It records every request so tests can see what a client asked for and with
// which credential.
import { spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';

/** One entry of a token's `access` claim (distribution's ResourceActions). */
export interface ResourceAccess {
  type: string;
  name: string;
  actions: string[];
}

/** How a token request identified itself. */
export type TokenCredential =
  /** GET with a Basic Authorization header. */
  | 'basic'
  /** POST grant_type=password. */
  | 'password'
  /** POST grant_type=refresh_token. */
  | 'refresh_token'
  | 'anonymous';

export interface TokenRequest {
  method: string;
  path: string;
  /** Requested scopes, one per entry (a POST's space-separated `scope` field is split). */
  scopes: string[];
  service: string | null;
  clientId: string | null;
  /** POST only: the grant_type field as sent. */
  grantType: string | null;
  credential: TokenCredential;
  /** The username presented, or the one a presented refresh token stands for. */
  user: string | undefined;
  /** The refresh token presented (refresh_token grant). */
  refreshToken: string | undefined;
  /** Whether a password reached the server at all (Basic header or password grant): a client holding a token should not. */
  sentPassword: boolean;
  /** Whether a refresh token was asked for (GET offline_token=true, POST access_type=offline). */
  offline: boolean;
  status: number;
  /** The token's access claim; empty when refused. */
  granted: ResourceAccess[];
  issuedRefreshToken: string | undefined;
}

export interface SigningKey {
  key: KeyObject;
  /** The self-signed certificate of `key`, DER: the JWT header's x5c. */
  certificateDer: Buffer;
  /** The same certificate as PEM on disk: the registry's rootcertbundle. */
  certificatePath: string;
}

export interface TokenServerOptions {
  signingKey: SigningKey;
  /** The `iss` claim; the registry's `issuer`. */
  issuer: string;
  /** The `aud` claim; the registry's `service`. Requests naming another service are refused. */
  service: string;
  /** username → password. Each user may pull and push any repository. */
  users: Record<string, string>;
  /** Whether a request without credentials is granted pull (else it gets a token with no access). */
  anonymousPull?: boolean;
  /** Token lifetime in seconds (default 300, Docker Hub's). */
  expiresIn?: number;
}

export interface TokenServer {
  /** http://127.0.0.1:PORT/token */
  realm: string;
  requests: TokenRequest[];
  close(): Promise<void>;
}

/** An EC P-256 key with a self-signed certificate, made by the openssl CLI in `dir` (token.key, token.crt). */
export function createSigningKey(dir: string): SigningKey {
  const keyPath = path.join(dir, 'token.key');
  const certificatePath = path.join(dir, 'token.crt');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyPath, '-out', certificatePath, '-days', '2', '-subj', '/CN=docker-clair-test token issuer'],
  { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(`openssl could not make the token signing certificate: ${r.error?.message ?? r.stderr}`);
  }
  return {
    key: createPrivateKey(readFileSync(keyPath)),
    certificateDer: new X509Certificate(readFileSync(certificatePath)).raw,
    certificatePath,
  };
}

/** `type:name:actions` split at the first and last colon (as distribution's token server does), or undefined. */
export function parseScope(scope: string): ResourceAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first || last === scope.length - 1) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',') };
}

/** The scope string of granted access (a POST response's `scope`). */
export function formatScope(access: ResourceAccess): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`;
}

/** Signs a compact JWS the way distribution's token.go verifies it: ES256/RS256 over header.claims, x5c chain. */
export function signToken(signingKey: SigningKey, claims: Record<string, unknown>): string {
  const ec = signingKey.key.asymmetricKeyType === 'ec';
  const header = { typ: 'JWT', alg: ec ? 'ES256' : 'RS256', x5c: [signingKey.certificateDer.toString('base64')] };
  const signingInput = `${b64json(header)}.${b64json(claims)}`;
  // JOSE wants the raw r||s for ECDSA (libtrust checks its length), not DER.
  const signature = sign('sha256', Buffer.from(signingInput), ec ? { key: signingKey.key, dsaEncoding: 'ieee-p1363' } : signingKey.key);
  return `${signingInput}.${signature.toString('base64url')}`;
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

class TokenError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

interface Subject {
  credential: TokenCredential;
  user: string | undefined;
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const requests: TokenRequest[] = [];
  const refreshTokens = new Map<string, string>();
  const expiresIn = options.expiresIn ?? 300;

  const grant = (subject: Subject, scopes: string[]): ResourceAccess[] => {
    const allowed = subject.user !== undefined ? ['pull', 'push'] : options.anonymousPull === true ? ['pull'] : [];
    return mergeAccess(scopes.map((s) => {
      const access = parseScope(s);
      if (access === undefined) throw new TokenError(400, 'invalid_scope', `malformed scope ${JSON.stringify(s)}`);
      const actions = access.type === 'repository' ? access.actions.filter((a) => allowed.includes(a)) : [];
      return { ...access, actions };
    }));
  };

  const mint = (subject: Subject, access: ResourceAccess[], now: number): string => signToken(options.signingKey, {
    iss: options.issuer,
    sub: subject.user ?? '',
    aud: options.service,
    exp: now + expiresIn,
    nbf: now - 1,
    iat: now,
    jti: randomBytes(12).toString('hex'),
    access,
  });

  const issueRefreshToken = (user: string): string => {
    const token = `refresh-${randomBytes(16).toString('hex')}`;
    refreshTokens.set(token, user);
    return token;
  };

  const checkPassword = (user: string, password: string): void => {
    if (!Object.hasOwn(options.users, user) || options.users[user] !== password) {
      throw new TokenError(401, 'unauthorized', 'incorrect username or password');
    }
  };

  const checkService = (service: string | null): void => {
    if (service !== options.service) {
      throw new TokenError(400, 'invalid_request', `service ${JSON.stringify(service)} is not ${JSON.stringify(options.service)}`);
    }
  };

  const handleGet = (req: IncomingMessage, url: URL, record: TokenRequest): Record<string, unknown> => {
    record.scopes = url.searchParams.getAll('scope').flatMap(splitScopes);
    record.service = url.searchParams.get('service');
    record.clientId = url.searchParams.get('client_id');
    record.offline = url.searchParams.get('offline_token') === 'true';
    const subject = basicSubject(req.headers.authorization, record);
    checkService(record.service);
    const now = Math.floor(Date.now() / 1000);
    record.granted = grant(subject, record.scopes);
    const token = mint(subject, record.granted, now);
    if (record.offline && subject.user !== undefined) record.issuedRefreshToken = issueRefreshToken(subject.user);
    return {
      token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString(),
      ...(record.issuedRefreshToken === undefined ? {} : { refresh_token: record.issuedRefreshToken }),
    };
  };

  const basicSubject = (authorization: string | undefined, record: TokenRequest): Subject => {
    if (authorization === undefined) return { credential: 'anonymous', user: undefined };
    const [scheme, value] = authorization.split(' ', 2);
    if (scheme?.toLowerCase() !== 'basic' || value === undefined) {
      throw new TokenError(401, 'unauthorized', 'only Basic credentials are accepted here');
    }
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    record.credential = 'basic';
    record.user = user;
    record.sentPassword = colon >= 0;
    checkPassword(user, colon < 0 ? '' : decoded.slice(colon + 1));
    return { credential: 'basic', user };
  };

  const handlePost = async (req: IncomingMessage, record: TokenRequest): Promise<Record<string, unknown>> => {
    const type = req.headers['content-type']?.split(';')[0]?.trim();
    if (type !== 'application/x-www-form-urlencoded') {
      throw new TokenError(400, 'invalid_request', `content-type ${JSON.stringify(type)} is not a form`);
    }
    const form = new URLSearchParams(await readBody(req));
    record.scopes = form.getAll('scope').flatMap(splitScopes);
    record.service = form.get('service');
    record.clientId = form.get('client_id');
    record.grantType = form.get('grant_type');
    record.offline = form.get('access_type') === 'offline';
    const subject = formSubject(form, record);
    // The spec makes client_id required; checked after the credentials so the record says who sent them.
    if (record.clientId === null || record.clientId === '') throw new TokenError(400, 'invalid_request', 'client_id is required');
    checkService(record.service);
    const now = Math.floor(Date.now() / 1000);
    record.granted = grant(subject, record.scopes);
    const token = mint(subject, record.granted, now);
    if (record.offline && subject.user !== undefined && record.grantType === 'password') {
      record.issuedRefreshToken = issueRefreshToken(subject.user);
    }
    return {
      access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString(),
      scope: record.granted.filter((a) => a.actions.length > 0).map(formatScope).join(' '),
      ...(record.issuedRefreshToken === undefined ? {} : { refresh_token: record.issuedRefreshToken }),
    };
  };

  const formSubject = (form: URLSearchParams, record: TokenRequest): Subject => {
    switch (record.grantType) {
      case 'password': {
        const user = form.get('username') ?? '';
        record.credential = 'password';
        record.user = user;
        record.sentPassword = form.has('password');
        checkPassword(user, form.get('password') ?? '');
        return { credential: 'password', user };
      }
      case 'refresh_token': {
        const token = form.get('refresh_token') ?? '';
        record.credential = 'refresh_token';
        record.refreshToken = token;
        record.sentPassword = form.has('password');
        const user = refreshTokens.get(token);
        if (user === undefined) throw new TokenError(401, 'invalid_grant', 'unknown refresh token');
        record.user = user;
        return { credential: 'refresh_token', user };
      }
      default:
        throw new TokenError(400, 'unsupported_grant_type', `grant_type ${JSON.stringify(record.grantType)}`);
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://token-server');
    const record: TokenRequest = {
      method: req.method ?? '', path: url.pathname, scopes: [], service: null, clientId: null, grantType: null,
      credential: 'anonymous', user: undefined, refreshToken: undefined, sentPassword: false, offline: false,
      status: 0, granted: [], issuedRefreshToken: undefined,
    };
    requests.push(record);
    try {
      if (url.pathname !== '/token') throw new TokenError(404, 'not_found', `no ${url.pathname} here`);
      const body = req.method === 'GET' ? handleGet(req, url, record)
        : req.method === 'POST' ? await handlePost(req, record)
          : undefined;
      if (body === undefined) throw new TokenError(405, 'method_not_allowed', `${req.method} is not served`);
      reply(res, record, 200, body);
    } catch (err) {
      const e = err instanceof TokenError ? err : new TokenError(500, 'server_error', String(err));
      record.granted = [];
      record.issuedRefreshToken = undefined;
      reply(res, record, e.status, { error: e.code, error_description: e.message, details: e.message });
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Port 0: the kernel picks a free port at bind time, so no other process can take it in between.
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  const close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { realm: `http://127.0.0.1:${port}/token`, requests, close };
}

function reply(res: ServerResponse, record: TokenRequest, status: number, body: unknown): void {
  record.status = status;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function splitScopes(value: string): string[] {
  return value.split(' ').filter((s) => s !== '');
}

/** One entry per resource, with the union of its actions (a client may ask for a resource twice). */
function mergeAccess(items: ResourceAccess[]): ResourceAccess[] {
  const merged = new Map<string, ResourceAccess>();
  for (const item of items) {
    const key = `${item.type}\u0000${item.name}`;
    const seen = merged.get(key);
    if (seen === undefined) merged.set(key, { ...item, actions: [...new Set(item.actions)] });
    else seen.actions = [...new Set([...seen.actions, ...item.actions])];
  }
  return [...merged.values()];
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
