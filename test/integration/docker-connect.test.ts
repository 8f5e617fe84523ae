// Reaching the real test daemon through every transport the endpoint resolver produces: the unix
// socket, TLS over tcp (a TLS terminator in front of the real socket), and ssh (the system ssh client
// replaced by a stand-in that runs `docker system dial-stdio` locally, as sshd would remotely).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../src/cli/run.js';
import { createDockerClient } from '../../src/docker/client.js';
import { parseHost, resolveEndpoint } from '../../src/docker/endpoint.js';
import { DockerImageSource } from '../../src/source/daemon.js';
import { DaemonUnreachableError } from '../../src/runtime/errors.js';
import { dockerCli, TEST_DOCKER_HOST, TEST_IMAGES } from '../helpers/daemon.js';
import { Capture } from '../helpers/streams.js';

const socket = parseHost(TEST_DOCKER_HOST, 'test');
assert.equal(socket.kind, 'unix', 'these tests expect the test daemon on a unix socket');
const socketPath = (socket as { path: string }).path;
const work = mkdtempSync(join(tmpdir(), 'dc-connect-'));
const home = join(work, 'home');
after(() => rmSync(work, { recursive: true, force: true }));

async function sourceFor(env: Record<string, string>, hosts: string[] = []) {
  const endpoint = await resolveEndpoint({ hosts }, env, home);
  return new DockerImageSource(await createDockerClient(endpoint), endpoint);
}

async function cli(args: string[], env: Record<string, string> = {}) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCli({ argv: args, env: { HOME: home, ...env }, stdout, stderr });
  return { code, stdout, stderr };
}

