// One layer in flight: its tar entry handed out as a body that is hashed as it streams and ends only once the
// bytes hashed to the digest announced (or, unchecked, once `size` bytes arrived). The tar stream cannot move on
// while a body is unread, so what the consumer leaves is drained by settle().
import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import { ArchiveFormatError, LegacyLayerMappingError } from '../runtime/errors.js';
import type { Chunks } from './chunks.js';
import type { LayerCompression } from './format.js';

/**
 * A layer's bytes as stored, read once. Each chunk is valid only until the next read() (it may be a view of a
 * reused buffer): copy what must outlive it, finish writing it before reading on. read() returns null only
 * after every byte came and (when `checked`) hashed to the digest; on a mismatch, a truncated archive or an
 * abort it throws (ArchiveFormatError, LegacyLayerMappingError, or the signal's reason), as the archive's
 * iterator then does too.
 */
export type LayerBody = Pick<Chunks, 'read'>;

export interface LayerEntry {
  /** `sha256:<hex>` of the bytes exactly as stored: the hash Clair is given and verifies. */
  digest: string;
  /** Size of the body in bytes (the tar entry's size). */
  size: number;
  /** Name of the entry in the archive: `<v1id>/layer.tar` or `blobs/sha256/<hex>`. */
  tarName: string;
  compression: LayerCompression;
  /**
   * Whether the body is hashed against `digest` as it streams (always, unless `verify: 'guesses'` and the
   * digest is certain by the entry's name or a previous pass): unchecked bytes are checked by the consumer.
   */
  checked: boolean;
  /**
   * Read it to its end, or stop reading, before asking the archive's iterator for the next event: what is left
   * is then drained (and checked, when `checked`) by the iterator, and read() fails from then on.
   */
  body: LayerBody;
}

export class LayerFeed {
  readonly layer: LayerEntry;
  /** Undefined when the layer is not checked here (LayerEntry.checked). */
  private readonly hash: Hash | undefined;
  private bytes = 0;
  /** The entry was read to its end and found whole. */
  private ended = false;
  private failure: { error: unknown } | undefined;
  /** settle() took over: the consumer's reads fail. */
  private detached = false;
  /** The last read: one at a time, since each chunk is valid only until the next. */
  private reading: Promise<unknown> | undefined;

  constructor(
    private readonly data: Pick<Chunks, 'read'>,
    /** Chunks already read from the entry (copies), handed out first. */
    private readonly head: Buffer[],
    info: Omit<LayerEntry, 'body'>,
    private readonly explain: (error: unknown) => unknown,
    /** Why the digest is only a guess (a legacy top layer not confirmed yet): a mismatch is then a mapping error. */
    private readonly guess?: string,
  ) {
    this.hash = info.checked ? createHash(info.digest.slice(0, info.digest.indexOf(':'))) : undefined;
    this.layer = {
      ...info,
      body: {
        read: () => {
          if (this.detached) {
            return Promise.reject(this.failure?.error
              ?? new Error(`layer ${info.tarName} was read past the point where the archive moved on`));
          }
          const read = this.pull();
          this.reading = read;
          return read;
        },
      },
    };
  }

  /** The next chunk (hashed), or null at the end of the entry once its digest has been checked. */
  private async pull(): Promise<Buffer | null> {
    this.check();
    if (this.ended) return null;
    let chunk = this.head.shift() ?? null;
    if (chunk === null) {
      try {
        chunk = await this.data.read();
      } catch (error) {
        this.fail(this.explain(error));
      }
      this.check(); // failed while reading, or aborted meanwhile
      if (chunk === null) {
        this.finish();
        this.check();
        return null;
      }
    }
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    return chunk;
  }

  private check(): void {
    if (this.failure) throw this.failure.error;
  }

  private finish(): void {
    const { digest, tarName, size } = this.layer;
    const actual = this.hash ? `${digest.slice(0, digest.indexOf(':'))}:${this.hash.digest('hex')}` : digest;
    if (actual !== digest || this.bytes !== size) {
      const mismatch = this.hash
        ? `expected ${digest}, the ${this.bytes} bytes read hash to ${actual}`
        : `expected ${size} bytes, read ${this.bytes}`;
      this.fail(this.guess
        ? new LegacyLayerMappingError(`legacy directory ${posix.dirname(tarName)} was taken for ${this.guess}, but it is not: ${mismatch}`,
            'save the image by ID, one image per archive; a hashing pass can map the layers instead')
        : new ArchiveFormatError(`layer ${tarName} does not match its digest: ${mismatch}`,
            'the archive is corrupt, or the image changed while it was exported'));
      return;
    }
    this.ended = true;
  }

  fail(error: unknown): void {
    this.failure ??= { error };
  }

  /** Waits until the entry is read to its end, draining what the consumer left; throws what went wrong. */
  async settle(): Promise<void> {
    this.detached = true;
    try {
      await this.reading; // the consumer sees its failure; here only its end matters
    } catch {
      // recorded in this.failure
    }
    try {
      while ((await this.pull()) !== null);
    } catch {
      // recorded in this.failure
    }
    this.check();
  }

  /** The iterator is going away (early return, error): a body not yet complete fails from now on. */
  abandon(): void {
    this.detached = true;
    if (!this.ended) this.fail(new ArchiveFormatError(`reading the save archive stopped before layer ${this.layer.tarName} was complete`));
  }
}
