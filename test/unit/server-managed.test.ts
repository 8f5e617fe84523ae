// The pieces of `docker clair server` that need no daemon: the command line, Clair's generated config, the
// secrets file, log demultiplexing and the status verdict. The daemon side is tested end to end in
// test/e2e/server.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseCommandLine, type Invocation } from '../../src/cli/app.js';
import type { ServerOptions } from '../../src/cli/options/server-options.js';
import { UsageError } from '../../src/runtime/errors.js';
import { clairConfig, connString } from '../../src/managed-clair/config.js';
import { demuxLogBuffer } from '../../src/managed-clair/daemon-ops.js';
import type { ServerStatus } from '../../src/managed-clair/status.js';
import { isLocalDaemon } from '../../src/managed-clair/connect.js';
import { statusExitCode, statusLines } from '../../src/managed-clair/run.js';
import { loadOrCreateSecrets, readSecrets, removeSecrets, secretsFile } from '../../src/managed-clair/secrets.js';
import type { Endpoint } from '../../src/docker/endpoint.js';
import { rejected } from '../helpers/command-line.js';

async function server(args: string[]): Promise<Readonly<ServerOptions>> {
  const { invocation } = await parseCommandLine(['server', ...args], {});
  assert.equal(invocation.kind, 'server');
  return (invocation as Extract<Invocation, { kind: 'server' }>).options;
}

describe('server command line', () => {
  it('up: the documented defaults', async () => {
    assert.deepEqual(await server(['up']), {
      action: 'up', port: 6060, timeoutMs: 45 * 60_000, wait: true, quiet: false,
      clairImage: 'quay.io/projectquay/clair:4.9.0', postgresImage: 'docker.io/library/postgres:15',
    });
  });

  it('up: images, port, --no-wait, --timeout', async () => {
    const o = await server(['up', '--clair-image', 'my/clair:4', '--postgres-image', 'pg:16', '--port', '16060', '--no-wait', '--timeout', '90s', '-q']);
    assert.deepEqual(o, { action: 'up', port: 16060, timeoutMs: 90_000, wait: false, quiet: true, clairImage: 'my/clair:4', postgresImage: 'pg:16' });
  });

  it('up: bad values are usage errors naming the flag', async () => {
    assert.match((await rejected(['server', 'up', '--port', '70000'])).message, /invalid --port "70000"/);
    assert.match((await rejected(['server', 'up', '--port', 'http'])).message, /invalid --port "http"/);
    assert.match((await rejected(['server', 'up', '--timeout', 'soon'])).message, /invalid --timeout "soon"/);
    assert.match((await rejected(['server', 'up', '--clair-image', 'a b'])).message, /invalid --clair-image "a b"/);
    assert.match((await rejected(['server', 'up', '--port', '1', '--port', '2'])).message, /--port was given more than once/);
  });

  it('status, logs, down', async () => {
    assert.deepEqual(await server(['status']), { action: 'status', format: 'text' });
    assert.deepEqual(await server(['status', '--format', 'json']), { action: 'status', format: 'json' });
    assert.deepEqual(await server(['logs', '-f', '--tail', '20']), { action: 'logs', follow: true, postgres: false, tail: 20 });
    assert.deepEqual(await server(['logs', '--postgres', '--tail', 'all']), { action: 'logs', follow: false, postgres: true });
    assert.deepEqual(await server(['down']), { action: 'down', volumes: false });
    assert.deepEqual(await server(['down', '-v']), { action: 'down', volumes: true });
    assert.match((await rejected(['server', 'logs', '--tail', 'x'])).message, /invalid --tail "x"/);
  });

  it('server without a command, or an unknown one, says which commands exist', async () => {
    assert.match((await rejected(['server'])).message, /requires a command: up, import, status, logs or down/);
    await rejected(['server', 'restart']);
  });
});

