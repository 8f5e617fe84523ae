// Waiting, during `up`, for PostgreSQL to accept connections, for Clair's API to answer and for Clair's first
// vulnerability update; a container that stops or a deadline that passes ends the wait with its last log lines.
import type Dockerode from 'dockerode';
import type { ClairV4Client } from '../clair/v4/client.js';
import type * as V4 from '../clair/v4/wire.js';
import { ClairAuthError, ClairUnreachableError, ManagedClairError, ManagedClairNotUpdatedError } from '../runtime/errors.js';
import { poll } from '../runtime/poll.js';
import { updateSummary, type UpdateSummary } from './clair-client.js';
import { execExitCode, statusOf, tailLogs } from './daemon-ops.js';
import { CLAIR_CONTAINER, POSTGRES_CONTAINER, POSTGRES_DB, POSTGRES_USER } from './names.js';

export interface WaitOptions {
  clairImage: string;
  postgresImage: string;
  /** For the whole `up`, image pulls included. */
  timeoutMs: number;
  progress: (line: string) => void;
  /** The caller's abort (Ctrl-C); the waits' own `signal` adds the deadline. */
  signal: AbortSignal;
  /** How often readiness is polled (tests shorten it). */
  pollMs?: number;
}

const POLL_MS = 1000;

export async function waitForPostgres(container: Dockerode.Container, options: WaitOptions, signal: AbortSignal): Promise<void> {
  const started = Date.now();
  const notReady = () => notReadyError(container, POSTGRES_CONTAINER, 'PostgreSQL did not accept connections', options);
  await poll(async () => {
    await throwIfStopped(container, POSTGRES_CONTAINER);
    try {
      const code = await execExitCode(container, ['pg_isready', '-q', '-h', '127.0.0.1', '-U', POSTGRES_USER, '-d', POSTGRES_DB], signal);
      if (code === 0) return true;
    } catch (error) {
      if (signal.aborted) throw await notReady();
      // 409: the container stopped between inspect and exec; the next inspect says how.
      if (statusOf(error) !== 409) throw error;
    }
    return undefined;
  }, { intervalMs: options.pollMs ?? POLL_MS, deadline: signal, cancel: options.signal, timedOut: notReady });
  options.progress(`PostgreSQL accepts connections (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

export async function waitForApi(docker: Dockerode, client: ClairV4Client, options: WaitOptions, signal: AbortSignal): Promise<void> {
  const container = docker.getContainer(CLAIR_CONTAINER);
  let lastError = '';
  await poll(async () => {
    await throwIfStopped(container, CLAIR_CONTAINER);
    try {
      await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(10_000)]));
      return true;
    } catch (error) {
      if (options.signal.aborted) throw options.signal.reason;
      if (error instanceof ClairAuthError) {
        throw new ManagedClairError('the managed Clair rejects the stored PSK (its secrets file was replaced since it started)',
          'run "docker clair server down" and then "docker clair server up" (the database volume is kept)', { cause: error });
      }
      // Starting up: refused connections, resets, 5xx while migrations run. Keep polling until the deadline.
      lastError = (error as Error).message;
      return undefined;
    }
  }, {
    intervalMs: options.pollMs ?? POLL_MS, deadline: signal, cancel: options.signal,
    timedOut: () => notReadyError(container, CLAIR_CONTAINER, `Clair's API did not answer (${lastError})`, options),
  });
}

export async function waitForUpdate(docker: Dockerode, client: ClairV4Client, options: WaitOptions, signal: AbortSignal): Promise<UpdateSummary> {
  const started = Date.now();
  let lastReport = started;
  options.progress("waiting for Clair's first vulnerability update (Clair downloads every distribution's security data: tens of minutes on a first start)");
  const summary = await poll(async () => {
    let operations: V4.UpdateOperations | undefined;
    try {
      operations = await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(30_000)]));
    } catch (error) {
      if (options.signal.aborted) throw options.signal.reason;
      if (!signal.aborted && !(error instanceof ClairUnreachableError)) throw error;
    }
    if (operations && Object.keys(operations).length > 0) return updateSummary(operations);
    const now = Date.now();
    if (now - lastReport >= 30_000) {
      lastReport = now;
      options.progress(`still waiting for the first vulnerability update (${Math.round((now - started) / 1000)} s)`);
    }
    return undefined;
  }, {
    intervalMs: Math.max(options.pollMs ?? POLL_MS, 1), deadline: signal, cancel: options.signal,
    timedOut: async () => {
      const tail = await tailLogs(docker.getContainer(CLAIR_CONTAINER), 5);
      return new ManagedClairNotUpdatedError(
        `Clair is running but its first vulnerability update did not finish within --timeout ${Math.round(options.timeoutMs / 1000)}s` +
        (tail.length ? `; its last log lines: ${tail.join(' | ')}` : ''),
        'scans report exit 3 until it finishes: wait and check "docker clair server status", or raise --timeout');
    },
  });
  options.progress(`vulnerability database loaded: ${summary.updaters} updater(s), last update ${summary.lastUpdate ?? '?'}`);
  return summary;
}

/** A crashing container under the restart policy shows as Restarting, never as stopped: both end the wait. */
async function throwIfStopped(container: Dockerode.Container, name: string): Promise<void> {
  const info = await container.inspect();
  if (info.State.Running && !info.State.Restarting) return;
  const tail = await tailLogs(container, 10);
  throw new ManagedClairError(
    `container ${name} stopped (exit code ${info.State.ExitCode})${tail.length ? `; its last log lines: ${tail.join(' | ')}` : ''}`,
    `see "docker clair server logs${name === POSTGRES_CONTAINER ? ' --postgres' : ''}"; "docker clair server down" removes it`);
}

async function notReadyError(container: Dockerode.Container, name: string, what: string, options: WaitOptions): Promise<ManagedClairError> {
  const tail = await tailLogs(container, 10);
  return new ManagedClairError(
    `${what} within --timeout ${Math.round(options.timeoutMs / 1000)}s (container ${name})${tail.length ? `; its last log lines: ${tail.join(' | ')}` : '; it logged nothing'}`,
    `check the image (${name === CLAIR_CONTAINER ? options.clairImage : options.postgresImage}) and "docker clair server logs${name === POSTGRES_CONTAINER ? ' --postgres' : ''}"; raise --timeout if it is only slow`);
}
