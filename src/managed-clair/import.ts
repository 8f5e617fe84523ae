// Loading vulnerability data into the managed Clair without network access, the way Clair documents it for
// disconnected installations: `clairctl export-updaters` on a connected machine writes a file, and
// `clairctl import-updaters FILE` run beside the disconnected Clair loads it into its database. The file is
// copied into the Clair container (every Clair image ships clairctl at /usr/bin/clairctl), imported there with the
// container's own config (so its database DSN and password stay inside), and removed again.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import { pack } from 'tar-stream';
import { daemonMessage } from '../docker/daemon-message.js';
import { ManagedClairError, UsageError, errnoCode } from '../runtime/errors.js';
import { clientFor, updateSummary, type UpdateSummary } from './clair-client.js';
import { execCapture } from './daemon-ops.js';
import { CLAIR_CONFIG_PATH, CLAIR_CONTAINER, CLAIR_IMPORT_DIR, LABEL_AIR_GAPPED, LABEL_PORT } from './names.js';
import { inspectOurs } from './ours.js';
import type { ManagedSecrets } from './secrets.js';

export interface UpdatesFile {
  /** As given (for messages). */
  path: string;
  size: number;
  /** From the file's first bytes: clairctl picks its decompression by the name's extension only. */
  compression: 'gzip' | 'zstd' | 'none';
}

const HINT = 'give the file "clairctl export-updaters" wrote on a machine with network access (JSON lines, optionally .gz or .zst)';

