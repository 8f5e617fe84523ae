// The real Docker daemon the tests run against: scripts/test.sh exports DOCKER_HOST for it.
import { execFileSync } from 'node:child_process';
import Docker from 'dockerode';

export const TEST_DOCKER_HOST = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';

export const TEST_IMAGES = {
  debian12: 'docker-clair-test/debian12:latest',
  multilayer: 'docker-clair-test/multilayer:latest',
} as const;

/** Runs the docker CLI against the daemon at `host` and returns its trimmed stdout. */
export function dockerCliAt(host: string, args: string[]): string {
  return execFileSync('docker', ['-H', host, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }).trim();
}

/** Runs the docker CLI against the test daemon and returns its trimmed stdout. */
export function dockerCli(args: string[]): string {
  return dockerCliAt(TEST_DOCKER_HOST, args);
}

/** The local unix socket of the test daemon (these helpers do not dial tcp or ssh daemons). */
export function testDaemonSocket(): string {
  return unixSocketOf(TEST_DOCKER_HOST);
}

function unixSocketOf(host: string): string {
  if (!host.startsWith('unix://')) throw new Error(`${host}: these tests need a local unix:// daemon`);
  return host.slice('unix://'.length);
}

/**
 * dockerode for the local daemon at `host`. Every connection option is given: docker-modem lets DOCKER_*
 * variables override a bare socketPath.
 */
export function dockerAt(host: string): Docker {
  return new Docker({
    socketPath: unixSocketOf(host), host: undefined, port: undefined, protocol: 'http', ca: undefined, cert: undefined, key: undefined,
  });
}

/** dockerode for the test daemon. */
export function testDocker(): Docker {
  return dockerAt(TEST_DOCKER_HOST);
}
