// Registry credentials found as the docker CLI finds them: real config.json files in temp directories and real
// `docker-credential-*` shell scripts on the PATH handed to the lookup (process.env is never changed).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { registryCredential, type CredentialLookup } from '../../src/registry/credentials.js';
import { UsageError } from '../../src/runtime/errors.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-creds-'));
after(() => rmSync(root, { recursive: true, force: true }));

const bin = path.join(root, 'bin');
mkdirSync(bin);
/** Each helper records the server URL it was sent into $RECORD, then answers as `body` says. */
const HELPERS: Record<string, string> = {
  good: `printf '%s' '{"ServerURL":"x","Username":"helper-user","Secret":"helper-pass"}'`,
  store: `printf '%s' '{"ServerURL":"x","Username":"store-user","Secret":"store-pass"}'`,
  token: `printf '%s' '{"ServerURL":"x","Username":"<token>","Secret":"refresh-123"}'`,
  notfound: `echo 'credentials not found in native keychain'; exit 1`,
  garbage: `echo 'garbage s3cr3t-garbage'`,
  broken: `echo '{"Username":"u","Secret":"s3cr3t-broken"}'; echo 's3cr3t-stderr' >&2; exit 3`,
  slow: `exec sleep 30`,
};
for (const [name, body] of Object.entries(HELPERS)) {
  const file = path.join(bin, `docker-credential-${name}`);
  writeFileSync(file, `#!/bin/sh\ncat > "$RECORD"\n${body}\n`);
  chmodSync(file, 0o755);
}

