// What a scan asks of Clair, whichever API Clair speaks: this image's archive in, the image's scan out (and what
// was sent to get it). v4 indexes layer by layer as the save stream delivers them and matches by manifest; v1
// posts layers parent first and reports on the top one. The run picks the engine once, from the detected API.
import type { ImageScan } from '../findings/model.js';
import type { LayerBinding } from '../layer-server/advertise.js';
import type { Logger } from '../runtime/log.js';
import type { ProgressSink } from '../runtime/progress.js';
import type { RemoteImage } from '../registry/client.js';
import type { ArchiveGroup, ImageArchive } from '../source/archive.js';
import type { ProxySettings } from '../runtime/proxy.js';
import type { PskAuth } from './auth.js';
import type { ClairApi } from './detect.js';
import { ClairV1Client } from './v1/client.js';
import { ClairV1Engine } from './v1/engine.js';
import { ClairV4Client } from './v4/client.js';
import { ClairV4Engine } from './v4/engine.js';

/** What one run lends each scan: its log, its progress display, its cancellation. */
export interface EngineRun {
  log: Logger;
  progress: ProgressSink;
  signal: AbortSignal;
}

export interface EngineResult {
  scan: ImageScan;
  /** Whether layers were read from the archive (false when Clair already had the image). */
  exported: boolean;
  layersSent: number;
  bytesSent: number;
}

/** What a source can read of several images at once (ChosenSource.group). */
export type GroupRead = (archives: readonly ImageArchive[]) => ArchiveGroup | undefined;

export interface ClairEngine {
  readonly api: ClairApi;
  scan(archive: ImageArchive, run: EngineRun): Promise<EngineResult>;
  /** An image in a registry, which Clair fetches from the registry itself. */
  scanRemote?(image: RemoteImage, run: EngineRun): Promise<EngineResult>;
  /** Several images, those Clair lacks read together where `together` allows; results in the order given. */
  scanAll?(archives: readonly ImageArchive[], together: GroupRead, run: EngineRun): Promise<PromiseSettledResult<EngineResult>[]>;
}

export interface EngineSettings {
  indexerUrl: URL;
  /** v4 only: v1 has one API address, the indexer's. */
  matcherUrl: URL;
  psk?: PskAuth | undefined;
  ca?: Buffer | undefined;
  /** Where the layer server listens, and the address Clair is given. */
  binding: LayerBinding;
  /** v4: --max-db-age (0 = no limit), against this clock. */
  maxDbAgeMs: number;
  now: () => Date;
  /** v1: bytes of out-of-order layers that may be held in memory (--v1-buffer). */
  v1BufferBytes?: number | undefined;
  /** v1: whole layers (--v1-full-layers) rather than the files Clair v1 reads. */
  v1FullLayers?: boolean | undefined;
  /** HTTP(S)_PROXY/NO_PROXY for the requests to Clair. */
  proxy?: ProxySettings | undefined;
}

export async function createClairEngine(api: ClairApi, settings: EngineSettings): Promise<ClairEngine> {
  const { indexerUrl, matcherUrl, psk, ca, binding } = settings;
  const clairUrl = indexerUrl.href;
  if (api === 'v1') {
    const clair = await ClairV1Client.create({ url: indexerUrl, ...(ca ? { ca } : {}), proxy: settings.proxy });
    return withBuildSteps(new ClairV1Engine({
      clair, clairUrl, binding, fullLayers: settings.v1FullLayers === true,
      ...(settings.v1BufferBytes !== undefined ? { bufferCap: settings.v1BufferBytes } : {}),
    }));
  }
  const clair = await ClairV4Client.create({ indexerUrl, matcherUrl, ...(psk ? { psk } : {}), ...(ca ? { ca } : {}), proxy: settings.proxy });
  return withBuildSteps(new ClairV4Engine({ clair, clairUrl, binding, dataAge: { maxAgeMs: settings.maxDbAgeMs, now: settings.now } }));
}

/** The image's build steps come with its archive (the daemon's history, when it tells them): the scan carries them. */
function withBuildSteps(engine: ClairEngine): ClairEngine {
  const withSteps = async (archive: ImageArchive, result: EngineResult) => {
    const steps = await archive.buildSteps;
    if (steps) result.scan.layers = [...steps];
    return result;
  };
  const scanAll = engine.scanAll?.bind(engine);
  const scanRemote = engine.scanRemote?.bind(engine);
  return {
    api: engine.api,
    ...(scanRemote ? { scanRemote } : {}),
    async scan(archive, run) {
      return withSteps(archive, await engine.scan(archive, run));
    },
    ...(scanAll ? {
      async scanAll(archives: readonly ImageArchive[], together: GroupRead, run: EngineRun) {
        const results = await scanAll(archives, together, run);
        await Promise.all(results.map((r, i) => (r.status === 'fulfilled' ? withSteps(archives[i] as ImageArchive, r.value) : undefined)));
        return results;
      },
    } : {}),
  };
}
