// Images that reach an engine by a real pull from a registry on loopback (Debian's docker-registry), pushed from
// the system daemon. With the containerd image store a pulled image keeps the registry's gzip blobs — unless the
// store already had snapshots of its layers: then Engine 26.1.5 skips the download and its `docker save` lacks
// the blobs its own manifest.json lists. Both are what users' daemons hold, so the tests make both.
import { TEST_IMAGES, dockerCli } from './daemon.js';
import { engineCli, imageFacts, type TestEngine } from './engines.js';
import { startRegistry, type Registry } from './registry.js';

/** Layers of their own (FROM scratch), never loaded into the engines: a pull downloads every blob. */
export const REGISTRY_BASE = 'docker-clair-test/registry-base:latest';
/** The stable name a complete pull of REGISTRY_BASE is kept under on a containerd-store engine. */
export const PULLED_GZIP = 'docker-clair-test/registry-base-pulled:latest';

export interface PulledImages {
  /** An image whose every blob came from the registry (gzip), complete in `docker save`. */
  gzip: string;
  /** multilayer pulled where its base layer was loaded before: its export lacks that blob (Engine 26.1.5 defect). */
  incomplete: string;
  close(): Promise<void>;
}

function pushToRegistry(registry: Registry, image: string, repo: string): string {
  const ref = `${registry.host}/${repo}:1`;
  dockerCli(['tag', image, ref]);
  try {
    dockerCli(['push', '-q', ref]);
  } finally {
    dockerCli(['rmi', ref]);
  }
  return ref;
}

/**
 * Pulls the two images into a containerd-store engine. The gzip image is kept under PULLED_GZIP (only the
 * registry's name is removed afterwards, so nothing is garbage-collected and a later pull of the same blobs finds
 * them complete).
 */
export async function pullTestImages(engine: TestEngine): Promise<PulledImages> {
  const registry = await startRegistry();
  const pulled: string[] = [];
  const close = async () => {
    for (const ref of pulled) engineCli(engine, ['rmi', ref]);
    await registry.close();
  };
  try {
    const gzipRef = pushToRegistry(registry, REGISTRY_BASE, 'docker-clair-test/registry-base');
    engineCli(engine, ['pull', '-q', gzipRef]);
    pulled.push(gzipRef);
    engineCli(engine, ['tag', gzipRef, PULLED_GZIP]);
    const incompleteRef = pushToRegistry(registry, TEST_IMAGES.multilayer, 'docker-clair-test/multilayer');
    engineCli(engine, ['pull', '-q', incompleteRef]);
    pulled.push(incompleteRef);
    // The base layer is debian12's, which the engine had before the pull: its blob is the one left out.
    const base = imageFacts(engine, TEST_IMAGES.debian12).diffIds[0];
    if (imageFacts(engine, incompleteRef).diffIds[0] !== base) {
      throw new Error(`${incompleteRef} should be built on the ${TEST_IMAGES.debian12} that ${engine.label} holds`);
    }
    return { gzip: PULLED_GZIP, incomplete: incompleteRef, close };
  } catch (error) {
    await close().catch(() => { /* the first error is the one to report */ });
    throw error;
  }
}
