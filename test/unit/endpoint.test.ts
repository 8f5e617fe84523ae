import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { dockerodeOptions } from '../../src/docker/client.js';
import { parseHost, resolveEndpoint } from '../../src/docker/endpoint.js';
import { sshDialArgs } from '../../src/docker/ssh-dial-agent.js';
import type { DockerGlobalFlags } from '../../src/docker/global-flags.js';
import { EndpointError } from '../../src/runtime/errors.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

/** A fresh HOME with an empty ~/.docker, so the machine's own docker config never leaks into a test. */
function home(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dc-endpoint-'));
  roots.push(dir);
  mkdirSync(join(dir, '.docker'));
  return dir;
}

function flags(extra: Partial<DockerGlobalFlags> = {}): DockerGlobalFlags {
  return { hosts: [], ...extra };
}

function writeContext(configDir: string, name: string, host: string, opts: { skipVerify?: boolean; tls?: Record<string, string> } = {}) {
  const id = createHash('sha256').update(name).digest('hex');
  const meta = join(configDir, 'contexts', 'meta', id);
  mkdirSync(meta, { recursive: true });
  writeFileSync(
    join(meta, 'meta.json'),
    JSON.stringify({ Name: name, Metadata: {}, Endpoints: { docker: { Host: host, SkipTLSVerify: Boolean(opts.skipVerify) } } }),
  );
  if (opts.tls) {
    const tlsDir = join(configDir, 'contexts', 'tls', id, 'docker');
    mkdirSync(tlsDir, { recursive: true });
    for (const [file, content] of Object.entries(opts.tls)) writeFileSync(join(tlsDir, file), content);
  }
}

function certDir(files: string[] = ['ca.pem', 'cert.pem', 'key.pem']): string {
  const dir = mkdtempSync(join(tmpdir(), 'dc-certs-'));
  roots.push(dir);
  for (const f of files) writeFileSync(join(dir, f), `${f} bytes`);
  return dir;
}

