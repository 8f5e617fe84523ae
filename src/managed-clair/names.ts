// What the managed Clair is made of on the daemon: fixed names, so every command (and `docker ps`) finds
// the same objects, and labels, so nothing of the user's is ever mistaken for ours.

export const NETWORK = 'docker-clair';
export const VOLUME = 'docker-clair-postgres';
export const POSTGRES_CONTAINER = 'docker-clair-postgres';
export const CLAIR_CONTAINER = 'docker-clair-server';

export const LABEL_MANAGED = 'io.github.docker-clair.managed';
export const LABEL_ROLE = 'io.github.docker-clair.role';
/** The published port, so `scan` and `status` need not parse port bindings to know it. */
export const LABEL_PORT = 'io.github.docker-clair.port';
/** Set on a Clair created by `up --import`: its updaters are off for good, so every later start keeps the offline config. */
export const LABEL_AIR_GAPPED = 'io.github.docker-clair.air-gapped';

/** The current Clair v4 release, and PostgreSQL 15, the version Red Hat's Clair documentation requires since Clair 4.8. */
export const DEFAULT_CLAIR_IMAGE = 'quay.io/projectquay/clair:4.9.0';
export const DEFAULT_POSTGRES_IMAGE = 'docker.io/library/postgres:15';
export const DEFAULT_PORT = 6060;

/** Inside the containers. */
export const CLAIR_API_PORT = 6060;
export const CLAIR_CONFIG_PATH = '/config/config.yaml';
/** Air-gapped: the empty Red Hat mapping file the RHEL scanners read instead of downloading theirs. */
export const CLAIR_MAPPING_PATH = '/config/empty-mapping.json';
/** Where an imported updates file is put for clairctl (removed after the import). */
export const CLAIR_IMPORT_DIR = '/tmp';
export const POSTGRES_USER = 'clair';
export const POSTGRES_DB = 'clair';
export const POSTGRES_DATA = '/var/lib/postgresql/data';
/** The issuer docker-clair signs its PSK tokens with; Clair must list it in auth.psk.iss. */
export const PSK_ISSUER = 'docker-clair';

export type Role = 'clair' | 'postgres';

export function labels(role: Role, extra: Record<string, string> = {}): Record<string, string> {
  return { [LABEL_MANAGED]: 'true', [LABEL_ROLE]: role, ...extra };
}
