// `docker clair scan` options: the yargs declarations and their translation into one validated,
// frozen ScanOptions object, which is the run's ScanSettings. Nothing here does I/O.
import type { Argv } from 'yargs';
import type { ClairApiChoice } from '../../clair/detect.js';
import { SEVERITIES, parseSeverity, type Severity } from '../../findings/severity.js';
import type { LayerAddress } from '../../layer-server/settings.js';
import { FORMATS, type OutputSpec } from '../../report/formats.js';
import { UsageError } from '../../runtime/errors.js';
import { redactUrl } from '../../runtime/redact.js';
import type { ScanSettings } from '../../scan/settings.js';
import type { ImageSourceKind } from '../../source/settings.js';

/**
 * The parsed `scan` command line: the run's settings (each stage's part, see scan/settings.ts) and what only the
 * CLI itself uses.
 */
export interface ScanOptions extends ScanSettings {
  /** Print nothing but the report and errors (the logger's concern). */
  quiet: boolean;
}

const DEFAULT_TIMEOUT = '10m';
/** 7 days, in the Go duration syntax --timeout takes (it has no day unit). */
const DEFAULT_MAX_DB_AGE = '168h';

export function withScanOptions<T>(yargs: Argv<T>, env: Record<string, string | undefined>) {
  return yargs
    .positional('images', { describe: 'Images to scan (name[:tag], name@digest or ID)', type: 'string', array: true })
    .option('clair', {
      type: 'string',
      describe: `Clair URL, e.g. http://clair:6060 (env CLAIR_ADDR)${env.CLAIR_ADDR ? ` [current: ${redactUrl(env.CLAIR_ADDR)}]` : ''}`,
      group: 'Clair:',
      requiresArg: true,
    })
    .option('indexer', {
      type: 'string',
      describe: "Clair indexer URL, for a split deployment (default: --clair)",
      group: 'Clair:',
      requiresArg: true,
    })
    .option('matcher', {
      type: 'string',
      describe: "Clair matcher URL, for a split deployment (default: --clair)",
      group: 'Clair:',
      requiresArg: true,
    })
    .option('clair-cacert', {
      type: 'string',
      describe: "CA certificate(s) (PEM) to trust for an https Clair",
      group: 'Clair:',
      requiresArg: true,
    })
    .option('layer-address', {
      type: 'string',
      describe: 'HOST[:PORT] at which Clair can reach this machine to fetch layers',
      group: 'Clair:',
      requiresArg: true,
    })
    .option('timeout', {
      type: 'string',
      describe: 'Give up after this long (e.g. 90s, 10m, 1h; 0 = never)',
      default: DEFAULT_TIMEOUT,
      group: 'Clair:',
      requiresArg: true,
    })
    .option('max-db-age', {
      type: 'string',
      describe: "Warn when Clair's vulnerability data is older than this (e.g. 36h; 0 = never)",
      default: DEFAULT_MAX_DB_AGE,
      group: 'Clair:',
      requiresArg: true,
    })
    .option('clair-api', {
      type: 'string',
      describe: 'Clair API: auto (probe once; the default), v4, or v1 (Clair 1.x/2.x)',
      group: 'Clair:',
      requiresArg: true,
    })
    .option('v1-buffer', {
      type: 'string',
      describe: 'Clair v1 with --v1-full-layers: memory for layers that arrive before their parent (e.g. 64MiB, 1GiB; default 256MiB); beyond it, layers are read again from the daemon',
      group: 'Clair:',
      requiresArg: true,
    })
    .option('v1-full-layers', {
      type: 'boolean',
      describe: 'Clair v1 only: send whole layers, not just the files stock Clair 1.x/2.x reads (for Clair builds with detectors of their own)',
      group: 'Clair:',
    })
    .option('input', {
      type: 'string',
      describe: 'Read a `docker save` archive from PATH (- for stdin) instead of the daemon',
      group: 'Clair:',
      requiresArg: true,
    })
    .option('image-src', {
      type: 'string',
      describe: 'Where images come from, in order: daemon,remote (the default: the registry when the daemon lacks the image), daemon, or remote',
      group: 'Clair:',
      requiresArg: true,
    })
    .option('platform', {
      type: 'string',
      describe: "Registry images: the platform to pick from a multi-platform image, os/arch[/variant] (default: the daemon's, else this machine's)",
      group: 'Clair:',
      requiresArg: true,
    })
    .option('format', {
      // Not `array: true`: an array option would swallow the IMAGE arguments that follow it. Repeated
      // string options are collected into an array by yargs anyway.
      type: 'string',
      describe: `Report format: ${FORMATS.join(', ')}; FMT=PATH writes that format to PATH (repeatable)`,
      group: 'Output:',
      requiresArg: true,
    })
    .option('output', {
      alias: 'o',
      type: 'string',
      describe: 'Write the report to PATH instead of stdout',
      group: 'Output:',
      requiresArg: true,
    })
    .option('fail-on', {
      type: 'string',
      describe: `Exit 1 on findings at or above this severity (${SEVERITIES.map((s) => s.toLowerCase()).join(', ')}, none)`,
      default: 'high',
      group: 'Policy:',
      requiresArg: true,
    })
    .option('ignore-file', {
      type: 'string',
      describe: 'File of vulnerability IDs to ignore (.trivyignore or YAML form; default: ./.clairignore if present)',
      group: 'Policy:',
      requiresArg: true,
    })
    .option('ignore-unfixed', {
      type: 'boolean',
      describe: 'Ignore vulnerabilities that have no fixed version',
      group: 'Policy:',
    })
    .option('min-severity', {
      type: 'string',
      describe: `Hide report rows below this severity (${SEVERITIES.map((s) => s.toLowerCase()).join(', ')}); does not change the verdict or exit code`,
      group: 'Policy:',
      requiresArg: true,
    })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'Print nothing but the report and errors', group: 'Output:' })
    .option('progress', { type: 'boolean', default: true, describe: 'Show progress on stderr when it is a terminal (--no-progress to hide)', group: 'Output:' })
    .option('color', { type: 'boolean', describe: 'Colour the table (--no-color to disable; NO_COLOR is honoured)', group: 'Output:' });
}