/** Checks that `path` is a readable, non-empty regular file before anything is created or copied. */
export async function checkUpdatesFile(path: string): Promise<UpdatesFile> {
  const unreadable = (why: string, error?: unknown) =>
    new UsageError(`cannot read the vulnerability data file ${path}: ${why}`, HINT, error === undefined ? undefined : { cause: error });
  let size: number;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw unreadable('it is a directory');
    if (!info.isFile()) throw unreadable('not a regular file');
    size = info.size;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw unreadable(errnoCode(error) === 'ENOENT' ? 'no such file' : (errnoCode(error) ?? String(error)), error);
  }
  if (size === 0) throw unreadable('it is empty');
  const head = Buffer.alloc(4);
  try {
    const handle = await open(path, 'r');
    try {
      await handle.read(head, 0, 4, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw unreadable(errnoCode(error) ?? String(error), error);
  }
  const compression = head[0] === 0x1f && head[1] === 0x8b ? 'gzip'
    : head.readUInt32LE(0) === 0xfd2fb528 ? 'zstd' : 'none';
  return { path, size, compression };
}

/**
 * `clairctl import-updaters` of `file` inside the running Clair container. The copy is removed afterwards, on
 * failure and cancellation too. A file clairctl cannot load is an error carrying clairctl's own last words.
 */
export async function importUpdates(container: Dockerode.Container, file: UpdatesFile, progress: (line: string) => void,
  signal: AbortSignal): Promise<void> {
  const name = `docker-clair-import-${randomBytes(8).toString('hex')}${{ gzip: '.jsonl.gz', zstd: '.jsonl.zst', none: '.jsonl' }[file.compression]}`;
  const target = `${CLAIR_IMPORT_DIR}/${name}`;
  progress(`copying ${file.path} (${(file.size / 1e6).toFixed(1)} MB) into the Clair container`);
  try {
    await copyIn(container, file, name, signal);
    progress(`importing it with clairctl import-updaters (large exports take minutes)`);
    let result;
    try {
      result = await execCapture(container, ['clairctl', '--config', CLAIR_CONFIG_PATH, 'import-updaters', target], {}, signal);
    } catch (error) {
      signal.throwIfAborted();
      throw new ManagedClairError(`cannot run clairctl in the Clair container: ${daemonMessage(error)}`,
        'the Clair image must ship clairctl (the official quay.io/projectquay/clair images do, at /usr/bin/clairctl)', { cause: error });
    }
    if (result.exitCode !== 0) {
      const notFound = result.exitCode === 126 || result.exitCode === 127;
      throw new ManagedClairError(notFound
        ? `the Clair image has no clairctl to import ${file.path} with (exit code ${result.exitCode})`
        : `clairctl import-updaters could not load ${file.path} (exit code ${result.exitCode}): ${lastWords(result.output)}`,
      notFound ? 'use an image that ships clairctl, as the official quay.io/projectquay/clair images do' : HINT);
    }
  } finally {
    // Also after a cancellation: the removal gets a signal of its own.
    await execCapture(container, ['rm', '-f', target], { user: '0' }, AbortSignal.timeout(30_000)).catch(() => undefined);
  }
}

/** `server import`: loads an updates file into the running managed Clair; its data afterwards when it answers. */
export async function importIntoRunning(docker: Dockerode, file: UpdatesFile, secrets: ManagedSecrets | undefined,
  progress: (line: string) => void, signal: AbortSignal): Promise<{ airGapped: boolean; update?: UpdateSummary }> {
  const info = await inspectOurs(docker, CLAIR_CONTAINER, 'clair');
  if (!info?.State.Running) {
    throw new ManagedClairError(`the managed Clair is not running${info ? ` (container ${CLAIR_CONTAINER} is ${info.State.Status})` : ''}, so ${file.path} cannot be imported`,
      'start it with "docker clair server up --import FILE", which imports the file too');
  }
  await importUpdates(docker.getContainer(CLAIR_CONTAINER), file, progress, signal);
  const airGapped = info.Config.Labels?.[LABEL_AIR_GAPPED] === 'true';
  const port = info.Config.Labels?.[LABEL_PORT];
  if (!secrets || !port) return { airGapped };
  try {
    const client = await clientFor(new URL(`http://127.0.0.1:${port}`), secrets);
    return { airGapped, update: updateSummary(await client.updateOperations(AbortSignal.any([signal, AbortSignal.timeout(15_000)]))) };
  } catch {
    signal.throwIfAborted();
    return { airGapped };
  }
}

/** The copy is streamed: an export of every distribution is gigabytes, never held in memory. */
async function copyIn(container: Dockerode.Container, file: UpdatesFile, name: string, signal: AbortSignal): Promise<void> {
  const archive = pack();
  const entry = archive.entry({ name, size: file.size, mode: 0o644 });
  const feeding = pipeline(createReadStream(file.path), entry, { signal }).then(() => archive.finalize());
  feeding.catch((error: unknown) => archive.destroy(error as Error));
  try {
    await Promise.all([container.putArchive(archive as unknown as NodeJS.ReadableStream, { path: CLAIR_IMPORT_DIR, abortSignal: signal }), feeding]);
  } catch (error) {
    signal.throwIfAborted();
    throw new ManagedClairError(`cannot copy ${file.path} into the Clair container: ${daemonMessage(error)}`, undefined, { cause: error });
  }
}

/**
 * clairctl's error in one line: its last log lines without colours and timestamps, or the first line of a Go panic
 * without the stack (clairctl v4.9.0 panics on a file that is not a jsonblob export instead of saying so).
 */
export function lastWords(output: string): string {
  // clairctl's console logger colours its lines even when they go to a pipe.
  let text = output.replace(/\x1b\[[0-9;]*m/g, '');
  const panic = /^goroutine \d+ \[/m.exec(text);
  if (panic) text = text.slice(0, panic.index);
  const lines = text.split('\n').map((l) => l.trim().replace(/^\d{4}-\d\d-\d\dT\S+\s+/, '')).filter((l) => l.length > 0);
  const words = (panic ? lines.slice(0, 1) : lines.slice(-2)).join(' | ');
  if (!words) return 'it printed nothing';
  return words.length > 600 ? `${words.slice(0, 600)}…` : words;
}
