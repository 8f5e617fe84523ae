// A fresh Clair double per test, and its record of layer GETs split into the image's layers and the preflight's
// probe layer (served under /probe/ by the layer server; src/clair/v4/preflight.ts).
import { startClairDouble, type ClairDouble, type ClairDoubleOptions } from '../double/server.js';

type Fetch = ClairDouble['layerFetches'][number];

export const isProbe = (fetch: Fetch): boolean => /\/probe\/sha256:[0-9a-f]{64}$/.test(fetch.uri);

/** Layer GETs of images (what a scan sends), without the preflight probes. */
export function imageLayerFetches(clair: Pick<ClairDouble, 'layerFetches'>): Fetch[] {
  return clair.layerFetches.filter((f) => !isProbe(f));
}

export function probeFetches(clair: Pick<ClairDouble, 'layerFetches'>): Fetch[] {
  return clair.layerFetches.filter(isProbe);
}

/** Runs `fn` against a fresh Clair double fetching one layer at a time (so fetch order is the scan's order). */
export function withDouble<T>(fn: (clair: ClairDouble) => Promise<T>): Promise<T> {
  return withDoubleOf({ fetchConcurrency: 1 }, fn);
}

/** A fresh Clair double in v1 mode. */
export function withV1Double<T>(fn: (clair: ClairDouble) => Promise<T>): Promise<T> {
  return withDoubleOf({ api: 'v1' }, fn);
}

async function withDoubleOf<T>(options: ClairDoubleOptions, fn: (clair: ClairDouble) => Promise<T>): Promise<T> {
  const clair = await startClairDouble(options);
  try {
    return await fn(clair);
  } finally {
    await clair.close();
  }
}
