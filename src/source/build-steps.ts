// Which build step made which layer, from `GET /images/{name}/history`. The endpoint lists every history
// entry (newest first) without saying which ones produced a layer, so metadata-only steps are recognised
// and the rest are paired with RootFS.Layers; when the counts disagree the pairing is not trusted at all.
import type { LayerStep } from '../findings/model.js';

export interface HistoryEntry {
  CreatedBy?: string;
  Size?: number;
}

// Dockerfile instructions that only change the image config (BuildKit records them without a shell).
const METADATA = /^(ENV|LABEL|CMD|ENTRYPOINT|EXPOSE|USER|ARG|VOLUME|STOPSIGNAL|HEALTHCHECK|SHELL|ONBUILD|MAINTAINER|WORKDIR)\b/;

function makesLayer(entry: HistoryEntry): boolean {
  if ((entry.Size ?? 0) > 0) return true;
  const step = (entry.CreatedBy ?? '').trim();
  // The classic builder marks config-only steps "#(nop)"; COPY and ADD carry it too but do make layers.
  const nop = /^\/bin\/sh -c #\(nop\) ?\s*(\S+)/.exec(step);
  if (nop) return nop[1] === 'COPY' || nop[1] === 'ADD';
  return !METADATA.test(step);
}

/** The build step of each layer, base first, or undefined when the history cannot be paired with the layers. */
export function layerSteps(historyNewestFirst: readonly HistoryEntry[], diffIds: readonly string[]): LayerStep[] | undefined {
  const layered = [...historyNewestFirst].reverse().filter(makesLayer);
  if (layered.length !== diffIds.length) return undefined;
  return diffIds.map((digest, i) => ({ digest, createdBy: layered[i]?.CreatedBy ?? '' }));
}