describe('docker clair scan reaches the daemon and inspects images', () => {
  it('inspects a real image and reports the same ID as the docker CLI', async () => {
    const source = await sourceFor({ DOCKER_HOST: TEST_DOCKER_HOST });
    const daemon = await source.connect();
    assert.match(daemon.apiVersion, /^1\.\d+$/);
    const image = await source.inspect(TEST_IMAGES.multilayer);
    assert.equal(image.id, dockerCli(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGES.multilayer]));
    assert.deepEqual(image.diffIds, JSON.parse(dockerCli(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', TEST_IMAGES.multilayer])));
  });

  it('scan inspects the image through the daemon before it talks to Clair', async () => {
    const port = await closedPort();
    const r = await cli(['-D', 'scan', '--clair', `http://127.0.0.1:${port}`, TEST_IMAGES.debian12], { DOCKER_HOST: TEST_DOCKER_HOST });
    assert.equal(r.code, 2);
    const id = dockerCli(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGES.debian12]);
    assert.ok(r.stderr.text.includes(`image ${TEST_IMAGES.debian12}: ${id}`), r.stderr.text);
    assert.match(r.stderr.text, new RegExp(`docker-clair: cannot reach Clair at http://127\\.0\\.0\\.1:${port}/`));
    assert.equal(r.stdout.text, '', 'no report when the only image failed');
  });

  it('an unknown image: exit 2, one line naming the image and the endpoint', async () => {
    const r = await cli(['scan', '--clair', 'http://127.0.0.1:9', 'docker-clair-test/does-not-exist:1'], { DOCKER_HOST: TEST_DOCKER_HOST });
    assert.equal(r.code, 2);
    assert.deepEqual(r.stderr.lines, [
      `docker-clair: image "docker-clair-test/does-not-exist:1" not found in the Docker daemon at ${TEST_DOCKER_HOST}, nor in its registry: ` +
        'cannot reach the registry at docker.io (ENOTFOUND); hint: pull or build it first, or check the name; --image-src chooses where to look',
    ]);
  });

  it('names the missing image among several', async () => {
    const r = await cli(['scan', '--clair', 'http://127.0.0.1:9', TEST_IMAGES.debian12, 'docker-clair-test/missing'], { DOCKER_HOST: TEST_DOCKER_HOST });
    assert.equal(r.code, 2);
    assert.match(r.stderr.text, /image "docker-clair-test\/missing" not found/);
  });

  it('an unreachable unix socket: exit 2, one line naming the endpoint', async () => {
    const missing = join(work, 'no-daemon.sock');
    const r = await cli(['-H', `unix://${missing}`, 'scan', '--clair', 'http://127.0.0.1:9', 'x']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.lines.length, 1);
    assert.match(r.stderr.lines[0] ?? '', new RegExp(`^docker-clair: cannot reach the Docker daemon at unix://${missing} \\(ENOENT\\); hint: start dockerd`));
  });

  it('an unreachable tcp endpoint from DOCKER_CONTEXT-less DOCKER_HOST: ECONNREFUSED, naming where it came from', async () => {
    const port = await closedPort();
    const r = await cli(['scan', '--clair', 'http://127.0.0.1:9', 'x'], { DOCKER_HOST: `tcp://127.0.0.1:${port}` });
    assert.equal(r.code, 2);
    assert.equal(r.stderr.lines.length, 1);
    assert.match(r.stderr.lines[0] ?? '', new RegExp(`cannot reach the Docker daemon at tcp://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\).*chosen by DOCKER_HOST`));
  });

  it('a bad DOCKER_CERT_PATH: exit 2 with the file and the variable named', async () => {
    const r = await cli(['scan', '--clair', 'http://127.0.0.1:9', 'x'], { DOCKER_HOST: 'tcp://127.0.0.1:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: join(work, 'nope') });
    assert.equal(r.code, 2);
    assert.equal(r.stderr.lines.length, 1);
    assert.match(r.stderr.lines[0] ?? '', /cannot read the TLS CA certificate .*nope\/ca\.pem \(ENOENT\); hint: DOCKER_CERT_PATH/);
  });

  it("docker-modem's own reading of DOCKER_* in the process environment cannot override the resolved endpoint", async () => {
    const saved = { ...process.env };
    process.env.DOCKER_HOST = `tcp://127.0.0.1:${await closedPort()}`;
    process.env.DOCKER_TLS_VERIFY = '1';
    process.env.DOCKER_CERT_PATH = join(work, 'missing-certs'); // the modem would throw ENOENT on this
    try {
      const source = await sourceFor({}, [TEST_DOCKER_HOST]);
      await source.connect();
      assert.equal((await source.inspect(TEST_IMAGES.debian12)).ref, TEST_IMAGES.debian12);
      assert.equal(process.env.DOCKER_CERT_PATH, join(work, 'missing-certs'), 'the environment is restored');
    } finally {
      process.env = saved;
    }
  });
});

describe('TLS endpoints', () => {
  const pki = join(work, 'pki');
  let server: TlsServer;
  let port = 0;

  before(async () => {
    makePki(pki);
    // A TLS terminator that demands a client certificate and forwards to the real daemon socket.
    server = createTlsServer(
      {
        key: readFileSync(join(pki, 'server-key.pem')),
        cert: readFileSync(join(pki, 'server-cert.pem')),
        ca: readFileSync(join(pki, 'ca.pem')),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (tlsSocket) => {
        const upstream = createConnection(socketPath);
        tlsSocket.pipe(upstream).pipe(tlsSocket);
        tlsSocket.on('error', () => upstream.destroy());
        upstream.on('error', () => tlsSocket.destroy());
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => server?.close());

  it('DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH reach the daemon with mutual TLS', async () => {
    const source = await sourceFor({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: pki });
    await source.connect();
    const image = await source.inspect(TEST_IMAGES.debian12);
    assert.equal(image.id, dockerCli(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGES.debian12]));
  });

  it('a server certificate from another CA fails verification with a TLS message', async () => {
    const other = join(work, 'other-pki');
    makePki(other);
    const certs = join(work, 'mixed');
    execFileSync('mkdir', ['-p', certs]);
    writeFileSync(join(certs, 'ca.pem'), readFileSync(join(other, 'ca.pem')));
    writeFileSync(join(certs, 'cert.pem'), readFileSync(join(pki, 'cert.pem')));
    writeFileSync(join(certs, 'key.pem'), readFileSync(join(pki, 'key.pem')));
    const source = await sourceFor({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    await assert.rejects(source.connect(), (error: unknown) => {
      assert.ok(error instanceof DaemonUnreachableError);
      assert.match(error.message, new RegExp(`cannot reach the Docker daemon at tcp://127\\.0\\.0\\.1:${port} \\(TLS handshake failed`));
      return true;
    });
  });

  it('--tls without verification connects even when we do not have the server\'s CA', async () => {
    const endpoint = await resolveEndpoint({ hosts: [`tcp://127.0.0.1:${port}`], tls: true }, { DOCKER_CERT_PATH: pki }, home);
    assert.equal(endpoint.tls?.verify, false);
    assert.equal(endpoint.tls?.ca, undefined);
    const source = new DockerImageSource(await createDockerClient(endpoint), endpoint);
    await source.connect();
  });

  it('a server that demands a client certificate refuses a client without one', async () => {
    const caOnly = join(work, 'ca-only');
    execFileSync('mkdir', ['-p', caOnly]);
    writeFileSync(join(caOnly, 'ca.pem'), readFileSync(join(pki, 'ca.pem')));
    const source = await sourceFor({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: caOnly });
    await assert.rejects(source.connect(), (error: unknown) => {
      assert.ok(error instanceof DaemonUnreachableError);
      assert.match(error.message, new RegExp(`cannot reach the Docker daemon at tcp://127\\.0\\.0\\.1:${port}`));
      return true;
    });
  });
});

describe('ssh endpoints', () => {
  it('go through `ssh … docker system dial-stdio` like the docker CLI', async () => {
    const bin = join(work, 'fake-ssh-bin');
    const log = join(work, 'ssh-args.txt');
    execFileSync('mkdir', ['-p', bin]);
    // Stands in for ssh + sshd: records its argv, then runs the remote command here.
    writeFileSync(
      join(bin, 'ssh'),
      `#!/bin/sh\nprintf '%s\\n' "$@" >> "${log}"\nwhile [ "$1" != "--" ]; do shift; done\nshift 2\nDOCKER_HOST='${TEST_DOCKER_HOST}' exec "$@"\n`,
    );
    chmodSync(join(bin, 'ssh'), 0o755);
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      const source = await sourceFor({ DOCKER_HOST: 'ssh://builder@build-host:2222' });
      await source.connect();
      const image = await source.inspect(TEST_IMAGES.debian12);
      assert.equal(image.id, dockerCli(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGES.debian12]));
    } finally {
      process.env.PATH = savedPath;
    }
    const args = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    assert.deepEqual(args.slice(0, 11), ['-o', 'ConnectTimeout=30', '-T', '-l', 'builder', '-p', '2222', '--', 'build-host', 'docker', 'system']);
  });

  it('an ssh failure is reported with ssh\'s own last words', async () => {
    const bin = join(work, 'failing-ssh-bin');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(join(bin, 'ssh'), '#!/bin/sh\necho "ssh: Could not resolve hostname nowhere: Name or service not known" >&2\nexit 255\n');
    chmodSync(join(bin, 'ssh'), 0o755);
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      const source = await sourceFor({ DOCKER_HOST: 'ssh://nowhere' });
      await assert.rejects(source.connect(), /cannot reach the Docker daemon at ssh:\/\/nowhere \(ssh exited with status 255: ssh: Could not resolve hostname nowhere/);
    } finally {
      process.env.PATH = savedPath;
    }
  });
});

async function closedPort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A CA, a server certificate for 127.0.0.1, and a client certificate, made with openssl. */
function makePki(dir: string): void {
  execFileSync('mkdir', ['-p', dir]);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=docker-clair test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server-key.pem', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', 'server-cert.pem', '-days', '2', '-extfile', 'server.ext');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'client.csr', '-subj', '/CN=client');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', 'cert.pem', '-days', '2', '-extfile', 'client.ext');
}
