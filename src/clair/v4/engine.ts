// One image through Clair v4: ask Clair whether it already has the image, else index it from the save stream
// (index-layers.ts), then fetch the vulnerability report and weigh what Clair's database can vouch for.
//
// The archive comes from the daemon, a file or a stream (ImageArchive, which also counts the passes: a legacy
// save whose layers the diffIDs cannot map costs a hash pass and another read). A stream of blobs tells the
// image's identity only at its end, so Clair is asked about the image first only when it is known.
import type { ClairV4Client } from './client.js';
import { indexFromSaveStream, indexGroupFromSaveStream, type StreamIndexed } from './index-layers.js';
import { toImageScan } from './normalise.js';
import { staleDataWarning } from './update-age.js';
import type * as V4 from './wire.js';
import type { ImageRef, ImageScan, TrustSignal } from '../../findings/model.js';
import type { RemoteImage } from '../../registry/client.js';
import type { LayerBinding } from '../../layer-server/advertise.js';
import { startEarly } from '../../layer-server/early.js';
import type { LayerServer } from '../../layer-server/server.js';
import { ClairIndexError, ClairProtocolError, LegacyLayerMappingError } from '../../runtime/errors.js';
import { archiveImageRef, type ImageArchive } from '../../source/archive.js';
import type { ClairEngine, EngineResult, EngineRun, GroupRead } from '../engine.js';

export interface V4EngineSettings {
  clair: ClairV4Client;
  clairUrl: string;
  binding: LayerBinding;
  /** --max-db-age: one warning per engine (one engine per run) when Clair's data is older than maxAgeMs. */
  dataAge?: { maxAgeMs: number; now: () => Date };
}

export class ClairV4Engine implements ClairEngine {
  readonly api = 'v4';
  private staleWarned = false;

  constructor(private readonly settings: V4EngineSettings) {}

  /** Asks for Clair's update operations, for an image's report; the answer (or failure) is settled, never thrown. */
  private askOperations(run: EngineRun): Promise<Asked<V4.UpdateOperations>> {
    return this.settings.clair.updateOperations(run.signal).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
  }

  async scan(archive: ImageArchive, run: EngineRun): Promise<EngineResult> {
    // The layer server starts while Clair is asked about the image (layer-server/early.ts).
    const early = startEarly(this.settings.binding, run.signal);
    if (await early.during(this.alreadyIndexed(archive.id, run))) {
      await early.discard();
      return this.complete(archive, run, 'indexed');
    }
    return this.complete(archive, run, undefined, early.take());
  }

  /**
   * Several images: Clair is asked about each first, and those it lacks are indexed from one read when `together`
   * groups them (one `docker save` of them all, shared layers once), else one by one.
   */
  async scanAll(archives: readonly ImageArchive[], together: GroupRead, run: EngineRun): Promise<PromiseSettledResult<EngineResult>[]> {
    const known: (StreamIndexed | 'indexed' | undefined)[] = [];
    const failed = new Map<number, unknown>();
    // Clair is asked about every image at once: each answer is a round trip before the export.
    await Promise.all(archives.map(async (archive, i) => {
      try {
        known[i] = await this.alreadyIndexed(archive.id, run) ? 'indexed' : undefined;
      } catch (error) {
        failed.set(i, error);
      }
    }));
    run.signal.throwIfAborted();
    const cold = [...archives.keys()].filter((i) => !failed.has(i) && known[i] === undefined);
    const group = cold.length >= 2 ? together(cold.map((i) => archives[i] as ImageArchive)) : undefined;
    if (group) {
      run.log.debug(`exporting ${cold.length} images in one docker save: ${group.archives.map((a) => a.ref).join(', ')}`);
      try {
        const indexed = await indexGroupFromSaveStream({ clair: this.settings.clair, binding: this.settings.binding, ...run }, group);
        cold.forEach((i, k) => (known[i] = indexed[k]));
      } catch (error) {
        if (run.signal.aborted) throw error;
        // A legacy save whose layers the diffIDs cannot name: each image is read on its own, with a hash pass.
        if (!(error instanceof LegacyLayerMappingError)) for (const i of cold) failed.set(i, error);
        else run.log.debug(`${error.message}: reading the images one by one`);
      }
    }
    // Each image's report is asked for at once too (in the images' order in the results).
    const results = await Promise.allSettled(archives.map((archive, i) =>
      (failed.has(i) ? Promise.reject(failed.get(i)) : this.complete(archive, run, known[i]))));
    run.signal.throwIfAborted();
    return results;
  }

