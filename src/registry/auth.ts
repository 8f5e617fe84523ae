// Authorizing requests to a registry as the docker CLI does: on a 401, the challenge says how. `Bearer` (the
// distribution token flow, https://distribution.github.io/distribution/spec/auth/token/): a token for the
// repository's pull scope from the realm, asked with the user's password (Basic) or exchanged for their identity
// token (OAuth2 refresh_token grant), or anonymously. `Basic`: the password itself on every request. Only pull is
// ever asked for: the token is what Clair is given to fetch the layers, never the password.
import type { Got } from 'got';
import { RegistryAuthError, RegistryError, errnoCode } from '../runtime/errors.js';
import type { Challenge } from './challenge.js';
import type { RegistryCredential } from './credentials.js';

export interface Authorization {
  /** The Authorization header value. */
  header: string;
  /** `bearer`: a pull-scoped token Clair may be given; `basic`: the user's password, which Clair must not be given. */
  kind: 'bearer' | 'basic';
}

export interface AuthContext {
  http: Got;
  /** host[:port] for messages and `docker login`. */
  host: string;
  repository: string;
  credential: RegistryCredential | undefined;
  signal?: AbortSignal | undefined;
}

const CLIENT_ID = 'docker-clair';

export async function authorize(challenge: Challenge, ctx: AuthContext): Promise<Authorization> {
  const { credential, host } = ctx;
  if (challenge.scheme === 'basic') {
    const header = basicHeader(credential);
    if (!header) throw loginNeeded(ctx);
    return { kind: 'basic', header };
  }
  const realm = challenge.params.realm;
  if (!realm) throw new RegistryError(`the registry at ${host} asked for a token without saying where to get one (no realm)`);
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new RegistryError(`the registry at ${host} named a token realm that is not a URL`);
  }
  const scope = `repository:${ctx.repository}:pull`;
  const service = challenge.params.service;
  const token = credential?.identityToken
    ? await refreshTokenGrant(url, { service, scope, refreshToken: credential.identityToken }, ctx)
    : await tokenGet(url, { service, scope }, ctx);
  return { kind: 'bearer', header: `Bearer ${token}` };
}

/** GET realm?service=…&scope=…, with the user's password as Basic when there is one. */
async function tokenGet(realm: URL, q: { service: string | undefined; scope: string }, ctx: AuthContext): Promise<string> {
  const url = new URL(realm.href);
  if (q.service) url.searchParams.set('service', q.service);
  url.searchParams.set('scope', q.scope);
  const basic = basicHeader(ctx.credential);
  const body = await tokenRequest(ctx, () => ctx.http.get(url, { headers: basic ? { authorization: basic } : {}, ...common(ctx) }), url);
  return tokenOf(body, ['token', 'access_token'], url, ctx);
}

/** The OAuth2 refresh_token grant an identity token is for. */
async function refreshTokenGrant(realm: URL, q: { service: string | undefined; scope: string; refreshToken: string }, ctx: AuthContext): Promise<string> {
  const form = { grant_type: 'refresh_token', refresh_token: q.refreshToken, client_id: CLIENT_ID, scope: q.scope, ...(q.service ? { service: q.service } : {}) };
  const body = await tokenRequest(ctx, () => ctx.http.post(realm, { form, ...common(ctx) }), realm);
  return tokenOf(body, ['access_token', 'token'], realm, ctx);
}

/** `Basic base64(user:password)`, when the credential has a user and a password. */
function basicHeader(credential: RegistryCredential | undefined): string | undefined {
  if (!credential?.username || credential.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`;
}

function common(ctx: AuthContext) {
  return { throwHttpErrors: false, responseType: 'text' as const, timeout: { request: 30_000 }, retry: { limit: 0 }, ...(ctx.signal ? { signal: ctx.signal } : {}) };
}

async function tokenRequest(ctx: AuthContext, send: () => Promise<{ statusCode: number; body: string }>, url: URL): Promise<string> {
  let response: { statusCode: number; body: string };
  try {
    response = await send();
  } catch (error) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    throw new RegistryError(`cannot reach the token server of ${ctx.host} at ${url.origin} (${errnoCode(error) ?? (error as Error).message})`,
      'check the network path to it (and HTTPS_PROXY/NO_PROXY)', { cause: error });
  }
  if (response.statusCode === 401 || response.statusCode === 403) {
    throw ctx.credential
      ? new RegistryAuthError(`the token server of ${ctx.host} refused the credentials from ${ctx.credential.from} (HTTP ${response.statusCode})`,
        `log in again: docker login ${ctx.host}`)
      : loginNeeded(ctx);
  }
  if (response.statusCode !== 200) {
    throw new RegistryError(`the token server of ${ctx.host} at ${url.origin} answered HTTP ${response.statusCode}`);
  }
  return response.body;
}

function tokenOf(body: string, fields: string[], url: URL, ctx: AuthContext): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  for (const field of fields) {
    const value = (parsed as Record<string, unknown> | undefined)?.[field];
    if (typeof value === 'string' && value !== '') return value;
  }
  throw new RegistryError(`the token server of ${ctx.host} at ${url.origin} answered without a token`);
}

function loginNeeded(ctx: AuthContext): RegistryAuthError {
  return new RegistryAuthError(`the registry at ${ctx.host} needs credentials to pull ${ctx.repository}, and none were found`,
    `log in first: docker login ${ctx.host}`);
}
