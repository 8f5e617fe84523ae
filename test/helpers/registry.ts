// A real image registry on loopback for tests that pull through the daemon or talk to it directly: Debian's
// `docker-registry` (the CNCF distribution registry), storing into a temporary directory. The daemon trusts
// 127.0.0.0/8 registries over plain http by default, so no daemon configuration is needed.
//
// It may demand authentication: distribution's token auth, with an in-process token server as its realm
// (token-server.ts), or Basic auth from an htpasswd file.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { get as httpsGet } from 'node:https';
import path from 'node:path';
import { TEST_DOCKER_HOST } from './daemon.js';
import { freePort } from './ports.js';
import { createSigningKey, startTokenServer, type TokenRequest } from './token-server.js';
import { until } from './wait.js';

export type RegistryAuth =
  /** Bearer tokens from a token server; users (name → password) may pull and push anything. */
  | { kind: 'token'; users: Record<string, string>; anonymousPull?: boolean }
  /** Basic auth (distribution's htpasswd, bcrypt entries). */
  | { kind: 'htpasswd'; users: Record<string, string> };

export interface RegistryOptions {
  auth?: RegistryAuth;
}

export interface Registry {
  /** host:port, the prefix of image names pushed to it. */
  host: string;
  /** Token auth: the `service` of its challenges, the tokens' audience. Otherwise undefined. */
  service: string | undefined;
  /** Token auth: the token server's URL; htpasswd: the Basic realm. Otherwise undefined. */
  realm: string | undefined;
  /** Token auth: every request the token server answered, in order. Otherwise always empty. */
  tokenRequests: TokenRequest[];
  /**
   * Pushes `image` of the test daemon as host/repo:tag and returns that reference; the tag is removed from the
   * daemon afterwards. With auth it logs in first as `user` (default: the first user), through a docker CLI
   * config directory of its own, never the user's ~/.docker.
   */
  push(image: string, repo: string, tag: string, user?: string): Promise<string>;
  /** Where it stores blobs and manifests (startTlsRegistry serves the same store). */
  storage: string;
  close(): Promise<void>;
}

export const TOKEN_SERVICE = 'docker-clair-test-registry';
export const TOKEN_ISSUER = 'docker-clair-test-token-server';
export const BASIC_REALM = 'docker-clair-test-registry';

