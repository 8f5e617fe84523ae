// The executable's entry point. The docker CLI runs `docker-clair docker-cli-plugin-metadata` before every plugin
// call; it is answered here before the plugin's bundle is even compiled: compiling the 1.8 MB script cost that
// call ~6 ms of ~30 (docs/benchmarks.md). Any other command runs the bundle (main.ts), which the executable
// carries as an asset, with the V8 code cache made for it when the executable was built.
import { dirname } from 'node:path';
import { getAsset } from 'node:sea';
import { compileFunction } from 'node:vm';
import { pluginMetadata } from './plugin/metadata.js';

/** The asset names and the bundle's wrapper parameters, set by scripts/bundle.mjs (SEA_ASSETS) for the build to match. */
declare const DOCKER_CLAIR_SEA_ASSETS: { bundle: string; codeCache: string; params: string[] };

if (process.argv[2] === 'docker-cli-plugin-metadata') {
  process.stdout.write(`${JSON.stringify(pluginMetadata(), null, 2)}\n`);
} else {
  runBundle();
}

function runBundle(): void {
  let cachedData: Buffer | undefined;
  try {
    cachedData = Buffer.from(getAsset(DOCKER_CLAIR_SEA_ASSETS.codeCache));
  } catch {
    // An executable built for another platform carries no code cache: the bundle is compiled as it runs.
  }
  const { bundle, params } = DOCKER_CLAIR_SEA_ASSETS;
  const run = compileFunction(getAsset(bundle, 'utf8'), params, {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
  });
  const module = { exports: {} };
  run.call(module.exports, module.exports, require, module, process.execPath, dirname(process.execPath));
}
