// One layer in flight: its tar entry handed out as a body that is hashed as it streams and ends only once the
// bytes hashed to the digest announced (or, unchecked, once `size` bytes arrived). The tar stream cannot move on
// while a body is unread, so what the consumer leaves is drained by settle().
import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { ArchiveFormatError, LegacyLayerMappingError } from '../runtime/errors.js';
import type { LayerCompression } from './format.js';

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
   * The bytes as stored. It ends only after they hashed to `digest` (when `checked`; otherwise once `size`
   * bytes arrived); on a mismatch, a truncated archive or an abort it is destroyed with the error
   * (ArchiveFormatError, or the signal's reason), which the iterator also throws. Read it to its end, or
   * destroy it, before asking the iterator for the next event: the tar stream cannot move on meanwhile. A body
   * still unread at that point is drained (and checked, when `checked`) by the iterator and then destroyed.
   */
  body: Readable;
}

export class LayerFeed {
  readonly layer: LayerEntry;
  private readonly body: Readable;
  /** Undefined when the layer is not checked here (LayerEntry.checked). */
  private readonly hash: Hash | undefined;
  /** Bytes read from the tar entry, and those of them pushed into the body. */
  private bytes = 0;
  private pushed = 0;
  /** The tar entry was read to its end. */
  private ended = false;
  /** ...and hashed to the announced digest. */
  private verified = false;
  private failure: unknown;
  /** settle() took over: nothing more goes into the body. */
  private detached = false;
  private wanted = false;
  private running = false;
  private pumped: Promise<void> = Promise.resolve();

  constructor(
    private readonly chunks: AsyncIterator<Buffer>,
    private readonly head: Buffer[],
    info: Omit<LayerEntry, 'body'>,
    private readonly explain: (error: unknown) => Promise<unknown>,
    /** Why the digest is only a guess (a legacy top layer not confirmed yet): a mismatch is then a mapping error. */
    private readonly guess?: string,
  ) {
    this.hash = info.checked ? createHash(info.digest.slice(0, info.digest.indexOf(':'))) : undefined;
    this.body = new Readable({
      read: () => {
        this.wanted = true;
        this.pump();
      },
    });
    // Failures also reach the caller through the iterator: a consumer that let go of the body must not crash.
    this.body.on('error', () => {});
    this.layer = { ...info, body: this.body };
  }

  private pump(): void {
    if (this.running || this.detached) return;
    this.running = true;
    this.pumped = this.pumpLoop();
  }

  private async pumpLoop(): Promise<void> {
    try {
      while (this.wanted && !this.detached && !this.ended && !this.body.destroyed) {
        this.wanted = false;
        const chunk = await this.pull();
        if (chunk === null) break;
        if (!this.detached && !this.body.destroyed) {
          this.pushed += chunk.length;
          this.body.push(chunk);
        }
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.running = false;
    }
  }

  /** The next chunk (hashed), or null at the end of the entry once its digest has been checked. */
  private async pull(): Promise<Buffer | null> {
    let chunk = this.head.shift();
    if (chunk === undefined) {
      let r: IteratorResult<Buffer>;
      try {
        r = await this.chunks.next();
      } catch (error) {
        throw await this.explain(error);
      }
      if (r.done) {
        this.finish();
        return null;
      }
      chunk = r.value;
    }
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    return chunk;
  }

  private finish(): void {
    this.ended = true;
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
    this.verified = true;
    // Only a body that got every byte ends; one the consumer let go of is destroyed by settle().
    if (!this.body.destroyed && this.pushed === this.bytes) this.body.push(null);
  }

  fail(error: unknown): void {
    this.failure ??= error;
    if (!this.body.destroyed) this.body.destroy(error instanceof Error ? error : new Error(String(error)));
  }

  /** Waits until the entry is read to its end, draining what the consumer left; throws what went wrong. */
  async settle(): Promise<void> {
    this.detached = true;
    await this.pumped;
    try {
      while (!this.ended && this.failure === undefined) {
        if ((await this.pull()) === null) break;
      }
    } catch (error) {
      this.fail(error);
    }
    if (this.failure !== undefined) throw this.failure;
    const complete = this.verified && this.pushed === this.bytes && this.body.readableLength === 0;
    if (!complete && !this.body.destroyed) this.body.destroy();
  }

  /** The iterator is going away (early return, error): a body not yet complete ends with an error. */
  abandon(): void {
    if (!(this.verified && this.pushed === this.bytes) && !this.body.destroyed) {
      this.body.destroy(new ArchiveFormatError(`reading the save archive stopped before layer ${this.layer.tarName} was complete`));
    }
  }
}