export function registryAvailable(): boolean {
  const r = spawnSync('docker-registry', ['--version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
}

/** What an auth kind adds to the registry: config lines, the realm behind it, and its own teardown. */
interface AuthSetup {
  config: string[];
  service: string | undefined;
  realm: string | undefined;
  tokenRequests: TokenRequest[];
  login: { user: string; password: string } | undefined;
  close(): Promise<void>;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-registry-'));
  let auth: AuthSetup;
  try {
    auth = await setUpAuth(options.auth, dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const config = path.join(dir, 'config.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(path.join(dir, 'data'))}}}`,
    `http: {addr: "${host}"}`,
    ...auth.config,
    '',
  ].join('\n'));
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const close = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await auth.close();
    rmSync(dir, { recursive: true, force: true });
  };
  // It says nothing when it listens (log level warn): poll /v2/, giving up at once if it exits. With auth the
  // answer to an anonymous /v2/ is a challenge.
  const ready = options.auth === undefined ? 200 : 401;
  const exited = new AbortController();
  child.once('close', (code, signal) => exited.abort(new Error(`it exited (${signal ?? code})`)));
  child.once('error', (err) => exited.abort(err));
  try {
    await until(`docker-registry on ${host}`, async () => ((await fetch(`http://${host}/v2/`)).status === ready ? true : undefined),
      { signal: exited.signal });
  } catch (err) {
    await close();
    throw new Error(`docker-registry did not start on ${host}: ${(err as Error).message}; ${stderr}`);
  }
  const dockerConfig = path.join(dir, 'docker-config');
  mkdirSync(dockerConfig);
  const push = (image: string, repo: string, tag: string, user?: string) =>
    pushImage({ host, dockerConfig, login: loginFor(options.auth, auth.login, user) }, image, repo, tag);
  return { host, service: auth.service, realm: auth.realm, tokenRequests: auth.tokenRequests, push, storage: path.join(dir, 'data'), close };
}

export interface TlsRegistry {
  /** address:port */
  host: string;
  /** PEM of the CA that signed its certificate. */
  ca: string;
  close(): Promise<void>;
}

/**
 * A second registry serving `storage` (another registry's, filled by docker push over plain http) over TLS on
 * `address` (an address of this machine, for a certificate with that IP), its certificate signed by a fresh test CA.
 */
export function startTlsRegistry(storage: string, address: string): Promise<TlsRegistry> {
  return serveStore(storage, address, true) as Promise<TlsRegistry>;
}

/** The same over plain http: a registry on a non-loopback address, as an insecure registry of a daemon serves. */
export async function startPlainRegistryOn(storage: string, address: string): Promise<{ host: string; close(): Promise<void> }> {
  return serveStore(storage, address, false);
}

async function serveStore(storage: string, address: string, tls: boolean): Promise<{ host: string; ca?: string; close(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-store-registry-'));
  const port = await freePort();
  const host = `${address}:${port}`;
  const run = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  let child: ChildProcess | undefined;
  const close = async () => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (!tls) {
      child = spawn('docker-registry', ['serve', writeStoreConfig(dir, storage, host, undefined)], { stdio: ['ignore', 'ignore', 'pipe'] });
      const exited = new AbortController();
      child.once('close', (code, signal) => exited.abort(new Error(`it exited (${signal ?? code})`)));
      await until(`docker-registry on ${host}`, async () => ((await fetch(`http://${host}/v2/`)).status === 200 ? true : undefined), { signal: exited.signal });
      return { host, close };
    }
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
      '-subj', '/CN=docker-clair test CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=registry']);
    writeFileSync(path.join(dir, 'ext.cnf'), `subjectAltName=IP:${address}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
    const config = writeStoreConfig(dir, storage, host, { certificate: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') });
    child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const ca = readFileSync(path.join(dir, 'ca.crt'), 'utf8');
    const exited = new AbortController();
    child.once('close', (code, signal) => exited.abort(new Error(`it exited (${signal ?? code}): ${stderr}`)));
    await until(`docker-registry over TLS on ${host}`, () => new Promise<true | undefined>((resolve) => {
      const req = httpsGet(`https://${host}/v2/`, { ca }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? true : undefined);
      });
      req.on('error', () => resolve(undefined));
    }), { signal: exited.signal });
    return { host, ca, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function setUpAuth(auth: RegistryAuth | undefined, dir: string): Promise<AuthSetup> {
  const none = { service: undefined, realm: undefined, tokenRequests: [], close: async () => { /* nothing runs */ } };
  if (auth === undefined) return { ...none, config: [], login: undefined };
  const login = firstUser(auth.users);
  if (auth.kind === 'htpasswd') {
    const file = path.join(dir, 'htpasswd');
    writeFileSync(file, htpasswd(auth.users));
    return {
      ...none, realm: BASIC_REALM, login,
      config: [`auth: {htpasswd: {realm: ${JSON.stringify(BASIC_REALM)}, path: ${JSON.stringify(file)}}}`],
    };
  }
  const signingKey = createSigningKey(dir);
  const server = await startTokenServer({
    signingKey, issuer: TOKEN_ISSUER, service: TOKEN_SERVICE, users: auth.users, anonymousPull: auth.anonymousPull ?? false,
  });
  const token = { realm: server.realm, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, rootcertbundle: signingKey.certificatePath };
  return {
    config: [`auth: {token: ${JSON.stringify(token)}}`],
    service: TOKEN_SERVICE, realm: server.realm, tokenRequests: server.requests, login, close: server.close,
  };
}

function firstUser(users: Record<string, string>): { user: string; password: string } | undefined {
  const [entry] = Object.entries(users);
  return entry === undefined ? undefined : { user: entry[0], password: entry[1] };
}

function loginFor(auth: RegistryAuth | undefined, byDefault: AuthSetup['login'], user: string | undefined): AuthSetup['login'] {
  if (auth === undefined || user === undefined) return byDefault;
  const password = auth.users[user];
  if (password === undefined) throw new Error(`${user} is not a user of this registry`);
  return { user, password };
}

// distribution accepts bcrypt entries only. Node has no bcrypt and the tests add no dependencies, so the C
// library's crypt(3) does it, through perl (Debian's perl-base is Essential, and libxcrypt knows $2b$).
function htpasswd(users: Record<string, string>): string {
  return Object.entries(users).map(([user, password]) => {
    if (user.includes(':') || user.includes('\n')) throw new Error(`${JSON.stringify(user)}: not a valid htpasswd user name`);
    return `${user}:${bcrypt(password)}\n`;
  }).join('');
}

function bcrypt(password: string): string {
  // Cost 5: the registry checks the password on every request, and nothing here needs to resist cracking.
  const setting = `$2b$05$${bcryptBase64(randomBytes(16))}`;
  const r = spawnSync('perl', ['-e', 'local $/; my $p = <STDIN>; print crypt($p, $ARGV[0]) // ""', setting],
    { input: password, encoding: 'utf8' });
  const hash = r.stdout?.trim() ?? '';
  if (r.error !== undefined || r.status !== 0 || !hash.startsWith(setting) || hash.length !== 60) {
    throw new Error(`htpasswd registries need bcrypt from perl's crypt(3), which failed: ${r.error?.message ?? (r.stderr || hash)}`);
  }
  return hash;
}

/** bcrypt's base64: the standard bit packing with the alphabet ./A-Za-z0-9, unpadded (16 bytes → 22 chars). */
function bcryptBase64(bytes: Buffer): string {
  const standard = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const bcryptAlphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...bytes.toString('base64').replace(/=+$/, '')].map((c) => bcryptAlphabet[standard.indexOf(c)]).join('');
}

