// The stand-ins for the images `docker clair server up` runs (issue 7), built by scripts/test-images.sh:
// docker-clair-test/postgres (the official postgres image's interface) and docker-clair-test/clair-double
// (quay.io/projectquay/clair:4.9.0's interface), wired as the product will wire them, through dockerode: a user
// bridge network, a volume for PGDATA, the config put into the Clair container before it starts, a tmpfs at
// /var/tmp, and the API published on 127.0.0.1. `npm test` builds the images first; standalone, run
// `npm run test-images` before.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { signJwt } from '../double/jwt.js';
import { makeTar } from '../double/test-support.js';
import { testDaemonSocket, testDocker } from '../helpers/daemon.js';
import { until } from '../helpers/wait.js';

const PG_IMAGE = 'docker-clair-test/postgres:latest';
const CLAIR_IMAGE = 'docker-clair-test/clair-double:latest';
const PG_PASSWORD = `pw-${randomBytes(6).toString('hex')}`;
const PSK = randomBytes(32);
const ISSUER = 'docker-clair';

const docker = testDocker();

// Splits the multiplexed (non-TTY) stream: 8-byte frame header [stream, 0, 0, 0, size u32be], then the payload.
function demux(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const size = buf.readUInt32BE(off + 4);
    (buf[off] === 2 ? err : out).push(buf.subarray(off + 8, off + 8 + size));
    off += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

async function logsOf(container: Docker.Container): Promise<string> {
  const buf = await container.logs({ stdout: true, stderr: true, follow: false });
  const { stdout, stderr } = demux(buf);
  return stdout + stderr;
}

async function exec(container: Docker.Container, cmd: string[], env: string[] = []):
  Promise<{ code: number; stdout: string; stderr: string }> {
  const e = await container.exec({ Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
  // The output ends before the daemon records the exit code.
  const code = await until(`the exit code of ${cmd.join(' ')}`, async () => {
    const info = await e.inspect();
    return info.Running ? undefined : info.ExitCode ?? -1;
  });
  return { code, ...demux(Buffer.concat(chunks)) };
}

// node:http rather than fetch: Node 20's fetch was seen leaving a request through docker-proxy pending with no
// handle keeping the event loop alive, which cancels the test.
function httpGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${url}: no answer in 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

function configTar(yaml: string): Promise<Buffer> {
  return makeTar([{ name: 'config/', type: 'directory' }, { name: 'config/config.yaml', content: yaml }]);
}

function clairConfig(pgHost: string, opts: { notifier: boolean }): string {
  const conn = `host=${pgHost} port=5432 user=clair password=${PG_PASSWORD} dbname=clair sslmode=disable`;
  return [
    'http_listen_addr: ":6060"',
    'introspection_addr: ":8089"',
    'log_level: info',
    'indexer:',
    `  connstring: "${conn}"`,
    '  migrations: true',
    'matcher:',
    `  connstring: "${conn}"`,
    '  migrations: true',
    ...(opts.notifier ? ['notifier:', `  connstring: "${conn}"`, '  migrations: true'] : []),
    'auth:',
    '  psk:',
    `    key: "${PSK.toString('base64')}"`,
    `    iss: ["${ISSUER}"]`,
    '',
  ].join('\n');
}

function token(): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iss: ISSUER, iat: now, nbf: now - 60, exp: now + 60 }, PSK);
}

