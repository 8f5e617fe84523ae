// The real Docker daemon the tests run against: scripts/test.sh exports DOCKER_HOST for it.
import { execFileSync } from 'node:child_process';
import Docker from 'dockerode';

export const TEST_DOCKER_HOST = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';

export const TEST_IMAGES = {
  debian12: 'docker-clair-test/debian12:latest',
  multilayer: 'docker-clair-test/multilayer:latest',
} as const;

/** Runs the docker CLI against the test daemon and returns its trimmed stdout. */
export function dockerCli(args: string[]): string {
  return execFileSync('docker', ['-H', TEST_DOCKER_HOST, ...args], { encoding: 'utf8' }).trim();
}

/** The local unix socket of the test daemon (these helpers do not dial tcp or ssh daemons). */
export function testDaemonSocket(): string {
  if (!TEST_DOCKER_HOST.startsWith('unix://')) throw new Error(`DOCKER_HOST=${TEST_DOCKER_HOST}: these tests need a local unix:// daemon`);
  return TEST_DOCKER_HOST.slice('unix://'.length);
}

/**
 * dockerode for the test daemon. Every connection option is given: docker-modem lets DOCKER_* variables
 * override a bare socketPath.
 */
export function testDocker(): Docker {
  return new Docker({
    socketPath: testDaemonSocket(), host: undefined, port: undefined, protocol: 'http', ca: undefined, cert: undefined, key: undefined,
  });
}
