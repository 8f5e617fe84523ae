// The loopback registries with authentication (test/helpers/registry.ts) behave as real ones do, seen with plain
// fetch: distribution's token auth with the in-process token server (GET and OAuth2 POST forms, anonymous pull,
// refresh tokens, the request record), and htpasswd Basic auth. The registry client's tests rely on all of it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { TEST_IMAGES, dockerCli } from '../helpers/daemon.js';
import { connectOutcome } from '../helpers/ports.js';
import { registryAvailable, startRegistry, type Registry } from '../helpers/registry.js';
import type { TokenRequest } from '../helpers/token-server.js';

const SKIP = registryAvailable() ? false : 'docker-registry is not installed (apt-get install docker-registry)';
const USER = 'alice';
const PASSWORD = 'correct horse';
const REPO = 'auth-test/debian12';
const TAG = 'v1';
const MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** The parameters of a `Scheme k="v",k="v"` challenge, with the scheme under `scheme`. */
function challenge(header: string | null): Record<string, string> {
  assert.ok(header !== null, 'a WWW-Authenticate header');
  const space = header.indexOf(' ');
  const params: Record<string, string> = { scheme: header.slice(0, space) };
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1] ?? ''] = m[2] ?? '';
  return params;
}

function claimsOf(token: string): Record<string, unknown> {
  const payload = token.split('.')[1];
  assert.ok(payload !== undefined, 'a compact JWS');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function getToken(registry: Registry, scopes: string[], authorization?: string): Promise<Response> {
  const url = new URL(registry.realm ?? '');
  url.searchParams.set('service', registry.service ?? '');
  for (const s of scopes) url.searchParams.append('scope', s);
  return fetch(url, authorization === undefined ? {} : { headers: { authorization } });
}

async function bearerFor(registry: Registry, scopes: string[], authorization?: string): Promise<string> {
  const res = await getToken(registry, scopes, authorization);
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json() as { token: string; access_token: string; expires_in: number; issued_at: string };
  assert.equal(body.access_token, body.token);
  assert.ok(body.expires_in > 0);
  assert.ok(!Number.isNaN(Date.parse(body.issued_at)), body.issued_at);
  return body.token;
}

async function postToken(registry: Registry, form: Record<string, string>): Promise<Response> {
  return fetch(registry.realm ?? '', { method: 'POST', body: new URLSearchParams(form) });
}

function manifest(registry: Registry, authorization?: string): Promise<Response> {
  return fetch(`http://${registry.host}/v2/${REPO}/manifests/${TAG}`,
    { headers: { accept: MANIFEST_V2, ...(authorization === undefined ? {} : { authorization }) } });
}

/** Starts a blob upload, the first request of a push. */
function startUpload(registry: Registry, authorization: string): Promise<Response> {
  return fetch(`http://${registry.host}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { authorization } });
}

/** The manifest is v2 and its config blob comes back with the digest it is named by. */
async function assertPullWorks(registry: Registry, authorization: string): Promise<void> {
  const res = await manifest(registry, authorization);
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get('content-type'), MANIFEST_V2);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.headers.get('docker-content-digest'), `sha256:${createHash('sha256').update(body).digest('hex')}`);
  const { config } = JSON.parse(body.toString('utf8')) as { config: { digest: string } };
  const blob = await fetch(`http://${registry.host}/v2/${REPO}/blobs/${config.digest}`, { headers: { authorization } });
  assert.equal(blob.status, 200);
  assert.equal(`sha256:${createHash('sha256').update(Buffer.from(await blob.arrayBuffer())).digest('hex')}`, config.digest);
}

/** What the token server recorded from `from` on. */
function requestsSince(registry: Registry, from: number): TokenRequest[] {
  return registry.tokenRequests.slice(from);
}

function onlyRequest(registry: Registry, from: number): TokenRequest {
  const recorded = requestsSince(registry, from);
  assert.equal(recorded.length, 1, JSON.stringify(recorded));
  return recorded[0] as TokenRequest;
}

describe('a token-auth registry', { skip: SKIP }, () => {
  let registry: Registry;
  let pushRequests: TokenRequest[];
  before(async () => {
    registry = await startRegistry({ auth: { kind: 'token', users: { [USER]: PASSWORD } } });
    const ref = await registry.push(TEST_IMAGES.debian12, REPO, TAG);
    assert.equal(ref, `${registry.host}/${REPO}:${TAG}`);
    pushRequests = [...registry.tokenRequests];
  });
  after(async () => {
    await registry?.close();
  });

  it('challenges /v2/ with its realm and service', async () => {
    const res = await fetch(`http://${registry.host}/v2/`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${registry.realm}",service="${registry.service}"`);
    assert.match(registry.realm ?? '', /^http:\/\/127\.0\.0\.1:\d+\/token$/);
  });

  it('challenges a manifest GET without a token with the pull scope of its repository', async () => {
    const res = await manifest(registry);
    assert.equal(res.status, 401);
    assert.deepEqual(challenge(res.headers.get('www-authenticate')),
      { scheme: 'Bearer', realm: registry.realm, service: registry.service, scope: `repository:${REPO}:pull` });
  });

  it('push() logged in through the token server and got push access, leaving no tag in the daemon', () => {
    assert.ok(pushRequests.some((r) => r.user === USER && r.status === 200
      && r.granted.some((a) => a.name === REPO && a.actions.includes('push'))), JSON.stringify(pushRequests));
    assert.throws(() => dockerCli(['image', 'inspect', `${registry.host}/${REPO}:${TAG}`]));
  });

  it('pulls with a token fetched with the user\'s Basic credentials', async () => {
    const from = registry.tokenRequests.length;
    const token = await bearerFor(registry, [`repository:${REPO}:pull`], basic(USER, PASSWORD));
    const claims = claimsOf(token);
    assert.equal(claims.aud, registry.service);
    assert.equal(claims.sub, USER);
    await assertPullWorks(registry, `Bearer ${token}`);
    assert.deepEqual(onlyRequest(registry, from), {
      method: 'GET', path: '/token', scopes: [`repository:${REPO}:pull`], service: registry.service, clientId: null,
      grantType: null, credential: 'basic', user: USER, refreshToken: undefined, sentPassword: true, offline: false,
      status: 200, granted: [{ type: 'repository', name: REPO, actions: ['pull'] }], issuedRefreshToken: undefined,
    });
  });

  it('grants a user push, and takes repeated scope parameters', async () => {
    const from = registry.tokenRequests.length;
    const token = await bearerFor(registry, [`repository:${REPO}:pull`, `repository:${REPO}:push`], basic(USER, PASSWORD));
    assert.equal((await startUpload(registry, `Bearer ${token}`)).status, 202);
    assert.deepEqual(onlyRequest(registry, from).granted, [{ type: 'repository', name: REPO, actions: ['pull', 'push'] }]);
  });

  it('a pull-only token does not let a client push', async () => {
    const token = await bearerFor(registry, [`repository:${REPO}:pull`], basic(USER, PASSWORD));
    const res = await startUpload(registry, `Bearer ${token}`);
    assert.equal(res.status, 401);
    assert.equal(challenge(res.headers.get('www-authenticate')).error, 'insufficient_scope');
  });

  it('refuses a wrong password with 401', async () => {
    const from = registry.tokenRequests.length;
    const res = await getToken(registry, [`repository:${REPO}:pull`], basic(USER, 'wrong'));
    assert.equal(res.status, 401);
    const recorded = onlyRequest(registry, from);
    assert.deepEqual([recorded.status, recorded.user, recorded.sentPassword, recorded.granted], [401, USER, true, []]);
  });

  it('gives an anonymous client a token without access, which the registry refuses', async () => {
    const from = registry.tokenRequests.length;
    const token = await bearerFor(registry, [`repository:${REPO}:pull`]);
    const res = await manifest(registry, `Bearer ${token}`);
    assert.equal(res.status, 401);
    assert.equal(challenge(res.headers.get('www-authenticate')).error, 'insufficient_scope');
    const recorded = onlyRequest(registry, from);
    assert.deepEqual([recorded.credential, recorded.user, recorded.sentPassword], ['anonymous', undefined, false]);
    assert.deepEqual(recorded.granted, [{ type: 'repository', name: REPO, actions: [] }]);
  });

  it('refuses a token for another service', async () => {
    const res = await fetch(`${registry.realm}?service=elsewhere&scope=repository:${REPO}:pull`,
      { headers: { authorization: basic(USER, PASSWORD) } });
    assert.equal(res.status, 400);
  });

  it('issues a refresh token for an offline password grant and accepts it later, without the password', async () => {
    const from = registry.tokenRequests.length;
    const common = { service: registry.service ?? '', client_id: 'docker-clair-test' };
    const first = await postToken(registry, {
      ...common, grant_type: 'password', username: USER, password: PASSWORD, access_type: 'offline', scope: `repository:${REPO}:pull`,
    });
    assert.equal(first.status, 200);
    const issued = await first.json() as { access_token: string; refresh_token?: string; expires_in: number; scope: string };
    assert.equal(issued.scope, `repository:${REPO}:pull`);
    assert.ok(issued.expires_in > 0);
    assert.ok(issued.refresh_token !== undefined && issued.refresh_token !== '');
    await assertPullWorks(registry, `Bearer ${issued.access_token}`);

    const again = await postToken(registry, {
      ...common, grant_type: 'refresh_token', refresh_token: issued.refresh_token, scope: `repository:${REPO}:pull,push`,
    });
    assert.equal(again.status, 200);
    const refreshed = await again.json() as { access_token: string; refresh_token?: string; scope: string };
    assert.equal(refreshed.scope, `repository:${REPO}:pull,push`);
    assert.equal(refreshed.refresh_token, undefined);
    await assertPullWorks(registry, `Bearer ${refreshed.access_token}`);
    assert.equal((await startUpload(registry, `Bearer ${refreshed.access_token}`)).status, 202);

    const [password, refresh] = requestsSince(registry, from);
    assert.deepEqual([password?.method, password?.credential, password?.offline, password?.issuedRefreshToken, password?.clientId],
      ['POST', 'password', true, issued.refresh_token, 'docker-clair-test']);
    assert.deepEqual([refresh?.credential, refresh?.refreshToken, refresh?.user, refresh?.sentPassword],
      ['refresh_token', issued.refresh_token, USER, false]);
    assert.deepEqual(refresh?.scopes, [`repository:${REPO}:pull,push`]);
  });

  it('issues no refresh token unless asked for one', async () => {
    const res = await postToken(registry, {
      service: registry.service ?? '', client_id: 'docker-clair-test', grant_type: 'password', username: USER, password: PASSWORD,
      scope: `repository:${REPO}:pull`,
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json() as { refresh_token?: string }).refresh_token, undefined);
  });

  it('splits a POST scope on spaces, as distribution\'s client sends several', async () => {
    const from = registry.tokenRequests.length;
    const res = await postToken(registry, {
      service: registry.service ?? '', client_id: 'docker-clair-test', grant_type: 'password', username: USER, password: PASSWORD,
      scope: `repository:${REPO}:pull repository:other/repo:push`,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(onlyRequest(registry, from).scopes, [`repository:${REPO}:pull`, 'repository:other/repo:push']);
  });

  it('refuses an unknown refresh token, a wrong password grant and a form without client_id', async () => {
    const common = { service: registry.service ?? '', scope: `repository:${REPO}:pull` };
    const unknown = await postToken(registry, { ...common, client_id: 'x', grant_type: 'refresh_token', refresh_token: 'made-up' });
    assert.equal(unknown.status, 401);
    const wrong = await postToken(registry, { ...common, client_id: 'x', grant_type: 'password', username: USER, password: 'wrong' });
    assert.equal(wrong.status, 401);
    const noClient = await postToken(registry, { ...common, grant_type: 'password', username: USER, password: PASSWORD });
    assert.equal(noClient.status, 400);
  });
});

describe('a token-auth registry with anonymous pull', { skip: SKIP }, () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry({ auth: { kind: 'token', users: { [USER]: PASSWORD }, anonymousPull: true } });
    await registry.push(TEST_IMAGES.debian12, REPO, TAG);
  });
  after(async () => {
    await registry?.close();
  });

  it('lets an anonymous client pull but not push', async () => {
    const from = registry.tokenRequests.length;
    const token = await bearerFor(registry, [`repository:${REPO}:pull,push`]);
    await assertPullWorks(registry, `Bearer ${token}`);
    const upload = await startUpload(registry, `Bearer ${token}`);
    assert.equal(upload.status, 401);
    const recorded = onlyRequest(registry, from);
    assert.equal(recorded.credential, 'anonymous');
    assert.deepEqual(recorded.granted, [{ type: 'repository', name: REPO, actions: ['pull'] }]);
  });

  it('still refuses a wrong password rather than falling back to anonymous', async () => {
    assert.equal((await getToken(registry, [`repository:${REPO}:pull`], basic(USER, 'wrong'))).status, 401);
  });
});

describe('an htpasswd registry', { skip: SKIP }, () => {
  let registry: Registry;
  before(async () => {
    registry = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER]: PASSWORD } } });
    await registry.push(TEST_IMAGES.debian12, REPO, TAG);
  });
  after(async () => {
    await registry?.close();
  });

  it('challenges with Basic and its realm', async () => {
    const res = await fetch(`http://${registry.host}/v2/`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), `Basic realm="${registry.realm}"`);
    assert.deepEqual([registry.service, registry.tokenRequests], [undefined, []]);
  });

  it('answers 200 with the credentials, 401 with a wrong password or none', async () => {
    assert.equal((await fetch(`http://${registry.host}/v2/`, { headers: { authorization: basic(USER, PASSWORD) } })).status, 200);
    assert.equal((await fetch(`http://${registry.host}/v2/`, { headers: { authorization: basic(USER, 'wrong') } })).status, 401);
    assert.equal((await manifest(registry)).status, 401);
  });

  it('serves what push() pushed to the user', async () => {
    await assertPullWorks(registry, basic(USER, PASSWORD));
  });
});

describe('closing an auth registry', { skip: SKIP }, () => {
  it('leaves no registry or token server listening', async () => {
    const registry = await startRegistry({ auth: { kind: 'token', users: { [USER]: PASSWORD } } });
    const ports = [Number(registry.host.split(':')[1]), Number(new URL(registry.realm ?? '').port)];
    for (const port of ports) assert.equal(await connectOutcome(port), 'connected');
    await registry.close();
    for (const port of ports) assert.equal(await connectOutcome(port), 'ECONNREFUSED');
  });
});
