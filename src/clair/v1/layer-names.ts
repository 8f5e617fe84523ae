// Clair v1 names layers, and a layer's name stands for it with all its parents: the chain ID hex of each layer
// (its digest and its parents'), so the same layer under the same parents is the same Clair layer across images
// and runs.
import { chainIds } from '../../save/legacy-ids.js';

/** The Clair v1 layer Names of an image's layers (base first): the chain ID hex of each. */
export function v1LayerNames(digests: readonly string[]): string[] {
  return chainIds(digests).map((chain) => chain.replace(/^sha\d+:/, ''));
}
