// How one image's `docker save` archive is read for a scan, whatever its source: exported by the daemon
// (daemon.ts), from a file (--input PATH, file.ts) or from a stream (--input -, stream.ts). The scan reads layers
// through ImageArchive only.
//
// Passes per image (ImageArchive.passes):
//   daemon   1 `docker save` (0 when Clair already has the image). A legacy save whose v1 directories the
//            diffIDs do not name (LegacyLayerMappingError; e.g. v1 IDs kept from a pre-1.10 migration) costs
//            two more: a hash pass over a second save, then a read of a third with the digests it found. The
//            first pass cannot become the hash pass: it stopped where the mapping failed, and its layers
//            already went to Clair (which does not fetch them again).
//   file     the header walk, then 1 read of the layer bytes (none when Clair already has the image): see
//            file.ts for why a file never needs a hash pass.
//   stream   1 read, ever.
import type { ImageRef, LayerStep } from '../findings/model.js';
import type { LegacyLayerMappingError } from '../runtime/errors.js';
import type { ArchiveEnd, ArchiveEvent, ReadSaveArchiveOptions } from '../save/reader.js';

export type ArchiveEvents = AsyncGenerator<ArchiveEvent, void, undefined>;

export interface ReadOptions {
  /**
   * Which layer bodies the archive hashes itself (readSaveArchive's `verify`): 'guesses' when the reader of
   * the bodies verifies every digest (Clair v4), 'all' (the default) otherwise.
   */
  verify?: ReadSaveArchiveOptions['verify'];
}

export interface ImageArchive {
  /** Where the bytes come from, for messages: `docker save`, the file's path, `stdin`. */
  readonly origin: string;
  /** The reference the report shows (for a stream, settled by identify()). */
  readonly ref: string;
  /** The manifest hash, when known before reading (a stream of blobs tells it only at its end). */
  readonly id: string | undefined;
  readonly repoDigests: readonly string[];
  /** The image's layers exactly as served, base first, when known before reading: other layers are skipped. */
  readonly layers: readonly string[] | undefined;
  /** The image order progress counts in: `layers`, else RootFS.Layers (what legacy and OCI saves serve). */
  readonly order: readonly string[];
  /** Passes over the archive so far: `docker save` calls, or reads of the input (the header walk included). */
  readonly passes: number;
  /** The build step that made each layer, base first, when the source knows them (the daemon's image history). */
  readonly buildSteps?: Promise<readonly LayerStep[] | undefined> | undefined;
  /** Starts one pass. */
  read(signal: AbortSignal, options?: ReadOptions): Promise<ArchiveEvents>;
  /** A pass failed with a LegacyLayerMappingError: make the next one unable to fail that way, or throw. */
  remap(error: LegacyLayerMappingError, signal: AbortSignal): Promise<void>;
  /** The archive's end: checks it is the image asked for; its manifest hash and reference. */
  identify(end: ArchiveEnd): { id: string; ref: string };
  /** What the passes were, for --debug. */
  describePasses(): string;
  /**
   * Clair already has the image, but the archive must still be read to its end (a stream: its producer is not
   * cut off, and its manifest.json gives the reference). Layers are drained and checked, not sent.
   */
  finishUnread?(signal: AbortSignal): Promise<void>;
}

/**
 * Several images of one source read in one pass (the daemon's `docker save a b c`): each layer entry once, shared
 * layers included, then one `end` event per archive, in the order of `archives`. A pass that fails with a
 * LegacyLayerMappingError is not remapped: the images are read one by one instead (ImageArchive.remap).
 */
export interface ArchiveGroup {
  readonly archives: readonly ImageArchive[];
  read(signal: AbortSignal, options?: ReadOptions): Promise<ArchiveEvents>;
}

/** How a report names an archive's image: its reference, the ID Clair knows it by, the daemon's repository digest. */
export function archiveImageRef(archive: ImageArchive, id: string): ImageRef {
  return {
    ref: archive.ref, id, ...(archive.repoDigests[0] ? { digest: archive.repoDigests[0] } : {}),
    source: archive.origin === 'docker save' ? 'daemon' : 'archive',
  };
}
