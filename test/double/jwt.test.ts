import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkBearer, signJwt } from './jwt.js';
import { startClairDouble, type ClairDouble } from './server.js';
import { call } from './test-support.js';

const KEY = Buffer.from('a shared secret of some length!!');
const cfg = { key: KEY, issuers: ['docker-clair'] };
const NOW = 2_000_000_000;
const bearer = (claims: Record<string, unknown>, key = KEY, header?: Record<string, unknown>): string =>
  `Bearer ${signJwt(claims, key, header)}`;

test('a clairctl-style token is accepted; the intraservice issuer always is', () => {
  assert.equal(checkBearer(bearer({ iss: 'docker-clair', iat: NOW, nbf: NOW - 60, exp: NOW + 60 }), cfg, NOW), undefined);
  assert.equal(checkBearer(bearer({ iss: 'clair-intraservice' }), cfg, NOW), undefined);
});

test('bad tokens are refused', () => {
  const refused = (auth: string | undefined, why: RegExp): void => {
    const r = checkBearer(auth, cfg, NOW);
    assert.ok(r !== undefined && why.test(r), `${auth ?? '(none)'} → ${r ?? 'accepted'}`);
  };
  refused(undefined, /no bearer/);
  refused(`bearer ${signJwt({ iss: 'docker-clair' }, KEY)}`, /no bearer/);
  refused(bearer({ iss: 'docker-clair' }, Buffer.from('wrong key')), /bad signature/);
  refused(bearer({ iss: 'someone-else' }), /not allowed/);
  refused(bearer({ sub: 'x' }), /missing iss/);
  refused(bearer({ iss: 'docker-clair' }, KEY, { alg: 'HS512' }), /HS256/);
  refused(bearer({ iss: 'docker-clair' }, KEY, { alg: 'none' }), /HS256/);
  refused(bearer({ iss: 'docker-clair', exp: NOW - 16 }), /expired/);
  refused(bearer({ iss: 'docker-clair', nbf: NOW + 16 }), /not valid yet/);
  refused(bearer({ iss: 'docker-clair', iat: NOW + 16 }), /future/);
  refused('Bearer a.b', /compact/);
});

test('15 s of clock skew is tolerated', () => {
  assert.equal(checkBearer(bearer({ iss: 'docker-clair', exp: NOW - 15 }), cfg, NOW), undefined);
  assert.equal(checkBearer(bearer({ iss: 'docker-clair', nbf: NOW + 15 }), cfg, NOW), undefined);
  assert.equal(checkBearer(bearer({ iss: 'docker-clair', iat: NOW + 15 }), cfg, NOW), undefined);
});

let double: ClairDouble;
before(async () => {
  double = await startClairDouble({ psk: KEY.toString('base64'), issuers: ['docker-clair'], now: () => NOW * 1000 });
});
after(() => double.close());

test('over HTTP: 401 with an empty body without a valid token, 200 with one, robots.txt open', async () => {
  const noToken = await call(`${double.url}/indexer/api/v1/index_state`);
  assert.equal(noToken.status, 401);
  assert.equal(noToken.text, '');
  const badIss = await call(`${double.url}/indexer/api/v1/index_state`, {
    headers: { Authorization: bearer({ iss: 'intruder', iat: NOW }) },
  });
  assert.equal(badIss.status, 401);
  assert.equal(badIss.text, '');
  const unknownPath = await call(`${double.url}/nope`);
  assert.equal(unknownPath.status, 401);
  const ok = await call(`${double.url}/indexer/api/v1/index_state`, {
    headers: { Authorization: bearer({ iss: 'docker-clair', iat: NOW, nbf: NOW - 60, exp: NOW + 60 }) },
  });
  assert.equal(ok.status, 200);
  assert.match((ok.json as { state: string }).state, /^[0-9a-f]{32}$/);
  assert.equal((await call(`${double.url}/robots.txt`)).status, 200);
});