let dirs = 0;
/** A fresh config dir holding `config` as config.json (a string is written verbatim), and its lookup. */
function setup(config?: unknown): CredentialLookup & { record: string } {
  const configDir = path.join(root, `config-${++dirs}`);
  mkdirSync(configDir);
  if (config !== undefined) {
    writeFileSync(path.join(configDir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  }
  const record = path.join(configDir, 'stdin');
  return { configDir, record, env: { PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`, RECORD: record } };
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const sent = (lookup: { record: string }) => readFileSync(lookup.record, 'utf8');

describe('config.json auths', () => {
  it('decodes auth as base64 "user:password", splitting at the first colon', async () => {
    const lookup = setup({ auths: { 'ghcr.io': { auth: b64('alice:pa:ss') } } });
    assert.deepEqual(await registryCredential('ghcr.io', lookup), { username: 'alice', password: 'pa:ss', from: 'config.json auths' });
    assert.equal(await registryCredential('quay.io', lookup), undefined);
  });

  it('reads username/password fields and identitytoken', async () => {
    const lookup = setup({ auths: {
      'a.example': { username: 'bob', password: 'pw' },
      'b.example': { identitytoken: 'refresh-abc' },
      'c.example': {},
    } });
    assert.deepEqual(await registryCredential('a.example', lookup), { username: 'bob', password: 'pw', from: 'config.json auths' });
    assert.deepEqual(await registryCredential('b.example', lookup), { identityToken: 'refresh-abc', from: 'config.json auths' });
    assert.equal(await registryCredential('c.example', lookup), undefined, 'an entry with nothing usable is anonymous');
  });

  it('matches keys written as URLs with a path by their host, after an exact key', async () => {
    const lookup = setup({ auths: {
      'https://ghcr.io/v2/': { username: 'url', password: '1' },
      'http://127.0.0.1:5000/v1/': { username: 'local', password: '2' },
      'https://quay.io/': { username: 'url', password: '3' },
      'quay.io': { username: 'exact', password: '4' },
      'https://example.com/evil.io': { username: 'path', password: '5' },
    } });
    assert.equal((await registryCredential('ghcr.io', lookup))?.username, 'url');
    assert.equal((await registryCredential('127.0.0.1:5000', lookup))?.password, '2');
    assert.equal((await registryCredential('quay.io', lookup))?.username, 'exact');
    assert.equal(await registryCredential('evil.io', lookup), undefined, 'a host in the path does not count');
    assert.equal(await registryCredential('127.0.0.1', lookup), undefined, 'the port is part of the host');
  });

  it('looks Docker Hub up under https://index.docker.io/v1/ for all three of its names', async () => {
    const lookup = setup({ auths: { 'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') } } });
    for (const host of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      assert.deepEqual(await registryCredential(host, lookup), { username: 'hubuser', password: 'hubpass', from: 'config.json auths' }, host);
    }
  });

  it('an auth that is not base64 "user:password" is a UsageError that does not quote it', async () => {
    const lookup = setup({ auths: { 'ghcr.io': { auth: b64('s3cr3t-no-colon') } } });
    const error = await registryCredential('ghcr.io', lookup).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /"ghcr\.io"/);
    assert.doesNotMatch(`${error.message} ${error.hint}`, /s3cr3t|czNjcjN0/);
  });
});

describe('config.json itself', () => {
  it('missing: anonymous', async () => {
    assert.equal(await registryCredential('ghcr.io', setup()), undefined);
  });

  it('malformed: a one-line UsageError naming the file, with a hint, quoting nothing of it', async () => {
    for (const text of ['{"auths": {"ghcr.io": {"auth": "s3cr3t-json"}} s3cr3t-tail', '{"credsStore": 5}', '{"auths": []}']) {
      const lookup = setup(text);
      const error = await registryCredential('ghcr.io', lookup).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof UsageError, text);
      assert.ok(error.message.includes(path.join(lookup.configDir, 'config.json')), error.message);
      assert.doesNotMatch(error.message, /\n|s3cr3t/);
      assert.ok(error.hint);
      assert.equal(error.cause, undefined, 'a JSON.parse error may quote the file');
    }
  });
});

describe('credential helpers', () => {
  it('credHelpers[host] wins over credsStore and auths, and is sent the host on stdin', async () => {
    const lookup = setup({
      auths: { 'ghcr.io': { username: 'file', password: 'x' } },
      credsStore: 'store',
      credHelpers: { 'ghcr.io': 'good' },
    });
    assert.deepEqual(await registryCredential('ghcr.io', lookup), { username: 'helper-user', password: 'helper-pass', from: 'docker-credential-good' });
    assert.equal(sent(lookup), 'ghcr.io');
  });

  it('credsStore serves every host without a credHelper, over auths', async () => {
    const lookup = setup({
      auths: { 'quay.io': { username: 'file', password: 'x' } },
      credsStore: 'store',
      credHelpers: { 'ghcr.io': 'good' },
    });
    assert.deepEqual(await registryCredential('quay.io', lookup), { username: 'store-user', password: 'store-pass', from: 'docker-credential-store' });
    assert.equal(sent(lookup), 'quay.io');
  });

  it('Docker Hub: the helper is chosen and asked by the https://index.docker.io/v1/ key', async () => {
    for (const host of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      const lookup = setup({ credsStore: 'store', credHelpers: { 'https://index.docker.io/v1/': 'good' } });
      assert.equal((await registryCredential(host, lookup))?.from, 'docker-credential-good', host);
      assert.equal(sent(lookup), 'https://index.docker.io/v1/', host);
    }
  });

  it('Username "<token>": the Secret is an identity token', async () => {
    const lookup = setup({ credsStore: 'token' });
    assert.deepEqual(await registryCredential('127.0.0.1:5000', lookup), { identityToken: 'refresh-123', from: 'docker-credential-token' });
    assert.equal(sent(lookup), '127.0.0.1:5000');
  });

  it('"credentials not found": anonymous, without falling back to auths', async () => {
    const lookup = setup({ auths: { 'ghcr.io': { username: 'file', password: 'x' } }, credsStore: 'notfound' });
    assert.equal(await registryCredential('ghcr.io', lookup), undefined);
  });

  it('a helper not on the PATH: a UsageError naming it and the setting', async () => {
    const lookup = setup({ credHelpers: { 'ghcr.io': 'absent' } });
    const error = await registryCredential('ghcr.io', lookup).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /docker-credential-absent .*credHelpers\["ghcr\.io"\].*is not on the PATH/);
    assert.match(error.hint ?? '', /install docker-credential-absent, or remove credHelpers\["ghcr\.io"\]/);
  });

  it('garbage output or a failing helper: a UsageError quoting none of its output', async () => {
    for (const [name, expected] of [['garbage', /not credentials JSON/], ['broken', /exited with code 3/]] as const) {
      const error = await registryCredential('ghcr.io', setup({ credsStore: name })).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof UsageError, name);
      assert.match(error.message, expected);
      assert.match(error.message, new RegExp(`^credential helper docker-credential-${name} `));
      assert.doesNotMatch(`${error.message} ${error.hint} ${String(error.cause)}`, /s3cr3t|garbage s/);
    }
  });

  it('aborting the signal kills the helper and rejects with its reason', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled');
    const started = Date.now();
    const pending = registryCredential('ghcr.io', { ...setup({ credsStore: 'slow' }), signal: controller.signal });
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(pending, (error) => error === reason);
    assert.ok(Date.now() - started < 5_000);
  });
});