describe("the managed Clair's config", () => {
  const config = parse(clairConfig({ dbPassword: "p'a ss\\word", pskKey: 'c2VjcmV0LWtleQ==' })) as Record<string, any>;

  it('combo mode needs indexer, matcher and notifier blocks, all on the managed PostgreSQL', () => {
    assert.equal(config.http_listen_addr, ':6060');
    for (const block of ['indexer', 'matcher', 'notifier']) {
      assert.match(config[block].connstring, /^host=docker-clair-postgres port=5432 user=clair password='p\\'a ss\\\\word' dbname=clair sslmode=disable application_name=clair-/);
      assert.equal(config[block].migrations, true);
    }
  });

  it('PSK auth with the issuer docker-clair signs with', () => {
    assert.deepEqual(config.auth, { psk: { key: 'c2VjcmV0LWtleQ==', iss: ['docker-clair'] } });
  });

  it('libpq quoting: quotes and backslashes escaped', () => {
    assert.match(connString('plain', 'x'), /password='plain'/);
    assert.match(connString(`it's`, 'x'), /password='it\\'s'/);
  });
});

describe('the secrets file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-secrets-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('created once with mode 0600 in a 0700 directory, then reused', async () => {
    const first = await loadOrCreateSecrets(dir);
    assert.equal(first.created, true);
    assert.equal(Buffer.from(first.secrets.pskKey, 'base64').length, 32);
    assert.ok(first.secrets.dbPassword.length >= 24);
    assert.equal(statSync(secretsFile(dir)).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(secretsFile(dir))).mode & 0o777, 0o700);
    const second = await loadOrCreateSecrets(dir);
    assert.equal(second.created, false);
    assert.deepEqual(second.secrets, first.secrets);
    assert.deepEqual(JSON.parse(readFileSync(secretsFile(dir), 'utf8')), first.secrets);
  });

  it('a damaged file is an error naming it and the way out', async () => {
    writeFileSync(secretsFile(dir), '{"pskKey": 1}');
    await assert.rejects(readSecrets(dir), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /managed-clair\.json is not a docker-clair secrets file/);
      assert.match(error.hint ?? '', /docker clair server down --volumes/);
      return true;
    });
  });

  it('removed by removeSecrets; absent reads as undefined', async () => {
    await removeSecrets(dir);
    assert.equal(await readSecrets(dir), undefined);
  });
});

describe('log frames', () => {
  const frame = (stream: number, text: string) => {
    const payload = Buffer.from(text);
    const header = Buffer.alloc(8);
    header[0] = stream;
    header.writeUInt32BE(payload.length, 4);
    return Buffer.concat([header, payload]);
  };

  it('multiplexed stdout and stderr frames become one text, in order', () => {
    assert.equal(demuxLogBuffer(Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n'), frame(1, 'out 2\n')])), 'out 1\nerr 1\nout 2\n');
  });

  it('plain text (a TTY container) passes through', () => {
    assert.equal(demuxLogBuffer(Buffer.from('hello world, longer than a header\n')), 'hello world, longer than a header\n');
  });
});

describe('status verdict', () => {
  const base: ServerStatus = {
    containers: [
      { role: 'postgres', name: 'docker-clair-postgres', state: 'running', image: 'postgres:17' },
      { role: 'clair', name: 'docker-clair-server', state: 'running', image: 'quay.io/projectquay/clair:4.9.0' },
    ],
    network: true, volume: true, url: 'http://127.0.0.1:6060', clairVersion: '4.9.0', api: 'ready',
  };

  it('0 ready, 3 running with an empty database, 2 down or not answering', () => {
    assert.equal(statusExitCode({ ...base, database: { empty: false, updaters: 3, lastUpdate: '2026-11-28T10:00:00Z' } }), 0);
    assert.equal(statusExitCode({ ...base, database: { empty: true, updaters: 0 } }), 3);
    assert.equal(statusExitCode({ ...base, api: 'unreachable', apiError: 'ECONNREFUSED' }), 2);
    assert.equal(statusExitCode({ containers: [], network: false, volume: false, api: 'down' }), 2);
  });

  it('one line per part, the database state spelled out', () => {
    const lines = statusLines({ ...base, database: { empty: true, updaters: 0 } });
    assert.deepEqual(lines, [
      'PostgreSQL: running  docker-clair-postgres  postgres:17',
      'Clair:      running  docker-clair-server  quay.io/projectquay/clair:4.9.0  (version 4.9.0)',
      'Network:    docker-clair',
      'Volume:     docker-clair-postgres',
      'API:        http://127.0.0.1:6060 ready',
      'Database:   empty: the first vulnerability update has not finished (scans exit 3)',
    ]);
  });
});

describe('local daemons only', () => {
  const endpoint = (transport: Endpoint['transport']) => ({ transport }) as Endpoint;
  it('a unix socket or a loopback tcp daemon is local; ssh and remote tcp are not', () => {
    assert.equal(isLocalDaemon(endpoint({ kind: 'unix', path: '/var/run/docker.sock' })), true);
    assert.equal(isLocalDaemon(endpoint({ kind: 'tcp', hostname: '127.0.0.1', port: 2375 })), true);
    assert.equal(isLocalDaemon(endpoint({ kind: 'tcp', hostname: 'build-host', port: 2376 })), false);
    assert.equal(isLocalDaemon(endpoint({ kind: 'ssh', hostname: 'build-host' })), false);
  });
});
