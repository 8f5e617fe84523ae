// The managed server's secrets: Clair's PSK (which `scan` signs its requests with) and the database
// password. Created once, kept with mode 0600 under $DOCKER_CONFIG/docker-clair/, reused by every `up`
// so the database volume stays usable; removed by `down --volumes`.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, errnoCode } from '../runtime/errors.js';

export interface ManagedSecrets {
  /** Standard base64 of 32 random bytes: Clair's auth.psk.key. */
  pskKey: string;
  dbPassword: string;
}

export function secretsDir(dockerConfigDir: string): string {
  return join(dockerConfigDir, 'docker-clair');
}

export function secretsFile(dockerConfigDir: string): string {
  return join(secretsDir(dockerConfigDir), 'managed-clair.json');
}

export async function readSecrets(dockerConfigDir: string): Promise<ManagedSecrets | undefined> {
  const file = secretsFile(dockerConfigDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw new UsageError(`cannot read ${file} (${errnoCode(error) ?? String(error)})`,
      'check its permissions, or remove it and run "docker clair server down --volumes" then "up"', { cause: error });
  }
  try {
    const parsed = JSON.parse(text) as Partial<ManagedSecrets>;
    if (typeof parsed.pskKey === 'string' && typeof parsed.dbPassword === 'string') {
      return { pskKey: parsed.pskKey, dbPassword: parsed.dbPassword };
    }
  } catch {
    // reported below
  }
  throw new UsageError(`${file} is not a docker-clair secrets file`,
    'remove it and run "docker clair server down --volumes" then "docker clair server up"');
}

/** The stored secrets, or new ones written atomically with mode 0600 (the directory 0700). */
export async function loadOrCreateSecrets(dockerConfigDir: string): Promise<{ secrets: ManagedSecrets; created: boolean }> {
  const existing = await readSecrets(dockerConfigDir);
  if (existing) return { secrets: existing, created: false };
  const secrets: ManagedSecrets = {
    pskKey: randomBytes(32).toString('base64'),
    dbPassword: randomBytes(24).toString('base64url'),
  };
  const dir = secretsDir(dockerConfigDir);
  const file = secretsFile(dockerConfigDir);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
    await writeFile(temp, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(temp, 0o600);
    await rename(temp, file);
  } catch (error) {
    throw new UsageError(`cannot write ${file} (${errnoCode(error) ?? String(error)})`,
      'make $DOCKER_CONFIG (or ~/.docker) writable, or point --config at a writable directory', { cause: error });
  }
  return { secrets, created: true };
}

export async function removeSecrets(dockerConfigDir: string): Promise<void> {
  await rm(secretsFile(dockerConfigDir), { force: true });
}