// The timeout bounds a hang of the whole suite, not its expected duration.
describe('managed Clair stand-in images (postgres + clair-double)', { timeout: 600_000 }, () => {
  const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const netName = `docker-clair-test-net-${id}`;
  const volName = `docker-clair-test-pgdata-${id}`;
  const pgName = `docker-clair-test-postgres-${id}`;
  const containers: Docker.Container[] = [];
  let network: Docker.Network | undefined;
  let volume: Docker.Volume | undefined;
  let pg: Docker.Container;
  let clair: Docker.Container;
  let apiUrl = '';

  async function createClair(name: string, yaml: string, env: string[]): Promise<Docker.Container> {
    const c = await docker.createContainer({
      name,
      Image: CLAIR_IMAGE,
      Env: env,
      ExposedPorts: { '6060/tcp': {} },
      HostConfig: {
        NetworkMode: netName,
        PortBindings: { '6060/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
        Tmpfs: { '/var/tmp': 'rw,nosuid,nodev,size=64m' },
      },
    });
    containers.push(c);
    await c.putArchive(await configTar(yaml), { path: '/' });
    return c;
  }

  before(async () => {
    await docker.ping().catch((err: unknown) => {
      throw new Error(`no Docker daemon at ${testDaemonSocket()} (scripts/docker-daemon.sh start): ${String(err)}`);
    });
    for (const image of [PG_IMAGE, CLAIR_IMAGE]) {
      await docker.getImage(image).inspect().catch((err: unknown) => {
        throw new Error(`${image} is missing; run \`npm run test-images\`: ${String(err)}`);
      });
    }
    network = await docker.createNetwork({ Name: netName, Driver: 'bridge', CheckDuplicate: true });
    await docker.createVolume({ Name: volName });
    volume = docker.getVolume(volName);
    pg = await docker.createContainer({
      name: pgName,
      Image: PG_IMAGE,
      Env: [`POSTGRES_PASSWORD=${PG_PASSWORD}`, 'POSTGRES_USER=clair', 'POSTGRES_DB=clair'],
      HostConfig: { NetworkMode: netName, Mounts: [{ Type: 'volume', Source: volName, Target: '/var/lib/postgresql/data' }] },
    });
    containers.push(pg);
    // The first vulnerability update finishes when the test sends SIGUSR2, not after a delay it would race.
    clair = await createClair(`docker-clair-test-clair-${id}`, clairConfig(pgName, { notifier: true }),
      ['CLAIR_DOUBLE_UPDATE_DELAY=signal']);
  });

  after(async () => {
    for (const c of containers.reverse()) {
      await c.remove({ force: true, v: true }).catch(() => undefined);
    }
    await network?.remove().catch(() => undefined);
    await volume?.remove({ force: true }).catch(() => undefined);
  });

  it('clair-double waits for the database: it retries while postgres is not up yet', async () => {
    await clair.start();
    const logs = await until('a "database not reachable" log line', async () => {
      const l = await logsOf(clair);
      return l.includes('database not reachable') ? l : undefined;
    });
    assert.match(logs, new RegExp(`database not reachable: dial tcp ${pgName}:5432: .*; retrying`));
    assert.equal((await clair.inspect()).State.Running, true, logs);
  });

  it('postgres initialises an empty PGDATA and accepts password logins over TCP', async () => {
    await pg.start();
    await until('pg_isready -h 127.0.0.1', async () => {
      const r = await exec(pg, ['pg_isready', '-h', '127.0.0.1', '-p', '5432']);
      return r.code === 0 ? true : undefined;
    });
    const ok = await exec(pg, ['psql', '-h', '127.0.0.1', '-U', 'clair', '-d', 'clair', '-Atc',
      'SELECT current_user || \' \' || current_database() || \' \' || (40 + 2)'], [`PGPASSWORD=${PG_PASSWORD}`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'clair clair 42');
    const bad = await exec(pg, ['psql', '-h', '127.0.0.1', '-U', 'clair', '-d', 'clair', '-Atc', 'SELECT 1'],
      ['PGPASSWORD=wrong']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /password authentication failed/);
    const logs = await logsOf(pg);
    assert.match(logs, /database system is ready to accept connections/);
  });

  it('clair-double serves the v4 API on the published port, with PSK auth', async () => {
    const info = await clair.inspect();
    const binding = info.NetworkSettings.Ports['6060/tcp']?.[0];
    assert.ok(binding !== undefined, JSON.stringify(info.NetworkSettings.Ports));
    apiUrl = `http://127.0.0.1:${binding.HostPort}`;
    const state = await until('index_state with a token', async () => {
      const r = await httpGet(`${apiUrl}/indexer/api/v1/index_state`, { Authorization: `Bearer ${token()}` });
      return r.status === 200 ? (JSON.parse(r.body) as { state: string }) : undefined;
    });
    assert.match(state.state, /^[0-9a-f]{32}$/);
    const anon = await httpGet(`${apiUrl}/indexer/api/v1/index_state`);
    assert.equal(anon.status, 401);
    assert.equal(anon.body, '');
    const logs = await logsOf(clair);
    assert.match(logs, /database reachable at /);
    assert.match(logs, /GET \/indexer\/api\/v1\/index_state 200/);
    assert.doesNotMatch(logs, /O_TMPFILE/, 'the tmpfs at /var/tmp supports O_TMPFILE');
    // Introspection on :8089 inside the container (not published): /healthz and /readyz answer 200.
    const probe = await exec(clair, ['/usr/local/lib/clair-double/node', '-e',
      'Promise.all(["healthz","readyz"].map((p) => fetch("http://127.0.0.1:8089/" + p).then((r) => r.status)))' +
      '.then((s) => { console.log(s.join(" ")); })']);
    assert.equal(probe.stdout.trim(), '200 200', probe.stderr);
  });

  it('the vulnerability database starts empty and is loaded when the first update finishes', async () => {
    const get = async (): Promise<{ status: number; body: Record<string, { date: string }[]> }> => {
      const r = await httpGet(`${apiUrl}/matcher/api/v1/internal/update_operation?kind=vulnerability&latest=true`,
        { Authorization: `Bearer ${token()}` });
      return { status: r.status, body: JSON.parse(r.body) as Record<string, { date: string }[]> };
    };
    const first = await get();
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, {}, 'no update has run yet');
    const empty = await httpGet(`${apiUrl}/matcher/api/v1/vulnerability_report/sha256:${'a'.repeat(64)}`,
      { Authorization: `Bearer ${token()}` });
    assert.equal(empty.status, 202);
    const signalled = Date.now();
    await clair.kill({ signal: 'SIGUSR2' });
    const loaded = await until('a non-empty update_operation', async () => {
      const r = await get();
      return Object.keys(r.body).length > 0 ? r.body : undefined;
    });
    const op = loaded['debian/updater']?.[0];
    assert.ok(op !== undefined, JSON.stringify(loaded));
    // Dated when the signal was handled (to the second, as Go's RFC 3339).
    const date = Date.parse(op.date);
    assert.ok(date >= Math.floor(signalled / 1000) * 1000 && date <= Date.now(), `update dated ${op.date}`);
    assert.match(await logsOf(clair), /updater: first update finished/);
  });

  it('a config without the notifier block makes clair-double exit 1 with a message', async () => {
    const bad = await createClair(`docker-clair-test-clair-bad-${id}`, clairConfig(pgName, { notifier: false }), []);
    await bad.start();
    const waited = (await bad.wait()) as { StatusCode: number };
    const logs = await logsOf(bad);
    assert.equal(waited.StatusCode, 1, logs);
    assert.match(logs, /combo mode needs the indexer, matcher and notifier config blocks; .* lacks notifier/);
  });

  it('docker stop ends both containers on SIGTERM: both exit 0, neither is killed', async () => {
    for (const [c, name] of [[clair, 'clair-double'], [pg, 'postgres']] as const) {
      // A grace period no shutdown needs: a process that ignored SIGTERM would be killed (137), not one that is slow.
      await c.stop({ t: 120 });
      const state = (await c.inspect()).State;
      assert.equal(state.ExitCode, 0, `${name}: ${await logsOf(c)}`);
    }
  });
});
