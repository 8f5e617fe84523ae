// `docker clair server up|import|status|logs|down` options: the yargs declarations and their validated form.
import type { Argv } from 'yargs';
import { UsageError } from '../../runtime/errors.js';
import { DEFAULT_CLAIR_IMAGE, DEFAULT_PORT, DEFAULT_POSTGRES_IMAGE } from '../../managed-clair/names.js';
import type { ServerSettings } from '../../managed-clair/settings.js';
import { parseDuration } from './scan-options.js';

export type ServerOptions = ServerSettings;

const DEFAULT_UP_TIMEOUT = '45m';
const DEFAULT_IMPORT_TIMEOUT = '30m';

export function withUpOptions<T>(y: Argv<T>) {
  return y
    .option('clair-image', { type: 'string', describe: 'Clair v4 image', default: DEFAULT_CLAIR_IMAGE, requiresArg: true })
    .option('postgres-image', { type: 'string', describe: 'PostgreSQL image', default: DEFAULT_POSTGRES_IMAGE, requiresArg: true })
    .option('port', { type: 'string', describe: "Port on 127.0.0.1 for Clair's API", default: String(DEFAULT_PORT), requiresArg: true })
    .option('wait', { type: 'boolean', default: true, describe: "Wait for Clair's first vulnerability update (--no-wait: only until the API answers)" })
    .option('timeout', { type: 'string', default: DEFAULT_UP_TIMEOUT, describe: 'Give up after this long (pulls and the first update included)', requiresArg: true })
    .option('import', { type: 'string', describe: 'Air-gapped: run Clair with its updaters off and load this "clairctl export-updaters" file', requiresArg: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'Print errors only' });
}

export function withImportOptions<T>(y: Argv<T>) {
  return y
    .positional('file', { type: 'string', describe: 'A file "clairctl export-updaters" wrote (JSON lines, .gz or .zst)' })
    .option('timeout', { type: 'string', default: DEFAULT_IMPORT_TIMEOUT, describe: 'Give up after this long', requiresArg: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'Print errors only' });
}

export function withStatusOptions<T>(y: Argv<T>) {
  return y.option('format', { type: 'string', choices: ['text', 'json'], default: 'text', describe: 'Output format', requiresArg: true });
}

export function withLogsOptions<T>(y: Argv<T>) {
  return y
    .option('follow', { alias: 'f', type: 'boolean', describe: 'Follow log output' })
    .option('tail', { alias: 'n', type: 'string', describe: 'Number of lines to show from the end of the logs', requiresArg: true })
    .option('postgres', { type: 'boolean', describe: "PostgreSQL's logs instead of Clair's" });
}

export function withDownOptions<T>(y: Argv<T>) {
  return y.option('volumes', { alias: 'v', type: 'boolean', describe: "Also remove the database volume and the stored secrets" });
}

export interface RawServerArgs {
  'clair-image'?: string | string[];
  'postgres-image'?: string | string[];
  port?: string | string[];
  wait?: boolean;
  timeout?: string | string[];
  import?: string | string[];
  file?: string;
  quiet?: boolean;
  format?: string | string[];
  follow?: boolean;
  tail?: string | string[];
  postgres?: boolean;
  volumes?: boolean;
}

function single(raw: RawServerArgs, name: keyof RawServerArgs): string | undefined {
  const value = raw[name];
  if (Array.isArray(value)) throw new UsageError(`--${name} was given more than once`, 'give it once');
  return value === undefined ? undefined : String(value);
}

const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$/;

function image(raw: RawServerArgs, name: 'clair-image' | 'postgres-image', fallback: string): string {
  const value = single(raw, name) ?? fallback;
  if (!IMAGE.test(value)) throw new UsageError(`invalid --${name} "${value}"`, 'give an image name[:tag] or name@digest');
  return value;
}

export function toServerOptions(action: ServerOptions['action'], raw: RawServerArgs): ServerOptions {
  switch (action) {
    case 'up': {
      const portText = single(raw, 'port') ?? String(DEFAULT_PORT);
      const port = Number(portText);
      if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new UsageError(`invalid --port "${portText}"`, 'give a TCP port between 1 and 65535');
      const timeoutMs = parseDuration(single(raw, 'timeout') ?? DEFAULT_UP_TIMEOUT);
      const importFile = single(raw, 'import');
      if (importFile !== undefined && importFile.trim() === '') throw new UsageError('--import needs a file', 'give the file "clairctl export-updaters" wrote');
      return {
        action, port, timeoutMs: timeoutMs === 0 ? 2_147_483_647 : timeoutMs, wait: raw.wait !== false, quiet: Boolean(raw.quiet),
        clairImage: image(raw, 'clair-image', DEFAULT_CLAIR_IMAGE),
        postgresImage: image(raw, 'postgres-image', DEFAULT_POSTGRES_IMAGE),
        ...(importFile !== undefined ? { importFile } : {}),
      };
    }
    case 'import': {
      const file = raw.file === undefined ? '' : String(raw.file);
      if (file.trim() === '') throw new UsageError('"docker clair server import" requires a file', 'usage: docker clair server import FILE');
      const timeoutMs = parseDuration(single(raw, 'timeout') ?? DEFAULT_IMPORT_TIMEOUT);
      return { action, file, timeoutMs: timeoutMs === 0 ? 2_147_483_647 : timeoutMs, quiet: Boolean(raw.quiet) };
    }
    case 'status':
      return { action, format: single(raw, 'format') === 'json' ? 'json' : 'text' };
    case 'logs': {
      const tailText = single(raw, 'tail');
      if (tailText !== undefined && !/^\d+$/.test(tailText) && tailText !== 'all') {
        throw new UsageError(`invalid --tail "${tailText}"`, 'give a number of lines, or all');
      }
      return {
        action, follow: Boolean(raw.follow), postgres: Boolean(raw.postgres),
        ...(tailText !== undefined && tailText !== 'all' ? { tail: Number(tailText) } : {}),
      };
    }
    case 'down':
      return { action, volumes: Boolean(raw.volumes) };
  }
}
