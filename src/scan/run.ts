// One `docker clair scan` run. So far: resolve the Docker endpoint, reach the daemon and inspect each
// image; exporting the layers to Clair is the next stage of the pipeline and not built yet.
import type { ScanOptions } from '../cli/options/scan-options.js';
import { createDockerClient } from '../docker/client.js';
import { resolveEndpoint } from '../docker/endpoint.js';
import { DockerImageSource } from '../docker/image-source.js';
import type { DockerGlobalFlags } from '../plugin/argv.js';
import { NotImplementedError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';

export interface ScanDeps {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  log: Logger;
  home?: string;
}

export async function runScan(options: Readonly<ScanOptions>, globals: DockerGlobalFlags, deps: ScanDeps): Promise<number> {
  const { log } = deps;
  if (options.input !== undefined) {
    throw new NotImplementedError('--input is not implemented yet', 'scan an image from the Docker daemon instead');
  }
  const endpoint = await resolveEndpoint(globals, deps.env, deps.home);
  for (const warning of endpoint.warnings) log.warn(warning);
  log.debug(`docker endpoint: ${endpoint.host} (context "${endpoint.contextName}", chosen by ${endpoint.source}${endpoint.tls ? `, TLS${endpoint.tls.verify ? '' : ' without verification'}` : ''})`);

  const source = new DockerImageSource(await createDockerClient(endpoint), endpoint);
  const daemon = await source.connect();
  log.debug(`docker daemon: Engine ${daemon.version}, API ${daemon.apiVersion}, ${daemon.os}/${daemon.arch}`);

  const images = [];
  for (const ref of options.images) {
    const image = await source.inspect(ref);
    log.debug(`image ${ref}: ${image.id}, ${image.diffIds.length} layer(s), ${image.os}/${image.architecture}`);
    images.push(image);
  }
  throw new NotImplementedError(
    `scanning with Clair is not implemented yet (inspected ${images.length} image(s) at ${endpoint.host})`,
    'this build only checks that the daemon and images are reachable',
  );
}
