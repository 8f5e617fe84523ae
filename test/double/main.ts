/**
 * `npm run clair-double -- --listen HOST:PORT [--api v4|v1|both] [--vulns FILE] [--empty-db]
 *   [--psk BASE64 --issuer NAME]... [--fetch-concurrency N] [--index-concurrency N] [--range-probe]
 *   [--allow-content-encoding] [--layers scan|discard] [--layer-rate BYTES_PER_S]`
 * Runs the Clair double in the foreground and logs each request to stderr. Test support only.
 */
import { startClairDouble } from './server.js';
import type { ClairDoubleOptions } from './options.js';

const USAGE = 'usage: clair-double --listen HOST:PORT [--api v4|v1|both] [--vulns FILE] [--empty-db] ' +
  '[--psk BASE64 --issuer NAME] [--fetch-concurrency N] [--index-concurrency N] [--range-probe] [--allow-content-encoding] ' +
  '[--layers scan|discard] [--layer-rate BYTES_PER_S]';

export function parseArgs(argv: string[]): ClairDoubleOptions {
  const opts: ClairDoubleOptions = {};
  const issuers: string[] = [];
  let listen: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = (): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: not a positive integer: ${v}`);
      return n;
    };
    switch (flag) {
      case '--listen': listen = value(); break;
      case '--api': {
        const v = value();
        if (v !== 'v4' && v !== 'v1' && v !== 'both') throw new Error(`--api: expected v4, v1 or both, got ${v}`);
        opts.api = v;
        break;
      }
      case '--vulns': opts.vulns = value(); break;
      case '--empty-db': opts.emptyDb = true; break;
      case '--psk': opts.psk = value(); break;
      case '--issuer': issuers.push(value()); break;
      case '--fetch-concurrency': opts.fetchConcurrency = int(); break;
      case '--index-concurrency': opts.indexConcurrency = int(); break;
      case '--range-probe': opts.rangeProbe = true; break;
      case '--allow-content-encoding': opts.rejectContentEncoding = false; break;
      case '--layers': {
        const v = value();
        if (v !== 'scan' && v !== 'discard') throw new Error(`--layers: expected scan or discard, got ${v}`);
        opts.layers = v;
        break;
      }
      case '--layer-rate': opts.layerRate = int(); break;
      case '-h':
      case '--help': throw new Error(USAGE);
      default: throw new Error(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
    }
  }
  if (listen === undefined) throw new Error(`--listen is required\n${USAGE}`);
  const m = /^(.*):(\d+)$/.exec(listen);
  if (m === null) throw new Error(`--listen: expected HOST:PORT, got ${listen}`);
  opts.host = (m[1] ?? '').replace(/^\[(.*)\]$/, '$1') || '0.0.0.0';
  opts.port = Number(m[2]);
  if (issuers.length > 0) opts.issuers = issuers;
  if (opts.psk !== undefined && issuers.length === 0) opts.issuers = ['clairctl'];
  return opts;
}

async function main(): Promise<void> {
  let opts: ClairDoubleOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`clair-double: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  opts.log = (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const double = await startClairDouble(opts);
  process.stderr.write(`clair-double: Clair ${opts.api ?? 'v4'} API listening on ${double.url}` +
    `${opts.emptyDb === true ? ' (empty vulnerability database)' : ''}\n`);
  const stop = (): void => {
    void double.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === `file://${process.argv[1] ?? ''}` || process.argv[1]?.endsWith('/test/double/main.ts') === true) {
  void main();
}
