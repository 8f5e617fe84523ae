// The managed Clair's objects on a daemon, by the fixed names `docker clair server up` gives them: which exist,
// and removing them all (before and after the e2e files that bring it up).
import { spawnSync } from 'node:child_process';
import { dockerCli, TEST_DOCKER_HOST } from './daemon.js';

export const NAMES = { clair: 'docker-clair-server', postgres: 'docker-clair-postgres', network: 'docker-clair', volume: 'docker-clair-postgres' };

/** Names of our objects that exist on the test daemon now. */
export function leftovers(): string[] {
  const found: string[] = [];
  const containers = dockerCli(['ps', '-a', '--format', '{{.Names}}']).split('\n');
  for (const name of [NAMES.clair, NAMES.postgres]) if (containers.includes(name)) found.push(`container ${name}`);
  if (dockerCli(['network', 'ls', '--format', '{{.Name}}']).split('\n').includes(NAMES.network)) found.push(`network ${NAMES.network}`);
  if (dockerCli(['volume', 'ls', '--format', '{{.Name}}']).split('\n').includes(NAMES.volume)) found.push(`volume ${NAMES.volume}`);
  return found;
}

/** Removes every object of the managed Clair from the daemon at `host`, ignoring those that do not exist. */
export function removeEverything(host = TEST_DOCKER_HOST): void {
  const quietly = (args: string[]) => spawnSync('docker', ['-H', host, ...args], { stdio: 'ignore' });
  for (const name of [NAMES.clair, NAMES.postgres]) quietly(['rm', '-f', '-v', name]);
  quietly(['network', 'rm', NAMES.network]);
  quietly(['volume', 'rm', NAMES.volume]);
}
