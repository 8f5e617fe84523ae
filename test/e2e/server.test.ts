// End to end: the packaged plugin, installed into a temporary DOCKER_CONFIG and run by the real docker
// CLI, brings up the managed Clair on the real test daemon from the stand-in images (`npm run test-images`:
// docker-clair-test/postgres, a real PostgreSQL, and docker-clair-test/clair-double, the Clair double in a
// container). The double fetches every layer from the plugin's layer server across the managed bridge network.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dockerCli, TEST_DOCKER_HOST, TEST_IMAGES } from '../helpers/daemon.js';
import { engineCli, imageFacts, testEngines } from '../helpers/engines.js';
import { assertValidReport } from '../helpers/report-schema.js';
import { holdManagedServer } from '../helpers/managed-lock.js';
import { leftovers, NAMES, removeEverything } from '../helpers/managed-objects.js';
import { connectOutcome, freePort } from '../helpers/ports.js';
import { registryAvailable, startRegistry, type Registry } from '../helpers/registry.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BINARY = path.join(ROOT, 'dist', 'docker-clair');
const CLAIR_IMAGE = 'docker-clair-test/clair-double:latest';
const POSTGRES_IMAGE = 'docker-clair-test/postgres:latest';
const HANG_IMAGE = 'docker-clair-test/clair-hang:latest';
const TIMEOUT = 240_000;

let scratch = '';
let config = '';
let release: (() => void) | undefined;

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(DOCKER_|CLAIR_)/.test(k)) delete env[k];
  env.NO_COLOR = '1';
  return env;
}

/** `docker --config <tmp> -H <test daemon> clair ARGS`, asynchronously, killed if it outlives `deadlineMs`. */
function dockerClair(args: string[], options: { host?: string; deadlineMs?: number } = {}): Promise<Finished> {
  return startDockerClair(args, options).done;
}

interface Started {
  pid: number;
  done: Promise<Finished>;
  /** Resolves once `pattern` appears on stdout or stderr. */
  seen(pattern: RegExp): Promise<void>;
}

function startDockerClair(args: string[], options: { host?: string; deadlineMs?: number } = {}): Started {
  const child = spawn('docker', ['--config', config, '-H', options.host ?? TEST_DOCKER_HOST, 'clair', ...args], {
    env: childEnv(), cwd: scratch, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const watchdog = setTimeout(() => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch { /* gone */ }
  }, options.deadlineMs ?? 180_000);
  const done = new Promise<Finished>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(watchdog);
      resolve({ code, stdout, stderr });
    });
  });
  const seen = (pattern: RegExp) => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (pattern.test(stdout + stderr)) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(check, 50);
    void done.then(() => {
      clearInterval(timer);
      if (pattern.test(stdout + stderr)) resolve();
      else reject(new Error(`exited before printing ${pattern}:\n${stdout}${stderr}`));
    });
  });
  return { pid: child.pid ?? 0, done, seen };
}

const up = (...extra: string[]) => dockerClair(['server', 'up', '--clair-image', CLAIR_IMAGE, '--postgres-image', POSTGRES_IMAGE, ...extra]);

before(async () => {
  assert.ok(existsSync(BINARY), `${BINARY} is missing: run \`npm run package\` first (npm test does)`);
  for (const image of [CLAIR_IMAGE, POSTGRES_IMAGE]) {
    assert.ok(dockerCli(['image', 'ls', '-q', image]), `${image} is missing: run \`npm run test-images\` (npm test does)`);
  }
  scratch = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-server-e2e-'));
  config = path.join(scratch, 'docker-config');
  const install = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'install-plugin.mjs')], {
    env: { ...process.env, DOCKER_CONFIG: config }, encoding: 'utf8', timeout: 120_000,
  });
  assert.ok(install !== undefined);
  // server-real.test.ts brings up the same names on the same daemon: one file at a time.
  release = await holdManagedServer();
  // A previous run that died half-way must not make this one pass or fail.
  removeEverything();
}, { timeout: 1_800_000 });

after(() => {
  removeEverything();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  release?.();
});