describe('resolveEndpoint precedence (docker cli resolveContextName)', () => {
  it('falls back to the default unix socket', async () => {
    const e = await resolveEndpoint(flags(), {}, home());
    assert.equal(e.host, 'unix:///var/run/docker.sock');
    assert.deepEqual(e.transport, { kind: 'unix', path: '/var/run/docker.sock' });
    assert.equal(e.contextName, 'default');
    assert.equal(e.source, 'default');
    assert.equal(e.tls, undefined);
  });

  it('uses DOCKER_HOST', async () => {
    const e = await resolveEndpoint(flags(), { DOCKER_HOST: 'tcp://10.1.2.3:2375' }, home());
    assert.deepEqual(e.transport, { kind: 'tcp', hostname: '10.1.2.3', port: 2375 });
    assert.equal(e.source, 'DOCKER_HOST');
  });

  it('-H beats DOCKER_HOST', async () => {
    const e = await resolveEndpoint(flags({ hosts: ['unix:///h.sock'] }), { DOCKER_HOST: 'tcp://x:1' }, home());
    assert.deepEqual(e.transport, { kind: 'unix', path: '/h.sock' });
    assert.equal(e.source, '-H flag');
  });

  it('DOCKER_HOST beats DOCKER_CONTEXT (as the CLI code does, whatever its docs say)', async () => {
    const h = home();
    writeContext(join(h, '.docker'), 'remote', 'tcp://remote:2375');
    const e = await resolveEndpoint(flags(), { DOCKER_HOST: 'unix:///env.sock', DOCKER_CONTEXT: 'remote' }, h);
    assert.deepEqual(e.transport, { kind: 'unix', path: '/env.sock' });
    assert.equal(e.contextName, 'default');
  });

  it('--context beats DOCKER_HOST', async () => {
    const h = home();
    writeContext(join(h, '.docker'), 'remote', 'tcp://remote:2375');
    const e = await resolveEndpoint(flags({ context: 'remote' }), { DOCKER_HOST: 'unix:///env.sock' }, h);
    assert.equal(e.contextName, 'remote');
    assert.deepEqual(e.transport, { kind: 'tcp', hostname: 'remote', port: 2375 });
    assert.match(e.source, /context "remote" \(--context\)/);
  });

  it('DOCKER_CONTEXT beats currentContext in config.json', async () => {
    const h = home();
    const dir = join(h, '.docker');
    writeContext(dir, 'a', 'tcp://a:2375');
    writeContext(dir, 'b', 'tcp://b:2375');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ currentContext: 'a' }));
    assert.equal((await resolveEndpoint(flags(), { DOCKER_CONTEXT: 'b' }, h)).contextName, 'b');
    const e = await resolveEndpoint(flags(), {}, h);
    assert.equal(e.contextName, 'a');
    assert.match(e.source, /currentContext/);
  });

  it('--config beats DOCKER_CONFIG beats ~/.docker for config.json and the context store', async () => {
    const h = home();
    const envDir = join(h, 'env-config');
    const flagDir = join(h, 'flag-config');
    for (const [dir, name] of [[join(h, '.docker'), 'home'], [envDir, 'env'], [flagDir, 'flag']] as const) {
      mkdirSync(dir, { recursive: true });
      writeContext(dir, name, `tcp://${name}:2375`);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ currentContext: name }));
    }
    assert.equal((await resolveEndpoint(flags(), {}, h)).contextName, 'home');
    assert.equal((await resolveEndpoint(flags(), { DOCKER_CONFIG: envDir }, h)).contextName, 'env');
    assert.equal((await resolveEndpoint(flags({ config: flagDir }), { DOCKER_CONFIG: envDir }, h)).contextName, 'flag');
  });

  it('the context named "default" is the flags-and-environment endpoint', async () => {
    const e = await resolveEndpoint(flags({ context: 'default' }), {}, home());
    assert.equal(e.host, 'unix:///var/run/docker.sock');
  });

  it('rejects -H together with --context, and two -H', async () => {
    await assert.rejects(resolveEndpoint(flags({ context: 'x', hosts: ['unix:///a'] }), {}, home()), /cannot specify both --host and --context/);
    await assert.rejects(resolveEndpoint(flags({ hosts: ['unix:///a', 'unix:///b'] }), {}, home()), /specify only one -H/);
  });

  it('names an unknown context, where it came from, and how to fix it', async () => {
    await assert.rejects(resolveEndpoint(flags(), { DOCKER_CONTEXT: 'ghost' }, home()), (error: unknown) => {
      assert.ok(error instanceof EndpointError);
      assert.match(error.message, /context "ghost" not found \(selected by DOCKER_CONTEXT\)/);
      assert.match(error.hint ?? '', /docker context ls/);
      return true;
    });
  });

  it('warns about and ignores a malformed config.json, as the CLI does', async () => {
    const h = home();
    writeFileSync(join(h, '.docker', 'config.json'), '{not json');
    const e = await resolveEndpoint(flags(), {}, h);
    assert.equal(e.host, 'unix:///var/run/docker.sock');
    assert.equal(e.warnings.length, 1);
    assert.match(e.warnings[0] ?? '', /config\.json/);
  });
});

