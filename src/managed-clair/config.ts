// The Clair v4 configuration of the managed server: combo mode (indexer, matcher and notifier in one
// process — Clair requires all three blocks then), one PostgreSQL database, PSK authentication.
import { stringify } from 'yaml';
import { CLAIR_API_PORT, CLAIR_MAPPING_PATH, POSTGRES_CONTAINER, POSTGRES_DB, POSTGRES_USER, PSK_ISSUER } from './names.js';

export interface ClairConfigInput {
  /** The PostgreSQL password of the `clair` role. */
  dbPassword: string;
  /** Standard base64 PSK (auth.psk.key). */
  pskKey: string;
  /** No network: updaters off (data comes from `clairctl import-updaters`), local RHEL mapping files. */
  airGapped?: boolean;
}

/** The mapping file content for CLAIR_MAPPING_PATH: no repositories, no packages mapped. */
export const EMPTY_MAPPING = '{"data":{}}\n';

/** libpq key=value DSN; values are quoted so a password with spaces or quotes survives. */
export function connString(password: string, applicationName: string): string {
  const quote = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return [
    `host=${POSTGRES_CONTAINER}`, 'port=5432', `user=${POSTGRES_USER}`, `password=${quote(password)}`,
    `dbname=${POSTGRES_DB}`, 'sslmode=disable', `application_name=${applicationName}`,
  ].join(' ');
}

export function clairConfig(input: ClairConfigInput): string {
  const offline = Boolean(input.airGapped);
  const config = {
    http_listen_addr: `:${CLAIR_API_PORT}`,
    introspection_addr: ':8089',
    log_level: 'info',
    indexer: {
      connstring: connString(input.dbPassword, 'clair-indexer'),
      scanlock_retry: 10,
      layer_scan_concurrency: 5,
      migrations: true,
      // Clair's RHEL scanners download Red Hat's repository mapping files on first use, and without them every
      // index fails, of any image (Debian too); given a local file they read it instead.
      ...(offline ? {
        scanner: {
          repo: { 'rhel-repository-scanner': { repo2cpe_mapping_file: CLAIR_MAPPING_PATH } },
          package: { rhel_containerscanner: { name2repos_mapping_file: CLAIR_MAPPING_PATH } },
        },
      } : {}),
    },
    matcher: {
      connstring: connString(input.dbPassword, 'clair-matcher'),
      max_conn_pool: 20,
      migrations: true,
      // Garbage collection of old vulnerability updates runs only when this is set; without it
      // the database grows by every update.
      update_retention: 2,
      // Offline, every updater would fail to reach its source: the data comes from imports alone.
      ...(offline ? { disable_updaters: true } : {}),
    },
    notifier: {
      connstring: connString(input.dbPassword, 'clair-notifier'),
      migrations: true,
      delivery_interval: '1m',
      poll_interval: '5m',
    },
    ...(offline ? { updaters: { sets: [] } } : {}),
    auth: { psk: { key: input.pskKey, iss: [PSK_ISSUER] } },
    metrics: { name: 'prometheus' },
  };
  return `# Written by docker-clair (docker clair server up). Recreated on every "up".\n${stringify(config)}`;
}
