// The Docker engines the export suites run against. scripts/test.sh starts them (the system daemon, plus Debian
// 13's Engine 26 with the classic and with the containerd image store, scripts/engines.sh) and lists them in
// DOCKER_CLAIR_TEST_ENGINES; a test file run on its own gets the system daemon only.
import type Docker from 'dockerode';
import { dockerAt, dockerCliAt, TEST_DOCKER_HOST } from './daemon.js';

export interface TestEngine {
  /** `system`, `classic26`, `containerd26`. */
  name: string;
  /** unix:// socket of the engine. */
  host: string;
  /** The engine's version as it reports it, e.g. `26.1.5+dfsg1`. */
  version: string;
  store: 'classic' | 'containerd';
  /** For test names: `Docker 26.1.5+dfsg1 (containerd store)`. */
  label: string;
}

function parseEngines(text: string | undefined): TestEngine[] {
  if (!text) return [];
  const list = JSON.parse(text) as Omit<TestEngine, 'label'>[];
  return list.map((e) => ({ ...e, label: `Docker ${e.version} (${e.store} store)` }));
}

let cached: TestEngine[] | undefined;

/** Every engine of this run, the system daemon first. */
export function testEngines(): TestEngine[] {
  cached ??= parseEngines(process.env.DOCKER_CLAIR_TEST_ENGINES);
  if (cached.length === 0) {
    const version = dockerCliAt(TEST_DOCKER_HOST, ['version', '--format', '{{.Server.Version}}']);
    cached = [{ name: 'system', host: TEST_DOCKER_HOST, version, store: 'classic', label: `Docker ${version} (classic store)` }];
  }
  return cached;
}

/** Runs the docker CLI against `engine` and returns its trimmed stdout. */
export function engineCli(engine: TestEngine, args: string[]): string {
  return dockerCliAt(engine.host, args);
}

/** dockerode for `engine`. */
export function engineDocker(engine: TestEngine): Docker {
  return dockerAt(engine.host);
}

/** The image's ID and RootFS layers on `engine` (on the containerd store the ID is the manifest's digest). */
export function imageFacts(engine: TestEngine, image: string): { id: string; diffIds: string[] } {
  const [id = '', layers = '[]'] = engineCli(engine, ['image', 'inspect', '-f', '{{.Id}} {{json .RootFS.Layers}}', image]).split(' ');
  return { id, diffIds: JSON.parse(layers) as string[] };
}

/** The `docker save` format an engine writes: legacy before Engine 25, the OCI layout since. */
export function saveLayoutOf(engine: TestEngine): 'legacy' | 'oci' {
  const major = Number(/^(\d+)\./.exec(engine.version)?.[1] ?? 0);
  return major >= 25 ? 'oci' : 'legacy';
}