describe('resolveEndpoint TLS', () => {
  it('DOCKER_TLS_VERIFY + DOCKER_CERT_PATH load the CA, cert and key', async () => {
    const certs = certDir();
    const e = await resolveEndpoint(flags(), { DOCKER_HOST: 'tcp://d:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs }, home());
    assert.equal(e.tls?.verify, true);
    assert.equal(e.tls?.ca?.toString(), 'ca.pem bytes');
    assert.equal(e.tls?.cert?.toString(), 'cert.pem bytes');
    assert.equal(e.tls?.key?.toString(), 'key.pem bytes');
    const opts = dockerodeOptions(e);
    assert.equal(opts.protocol, 'https');
    assert.equal(opts.host, 'd');
    assert.equal(opts.port, 2376);
  });

  it('any non-empty DOCKER_TLS_VERIFY turns verification on (docker-modem only honours "1")', async () => {
    const certs = certDir();
    const e = await resolveEndpoint(flags(), { DOCKER_HOST: 'tcp://d:2376', DOCKER_TLS_VERIFY: 'true', DOCKER_CERT_PATH: certs }, home());
    assert.equal(e.tls?.verify, true);
  });

  it('a DOCKER_CERT_PATH without ca.pem is a clear error naming the file and the variable', async () => {
    const certs = certDir(['cert.pem', 'key.pem']);
    await assert.rejects(
      resolveEndpoint(flags(), { DOCKER_HOST: 'tcp://d:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs }, home()),
      (error: unknown) => {
        assert.ok(error instanceof EndpointError);
        assert.equal(error.message, `cannot read the TLS CA certificate ${join(certs, 'ca.pem')} (ENOENT)`);
        assert.match(error.hint ?? '', /DOCKER_CERT_PATH/);
        return true;
      },
    );
  });

  it('a DOCKER_CERT_PATH that does not exist is a clear error too', async () => {
    await assert.rejects(
      resolveEndpoint(flags(), { DOCKER_HOST: 'tcp://d:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/nonexistent/certs' }, home()),
      /cannot read the TLS CA certificate \/nonexistent\/certs\/ca\.pem \(ENOENT\)/,
    );
  });

  it('DOCKER_CERT_PATH is ignored while TLS is off (docker-modem would throw here)', async () => {
    const e = await resolveEndpoint(flags(), { DOCKER_HOST: 'tcp://d:2375', DOCKER_CERT_PATH: '/nonexistent' }, home());
    assert.equal(e.tls, undefined);
    assert.equal(dockerodeOptions(e).protocol, 'http');
  });

  it('--tls alone means TLS without verification and reads no CA', async () => {
    const e = await resolveEndpoint(flags({ tls: true, hosts: ['tcp://d:2376'] }), { DOCKER_CERT_PATH: '/nonexistent' }, home());
    assert.equal(e.tls?.verify, false);
    assert.equal(e.tls?.ca, undefined);
    assert.equal(e.tls?.cert, undefined);
  });

  it('--tlsverify=false still turns TLS on, without verification', async () => {
    const e = await resolveEndpoint(flags({ tlsVerify: false, hosts: ['tcp://d:2376'] }), {}, home());
    assert.equal(e.tls?.verify, false);
  });

  it('DOCKER_TLS enables TLS without verification', async () => {
    const e = await resolveEndpoint(flags({ hosts: ['tcp://d:2376'] }), { DOCKER_TLS: '1' }, home());
    assert.equal(e.tls?.verify, false);
  });

  it('TLS with no host means tcp://localhost:2376', async () => {
    const certs = certDir();
    const e = await resolveEndpoint(flags({ tlsVerify: true }), { DOCKER_CERT_PATH: certs }, home());
    assert.equal(e.host, 'tcp://localhost:2376');
    assert.deepEqual(e.transport, { kind: 'tcp', hostname: 'localhost', port: 2376 });
  });

  it('explicit --tlscacert/--tlscert/--tlskey win over DOCKER_CERT_PATH; a missing explicit file is an error', async () => {
    const a = certDir();
    const b = certDir();
    writeFileSync(join(b, 'ca.pem'), 'flag ca');
    const e = await resolveEndpoint(
      flags({ tlsVerify: true, hosts: ['tcp://d:2376'], tlsCaCert: join(b, 'ca.pem') }),
      { DOCKER_CERT_PATH: a },
      home(),
    );
    assert.equal(e.tls?.ca?.toString(), 'flag ca');
    assert.equal(e.tls?.cert?.toString(), 'cert.pem bytes');
    await assert.rejects(
      resolveEndpoint(flags({ tlsVerify: true, hosts: ['tcp://d:2376'], tlsCert: '/nope/cert.pem' }), { DOCKER_CERT_PATH: a }, home()),
      /TLS client certificate \/nope\/cert\.pem \(ENOENT\)/,
    );
  });

  it('a client certificate without its key is an error', async () => {
    const certs = certDir(['ca.pem', 'cert.pem']);
    await assert.rejects(
      resolveEndpoint(flags({ tlsVerify: true, hosts: ['tcp://d:2376'] }), { DOCKER_CERT_PATH: certs }, home()),
      /TLS client certificate given without its key/,
    );
  });

  it('TLS settings do not apply to a unix socket', async () => {
    const e = await resolveEndpoint(flags({ tlsVerify: true, hosts: ['unix:///s.sock'] }), { DOCKER_CERT_PATH: '/nonexistent' }, home());
    assert.equal(e.tls, undefined);
  });

  it('a context with TLS files and SkipTLSVerify', async () => {
    const h = home();
    writeContext(join(h, '.docker'), 'secure', 'tcp://secure:2376', { tls: { 'ca.pem': 'ctx ca', 'cert.pem': 'ctx cert', 'key.pem': 'ctx key' } });
    writeContext(join(h, '.docker'), 'lax', 'tcp://lax:2376', { skipVerify: true });
    writeContext(join(h, '.docker'), 'plain', 'tcp://plain:2375');
    const secure = await resolveEndpoint(flags({ context: 'secure' }), {}, h);
    assert.equal(secure.tls?.verify, true);
    assert.equal(secure.tls?.ca?.toString(), 'ctx ca');
    assert.equal(secure.tls?.key?.toString(), 'ctx key');
    const lax = await resolveEndpoint(flags({ context: 'lax' }), {}, h);
    assert.deepEqual(lax.tls, { verify: false });
    const plain = await resolveEndpoint(flags({ context: 'plain' }), {}, h);
    assert.equal(plain.tls, undefined);
  });
});

describe('parseHost', () => {
  it('parses the schemes the docker client accepts', () => {
    assert.deepEqual(parseHost('unix:///run/d.sock', 't'), { kind: 'unix', path: '/run/d.sock' });
    assert.deepEqual(parseHost('unix://', 't'), { kind: 'unix', path: '/var/run/docker.sock' });
    assert.deepEqual(parseHost('tcp://h', 't'), { kind: 'tcp', hostname: 'h', port: 2375 });
    assert.deepEqual(parseHost('h:1234', 't'), { kind: 'tcp', hostname: 'h', port: 1234 });
    assert.deepEqual(parseHost('tcp://[::1]:2376', 't'), { kind: 'tcp', hostname: '::1', port: 2376 });
    assert.deepEqual(parseHost('ssh://me@box:2222/run/user/1000/docker.sock', 't'), {
      kind: 'ssh', user: 'me', hostname: 'box', port: 2222, socketPath: '/run/user/1000/docker.sock',
    });
    assert.deepEqual(parseHost('ssh://box', 't'), { kind: 'ssh', hostname: 'box' });
  });

  it('rejects what the docker client rejects, naming the source', () => {
    assert.throws(() => parseHost('http://h:2375', 'DOCKER_HOST'), /invalid Docker host "http:\/\/h:2375" from DOCKER_HOST: unsupported scheme "http"/);
    assert.throws(() => parseHost('tcp://h:2375/path', 'x'), /takes no path/);
    assert.throws(() => parseHost('ssh://me:pw@box', 'x'), (e: unknown) => {
      assert.ok(e instanceof EndpointError);
      assert.doesNotMatch(e.message, /pw/, 'the password must not be echoed');
      assert.match(e.message, /plain-text passwords are not supported/);
      return true;
    });
  });
});

describe('sshDialArgs', () => {
  it('builds the same ssh command line as the docker CLI', () => {
    assert.deepEqual(sshDialArgs({ kind: 'ssh', hostname: 'box' }), ['-o', 'ConnectTimeout=30', '-T', '--', 'box', 'docker', 'system', 'dial-stdio']);
    assert.deepEqual(sshDialArgs({ kind: 'ssh', hostname: 'box', user: 'me', port: 2222, socketPath: '/run/d.sock' }), [
      '-o', 'ConnectTimeout=30', '-T', '-l', 'me', '-p', '2222', '--', 'box', 'docker', '--host=unix:///run/d.sock', 'system', 'dial-stdio',
    ]);
  });
});