/** The raw values yargs produced for `scan`, before validation. */
export interface RawScanArgs {
  images?: string[];
  clair?: string;
  indexer?: string;
  matcher?: string;
  'clair-cacert'?: string;
  'layer-address'?: string;
  timeout?: string;
  'max-db-age'?: string;
  input?: string;
  'image-src'?: string;
  platform?: string;
  format?: string | string[];
  output?: string;
  'fail-on'?: string;
  'ignore-file'?: string;
  'ignore-unfixed'?: boolean;
  'min-severity'?: string;
  'clair-api'?: string;
  'v1-buffer'?: string;
  'v1-full-layers'?: boolean;
  quiet?: boolean;
  progress?: boolean;
  color?: boolean;
}

const hint = "see 'docker clair scan --help'";

const SINGLE_VALUED = ['clair', 'indexer', 'matcher', 'clair-cacert', 'layer-address', 'timeout', 'max-db-age', 'input', 'image-src', 'platform', 'output', 'fail-on', 'ignore-file', 'min-severity', 'clair-api', 'v1-buffer'] as const;

export function toScanOptions(raw: RawScanArgs, env: Record<string, string | undefined>): Readonly<ScanOptions> {
  for (const name of SINGLE_VALUED) {
    // yargs collects a repeated string option into an array; these take one value.
    if (Array.isArray(raw[name])) throw new UsageError(`--${name} was given more than once`, 'give it once');
  }
  const images = (raw.images ?? []).filter((i) => i !== undefined).map(String);
  if (images.length === 0 && raw.input === undefined) {
    throw new UsageError('"docker clair scan" requires at least 1 image (or --input)', 'usage: docker clair scan [OPTIONS] IMAGE [IMAGE...]');
  }
  const options: ScanOptions = {
    images,
    outputs: parseOutputs(raw.format === undefined ? [] : [raw.format].flat(), raw.output),
    failOn: parseFailOn(raw['fail-on'] ?? 'high'),
    ignoreUnfixed: Boolean(raw['ignore-unfixed']),
    timeoutMs: parseDuration(raw.timeout ?? DEFAULT_TIMEOUT),
    maxDbAgeMs: parseDuration(raw['max-db-age'] ?? DEFAULT_MAX_DB_AGE, '--max-db-age'),
    quiet: Boolean(raw.quiet),
    progress: raw.progress !== false && !raw.quiet,
  };
  const clair = raw.clair ?? (env.CLAIR_ADDR || undefined);
  if (clair !== undefined) options.clairUrl = parseClairUrl(clair, raw.clair !== undefined ? '--clair' : 'CLAIR_ADDR');
  if (raw.indexer !== undefined) options.indexerUrl = parseClairUrl(raw.indexer, '--indexer');
  if (raw.matcher !== undefined) options.matcherUrl = parseClairUrl(raw.matcher, '--matcher');
  if (Boolean(options.indexerUrl) !== Boolean(options.matcherUrl) && !options.clairUrl) {
    throw new UsageError('--indexer and --matcher go together unless --clair (or CLAIR_ADDR) covers the other', hint);
  }
  if (raw['clair-cacert'] !== undefined) options.clairCaCert = nonEmpty(raw['clair-cacert'], '--clair-cacert');
  if (raw['layer-address'] !== undefined) options.layerAddress = parseLayerAddress(raw['layer-address']);
  if (raw['ignore-file'] !== undefined) options.ignoreFile = nonEmpty(raw['ignore-file'], '--ignore-file');
  if (raw['min-severity'] !== undefined) options.minSeverity = parseMinSeverity(raw['min-severity']);
  if (raw.input !== undefined) options.input = nonEmpty(raw.input, '--input');
  if (raw['image-src'] !== undefined) options.imageSources = parseImageSources(raw['image-src']);
  if (raw.platform !== undefined) options.platform = parsePlatformOption(raw.platform);
  if (options.input !== undefined && raw['image-src'] !== undefined) {
    throw new UsageError('--input and --image-src exclude each other: --input reads a `docker save` archive, not the daemon or a registry', hint);
  }
  if (raw.color === false) options.color = false;
  if (raw['clair-api'] !== undefined) options.clairApi = parseClairApi(raw['clair-api']);
  if (raw['v1-buffer'] !== undefined) options.v1BufferBytes = parseSize(raw['v1-buffer'], '--v1-buffer');
  if (raw['v1-full-layers'] === true) options.v1FullLayers = true;
  return Object.freeze(options);
}