  /** Whether Clair has a finished index for manifest hash `id` (an image whose ID is not known yet has none). */
  private async alreadyIndexed(id: string | undefined, run: EngineRun): Promise<boolean> {
    if (id === undefined) return false;
    return (await this.settings.clair.getIndexReport(id, run.signal))?.state === 'IndexFinished';
  }

  /** An image Clair had ('indexed'), indexed with others (its result), or to index now (undefined); then its report. */
  private async complete(
    archive: ImageArchive, run: EngineRun, known: StreamIndexed | 'indexed' | undefined, server?: Promise<LayerServer>,
  ): Promise<EngineResult> {
    const { clair, binding } = this.settings;
    const { signal, log } = run;
    let id = archive.id;
    let exported = false;
    let sent = { layersSent: 0, bytesSent: 0 };
    let cleanup: Promise<void> = Promise.resolve();
    // Clair's update operations are asked for while the image is exported and indexed: its report waits on them.
    const operations = this.askOperations(run);
    if (known === 'indexed' && id !== undefined) {
      log.debug(`Clair already indexed ${id}: no export`);
      run.progress({ stage: 'cached', image: archive.ref });
      await archive.finishUnread?.(signal);
    } else {
      exported = true;
      const indexed = known !== undefined && known !== 'indexed' ? known
        : await indexFromSaveStream({ archive, clair, binding, ...(server ? { server } : {}), ...run });
      ({ id, cleanup } = indexed);
      sent = { layersSent: indexed.layersSent, bytesSent: indexed.bytesSent };
    }
    log.debug(`${archive.ref}: ${archive.describePasses()}`);

    run.progress({ stage: 'match', image: archive.ref });
    let scan: ImageScan;
    try {
      scan = await this.match(archiveImageRef(archive, id), id, run, operations);
    } finally {
      await cleanup;
    }
    run.progress({ stage: 'done', image: archive.ref, findings: scan.findings.length });
    return { scan, exported, ...sent };
  }

  /**
   * An image in a registry: Clair fetches its layers from the registry itself (the blob URLs, with a pull-scoped
   * token), under the manifest's digest; nothing is exported and no layer byte passes through here.
   */
  async scanRemote(image: RemoteImage, run: EngineRun): Promise<EngineResult> {
    const { clair } = this.settings;
    const hash = image.manifestDigest;
    const operations = this.askOperations(run);
    if (await this.alreadyIndexed(hash, run)) {
      run.log.debug(`Clair already indexed ${hash}: no layer fetched`);
      run.progress({ stage: 'cached', image: image.ref });
    } else {
      run.progress({ stage: 'index', image: image.ref });
      const manifest: V4.Manifest = { hash, layers: image.layers.map((l) => ({ hash: l.digest, uri: l.url, headers: image.clairHeaders })) };
      try {
        await clair.index(manifest, run.signal);
      } catch (error) {
        throw explainRegistryFetch(error, image);
      }
    }
    run.progress({ stage: 'match', image: image.ref });
    const scan = await this.match({ ref: image.ref, id: image.configDigest, digest: image.repoDigest, source: 'registry' }, hash, run, operations);
    run.progress({ stage: 'done', image: image.ref, findings: scan.findings.length });
    return { scan, exported: false, layersSent: 0, bytesSent: 0 };
  }

