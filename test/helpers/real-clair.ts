// The real Clair v4 for the tests: each instance is `scripts/real-clair.sh` with a state directory of its own
// (its PostgreSQL cluster, config, logs), so suites can hold an empty one, a loaded one and a PSK one at once.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/real-clair.sh', import.meta.url));
const STATE_ROOT = '/var/tmp/docker-clair-test/real-clair';

export interface RealClair {
  url: string;
  state: string;
  /** `clairctl import-updaters FILE` into this instance. */
  importFile(file: string): Promise<void>;
  /** The Clair process's pid. */
  pid(): number;
  /** Stops Clair and PostgreSQL and removes the state. */
  down(): Promise<void>;
}

async function script(state: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await run('bash', [SCRIPT, ...args], { env: { ...process.env, ...env, REAL_CLAIR_STATE: state }, timeout: 600_000 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`real-clair.sh ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** Starts a real Clair (building it first if the cache lacks it); `psk`: the base64 key it requires. */
export async function startRealClair(options: { psk?: string } = {}): Promise<RealClair> {
  mkdirSync(STATE_ROOT, { recursive: true });
  const dir = mkdtempSync(path.join(STATE_ROOT, 'test-'));
  chmodSync(dir, 0o711); // PostgreSQL runs as the postgres user, which must reach its data directory
  const state = path.join(dir, 'instance');
  writeFileSync(path.join(dir, 'owner'), `${process.pid}\n`); // scripts/test.sh stops instances whose owner died
  const env = options.psk ? { CLAIR_PSK: options.psk } : {};
  let out: string;
  try {
    out = await script(state, ['up', ...(options.psk ? ['--psk'] : [])], env);
  } catch (error) {
    await script(state, ['down']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const lines = out.split('\n').filter(Boolean);
  const url = /^CLAIR_ADDR=(http:\/\/127\.0\.0\.1:\d+)$/.exec(lines[0] ?? '')?.[1];
  if (lines.length !== 1 || !url) throw new Error(`real-clair.sh up printed ${JSON.stringify(out)}, not one CLAIR_ADDR line`);
  return {
    url,
    state,
    importFile: async (file) => {
      await script(state, ['import', file]);
    },
    pid: () => Number(readFileSync(path.join(state, 'clair.pid'), 'utf8').trim()),
    down: async () => {
      await script(state, ['down']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
