// The credentials for a registry host, found as the docker CLI finds them (cli/config/configfile, its
// credentials stores and the docker-credential-helpers protocol), so that a scan pulls with the same identity
// as `docker pull`. No secret, and no helper output (which may hold one), ever reaches a message or a cause.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, UsageError } from '../runtime/errors.js';

export interface RegistryCredential {
  /** Basic-auth user and password (also what a token server is sent). */
  username?: string;
  password?: string;
  /** An OAuth2 refresh token: config.json `identitytoken`, or a helper's Secret when its Username is "<token>". */
  identityToken?: string;
  /** Where it was found, for --debug; never contains a secret: e.g. `config.json auths`, `docker-credential-pass`. */
  from: string;
}

export interface CredentialLookup {
  /** The docker config directory (--config > DOCKER_CONFIG > ~/.docker): config.json is read from it. */
  configDir: string;
  /** The environment credential helpers run with (PATH finds `docker-credential-<name>`). */
  env: Record<string, string | undefined>;
  signal?: AbortSignal;
}

/** Docker Hub's credentials live under the v1 index URL, whatever name the image reference used. */
const HUB_KEY = 'https://index.docker.io/v1/';
const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const HELPER_TIMEOUT_MS = 30_000;

interface AuthEntry { auth?: string; username?: string; password?: string; identitytoken?: string }
interface DockerConfig { auths: Record<string, AuthEntry>; credsStore?: string; credHelpers: Record<string, string> }
/** How a helper was configured, for messages: `credsStore` or `credHelpers["ghcr.io"]` in …/config.json. */
interface HelperSetting { name: string; setting: string; file: string }

/** The credential for `host` (e.g. `127.0.0.1:5000`, `ghcr.io`, `docker.io`), or undefined: anonymous. */
export async function registryCredential(host: string, lookup: CredentialLookup): Promise<RegistryCredential | undefined> {
  const file = path.join(lookup.configDir, 'config.json');
  const config = await readConfig(file);
  if (!config) return undefined;
  const key = HUB_HOSTS.has(host) ? HUB_KEY : host;
  // A credHelpers entry wins even when empty: docker then reads auths, not credsStore.
  const name = Object.hasOwn(config.credHelpers, key) ? config.credHelpers[key] : config.credsStore;
  if (name) {
    const setting = Object.hasOwn(config.credHelpers, key) ? `credHelpers[${JSON.stringify(key)}]` : 'credsStore';
    return fromHelper({ name, setting, file }, key, lookup);
  }
  return fromAuths(config.auths, key, file);
}

async function readConfig(file: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw new UsageError(`cannot read ${file} (${errnoCode(error) ?? 'unknown error'})`, 'make it readable, or point --config at another directory');
  }
  const hint = 'fix the JSON in it: docker itself cannot read it either';
  // Go's decoder takes an empty file for an empty config.
  if (text.trim() === '') return { auths: {}, credHelpers: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // JSON.parse's message may quote the text around the fault, a password included: keep only where it is.
    const at = /position (\d+)/.exec(String(error))?.[1];
    throw new UsageError(`${file} is not valid JSON${at ? ` (at character ${at})` : ''}`, hint);
  }
  const config = asConfig(parsed);
  if (!config) throw new UsageError(`${file} does not have the shape docker expects (auths, credsStore or credHelpers)`, hint);
  return config;
}

