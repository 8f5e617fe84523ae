// One image through the legacy Clair v1 API (Clair 1.x/2.x): layers are posted parent first (index-layers.ts; a
// registry image's straight from the registry), then Clair reports on the top layer, which covers its ancestors. Clair is asked first: a known top layer means
// no export at all.
import type { ClairV1Client } from './client.js';
import { indexLayersV1, knownPrefix, v1LayerRequest } from './index-layers.js';
import { indexReducedV1 } from './index-reduced.js';
import { v1LayerNames } from './layer-names.js';
import { toImageScanV1 } from './normalise.js';
import type { ImageRef, ImageScan } from '../../findings/model.js';
import type { LayerBinding } from '../../layer-server/advertise.js';
import { startEarly } from '../../layer-server/early.js';
import { ArchiveFormatError, ClairIndexError, ClairProtocolError } from '../../runtime/errors.js';
import type { RemoteImage } from '../../registry/client.js';
import { archiveImageRef, type ImageArchive } from '../../source/archive.js';
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
    // The layer server starts while Clair is asked about the top layer (layer-server/early.ts).
    const early = startEarly(binding, signal);
    const known = top !== undefined && archive.id !== undefined ? await early.during(clair.getLayer(top, { signal })) : undefined;
    let id = archive.id;
    let exported = false;
    let sent = { layersSent: 0, bytesSent: 0 };
    let unsupported: string | undefined;
    if (known && id !== undefined) {
      log.debug(`Clair v1 already has the top layer ${top}: no export`);
      await early.discard();
      run.progress({ stage: 'cached', image: archive.ref });
      await archive.finishUnread?.(signal);
    } else {
      exported = true;
      const server = early.take();
      const indexed = this.settings.fullLayers === true
        ? await indexLayersV1({ archive, clair, binding, server, ...run, bufferCap: this.settings.bufferCap ?? DEFAULT_V1_BUFFER }, order)
        : await indexReducedV1({ archive, clair, binding, server, ...run }, order);
      ({ id, order, unsupported } = indexed);
      sent = { layersSent: indexed.layersSent, bytesSent: indexed.bytesSent };
    }
    log.debug(`${archive.ref}: ${archive.describePasses()}`);

    const ref = archiveImageRef(archive, id ?? '');
    const scan = unsupported === undefined ? await this.match(ref, order, run) : this.unsupportedScan(ref, unsupported);
    run.progress({ stage: 'done', image: archive.ref, findings: scan.findings.length });
    return { scan, exported, ...sent };
  }

  /**
   * An image in a registry: each layer Clair lacks is posted parent first with `Path` = the blob's URL and `Headers`
   * = the pull token, so Clair fetches it from the registry itself. Layers are named by the chain of blob digests.
   */
  async scanRemote(image: RemoteImage, run: EngineRun): Promise<EngineResult> {
    const { clair } = this.settings;
    const { signal } = run;
    const order = image.layers.map((l) => l.digest);
    const names = v1LayerNames(order);
    const ref: ImageRef = { ref: image.ref, id: image.configDigest, digest: image.repoDigest, source: 'registry' };
    if (names.length === 0) throw new ClairProtocolError(`${image.ref} has no layers Clair v1 could fetch`);
    let unsupported: string | undefined;
    if (await clair.getLayer(names.at(-1) as string, { signal })) {
      run.log.debug(`Clair v1 already has the top layer of ${image.ref}: nothing fetched`);
      run.progress({ stage: 'cached', image: image.ref });
    } else {
      for (let i = await knownPrefix(clair, names, signal); i < order.length && unsupported === undefined; i++) {
        const request = v1LayerRequest(names, i, (image.layers[i] as RemoteImage['layers'][number]).url, image.clairHeaders);
        let result;
        try {
          result = await clair.postLayer(request, signal);
        } catch (error) {
          if (error instanceof ClairIndexError && /could not find layer/.test(error.message)) {
            throw new ClairIndexError(`Clair v1 could not fetch layer ${order[i]} of ${image.ref} from the registry at ${image.host} (400: could not find layer)`,
              'Clair fetches the layers itself: it needs a network path to the registry, and the pull token may have expired; scan again', { cause: error });
          }
          throw error;
        }
        if (result.kind === 'unsupported') unsupported = result.message;
        run.progress({ stage: 'layer', image: image.ref, digest: order[i] as string, index: i, total: order.length, fetched: true, bytes: 0 });
      }
    }
    const scan = unsupported === undefined ? await this.match(ref, order, run) : this.unsupportedScan(ref, unsupported);
    run.progress({ stage: 'done', image: image.ref, findings: scan.findings.length });
    return { scan, exported: false, layersSent: 0, bytesSent: 0 };
  }

  /** The top layer's report, which covers its ancestors. */
  private async match(ref: ImageRef, order: string[], run: EngineRun): Promise<ImageScan> {
    const { clair, clairUrl } = this.settings;
    const names = v1LayerNames(order);
    const topName = names.at(-1);
    if (topName === undefined) throw new ArchiveFormatError(`${ref.ref} has no layers`);
    run.progress({ stage: 'match', image: ref.ref });
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
