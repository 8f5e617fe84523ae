// Which layer a `<v1id>/` directory of a legacy save (Engine < 25) holds, decided before its bytes arrive: every
// directory but the top one is named by a v1 ID computed from RootFS.Layers (legacy-ids.ts), and the top one is
// recognised by its json naming the computed ID below it. The daemon's time zone changes the computed IDs; it is
// learnt from the first json below the top. When the top layer's json comes first, its directory is a guess that
// the layer's hash confirms (LayerFeed).
import { ArchiveFormatError, LegacyLayerMappingError } from '../runtime/errors.js';
import type * as Save from './format.js';
import { LEGACY_EPOCH_CREATED, legacyTopV1Id, legacyV1Ids } from './legacy-ids.js';

export class LegacyMapping {
  /** The computed directories (all but the top layer) → layer index. */
  private byDir = new Map<string, number>();
  private computed: string[] = [];
  private created = LEGACY_EPOCH_CREATED;
  /** The top layer's directory; confirmed once its parent is the computed v1 ID below it. */
  private top: { dir: string; parent: string | undefined; confirmed: boolean } | undefined;
  /** Directories whose json was read: parent, and whether it is the top-layer form (with the image config). */
  private readonly seen = new Map<string, { parent: string | undefined; topForm: boolean }>();
  /** Directories of other images (recognised only once the top layer confirmed the computed IDs). */
  private readonly foreign = new Set<string>();

  constructor(private readonly diffIds: readonly string[]) {
    this.compute();
  }

  private compute(): void {
    this.computed = this.diffIds.length > 0 ? legacyV1Ids(this.diffIds, { created: this.created }) : [];
    this.byDir = new Map(this.computed.map((id, i) => [id, i]));
  }

  /** The parent the top layer's json must name. */
  private get topParent(): string | undefined {
    return this.diffIds.length >= 2 ? this.computed[this.diffIds.length - 2] : undefined;
  }

  /** Whether `dir` is one of the computed directories below the top. */
  computes(dir: string): boolean {
    return this.byDir.has(dir);
  }

  /** `<dir>/json` was read and the directory is known to be another image's. */
  foreignDir(dir: string, v1: Save.V1Json): void {
    const parent = typeof v1?.parent === 'string' && v1.parent !== '' ? v1.parent : undefined;
    this.seen.set(dir, { parent, topForm: v1?.config !== undefined && v1?.config !== null });
    if (this.top?.dir === dir) this.top = undefined;
    this.foreign.add(dir);
  }

  /** The layer index of a directory, if known. */
  indexOf(dir: string): number | undefined {
    return this.byDir.get(dir) ?? (this.top?.dir === dir ? this.diffIds.length - 1 : undefined);
  }

  /** `<dir>/json` was read: confirm a computed ID, find the top layer, or learn the daemon's epoch. */
  json(dir: string, v1: Save.V1Json): void {
    if (typeof v1 !== 'object' || v1 === null || (v1.id !== undefined && v1.id !== dir)) {
      throw new ArchiveFormatError(`the save archive is corrupt: ${dir}/json does not describe layer ${dir}`);
    }
    const parent = typeof v1.parent === 'string' && v1.parent !== '' ? v1.parent : undefined;
    const topForm = v1.config !== undefined && v1.config !== null;
    this.seen.set(dir, { parent, topForm });
    if (this.diffIds.length === 0) return;
    if (this.byDir.has(dir)) return this.checkParent(dir, parent);
    if (parent === this.topParent) {
      if (this.top?.confirmed && this.top.dir !== dir) throw this.unknown(dir, parent, 'a second directory on top of the same parent');
      if (this.top) this.foreign.add(this.top.dir); // an unconfirmed guess, now disproved
      this.top = { dir, parent, confirmed: true };
      return;
    }
    // time.Unix(0, 0) marshals in the daemon's time zone: learn it from a layer below the top, compute again.
    if (!topForm && typeof v1.created === 'string' && v1.created !== this.created) {
      this.created = v1.created;
      this.compute();
      for (const [d, s] of this.seen) if (this.byDir.has(d)) this.checkParent(d, s.parent);
      if (this.top) this.top.confirmed = this.top.parent === this.topParent;
      if (this.byDir.has(dir)) return;
    }
    // The top layer's json may come before those of the layers below: tentatively, the hash will tell.
    if (topForm && this.top === undefined) {
      this.top = { dir, parent, confirmed: false };
      return;
    }
    if (this.top?.confirmed) {
      this.foreign.add(dir);
      return;
    }
    throw this.unknown(dir, parent);
  }