describe('managed Clair: up, status, scan without --clair, logs, down', { timeout: TIMEOUT }, () => {
  let port = 0;

  it('server up: creates PostgreSQL and Clair, waits for the first update, stores the PSK with mode 0600', async () => {
    port = await freePort();
    const run = await up('--port', String(port));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^Clair started at http://127\\.0\\.0\\.1:${port}; vulnerability database loaded \\(1 updater\\(s\\), last update \\d{4}-`));
    assert.match(run.stderr, /PostgreSQL accepts connections/);
    assert.match(run.stderr, /waiting for Clair's first vulnerability update/);
    const secrets = path.join(config, 'docker-clair', 'managed-clair.json');
    assert.equal(statSync(secrets).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(secrets)).mode & 0o777, 0o700);
    // Published on loopback only, with the tmpfs Clair v4.9.0 needs for its fetches.
    const bindings = JSON.parse(dockerCli(['inspect', '-f', '{{json .HostConfig.PortBindings}}', NAMES.clair])) as Record<string, { HostIp: string; HostPort: string }[]>;
    assert.deepEqual(bindings['6060/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(port) }]);
    assert.match(dockerCli(['inspect', '-f', '{{json .HostConfig.Tmpfs}}', NAMES.clair]), /"\/var\/tmp"/);
    // PostgreSQL really serves Clair's database with the stored password.
    const { dbPassword } = JSON.parse(readFileSync(secrets, 'utf8')) as { dbPassword: string };
    assert.equal(dockerCli(['exec', '-e', `PGPASSWORD=${dbPassword}`, NAMES.postgres, 'psql', '-h', '127.0.0.1', '-U', 'clair', '-d', 'clair', '-tAc', 'select 1']), '1');
  });

  it('a second up reports what runs and changes nothing', async () => {
    const id = dockerCli(['inspect', '-f', '{{.Id}}', NAMES.clair]);
    const run = await up('--port', String(port));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Clair already running at/);
    assert.equal(dockerCli(['inspect', '-f', '{{.Id}}', NAMES.clair]), id);
    const other = await up('--port', String(port + 1));
    assert.equal(other.code, 2);
    assert.match(other.stderr, /already exists with image .* on port \d+; hint: run "docker clair server down" first/);
  });

  it('stopped containers are started again by up', async () => {
    dockerCli(['stop', '-t', '2', NAMES.clair, NAMES.postgres]);
    const run = await up('--port', String(port));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Clair started again at/);
    assert.equal(dockerCli(['inspect', '-f', '{{.State.Running}}', NAMES.postgres]), 'true');
  });

  it('server status: exit 0 when ready, text and JSON', async () => {
    const text = await dockerClair(['server', 'status']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Clair: +running +docker-clair-server +docker-clair-test\/clair-double:latest +\(version 4\.9\.0-double\)$/m);
    assert.match(text.stdout, /^PostgreSQL: +running +docker-clair-postgres/m);
    assert.match(text.stdout, new RegExp(`^API: +http://127\\.0\\.0\\.1:${port} ready$`, 'm'));
    assert.match(text.stdout, /^Database: +1 updater\(s\), last update \d{4}-/m);
    const json = await dockerClair(['server', 'status', '--format', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const status = JSON.parse(json.stdout) as { ready: boolean; api: string; database: { empty: boolean } };
    assert.equal(status.ready, true);
    assert.equal(status.database.empty, false);
  });

  it('scan without --clair uses the managed Clair: every layer fetched across the bridge network, fixture findings', async () => {
    const run = await dockerClair(['-D', 'scan', '--format', 'json', '--no-progress', TEST_IMAGES.multilayer]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /layer server on http:\/\/(\d+\.\d+\.\d+\.\d+):\d+ \(the managed Clair's network gateway\)/);
    const gateway = /layer server on http:\/\/(\d+\.\d+\.\d+\.\d+):/.exec(run.stderr)?.[1];
    assert.equal(gateway, dockerCli(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', NAMES.network]));
    assert.match(run.stderr, /preflight: Clair fetched a probe layer/);
    const report = JSON.parse(run.stdout) as { images: { verdict: string; vulnerabilities: { id: string; package: { name: string } }[] }[] };
    assertValidReport(run.stdout);
    assert.equal(report.images[0]?.verdict, 'fail');
    const ids = new Set(report.images[0]?.vulnerabilities.map((v) => `${v.id} ${v.package.name}`));
    assert.ok(ids.has('CVE-2099-0013 docker-clair-fixture'), 'the package installed by the multilayer image');
    assert.ok(ids.has('CVE-2099-0001 libc6'), 'a package of the Debian base layer');
    // Clair's side of it: one index request per layer and probe, each answered after fetching.
    const logs = await dockerClair(['server', 'logs']);
    assert.equal(logs.code, 0, logs.stderr);
    const layers = JSON.parse(dockerCli(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', TEST_IMAGES.multilayer])) as string[];
    assert.ok(layers.length >= 4);
    const posts = (logs.stdout + logs.stderr).match(/POST \/indexer\/api\/v1\/index_report 201/g) ?? [];
    assert.equal(posts.length, layers.length + 2, `a probe, one manifest per layer and the image:\n${logs.stdout}${logs.stderr}`);
  });

  it('scan: a layer address Clair cannot reach fails in the preflight, before any layer is offered, naming the address', async () => {
    const run = await dockerClair(['scan', '--layer-address', '127.0.0.1', TEST_IMAGES.debian12]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^docker-clair: Clair cannot fetch layers from the layer server at http:\/\/127\.0\.0\.1:\d+ \(a probe layer failed.*connection refused.*; hint: set --layer-address/m);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  });

  it('server logs --tail and --postgres', async () => {
    const clair = await dockerClair(['server', 'logs', '--tail', '2']);
    assert.equal(clair.code, 0, clair.stderr);
    assert.equal((clair.stdout + clair.stderr).trim().split('\n').length, 2);
    const postgres = await dockerClair(['server', 'logs', '--postgres']);
    assert.equal(postgres.code, 0, postgres.stderr);
    assert.match(postgres.stdout + postgres.stderr, /database system is ready to accept connections/);
  });

  it('server logs -f follows until Ctrl-C', async () => {
    const follow = startDockerClair(['server', 'logs', '-f']);
    await follow.seen(/update_operation/);
    // A request made now, with a path never seen before, shows up in the followed logs.
    const marker = `sha256:${randomBytes(32).toString('hex')}`;
    const response = await fetch(`http://127.0.0.1:${port}/indexer/api/v1/index_report/${marker}`);
    assert.equal(response.status, 401, 'no PSK token');
    await follow.seen(new RegExp(marker));
    process.kill(-follow.pid, 'SIGINT');
    const run = await follow.done;
    assert.equal(run.code, 130, run.stderr);
  });

  it('server down: no container, network or listener left; the volume kept; status exit 2', async () => {
    const run = await dockerClair(['server', 'down']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^removed container docker-clair-server, container docker-clair-postgres, network docker-clair \(volume docker-clair-postgres kept/);
    assert.deepEqual(leftovers(), [`volume ${NAMES.volume}`]);
    assert.equal(await connectOutcome(port), 'ECONNREFUSED', `nothing listens on 127.0.0.1:${port}`);
    const status = await dockerClair(['server', 'status']);
    assert.equal(status.code, 2);
    assert.match(status.stdout, /^Clair: +absent/m);
    const scan = await dockerClair(['scan', TEST_IMAGES.debian12]);
    assert.equal(scan.code, 2);
    assert.match(scan.stderr, /^docker-clair: no Clair to scan with: no --clair or CLAIR_ADDR, and the managed Clair is not running; hint: start a local Clair with "docker clair server up"/);
  });

  it('server down --volumes: the database volume and the stored secrets go too', async () => {
    const run = await dockerClair(['server', 'down', '--volumes']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /removed volume docker-clair-postgres/);
    assert.deepEqual(leftovers(), []);
    assert.equal(existsSync(path.join(config, 'docker-clair', 'managed-clair.json')), false);
    const again = await dockerClair(['server', 'down']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /^nothing to remove/);
  });
});

// The managed Clair's scan on the other engines: their exports (OCI layout; the containerd store) reach the double
// in its container across each engine's own bridge network.
for (const engine of testEngines().filter((e) => e.host !== TEST_DOCKER_HOST)) {
  describe(`managed Clair on ${engine.label}: up, scan without --clair, down`, { timeout: TIMEOUT }, () => {
    const on = { host: engine.host };
    after(() => removeEverything(engine.host));

    it('up, then a scan fetches every layer across the bridge network and finds the fixture findings; down --volumes', async () => {
      const port = await freePort();
      const started = await dockerClair(['server', 'up', '--clair-image', CLAIR_IMAGE, '--postgres-image', POSTGRES_IMAGE, '--port', String(port)], on);
      assert.equal(started.code, 0, started.stderr);
      const run = await dockerClair(['-D', 'scan', '--format', 'json', '--no-progress', TEST_IMAGES.multilayer], on);
      assert.equal(run.code, 1, run.stderr);
      const gateway = /layer server on http:\/\/(\d+\.\d+\.\d+\.\d+):\d+ \(the managed Clair's network gateway\)/.exec(run.stderr)?.[1];
      assert.equal(gateway, engineCli(engine, ['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', NAMES.network]));
      assertValidReport(run.stdout);
      const report = JSON.parse(run.stdout) as { images: { image: { id: string }; vulnerabilities: { id: string; package: { name: string } }[] }[] };
      assert.equal(report.images[0]?.image.id, imageFacts(engine, TEST_IMAGES.multilayer).id);
      const ids = new Set(report.images[0]?.vulnerabilities.map((v) => `${v.id} ${v.package.name}`));
      assert.ok(ids.has('CVE-2099-0013 docker-clair-fixture'), [...ids].join(', '));
      assert.ok(ids.has('CVE-2099-0001 libc6'), [...ids].join(', '));
      const logs = await dockerClair(['server', 'logs'], on);
      const posts = (logs.stdout + logs.stderr).match(/POST \/indexer\/api\/v1\/index_report 201/g) ?? [];
      assert.equal(posts.length, imageFacts(engine, TEST_IMAGES.multilayer).diffIds.length + 2, 'a probe, one manifest per layer and the image');
      const down = await dockerClair(['server', 'down', '--volumes'], on);
      assert.equal(down.code, 0, down.stderr);
      assert.equal(await connectOutcome(port), 'ECONNREFUSED', `nothing listens on 127.0.0.1:${port}`);
      assert.equal(engineCli(engine, ['ps', '-a', '-q', '--filter', `name=${NAMES.clair}`]), '');
    });
  });
}

describe('managed Clair: bad inputs leave nothing behind', { timeout: TIMEOUT }, () => {
  it('an image the daemon does not have and cannot pull: exit 2 naming the image', async () => {
    const run = await dockerClair(['server', 'up', '--clair-image', 'docker-clair-test/no-such-clair:1', '--postgres-image', POSTGRES_IMAGE, '--port', String(await freePort())]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^docker-clair: cannot pull image docker-clair-test\/no-such-clair:1: .*; hint: check the name, or load it into the daemon \(docker load\)/m);
    assert.deepEqual(leftovers(), []);
  });

  it('the port is taken: exit 2 naming the port', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const run = await up('--port', String(port));
      assert.equal(run.code, 2);
      assert.match(run.stderr, new RegExp(`^docker-clair: port ${port} on 127\\.0\\.0\\.1 is already in use.*; hint: pass --port`, 'm'));
      assert.deepEqual(leftovers(), []);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('the daemon is down: exit 2 naming the endpoint', async () => {
    const socket = path.join(scratch, 'no-daemon.sock');
    const run = await dockerClair(['server', 'up'], { host: `unix://${socket}` });
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`docker-clair: cannot reach the Docker daemon at unix://${socket.replace(/[.]/g, '\\.')}`));
  });

  it('Clair never ready: the timeout message carries its last log lines; nothing left', async () => {
    // An "image" that runs but never serves Clair's API.
    execFileSync('docker', ['-H', TEST_DOCKER_HOST, 'build', '-q', '--network', 'none', '-t', HANG_IMAGE, '-'], {
      input: `FROM ${TEST_IMAGES.debian12}\nENTRYPOINT ["/bin/sh", "-c", "echo clair-hang: starting, never listening; exec sleep 3600"]\n`,
      encoding: 'utf8',
    });
    const run = await dockerClair(['server', 'up', '--clair-image', HANG_IMAGE, '--postgres-image', POSTGRES_IMAGE,
      '--port', String(await freePort()), '--timeout', '10s']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^docker-clair: Clair's API did not answer \(.*\) within --timeout 10s \(container docker-clair-server\); its last log lines: clair-hang: starting, never listening; hint: /m);
    assert.deepEqual(leftovers(), []);
  });

  it('Clair whose container exits: its exit code and last log lines', async () => {
    // The PostgreSQL image as "Clair": it exits at once, complaining that POSTGRES_PASSWORD is not set.
    const run = await dockerClair(['server', 'up', '--clair-image', POSTGRES_IMAGE, '--postgres-image', POSTGRES_IMAGE,
      '--port', String(await freePort()), '--timeout', '60s']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^docker-clair: container docker-clair-server stopped \(exit code 1\); its last log lines: .*POSTGRES_PASSWORD/m);
    assert.deepEqual(leftovers(), []);
  });
});

describe('managed Clair before its first vulnerability update: never "clean"', { timeout: TIMEOUT }, () => {
  const SLOW_IMAGE = 'docker-clair-test/clair-slow-update:latest';
  let port = 0;

  before(async () => {
    // The double whose first update takes an hour, as a real Clair's can take half of one.
    execFileSync('docker', ['-H', TEST_DOCKER_HOST, 'build', '-q', '--network', 'none', '-t', SLOW_IMAGE, '-'], {
      input: `FROM ${CLAIR_IMAGE}\nENV CLAIR_DOUBLE_UPDATE_DELAY=3600\n`, encoding: 'utf8',
    });
    port = await freePort();
  });

  after(() => removeEverything());

  it('up --no-wait returns once the API answers, saying scans exit 3 until the update finishes', async () => {
    const run = await dockerClair(['server', 'up', '--clair-image', SLOW_IMAGE, '--postgres-image', POSTGRES_IMAGE, '--port', String(port), '--no-wait']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Clair started at http:\/\/127\.0\.0\.1:\d+; not waiting for the first vulnerability update \(--no-wait\): scans exit 3 until it finishes$/m);
  });

  it('status: exit 3, the database empty', async () => {
    const run = await dockerClair(['server', 'status']);
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stdout, /^Database: +empty: the first vulnerability update has not finished \(scans exit 3\)$/m);
  });

  it('scan: exit 3, with the reason, never a clean verdict', async () => {
    const run = await dockerClair(['scan', '--format', 'json', '--no-progress', TEST_IMAGES.debian12]);
    assert.equal(run.code, 3, run.stderr);
    const report = JSON.parse(run.stdout) as { images: { verdict: string; reason?: string }[] };
    assert.notEqual(report.images[0]?.verdict, 'pass');
    assert.match(JSON.stringify(report.images[0]), /vulnerability database is empty/);
  });

  it('up (waiting) gives up after --timeout with exit 3 and leaves Clair running', async () => {
    const run = await dockerClair(['server', 'up', '--clair-image', SLOW_IMAGE, '--postgres-image', POSTGRES_IMAGE, '--port', String(port), '--timeout', '4s']);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /^docker-clair: Clair is running but its first vulnerability update did not finish within --timeout 4s.*; hint: scans report exit 3 until it finishes/m);
    assert.equal(dockerCli(['inspect', '-f', '{{.State.Running}}', NAMES.clair]), 'true');
  });

  it('Ctrl-C while up waits for the first update: exit 130, the new Clair keeps running', async () => {
    const down = await dockerClair(['server', 'down']);
    assert.equal(down.code, 0, down.stderr);
    const waiting = startDockerClair(['server', 'up', '--clair-image', SLOW_IMAGE, '--postgres-image', POSTGRES_IMAGE, '--port', String(port)]);
    await waiting.seen(/waiting for Clair's first vulnerability update/);
    process.kill(-waiting.pid, 'SIGINT');
    const run = await waiting.done;
    assert.equal(run.code, 130, run.stderr);
    assert.equal(dockerCli(['inspect', '-f', '{{.State.Running}}', NAMES.clair]), 'true');
    const status = await dockerClair(['server', 'status']);
    assert.equal(status.code, 3, status.stdout);
  });
});

describe('managed Clair: a missing image is pulled through the daemon', { timeout: TIMEOUT }, () => {
  let registry: Registry;
  let pulled = '';

  before(async () => {
    assert.ok(registryAvailable(), 'docker-registry is needed for the pull test: apt-get install docker-registry (.ci/run installs it)');
    registry = await startRegistry();
    pulled = `${registry.host}/docker-clair-test/clair-double:pull-e2e`;
    dockerCli(['tag', CLAIR_IMAGE, pulled]);
    dockerCli(['push', pulled]);
    dockerCli(['rmi', pulled]); // the daemon no longer has it under this name: up must pull it
  });

  after(async () => {
    removeEverything();
    spawnSync('docker', ['-H', TEST_DOCKER_HOST, 'rmi', pulled], { stdio: 'ignore' });
    await registry?.close();
  });

  it('up pulls the Clair image from its registry, with progress, then runs it', async () => {
    assert.equal(dockerCli(['image', 'ls', '-q', pulled]), '', 'not on the daemon before up');
    const run = await dockerClair(['server', 'up', '--clair-image', pulled, '--postgres-image', POSTGRES_IMAGE, '--port', String(await freePort())]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`^pulling ${pulled.replace(/[.]/g, '\\.')}$`, 'm'));
    assert.match(run.stderr, new RegExp(`^pulled ${pulled.replace(/[.]/g, '\\.')}$`, 'm'));
    assert.doesNotMatch(run.stderr, /pulling .*postgres/, 'the PostgreSQL image is on the daemon: not pulled');
    assert.notEqual(dockerCli(['image', 'ls', '-q', pulled]), '');
    assert.equal(dockerCli(['inspect', '-f', '{{.Config.Image}}', NAMES.clair]), pulled);
    const down = await dockerClair(['server', 'down', '--volumes']);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(leftovers(), []);
  });
});
