// One image through the legacy Clair v1 API (Clair 1.x/2.x): layers are posted parent first (index-layers.ts),
// then Clair reports on the top layer, which covers its ancestors. Clair is asked first: a known top layer means
// no export at all.
import type { ClairV1Client } from './client.js';
import { indexLayersV1 } from './index-layers.js';
import { indexReducedV1 } from './index-reduced.js';
import { v1LayerNames } from './layer-names.js';
import { toImageScanV1 } from './normalise.js';
import type { ImageRef, ImageScan } from '../../findings/model.js';
import type { LayerBinding } from '../../layer-server/advertise.js';
import { ArchiveFormatError, ClairProtocolError } from '../../runtime/errors.js';
import type { ImageArchive } from '../../source/archive.js';
import type { ClairEngine, EngineResult, EngineRun } from '../engine.js';

/** Default cap on layer bytes held in memory while waiting for their parents: 256 MiB. */
export const DEFAULT_V1_BUFFER = 256 * 1024 * 1024;

export interface V1EngineSettings {
  clair: ClairV1Client;
  clairUrl: string;
  binding: LayerBinding;
  /** Whole layers (--v1-full-layers), held up to bufferCap and read again beyond it; else reduced layers. */
  fullLayers?: boolean;
  /** Bytes of out-of-order whole layers that may be held in memory (--v1-buffer). */
  bufferCap?: number;
}

export class ClairV1Engine implements ClairEngine {
  readonly api = 'v1';

  constructor(private readonly settings: V1EngineSettings) {}

  async scan(archive: ImageArchive, run: EngineRun): Promise<EngineResult> {
    const { clair, binding } = this.settings;
    const { signal, log } = run;
    let order = [...(archive.layers ?? archive.order)];
    const top = v1LayerNames(order).at(-1);
    const known = top !== undefined && archive.id !== undefined ? await clair.getLayer(top, { signal }) : undefined;
    let id = archive.id;
    let exported = false;
    let sent = { layersSent: 0, bytesSent: 0 };
    let unsupported: string | undefined;
    if (known && id !== undefined) {
      log.debug(`Clair v1 already has the top layer ${top}: no export`);
      run.progress({ stage: 'cached', image: archive.ref });
      await archive.finishUnread?.(signal);
    } else {
      exported = true;
      const indexed = this.settings.fullLayers === true
        ? await indexLayersV1({ archive, clair, binding, ...run, bufferCap: this.settings.bufferCap ?? DEFAULT_V1_BUFFER }, order)
        : await indexReducedV1({ archive, clair, binding, ...run }, order);
      ({ id, order, unsupported } = indexed);
      sent = { layersSent: indexed.layersSent, bytesSent: indexed.bytesSent };
    }
    log.debug(`${archive.ref}: ${archive.describePasses()}`);

    const ref: ImageRef = {
      ref: archive.ref, id: id ?? '', ...(archive.repoDigests[0] ? { digest: archive.repoDigests[0] } : {}),
      source: archive.origin === 'docker save' ? 'daemon' : 'archive',
    };
    const scan = unsupported === undefined ? await this.match(archive, ref, order, run) : this.unsupportedScan(ref, unsupported);
    run.progress({ stage: 'done', image: archive.ref, findings: scan.findings.length });
    return { scan, exported, ...sent };
  }

  /** The top layer's report, which covers its ancestors. */
  private async match(archive: ImageArchive, ref: ImageRef, order: string[], run: EngineRun): Promise<ImageScan> {
    const { clair, clairUrl } = this.settings;
    const names = v1LayerNames(order);
    const topName = names.at(-1);
    if (topName === undefined) throw new ArchiveFormatError(`${archive.ref} has no layers`);
    run.progress({ stage: 'match', image: archive.ref });
    const layer = await clair.getLayer(topName, { vulnerabilities: true, signal: run.signal });
    if (!layer) {
      throw new ClairProtocolError(`Clair v1 does not know layer ${topName} right after indexing it`,
        'another client may have deleted it meanwhile; run the scan again');
    }
    const layerDigests = new Map(names.map((name, i) => [name, order[i] as string]));
    const scan = toImageScanV1(layer, { image: ref, url: clairUrl, layerDigests });
    if (scan.findings.length === 0 && layer.NamespaceName) {
      const empty = await this.emptyDatabase(layer.NamespaceName, run);
      if (empty) scan.trust.push({ kind: 'empty-database', message: empty });
    }
    return scan;
  }

  private unsupportedScan(ref: ImageRef, message: string): ImageScan {
    return {
      image: ref, engine: { api: 'v1', url: this.settings.clairUrl }, packageCount: 0, findings: [],
      trust: [{ kind: 'unsupported-os', message: `Clair (v1) does not support this image: ${message}` }],
    };
  }

  /**
   * Clair v1 has no "database loaded" signal: a clean result is believed only when the image's namespace is
   * listed and holds at least one vulnerability. Returns the reason it cannot be believed, or undefined.
   */
  private async emptyDatabase(namespace: string, run: EngineRun): Promise<string | undefined> {
    const { clair } = this.settings;
    const page = await clair.vulnerabilities(namespace, 1, run.signal);
    if (!page || page.Vulnerabilities.length === 0) {
      const all = await clair.namespaces(run.signal).catch(() => []);
      run.log.debug(`Clair v1 namespaces: ${all.map((n) => n.Name).join(', ') || '(none)'}`);
      return `Clair's vulnerability database holds no vulnerabilities for ${namespace} (its updaters have not run, or do not cover it); no result can be trusted`;
    }
    return undefined;
  }
}