  private checkParent(dir: string, parent: string | undefined): void {
    const index = this.byDir.get(dir) as number;
    const expected = index === 0 ? undefined : this.computed[index - 1];
    if (parent !== expected) {
      throw new LegacyLayerMappingError(
        `legacy layer directory ${dir} names parent ${parent ?? '(none)'}, but the v1 IDs computed from RootFS.Layers say ${expected ?? '(none)'}`,
        'save the image by ID, one image per archive');
    }
    if (this.top && !this.top.confirmed && this.top.parent === this.topParent) this.top.confirmed = true;
  }

  private unknown(dir: string, parent: string | undefined, why?: string): LegacyLayerMappingError {
    return new LegacyLayerMappingError(
      `cannot tell which layer legacy directory ${dir} holds (parent ${parent ?? '(none)'}): ` +
        (why ?? `its v1 ID is neither computed from the ${this.diffIds.length} RootFS layers nor the top layer's`),
      'save the image by ID, one image per archive; a hashing pass can map the layers instead');
  }

  /**
   * The digest of `<dir>/layer.tar` before its bytes are read (undefined: another image's layer), and whether
   * it is a guess: a top layer not yet confirmed by the IDs below it.
   */
  digestOf(dir: string): { digest: string; guess?: string } | undefined {
    const guess = 'the top layer';
    const index = this.indexOf(dir);
    if (index !== undefined) {
      const digest = this.diffIds[index] as string;
      return this.top?.dir === dir && !this.top.confirmed ? { digest, guess } : { digest };
    }
    if (this.foreign.has(dir)) return undefined;
    // No json before it (moby always writes one): the directory left over is the top layer; the hash will tell.
    if (!this.seen.has(dir) && this.top === undefined && this.diffIds.length > 0) {
      this.top = { dir, parent: undefined, confirmed: false };
      return { digest: this.diffIds[this.diffIds.length - 1] as string, guess };
    }
    throw this.unknown(dir, this.seen.get(dir)?.parent);
  }
}

/**
 * The directories of several images saved together (`docker save a b c`): shared layers are saved once, under the
 * v1 ID every image computes alike. Each directory's json is given to the mapping of the image it belongs to and
 * marked foreign in the others: a computed directory belongs to the images that compute it, a top directory to
 * the image whose exact top v1 ID it is (legacyTopV1Id). A directory neither explains (a daemon in another time
 * zone, a json marshalled otherwise) is judged by every mapping, and one of them must claim it.
 */
export class LegacyMappings {
  private readonly mappings: LegacyMapping[];

  constructor(private readonly images: readonly (readonly string[])[]) {
    this.mappings = images.map((diffIds) => new LegacyMapping(diffIds));
  }

  /** The layer index of a directory in image `image` (an index into the constructor's list), if known. */
  indexOf(image: number, dir: string): number | undefined {
    return this.mappings[image]?.indexOf(dir);
  }

  json(dir: string, v1: Save.V1Json, text: string): void {
    const [only] = this.mappings;
    if (only && this.mappings.length === 1) return only.json(dir, v1);
    let owners = this.mappings.filter((m) => m.computes(dir));
    if (owners.length === 0 && typeof v1 === 'object' && v1 !== null && v1.config !== undefined && v1.config !== null) {
      const top = this.images.findIndex((diffIds) => legacyTopV1Id(text, diffIds) === dir);
      if (top >= 0) owners = [this.mappings[top] as LegacyMapping];
    }
    if (owners.length > 0) {
      for (const m of this.mappings) {
        if (owners.includes(m)) m.json(dir, v1);
        else m.foreignDir(dir, v1);
      }
      return;
    }
    let claimed = false;
    let first: unknown;
    for (const m of this.mappings) {
      try {
        m.json(dir, v1);
        claimed = true;
      } catch (error) {
        if (!(error instanceof LegacyLayerMappingError)) throw error;
        first ??= error;
      }
    }
    if (!claimed) throw first;
  }

  /** As LegacyMapping.digestOf, over the images: a certain digest before a guess; undefined if no image has it. */
  digestOf(dir: string): { digest: string; guess?: string } | undefined {
    const [only] = this.mappings;
    if (only && this.mappings.length === 1) return only.digestOf(dir);
    let guess: { digest: string; guess?: string } | undefined;
    let foreign = false;
    let first: unknown;
    for (const m of this.mappings) {
      try {
        const mapped = m.digestOf(dir);
        if (mapped === undefined) foreign = true;
        else if (mapped.guess === undefined) return mapped;
        else guess ??= mapped;
      } catch (error) {
        first ??= error;
      }
    }
    if (guess || foreign) return guess;
    throw first;
  }
}
