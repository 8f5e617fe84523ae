// The managed Clair has fixed names on the daemon (docker-clair-server, docker-clair-postgres, the network and the
// volume), so two test files that bring it up must not run at once, though node --test runs files in parallel.
// Each such file holds this lock from its first hook to its last: a directory made atomically, naming its owner's
// pid, taken over when that process is gone (a run killed half-way).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { alive } from './process-alive.js';
import { until } from './wait.js';

const LOCK = path.join(process.env.DOCKER_CLAIR_STATE_DIR ?? '/var/tmp/docker-clair-test', 'managed-server.lock');

function tryTake(): true | undefined {
  try {
    mkdirSync(LOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    let owner = NaN;
    try {
      owner = Number(readFileSync(path.join(LOCK, 'pid'), 'utf8'));
    } catch { /* being created or removed right now: look again */ }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) rmSync(LOCK, { recursive: true, force: true });
    return undefined;
  }
  writeFileSync(path.join(LOCK, 'pid'), String(process.pid));
  return true;
}

/** Waits for the managed Clair's names to be this process's alone; returns the release. */
export async function holdManagedServer(): Promise<() => void> {
  mkdirSync(path.dirname(LOCK), { recursive: true });
  // Another file's whole managed-Clair suite may run first: minutes, not seconds.
  await until(`the managed Clair lock ${LOCK}`, tryTake, { timeoutMs: 1_800_000, intervalMs: 250 });
  const release = () => {
    process.off('exit', release);
    try {
      if (readFileSync(path.join(LOCK, 'pid'), 'utf8') === String(process.pid)) rmSync(LOCK, { recursive: true, force: true });
    } catch { /* already gone */ }
  };
  process.on('exit', release);
  return release;
}
