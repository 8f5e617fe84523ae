// A real image registry on loopback for tests that pull through the daemon: Debian's `docker-registry`
// (the CNCF distribution registry), storing into a temporary directory. The daemon trusts 127.0.0.0/8
// registries over plain http by default, so no daemon configuration is needed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { until } from './wait.js';

export interface Registry {
  /** host:port, the prefix of image names pushed to it. */
  host: string;
  close(): Promise<void>;
}

export function registryAvailable(): boolean {
  const r = spawnSync('docker-registry', ['--version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
}

export async function startRegistry(): Promise<Registry> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-registry-'));
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(path.join(dir, 'data'))}}}`,
    `http: {addr: "127.0.0.1:${port}"}`,
    '',
  ].join('\n'));
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const host = `127.0.0.1:${port}`;
  const close = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // It says nothing when it listens (log level warn): poll /v2/, giving up at once if it exits.
  const exited = new AbortController();
  child.once('close', (code, signal) => exited.abort(new Error(`it exited (${signal ?? code})`)));
  child.once('error', (err) => exited.abort(err));
  try {
    await until(`docker-registry on ${host}`, async () => ((await fetch(`http://${host}/v2/`)).status === 200 ? true : undefined),
      { signal: exited.signal });
  } catch (err) {
    await close();
    throw new Error(`docker-registry did not start on ${host}: ${(err as Error).message}; ${stderr}`);
  }
  return { host, close };
}