interface PushTarget {
  host: string;
  dockerConfig: string;
  login: { user: string; password: string } | undefined;
}

async function pushImage(target: PushTarget, image: string, repo: string, tag: string): Promise<string> {
  const ref = `${target.host}/${repo}:${tag}`;
  if (target.login !== undefined) {
    await docker(target.dockerConfig, ['login', '-u', target.login.user, '--password-stdin', target.host], target.login.password);
  }
  await docker(target.dockerConfig, ['tag', image, ref]);
  try {
    await docker(target.dockerConfig, ['push', '-q', ref]);
  } catch (err) {
    await docker(target.dockerConfig, ['rmi', ref]).catch(() => { /* the push's error is the one to report */ });
    throw err;
  }
  await docker(target.dockerConfig, ['rmi', ref]);
  return ref;
}

// Asynchronous on purpose: the daemon asks the token server, which runs in this process, for tokens while the
// CLI waits; a synchronous child would block the event loop that answers them.
function docker(configDir: string, args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', ['--config', configDir, '-H', TEST_DOCKER_HOST, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(stdout.trim())
      : reject(new Error(`docker ${args.join(' ')} exited ${code}: ${stderr.trim()}`))));
    child.stdin.end(stdin ?? '');
  });
}

/** config.yml for a registry serving `storage` read-only on `host`, over TLS when given its files. */
function writeStoreConfig(dir: string, storage: string, host: string, tls: { certificate: string; key: string } | undefined): string {
  const config = path.join(dir, 'config.yml');
  const tlsPart = tls ? `, tls: {certificate: ${JSON.stringify(tls.certificate)}, key: ${JSON.stringify(tls.key)}}` : '';
  writeFileSync(config, [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(storage)}}, maintenance: {readonly: {enabled: true}}}`,
    `http: {addr: "${host}"${tlsPart}}`,
    '',
  ].join('\n'));
  return config;
}
