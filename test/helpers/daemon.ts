// The real Docker daemon the tests run against: scripts/test.sh exports DOCKER_HOST for it.
import { execFileSync } from 'node:child_process';

export const TEST_DOCKER_HOST = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';

export const TEST_IMAGES = {
  debian12: 'docker-clair-test/debian12:latest',
  multilayer: 'docker-clair-test/multilayer:latest',
} as const;

/** Runs the docker CLI against the test daemon and returns its trimmed stdout. */
export function dockerCli(args: string[]): string {
  return execFileSync('docker', ['-H', TEST_DOCKER_HOST, ...args], { encoding: 'utf8' }).trim();
}
