// End-to-end checks of the packaged executable (dist/docker-clair, built by `npm run package`):
// it must run with no Node installed, answer the docker CLI's metadata call, and work as a plugin
// of the real docker CLI. None of these tests needs a docker daemon.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BINARY = path.join(ROOT, 'dist', 'docker-clair');
const VERSION: string = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
const TIMEOUT = 120_000;

let scratch = '';

before(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-e2e-'));
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function requireBinary(): void {
  assert.ok(existsSync(BINARY), `${BINARY} is missing: run \`npm run package\` first`);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

function describe(r: SpawnSyncReturns<string>): string {
  return `exit ${r.status ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

function freshDir(name: string): string {
  return mkdtempSync(path.join(scratch, `${name}-`));
}

test('docker-cli-plugin-metadata answers with an empty environment', { timeout: TIMEOUT }, () => {
  requireBinary();
  const r = run(BINARY, ['docker-cli-plugin-metadata'], {});
  assert.equal(r.status, 0, describe(r));
  assert.equal(r.stderr, '', 'the metadata call must not write to stderr');
  const meta = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(meta.SchemaVersion, '0.1.0');
  assert.equal(typeof meta.Vendor, 'string');
  assert.notEqual(meta.Vendor, '');
  assert.equal(meta.Version, VERSION);
});

test('runs without node on PATH: version and --help', { timeout: TIMEOUT }, () => {
  requireBinary();
  const emptyBin = freshDir('empty-path');
  const env = { PATH: emptyBin };
  // The premise: nothing called `node` can be found with this PATH.
  const probe = spawnSync('node', ['-e', '0'], { env });
  assert.equal((probe.error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT', 'node must not be on PATH');

  const version = run(BINARY, ['version'], env);
  assert.equal(version.status, 0, describe(version));
  assert.ok(version.stdout.includes(VERSION), `version output lacks ${VERSION}:\n${describe(version)}`);

  const help = run(BINARY, ['--help'], env);
  assert.equal(help.status, 0, describe(help));
  assert.match(help.stdout, /\bscan\b/, `--help does not list scan:\n${describe(help)}`);
});

test('V8 takes the code cache the executable carries for its bundle', { timeout: TIMEOUT }, () => {
  requireBinary();
  // With this variable the launcher exits 70 if V8 rejected the cache (made by another runtime, other flags or for
  // other source), which would otherwise only make every command slower.
  const r = run(BINARY, ['version'], { DOCKER_CLAIR_CHECK_CODE_CACHE: '1' });
  assert.equal(r.status, 0, describe(r));
  assert.equal(r.stderr, '', describe(r));
});

test('installs as a docker CLI plugin (temp DOCKER_CONFIG)', { timeout: TIMEOUT }, () => {
  requireBinary();
  const docker = spawnSync('docker', ['--version'], { encoding: 'utf8' });
  assert.equal(docker.error, undefined, 'the docker CLI is needed: .ci/run installs docker.io');
  const config = freshDir('docker-config');
  const install = run(process.execPath, [path.join(ROOT, 'scripts', 'install-plugin.mjs')], {
    ...process.env,
    DOCKER_CONFIG: config,
  });
  assert.equal(install.status, 0, describe(install));
  const installed = path.join(config, 'cli-plugins', 'docker-clair');
  assert.ok(existsSync(installed), `install-plugin did not create ${installed}:\n${describe(install)}`);
  assert.equal(statSync(installed).mode & 0o777, 0o755);
  assert.match(install.stdout, /docker clair --help/);

  // Make sure the docker CLI looks only at this config dir (no inherited DOCKER_CONFIG).
  const env = { ...process.env };
  delete env.DOCKER_CONFIG;

  const help = run('docker', ['--config', config, '--help'], env);
  assert.equal(help.status, 0, describe(help));
  assert.match(help.stdout, /^\s+clair\*?\s/m, `docker --help does not list the clair plugin:\n${describe(help)}`);

  const pluginHelp = run('docker', ['--config', config, 'clair', '--help'], env);
  assert.equal(pluginHelp.status, 0, describe(pluginHelp));
  assert.match(pluginHelp.stdout, /\bscan\b/, `docker clair --help does not list scan:\n${describe(pluginHelp)}`);

  const version = run('docker', ['--config', config, 'clair', 'version'], env);
  assert.equal(version.status, 0, describe(version));
  assert.ok(version.stdout.includes(VERSION), `docker clair version lacks ${VERSION}:\n${describe(version)}`);
});

test('through the real docker CLI: global flags reach the plugin, errors are one line with exit 2', { timeout: TIMEOUT }, () => {
  requireBinary();
  const config = freshDir('docker-config-scan');
  const install = run(process.execPath, [path.join(ROOT, 'scripts', 'install-plugin.mjs')], { ...process.env, DOCKER_CONFIG: config });
  assert.equal(install.status, 0, describe(install));
  const env = { ...process.env };
  delete env.DOCKER_CONFIG;
  const daemonHost = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';

  // -H given to docker, before `clair`, must be the endpoint the plugin uses.
  const missing = path.join(scratch, 'no-daemon.sock');
  const unreachable = run('docker', ['--config', config, '-H', `unix://${missing}`, 'clair', 'scan', '--clair', 'http://127.0.0.1:9', 'anything'], env);
  assert.equal(unreachable.status, 2, describe(unreachable));
  assert.equal(unreachable.stdout, '');
  const lines = unreachable.stderr.trim().split('\n');
  assert.equal(lines.length, 1, describe(unreachable));
  assert.match(lines[0] ?? '', new RegExp(`^docker-clair: cannot reach the Docker daemon at unix://${missing} \\(ENOENT\\)`));

  // An image the daemon does not have.
  const unknown = run('docker', ['--config', config, '-H', daemonHost, 'clair', 'scan', '--clair', 'http://127.0.0.1:9', 'docker-clair-test/not-there:0'], env);
  assert.equal(unknown.status, 2, describe(unknown));
  assert.match(unknown.stderr, /^docker-clair: image "docker-clair-test\/not-there:0" not found in the Docker daemon at /);

  // A usage error is one line too, with no usage text dumped into CI logs.
  const usage = run('docker', ['--config', config, 'clair', 'scan', '--fail-on', 'severe', 'x'], env);
  assert.equal(usage.status, 2, describe(usage));
  assert.deepEqual(usage.stderr.trim().split('\n').length, 1, describe(usage));
  assert.match(usage.stderr, /invalid --fail-on "severe"/);
});
