// Small dockerode operations the managed server is built from, each with the daemon's errors turned into
// messages a user can act on. Nothing here knows about Clair.
import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { daemonMessage } from '../docker/daemon-message.js';
import { packTar } from '../save/pack.js';
import { ManagedClairError } from '../runtime/errors.js';

export function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

/** Inspect, or undefined on 404. */
export async function inspectOrUndefined<T>(inspect: () => Promise<T>): Promise<T | undefined> {
  try {
    return await inspect();
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

export interface PullProgress {
  (line: string): void;
}

/**
 * Makes sure the daemon has `image`: nothing to do when it does, else a pull through the daemon (its
 * registry access and credentials helpers, not ours). A daemon that cannot pull gets a message naming
 * the image and the way out (docker load).
 */
export async function ensureImage(docker: Dockerode, image: string, progress: PullProgress, signal: AbortSignal): Promise<'present' | 'pulled'> {
  if (await inspectOrUndefined(() => docker.getImage(image).inspect())) return 'present';
  progress(`pulling ${image}`);
  const fail = (error: unknown) => new ManagedClairError(`cannot pull image ${image}: ${daemonMessage(error)}`,
    `check the name, or load it into the daemon (docker load) when the daemon cannot reach its registry`, { cause: error });
  let stream: Readable;
  try {
    stream = (await docker.pull(image, { abortSignal: signal })) as Readable;
  } catch (error) {
    signal.throwIfAborted();
    throw fail(error);
  }
  let lastReport = 0;
  const layers = new Map<string, { current: number; total: number }>();
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => stream.destroy(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    docker.modem.followProgress(
      stream,
      (error: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) return reject(signal.reason);
        // A failed pull still ends the stream normally, with the error as its last event.
        const failed = events?.find((e) => e.error !== undefined || e.errorDetail !== undefined);
        if (error) return reject(fail(error));
        if (failed) return reject(fail(new Error(failed.errorDetail?.message ?? failed.error)));
        resolve();
      },
      (event: { id?: string; status?: string; progressDetail?: { current?: number; total?: number } }) => {
        if (event.id && event.progressDetail?.total) {
          layers.set(event.id, { current: event.progressDetail.current ?? 0, total: event.progressDetail.total });
        }
        const now = Date.now();
        if (now - lastReport >= 2000 && layers.size > 0) {
          lastReport = now;
          let current = 0;
          let total = 0;
          for (const l of layers.values()) {
            current += l.current;
            total += l.total;
          }
          progress(`pulling ${image}: ${(current / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
        }
      },
    );
  });
  progress(`pulled ${image}`);
  return 'pulled';
}

/** Runs a command in a running container; its exit code (output discarded). */
export async function execExitCode(container: Dockerode.Container, cmd: string[], signal: AbortSignal): Promise<number> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Readable;
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => stream.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    stream.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
    stream.on('close', () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
    stream.on('end', () => resolve());
    stream.resume();
  });
  signal.throwIfAborted();
  const info = await exec.inspect();
  return info.ExitCode ?? -1;
}

export interface ExecResult {
  exitCode: number;
  /** stdout and stderr as the command wrote them, its last 64 KiB at most. */
  output: string;
}

const EXEC_OUTPUT_LIMIT = 64 * 1024;

/** Runs a command in a running container (as `user`, default the container's) and keeps what it wrote. */
export async function execCapture(container: Dockerode.Container, cmd: string[], options: { user?: string },
  signal: AbortSignal): Promise<ExecResult> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, ...(options.user ? { User: options.user } : {}) });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Readable;
  // Without a TTY the stream is frames (8-byte header: stream, 3 zero bytes, big-endian length; then the payload).
  let pending: Buffer = Buffer.alloc(0);
  const payloads: Buffer[] = [];
  let held = 0;
  const take = (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 8) {
      const length = pending.readUInt32BE(4);
      if (pending.length < 8 + length) break;
      payloads.push(pending.subarray(8, 8 + length));
      held += length;
      pending = pending.subarray(8 + length);
      while (held > EXEC_OUTPUT_LIMIT && payloads.length > 1) held -= payloads.shift()!.length;
    }
  };
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => stream.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    stream.on('error', (e) => (signal.aborted ? done() : reject(e)));
    stream.on('close', done);
    stream.on('end', done);
    stream.on('data', take);
  });
  signal.throwIfAborted();
  const info = await exec.inspect();
  const output = Buffer.concat(payloads).toString('utf8');
  return { exitCode: info.ExitCode ?? -1, output: output.length > EXEC_OUTPUT_LIMIT ? output.slice(-EXEC_OUTPUT_LIMIT) : output };
}

/** The last `lines` lines a container wrote (stdout and stderr interleaved as the daemon stored them). */
export async function tailLogs(container: Dockerode.Container, lines: number): Promise<string[]> {
  try {
    const raw = (await container.logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
    return demuxLogBuffer(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)))
      .split('\n').map((l) => l.trimEnd()).filter((l) => l.length > 0).slice(-lines);
  } catch {
    return [];
  }
}

/**
 * A container without a TTY has its logs multiplexed: frames of an 8-byte header (stream, 3 zero bytes,
 * big-endian length) and the payload. Anything else is taken as plain text.
 */
export function demuxLogBuffer(buffer: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const kind = buffer[offset];
    if ((kind !== 0 && kind !== 1 && kind !== 2) || buffer[offset + 1] !== 0 || buffer[offset + 2] !== 0 || buffer[offset + 3] !== 0) {
      return buffer.toString('utf8');
    }
    const length = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length;
  }
  if (offset !== buffer.length) return buffer.toString('utf8');
  return Buffer.concat(parts).toString('utf8');
}

/** Writes files into a (created, not necessarily started) container: works with any daemon, local or not. */
export async function putFiles(container: Dockerode.Container, files: { path: string; content: string }[]): Promise<void> {
  const directories = new Set<string>();
  const entries = files.flatMap(({ path, content }) => {
    const parts = path.replace(/^\//, '').split('/');
    const parents = parts.slice(1).map((_, i) => `${parts.slice(0, i + 1).join('/')}/`).filter((d) => !directories.has(d));
    for (const d of parents) directories.add(d);
    return [
      ...parents.map((name) => ({ header: { name, type: 'directory' as const, mode: 0o755 } })),
      { header: { name: parts.join('/'), mode: 0o644 }, content },
    ];
  });
  await container.putArchive(Readable.from([await packTar(entries)]), { path: '/' });
}
