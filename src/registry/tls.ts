// What a registry's TLS is verified with, as the daemon does it: the system's roots plus the CA certificates in
// `certs.d/<host[:port]>/*.crt`, and a client certificate from a `*.cert` + `*.key` pair there. The directories are
// the rootful daemon's (/etc/docker/certs.d) and the rootless daemon's ($XDG_CONFIG_HOME/docker/certs.d, by default
// ~/.config/docker/certs.d).
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { RegistryError, errnoCode } from '../runtime/errors.js';

export interface RegistryTls {
  /** Roots to trust: the system's plus the certs.d CAs; undefined when certs.d adds none. */
  ca?: string[];
  cert?: Buffer;
  key?: Buffer;
  /** The files used, for --debug. */
  files: string[];
}

export function certsDirs(env: Record<string, string | undefined>, home = homedir()): string[] {
  const config = env.XDG_CONFIG_HOME || join(env.HOME || home, '.config');
  return ['/etc/docker/certs.d', join(config, 'docker', 'certs.d')];
}

export async function registryTls(host: string, dirs: string[]): Promise<RegistryTls> {
  const cas: string[] = [];
  const files: string[] = [];
  let pair: { cert: Buffer; key: Buffer } | undefined;
  for (const root of dirs) {
    const dir = join(root, host);
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const path = join(dir, name);
      if (name.endsWith('.crt')) {
        cas.push(await read(path, host));
        files.push(path);
      } else if (name.endsWith('.cert') && !pair) {
        const keyName = `${name.slice(0, -'.cert'.length)}.key`;
        if (!names.includes(keyName)) {
          throw new RegistryError(`${path} has no key beside it (${keyName})`, 'a client certificate needs its key in the same directory');
        }
        pair = { cert: Buffer.from(await read(path, host)), key: Buffer.from(await read(join(dir, keyName), host)) };
        files.push(path, join(dir, keyName));
      }
    }
  }
  return { ...(cas.length ? { ca: [...rootCertificates, ...cas] } : {}), ...(pair ?? {}), files };
}

async function read(path: string, host: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new RegistryError(`cannot read ${path} for the registry ${host} (${errnoCode(error) ?? String(error)})`, 'fix its permissions or remove it', { cause: error });
  }
}
