// `server up`: pull the images, create what is missing (network, volume, PostgreSQL, Clair), start what is
// stopped, and wait until Clair answers and, unless told not to, until its first vulnerability update is in.
import type Dockerode from 'dockerode';
import type { ClairV4Client } from '../clair/v4/client.js';
import { DockerClairError, ManagedClairError, ManagedClairNotUpdatedError } from '../runtime/errors.js';
import { clientFor, updateSummary, type UpdateSummary } from './clair-client.js';
import { EMPTY_MAPPING, clairConfig } from './config.js';
import { ensureImage, putFiles } from './daemon-ops.js';
import { importUpdates, type UpdatesFile } from './import.js';
import { CLAIR_CONFIG_PATH, CLAIR_CONTAINER, CLAIR_MAPPING_PATH, LABEL_AIR_GAPPED, LABEL_PORT } from './names.js';
import { inspectOurs } from './ours.js';
import { Provisioner } from './provision.js';
import { waitForApi, waitForPostgres, waitForUpdate, type WaitOptions } from './readiness.js';
import { Rollback } from './rollback.js';
import type { ManagedSecrets } from './secrets.js';

export interface UpOptions extends WaitOptions {
  port: number;
  /** Wait for Clair's first vulnerability update (the default); false returns once the API answers. */
  waitForUpdate: boolean;
  secrets: ManagedSecrets;
  /**
   * Air-gapped: start Clair with its updaters off and the offline config (kept by every later start), then load
   * this `clairctl export-updaters` file instead of waiting for an updater run.
   */
  importFile?: UpdatesFile;
}

export interface UpResult {
  /** What `up` found: nothing (created), stopped containers (started) or a running server. */
  was: 'created' | 'started' | 'running';
  url: string;
  update: UpdateState;
  /** Updaters off: the data comes from imports only. */
  airGapped: boolean;
}

export type UpdateState =
  | ({ kind: 'updated' } & UpdateSummary)
  | { kind: 'empty' }
  | { kind: 'not-waited' };

export async function up(docker: Dockerode, options: UpOptions): Promise<UpResult> {
  const deadline = AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]);
  const timeoutSeconds = Math.round(options.timeoutMs / 1000);
  const rollback = new Rollback(docker);
  try {
    return await bringUp(docker, options, deadline, rollback);
  } catch (error) {
    // Once Clair answers, the server is up: a slow first update (or Ctrl-C while waiting for it) leaves it
    // running, and `status` tells when the update is done. Before that, and while `--import` loads its file
    // into a Clair this `up` created, nothing half-made is left behind.
    await rollback.undo();
    if (options.signal.aborted) throw options.signal.reason;
    if (deadline.aborted && !(error instanceof DockerClairError)) {
      throw new ManagedClairError(`docker clair server up did not finish within --timeout ${timeoutSeconds}s`,
        'raise --timeout, or pass --no-wait and check "docker clair server status" later', { cause: error });
    }
    throw error;
  }
}

/** What `up` finds: the Clair container (if any), what to do with it, and whether it runs air-gapped. */
async function existingClair(docker: Dockerode, options: UpOptions) {
  const existing = await inspectOurs(docker, CLAIR_CONTAINER, 'clair');
  // Once air-gapped, always: the label makes every later `up` write the offline config again.
  const airGapped = existing ? existing.Config.Labels?.[LABEL_AIR_GAPPED] === 'true' : options.importFile !== undefined;
  if (!existing) return { existing, airGapped, was: 'created' as UpResult['was'] };
  const port = existing.Config.Labels?.[LABEL_PORT];
  const image = existing.Config.Image;
  if (image !== options.clairImage || port !== String(options.port)) {
    throw new ManagedClairError(`the managed Clair already exists with image ${image} on port ${port ?? '?'}`,
      'run "docker clair server down" first to change its image or port (the database volume is kept)');
  }
  if (options.importFile && !airGapped) {
    throw new ManagedClairError('the managed Clair already exists with its updaters on, and --import sets up an air-gapped one',
      'load the file into it with "docker clair server import FILE", or run "docker clair server down" first (the database volume is kept)');
  }
  return { existing, airGapped, was: (existing.State.Running ? 'running' : 'started') as UpResult['was'] };
}

async function bringUp(docker: Dockerode, options: UpOptions, signal: AbortSignal, rollback: Rollback): Promise<UpResult> {
  const { progress } = options;
  const { existing, airGapped, was } = await existingClair(docker, options);
  if (was === 'running') {
    progress(`the managed Clair is already running (${CLAIR_CONTAINER}, ${options.clairImage})`);
  }
  const provision = new Provisioner(docker, rollback);
  await ensureImage(docker, options.postgresImage, progress, signal);
  await ensureImage(docker, options.clairImage, progress, signal);
  await provision.ensureNetwork();
  await provision.ensureVolume();
  const postgres = await provision.ensurePostgres(options, progress);
  await waitForPostgres(postgres, options, signal);
  if (was !== 'running') {
    const clair = existing ? docker.getContainer(CLAIR_CONTAINER) : await provision.createClair(options, airGapped);
    // A fresh config on every start: the secrets file is the source of truth.
    await putFiles(clair, [
      { path: CLAIR_CONFIG_PATH, content: clairConfig({ ...options.secrets, airGapped }) },
      ...(airGapped ? [{ path: CLAIR_MAPPING_PATH, content: EMPTY_MAPPING }] : []),
    ]);
    progress(`starting Clair (${options.clairImage}) on 127.0.0.1:${options.port}`);
    await provision.start(clair, CLAIR_CONTAINER, options.port);
  }
  const url = `http://127.0.0.1:${options.port}`;
  const client = await clientFor(new URL(url), options.secrets);
  await waitForApi(docker, client, options, signal);
  // A Clair this `up` did not create stays whatever happens next; a new one only once its import is done.
  rollback.keep(was !== 'created' || !options.importFile);
  progress(`Clair answers on ${url}${airGapped ? ' (air-gapped: updaters off)' : ''}`);
  if (airGapped) {
    if (options.importFile) await importUpdates(docker.getContainer(CLAIR_CONTAINER), options.importFile, progress, signal);
    rollback.keep();
    return { was, url, airGapped, update: await loadedData(client, options.importFile, signal) };
  }
  if (!options.waitForUpdate) return { was, url, airGapped, update: { kind: 'not-waited' } };
  const update = await waitForUpdate(docker, client, options, signal);
  return { was, url, airGapped, update: { kind: 'updated', ...update } };
}

/** Air-gapped, no updater will ever fill the database: what it holds now is all there is. */
async function loadedData(client: ClairV4Client, imported: UpdatesFile | undefined, signal: AbortSignal): Promise<UpdateState> {
  const state = updateSummary(await client.updateOperations(signal));
  if (state.updaters === 0) {
    throw new ManagedClairNotUpdatedError(imported
      ? `imported ${imported.path}, but the managed Clair still holds no vulnerability data (the file has none)`
      : 'the managed Clair runs air-gapped (updaters off) and holds no vulnerability data yet',
    'load a "clairctl export-updaters" file with "docker clair server import FILE"; scans exit 3 until then');
  }
  return { kind: 'updated', ...state };
}
