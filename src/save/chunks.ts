// Bytes read once, in order, as chunks that are valid only until the next read(). A source may read into one
// reused buffer (the daemon's export: docker/stream-get.ts): a new Buffer per chunk leaves every dead chunk
// waiting for V8's garbage collector, which is most of a scan's memory (docs/benchmarks.md). So a reader that
// keeps bytes past its next read() copies them, and a writer waits until they are written before reading on.
import type { Readable } from 'node:stream';

export interface Chunks {
  /** The next chunk, or null at the end. It is valid only until the next call. Throws the source's error. */
  read(): Promise<Buffer | null>;
  /** Stops reading and releases the source (an export stops). Idempotent. */
  close(reason?: unknown): void;
}

/** Chunks of a Node stream (a file, stdin, an HTTP response): each is its own Buffer, so reuse is no concern. */
export function readableChunks(stream: Readable): Chunks {
  const queue: Buffer[] = [];
  let failure: { error: unknown } | undefined;
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  // Listening from the start: an error emitted before the first read() is kept for it (unheard, it would crash
  // the process).
  stream.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    stream.pause();
    notify();
  });
  stream.on('end', () => {
    ended = true;
    notify();
  });
  stream.on('error', (error) => {
    failure ??= { error };
    notify();
  });
  stream.on('close', notify);
  stream.pause();
  return {
    async read() {
      for (;;) {
        const chunk = queue.shift();
        if (chunk !== undefined) return chunk;
        if (failure) throw failure.error;
        if (ended) return null;
        // destroy(error) sets `errored` at once; the 'error' event comes a tick later.
        if (stream.destroyed) throw stream.errored ?? new Error('the stream closed before its end');
        stream.resume();
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
    close(reason) {
      if (!stream.destroyed) stream.destroy(reason as Error | undefined);
    },
  };
}

/** Chunks of bytes already in memory. */
export function bufferChunks(buffers: readonly Buffer[]): Chunks {
  let next = 0;
  return {
    read: () => Promise.resolve(next < buffers.length ? (buffers[next++] as Buffer) : null),
    close() {
      next = buffers.length;
    },
  };
}

/** Reads to the end and throws the bytes away. */
export async function drain(chunks: Pick<Chunks, 'read'>): Promise<void> {
  while ((await chunks.read()) !== null);
}

/** Reads to the end, copying: the whole content in one Buffer. */
export async function collectChunks(chunks: Pick<Chunks, 'read'>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let chunk = await chunks.read(); chunk; chunk = await chunks.read()) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** `for await` over chunks: each is valid only until the loop asks for the next. */
export async function* eachChunk(chunks: Pick<Chunks, 'read'>): AsyncGenerator<Buffer, void, undefined> {
  for (let chunk = await chunks.read(); chunk; chunk = await chunks.read()) yield chunk;
}
