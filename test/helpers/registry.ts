// A real image registry on loopback for tests that pull through the daemon: Debian's `docker-registry`
// (the CNCF distribution registry), storing into a temporary directory. The daemon trusts 127.0.0.0/8
// registries over plain http by default, so no daemon configuration is needed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';

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
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const response = await fetch(`http://${host}/v2/`);
      if (response.status === 200) return { host, close };
    } catch { /* not listening yet */ }
    if (child.exitCode !== null || Date.now() > deadline) {
      await close();
      throw new Error(`docker-registry did not start on ${host}: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