  /** The vulnerability report of an image Clair indexed under `id`, with what Clair's database can vouch for. */
  private async match(ref: ImageRef, id: string, run: EngineRun, operations: Promise<Asked<V4.UpdateOperations>>): Promise<ImageScan> {
    const { clair, clairUrl } = this.settings;
    const result = await clair.vulnerabilityReport(id, run.signal);
    if (result.kind === 'not-indexed') {
      throw new ClairProtocolError(`Clair reports no finished index for ${id} right after indexing it`,
        'another client may have deleted it meanwhile; run the scan again');
    }
    if (result.kind === 'empty-database') {
      // No matching ran, but the index report still says what the image is (packages, distribution).
      const indexReport = await clair.getIndexReport(id, run.signal);
      const nothingMatched = { manifest_hash: id, packages: {}, distributions: {}, environments: {}, vulnerabilities: {}, package_vulnerabilities: {} };
      const scan: ImageScan = { ...toImageScan(nothingMatched, { image: ref, url: clairUrl, ...(indexReport ? { indexReport } : {}) }), trust: [] };
      scan.trust.push({
        kind: 'empty-database',
        message: "Clair's vulnerability database is empty (its updaters have not finished a first run); no result can be trusted yet",
      });
      return scan;
    }
    const scan = toImageScan(result.report, { image: ref, url: clairUrl });
    scan.trust.push(...this.updaterSignals(scan, run, await operations));
    return scan;
  }

  /**
   * Clair's report is only as good as its database: no updater run at all (Clair < 4.5 answers with an
   * empty report instead of 202), or none for this distribution, means "no findings" says nothing.
   */
  private updaterSignals(scan: ImageScan, run: EngineRun, asked: Asked<V4.UpdateOperations>): TrustSignal[] {
    if (!asked.ok) {
      if (run.signal.aborted) throw asked.error;
      run.log.debug(`update_operation not available: ${(asked.error as Error).message}`);
      return [];
    }
    const operations = asked.value;
    const names = Object.keys(operations);
    if (names.length === 0) {
      return [{ kind: 'empty-database', message: 'Clair has never completed a vulnerability update (update_operation is empty)' }];
    }
    this.warnIfStale(operations, run);
    const did = scan.distribution?.id;
    if (did && !names.some((n) => updaterMatches(n, did))) {
      run.log.warn(`no Clair updater for distribution "${did}" (updaters: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''})`);
      return [{ kind: 'no-updater', message: `Clair's database has no vulnerability source for ${did}; OS packages cannot be matched` }];
    }
    return [];
  }

  /** Old data is not untrusted data: the findings it gives are real, only newer advisories are missing. */
  private warnIfStale(operations: V4.UpdateOperations, run: EngineRun): void {
    const { dataAge } = this.settings;
    if (!dataAge || this.staleWarned) return;
    const warning = staleDataWarning(operations, dataAge.maxAgeMs, dataAge.now());
    if (warning) {
      this.staleWarned = true;
      run.log.warn(warning);
    }
  }
}

/** A request's answer or its failure, kept for later. */
type Asked<T> = { ok: true; value: T } | { ok: false; error: unknown };

// Updater names embed the distribution, but not always under Clair's distribution id.
const UPDATER_ALIASES: Record<string, string[]> = {
  amzn: ['aws'],
  ol: ['oracle'],
  rhel: ['rhel', 'redhat'],
  sles: ['suse'],
  opensuse: ['suse'],
  'opensuse-leap': ['suse'],
};

function updaterMatches(updater: string, did: string): boolean {
  const name = updater.toLowerCase();
  return [did.toLowerCase(), ...(UPDATER_ALIASES[did.toLowerCase()] ?? [])].some((alias) => name.includes(alias));
}

/** Clair's failure to fetch from the registry, in the registry's terms: a refused token is said to be one. */
function explainRegistryFetch(error: unknown, image: RemoteImage): unknown {
  if (!(error instanceof ClairIndexError)) return error;
  const { failure } = error;
  const said = 'said' in failure ? failure.said : error.message;
  if (/\b(401|403)\b|unauthorized|forbidden/i.test(said)) {
    return new ClairIndexError(`the registry at ${image.host} refused Clair's layer requests for ${image.ref} (${said}): the pull token expired or was not accepted`,
      'scan again (a fresh token is made for each scan); if it persists, check that your login may pull the image', { cause: error, failure });
  }
  if (failure.reason === 'connect-failed') {
    return new ClairIndexError(`Clair cannot reach the registry at ${image.host}: ${failure.said}`,
      'Clair fetches the layers itself: it needs a network path to the registry (or scan from the daemon: --image-src daemon)', { cause: error, failure });
  }
  return error;
}
