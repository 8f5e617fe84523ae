// The executable's entry point. The docker CLI runs `docker-clair docker-cli-plugin-metadata` before every plugin
// call; it is answered here before the plugin's bundle is even compiled: compiling the 1.8 MB script cost that
// call ~6 ms of ~30 (docs/benchmarks.md). Any other command runs the bundle (main.ts), which the executable
// carries as an asset, with the V8 code cache made for it when the executable was built (scripts/code-cache.cjs).
import { dirname } from 'node:path';
import { getAsset } from 'node:sea';
import { Script } from 'node:vm';
import { pluginMetadata } from './plugin/metadata.js';

/** The asset names and the bundle's CommonJS wrapper, set by scripts/bundle.mjs (SEA_ASSETS) for the build to match. */
declare const DOCKER_CLAIR_SEA_ASSETS: { bundle: string; codeCache: string; head: string; tail: string };

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
  const { bundle, head, tail } = DOCKER_CLAIR_SEA_ASSETS;
  const script = new Script(head + getAsset(bundle, 'utf8') + tail, {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
  });
  // The build checks that V8 took the cache it made: a refused cache would cost every command ~45 ms, silently.
  if (cachedData && script.cachedDataRejected && process.env.DOCKER_CLAIR_CHECK_CODE_CACHE) {
    process.stderr.write('docker-clair: the V8 code cache was rejected\n');
    process.exit(70);
  }
  const module = { exports: {} };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(module.exports, module.exports, require, module, process.execPath, dirname(process.execPath));
}