/** The fields we use, or undefined when one has the wrong type (docker rejects such a file as a whole). */
function asConfig(value: unknown): DockerConfig | undefined {
  if (value === null) return { auths: {}, credHelpers: {} };
  if (!isRecord(value)) return undefined;
  const { auths = {}, credsStore, credHelpers = {} } = value;
  if (!isRecord(auths) || !Object.values(auths).every(isAuthEntry)) return undefined;
  if (credsStore !== undefined && typeof credsStore !== 'string') return undefined;
  if (!isRecord(credHelpers) || !Object.values(credHelpers).every((v) => typeof v === 'string')) return undefined;
  return { auths: auths as Record<string, AuthEntry>, credsStore, credHelpers: credHelpers as Record<string, string> };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isAuthEntry(value: unknown): value is AuthEntry {
  if (value === null) return true;
  if (!isRecord(value)) return false;
  return ['auth', 'username', 'password', 'identitytoken'].every((k) => value[k] === undefined || typeof value[k] === 'string');
}

function fromAuths(auths: Record<string, AuthEntry>, key: string, file: string): RegistryCredential | undefined {
  // Exact key first; then legacy keys written as URLs (`https://ghcr.io/v2/`) that name the same host.
  const found = Object.hasOwn(auths, key) ? key : Object.keys(auths).find((k) => hostOf(k) === key);
  const entry = found === undefined ? undefined : auths[found];
  if (!entry || found === undefined) return undefined;
  let { username, password } = entry;
  if (entry.auth) [username, password] = decodeAuth(entry.auth, found, file);
  return credential('config.json auths', username, password, entry.identitytoken);
}

/** `https://host:port/path` → `host:port`, as docker's ConvertToHostname. */
function hostOf(key: string): string {
  const scheme = key.indexOf('://');
  const rest = scheme === -1 ? key : key.slice(scheme + 3);
  const slash = rest.indexOf('/');
  return slash === -1 ? rest : rest.slice(0, slash);
}

function decodeAuth(auth: string, key: string, file: string): [string, string] {
  const decoded = Buffer.from(auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) {
    throw new UsageError(`the auth of ${JSON.stringify(key)} in ${file} is not base64 of "user:password"`, `run \`docker login ${key}\` again`);
  }
  // Go trims NULs off the password: some tools padded it.
  return [decoded.slice(0, colon), decoded.slice(colon + 1).replace(/^\0+|\0+$/g, '')];
}

/** The credential, without empty fields; undefined when nothing is left (anonymous, as docker). */
function credential(from: string, username?: string, password?: string, identityToken?: string): RegistryCredential | undefined {
  if (!username && !password && !identityToken) return undefined;
  return { ...(username ? { username } : {}), ...(password ? { password } : {}), ...(identityToken ? { identityToken } : {}), from };
}

async function fromHelper(helper: HelperSetting, serverUrl: string, lookup: CredentialLookup): Promise<RegistryCredential | undefined> {
  const program = `docker-credential-${helper.name}`;
  const hint = `check that \`${program} get\` works, run \`docker login\` again, or change ${helper.setting} in ${helper.file}`;
  const run = await runHelper(helper, program, serverUrl, lookup);
  if (run.code !== 0) {
    // Not found is no failure: docker then pulls anonymously.
    if (/credentials not found/i.test(run.output)) return undefined;
    const how = run.code === null ? `was killed by ${run.signal}` : `exited with code ${run.code}`;
    throw new UsageError(`credential helper ${program} ${how} when asked for ${serverUrl}`, hint);
  }
  let answer: unknown;
  try {
    answer = JSON.parse(run.stdout);
  } catch {
    answer = undefined;
  }
  const username = isRecord(answer) ? answer.Username ?? '' : undefined;
  const secret = isRecord(answer) ? answer.Secret ?? '' : undefined;
  if (typeof username !== 'string' || typeof secret !== 'string') {
    throw new UsageError(`credential helper ${program} answered ${serverUrl} with something that is not credentials JSON`, hint);
  }
  return username === '<token>' ? credential(program, undefined, undefined, secret) : credential(program, username, secret);
}

interface HelperRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; output: string }

/** Runs `<program> get` with the server URL on stdin, killing it on abort or after HELPER_TIMEOUT_MS. */
function runHelper(helper: HelperSetting, program: string, serverUrl: string, lookup: CredentialLookup): Promise<HelperRun> {
  const { signal } = lookup;
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { env: lookup.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const settle = (error: unknown, run?: HelperRun) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (run) return resolve(run);
      child.kill('SIGKILL');
      // A grandchild may hold the pipes open: let go of them so that it cannot keep us alive.
      child.stdout.destroy();
      child.stderr.destroy();
      reject(error);
    };
    const onAbort = () => settle(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => settle(new UsageError(
      `credential helper ${program} did not answer within ${HELPER_TIMEOUT_MS / 1000} s`,
      `it may be waiting for a password prompt or an unlocked keychain; check ${helper.setting} in ${helper.file}`,
    )), HELPER_TIMEOUT_MS);
    child.on('error', (error) => settle(errnoCode(error) === 'ENOENT'
      ? new UsageError(`credential helper ${program} (${helper.setting} in ${helper.file}) is not on the PATH`,
        `install ${program}, or remove ${helper.setting} from ${helper.file}`)
      : new UsageError(`cannot run credential helper ${program} (${errnoCode(error) ?? 'unknown error'})`, `check ${helper.setting} in ${helper.file}`)));
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('close', (code, exitSignal) => {
      const out = Buffer.concat(stdout).toString('utf8');
      settle(undefined, { code, signal: exitSignal, stdout: out, output: `${out}\n${Buffer.concat(stderr).toString('utf8')}` });
    });
    // A helper may exit without reading stdin; its exit status tells what went wrong, not the EPIPE.
    child.stdin.on('error', () => {});
    // No newline, as docker sends it.
    child.stdin.end(serverUrl);
  });
}