function parseImageSources(value: string): ImageSourceKind[] {
  const kinds = value.split(',').map((k) => k.trim().toLowerCase());
  const bad = kinds.find((k) => k !== 'daemon' && k !== 'remote');
  if (bad !== undefined || kinds.length === 0 || new Set(kinds).size !== kinds.length) {
    throw new UsageError(`invalid --image-src "${value}"`, 'use daemon,remote (the default), remote,daemon, daemon or remote');
  }
  return kinds as ImageSourceKind[];
}

function parsePlatformOption(value: string): string {
  if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/i.test(value.trim())) {
    throw new UsageError(`invalid --platform "${value}"`, 'give os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8');
  }
  return value.trim().toLowerCase();
}

function nonEmpty(value: string, flag: string): string {
  if (value.trim() === '') throw new UsageError(`${flag} needs a path`, hint);
  return value;
}

function parseOutputs(formats: string[], output: string | undefined): OutputSpec[] {
  const specs: OutputSpec[] = (formats.length ? formats : ['table']).map((value) => {
    const eq = value.indexOf('=');
    const name = (eq < 0 ? value : value.slice(0, eq)).trim().toLowerCase();
    const format = FORMATS.find((f) => f === name);
    if (!format) {
      throw new UsageError(`unknown --format "${name}"`, `use one of ${FORMATS.join(', ')}, optionally as FMT=PATH`);
    }
    if (eq < 0) return { format };
    const path = value.slice(eq + 1);
    if (path === '') throw new UsageError(`--format ${format}= needs a path after "="`, hint);
    return { format, path };
  });
  const toStdout = specs.filter((s) => s.path === undefined);
  if (toStdout.length > 1) {
    throw new UsageError(
      `only one report can go to ${output ? output : 'stdout'}, but ${toStdout.map((s) => s.format).join(' and ')} have no path`,
      'give the others a path, e.g. --format junit=clair.xml',
    );
  }
  if (output !== undefined) {
    if (output === '') throw new UsageError('--output needs a path', hint);
    const target = toStdout[0];
    if (!target) throw new UsageError('--output has no report to write: every --format already has its own PATH', hint);
    target.path = output;
  }
  const paths = specs.flatMap((s) => (s.path ? [s.path] : []));
  const twice = paths.find((p, i) => paths.indexOf(p) !== i);
  if (twice) throw new UsageError(`two reports would be written to ${twice}`, 'give each --format its own path');
  return specs;
}

function parseFailOn(value: string): Severity | 'none' {
  if (value.toLowerCase() === 'none') return 'none';
  const severity = parseSeverity(value);
  if (!severity) {
    throw new UsageError(
      `invalid --fail-on "${value}"`,
      `use one of ${[...SEVERITIES.map((s) => s.toLowerCase()), 'none'].join(', ')}`,
    );
  }
  return severity;
}

export function parseMinSeverity(value: string): Severity {
  const severity = parseSeverity(value);
  if (!severity) {
    throw new UsageError(`invalid --min-severity "${value}"`, `use one of ${SEVERITIES.map((s) => s.toLowerCase()).join(', ')}`);
  }
  return severity;
}

export function parseClairApi(value: string): ClairApiChoice {
  const api = value.trim().toLowerCase();
  if (api === 'auto' || api === 'v4' || api === 'v1') return api;
  throw new UsageError(`invalid --clair-api "${value}"`, 'use auto, v4 or v1');
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
};

/** A byte count: 1048576, 512k, 64MiB, 64MB, 1.5G (k/m/g and KiB/MiB/GiB are binary, KB/MB/GB decimal). */
export function parseSize(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) throw new UsageError(`invalid ${flag} "${value}"`, 'use a size such as 64MiB, 512MB or 1GiB');
  return Math.floor(Number(m[1]) * unit);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations (90s, 1m30s, 1.5h, 250ms) or a plain number of seconds; 0 means none. */
export function parseDuration(value: string, flag = '--timeout'): number {
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
    throw new UsageError(`invalid ${flag} "${value}"`, 'use a duration such as 90s, 10m, 1h30m, or 0 for none');
  }
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (UNIT_MS[p[2] as string] as number), 0));
}

function parseClairUrl(value: string, from: string): URL {
  const text = value.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`invalid Clair URL "${redactUrl(text)}" from ${from}`, 'use http://HOST:PORT or https://HOST[:PORT]');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`invalid Clair URL "${redactUrl(text)}" from ${from}: the scheme must be http or https`, 'use http://HOST:PORT or https://HOST[:PORT]');
  }
  if (url.search || url.hash) {
    throw new UsageError(`invalid Clair URL "${redactUrl(text)}" from ${from}: no query or fragment allowed`, 'use http://HOST:PORT[/PREFIX]');
  }
  return url;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; a bare IPv6 address (several colons) has no port. */
function parseLayerAddress(value: string): LayerAddress {
  const text = value.trim();
  const bad = (why: string) =>
    new UsageError(`invalid --layer-address "${value}": ${why}`, 'use HOST[:PORT], e.g. 10.0.0.5 or build-host.example:8080');
  let host: string;
  let port: string | undefined;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] as string;
    port = bracketed[2];
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text; // bare IPv6
  } else {
    const colon = text.lastIndexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    port = colon < 0 ? undefined : text.slice(colon + 1);
    if (port === '') throw bad('no port after ":"');
  }
  if (host === '') throw bad('no host');
  const ipv6 = host.includes(':');
  if (ipv6 ? !/^[0-9A-Fa-f:.]+$/.test(host) : !HOSTNAME.test(host)) throw bad('not a host name or IP address');
  const address: LayerAddress = { host };
  if (port !== undefined) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n > 65535) throw bad('the port must be a number from 0 to 65535');
    address.port = n;
  }
  return address;
}
