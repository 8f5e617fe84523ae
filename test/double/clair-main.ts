/**
 * The container entry of the Clair double (image `docker-clair-test/clair-double`, see README.md): started the way
 * `quay.io/projectquay/clair:4.9.0` is, it reads Clair's YAML config and serves the double in combo mode.
 *
 *   clair [-conf PATH] [-mode combo]       (defaults: $CLAIR_CONF, $CLAIR_MODE, combo)
 *
 * Config keys used: `http_listen_addr` (":6060"), `introspection_addr` (":8089"; /healthz, /readyz, /metrics),
 * `log_level`, `auth.psk.key` (standard base64) + `auth.psk.iss`, `indexer.connstring` (libpq key=value or URL:
 * the double waits until that host:port accepts TCP before listening), `indexer.index_report_request_concurrency`.
 * Combo mode needs the `indexer`, `matcher` and `notifier` blocks, as real Clair does.
 * Environment of the double only: CLAIR_DOUBLE_UPDATE_DELAY (seconds until the first vulnerability update
 * "finishes"; default 2; 0 = at once; `signal` = only on SIGUSR2), CLAIR_DOUBLE_VULNS (the --vulns file; default
 * the fixture), CLAIR_DOUBLE_DB_TIMEOUT (seconds to wait for the database; default 300).
 * SIGUSR2 finishes the first update at once (once listening), so a test can choose when it happens.
 * Also: on a temp dir ($TMPDIR or /var/tmp) without O_TMPFILE every layer fetch fails as in Clair v4.9.0.
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a bad config or an unreachable database, 2 on bad flags.
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_VULNS_FILE, startClairDouble, type ClairDouble } from './server.js';
import type { ClairDoubleOptions } from './options.js';

/** open(2) flags for the O_TMPFILE probe (x86_64/arm64 Linux): O_RDWR | O_TMPFILE (__O_TMPFILE | O_DIRECTORY). */
export const O_RDWR_TMPFILE = 0o2 | 0o20200000;

const LOG_LEVELS = ['debug-color', 'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'panic'];

export class ConfigError extends Error {}

export interface HostPort {
  host: string;
  port: number;
}

export interface ClairMainConfig {
  mode: 'combo';
  confPath: string;
  listen: HostPort;
  introspection: HostPort | undefined;
  logLevel: string;
  psk: string | undefined;
  issuers: string[];
  /** Where `indexer.connstring` points; undefined when it names no TCP host (unix socket). */
  database: HostPort | undefined;
  indexConcurrency: number | undefined;
}

/** Go's flag package: `-conf X`, `-conf=X`, `--conf X`; `-h` prints usage. */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv): { conf: string; mode: string } {
  let conf = env['CLAIR_CONF'] ?? '';
  let mode = env['CLAIR_MODE'] ?? 'combo';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const m = /^--?([A-Za-z-]+)(?:=(.*))?$/.exec(arg);
    if (m === null) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1] ?? '';
    const value = (): string => {
      const v = m[2] ?? argv[++i];
      if (v === undefined) throw new ConfigError(`flag needs an argument: -${name}`);
      return v;
    };
    if (name === 'conf') conf = value();
    else if (name === 'mode') mode = value();
    else if (name === 'h' || name === 'help') throw new ConfigError('usage: clair [-conf PATH] [-mode combo]');
    else throw new ConfigError(`flag provided but not defined: -${name}`);
  }
  return { conf, mode };
}

/** `":6060"`, `"0.0.0.0:6060"`, `"[::]:6060"`, `"localhost:6060"` (Go's net.Listen forms). */
export function parseListenAddr(addr: string, what: string): HostPort {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/.exec(addr.trim());
  const port = Number(m?.[3]);
  if (m === null || !(port >= 0 && port <= 65535)) throw new ConfigError(`${what}: not a HOST:PORT listen address: ${JSON.stringify(addr)}`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** The TCP host and port of a libpq connection string (key=value form or postgres:// URL). */
export function parseConnString(conn: string): HostPort | undefined {
  const s = conn.trim();
  let host = '';
  let port = '';
  if (/^postgres(?:ql)?:\/\//i.test(s)) {
    // Several hosts (`h1:5432,h2:5432`) are allowed by libpq; the first one is the one tried first.
    const m = /^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?([^/?#]*)(.*)$/i.exec(s);
    const first = (m?.[1] ?? '').split(',')[0] ?? '';
    const hm = /^(?:\[([^\]]*)\]|([^:]*))(?::(\d*))?$/.exec(first);
    host = decodeURIComponent(hm?.[1] ?? hm?.[2] ?? '');
    port = hm?.[3] ?? '';
    const q = new URLSearchParams((m?.[2] ?? '').replace(/^[^?]*\??/, '').replace(/#.*$/, ''));
    host = q.get('host') ?? host;
    port = q.get('port') ?? port;
  } else {
    const re = /\s*([A-Za-z_]+)\s*=\s*('((?:\\.|[^'\\])*)'|(\S*))/g;
    let m: RegExpExecArray | null;
    let consumed = 0;
    while ((m = re.exec(s)) !== null) {
      if (m.index !== consumed) break;
      consumed = re.lastIndex;
      const key = (m[1] ?? '').toLowerCase();
      const value = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[4] ?? '');
      if (key === 'host' || key === 'hostaddr') host = host === '' || key === 'hostaddr' ? value : host;
      if (key === 'port') port = value;
    }
    if (s.slice(consumed).trim() !== '') throw new ConfigError(`indexer.connstring: cannot parse ${JSON.stringify(conn)}`);
  }
  host = host.split(',')[0] ?? '';
  port = port.split(',')[0] ?? '';
  if (host.startsWith('/')) return undefined; // a unix socket directory
  const n = port === '' ? 5432 : Number(port);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`indexer.connstring: bad port ${JSON.stringify(port)}`);
  return { host: host === '' ? 'localhost' : host, port: n };
}

function block(doc: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const v = doc[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${key}: expected a mapping`);
  return v as Record<string, unknown>;
}

/** Reads the YAML config text the way Clair v4 would for combo mode. */
export function parseConfig(text: string, confPath: string, mode: string): ClairMainConfig {
  if (mode !== 'combo') {
    throw new ConfigError(`mode ${JSON.stringify(mode)} is not supported by the Clair double (only "combo")`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`cannot parse ${confPath}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${confPath}: not a YAML mapping`);
  const doc = raw as Record<string, unknown>;
  const indexer = block(doc, 'indexer');
  const matcher = block(doc, 'matcher');
  const notifier = block(doc, 'notifier');
  const missing = [['indexer', indexer], ['matcher', matcher], ['notifier', notifier]]
    .filter(([, b]) => b === undefined).map(([k]) => k as string);
  if (missing.length > 0) {
    throw new ConfigError(`combo mode needs the indexer, matcher and notifier config blocks; ${confPath} lacks ${missing.join(', ')}`);
  }
  const str = (v: unknown, what: string, dflt: string): string => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') throw new ConfigError(`${what}: expected a string`);
    return v;
  };
  const listen = parseListenAddr(str(doc['http_listen_addr'], 'http_listen_addr', ':6060'), 'http_listen_addr');
  const introAddr = str(doc['introspection_addr'], 'introspection_addr', ':8089');
  const introspection = introAddr === '' ? undefined : parseListenAddr(introAddr, 'introspection_addr');
  const logLevel = str(doc['log_level'], 'log_level', 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`log_level: unknown level ${JSON.stringify(logLevel)}`);

  let psk: string | undefined;
  let issuers: string[] = [];
  const auth = block(doc, 'auth');
  const pskBlock = auth === undefined ? undefined : block(auth, 'psk');
  if (pskBlock !== undefined) {
    const key = str(pskBlock['key'], 'auth.psk.key', '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 !== 0) {
      throw new ConfigError('auth.psk.key: not standard base64');
    }
    psk = key;
    const iss = pskBlock['iss'];
    if (iss !== undefined && iss !== null) {
      const list = Array.isArray(iss) ? iss : [iss];
      if (!list.every((x): x is string => typeof x === 'string')) throw new ConfigError('auth.psk.iss: expected a list of strings');
      issuers = list;
    }
  }
  const connstring = str(indexer?.['connstring'], 'indexer.connstring', '');
  const database = connstring === '' ? undefined : parseConnString(connstring);
  const conc = indexer?.['index_report_request_concurrency'];
  let indexConcurrency: number | undefined;
  if (conc !== undefined && conc !== null) {
    if (typeof conc !== 'number' || !Number.isInteger(conc)) throw new ConfigError('indexer.index_report_request_concurrency: expected an integer');
    if (conc > 0) indexConcurrency = conc;
  }
  return { mode: 'combo', confPath, listen, introspection, logLevel, psk, issuers, database, indexConcurrency };
}

/** Undefined when `dir` supports O_TMPFILE, else the error text (e.g. `EOPNOTSUPP`). */
export function probeTmpfile(dir: string): string | undefined {
  try {
    closeSync(openSync(dir, O_RDWR_TMPFILE, 0o600));
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code ?? e.message;
  }
}

function tryConnect(target: HostPort, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host: target.host, port: target.port });
    const done = (why: string | undefined): void => {
      sock.destroy();
      clearTimeout(timer);
      resolve(why);
    };
    const timer = setTimeout(() => done('i/o timeout'), timeoutMs);
    sock.once('connect', () => done(undefined));
    sock.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'connect: connection refused'
      : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? `lookup ${target.host}: no such host` : err.message));
  });
}

/** Waits until the database accepts TCP connections; false when `deadline` passes or `signal` aborts. */
async function waitForDatabase(target: HostPort, log: (l: string) => void, timeoutS: number, signal: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutS * 1000;
  const addr = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  for (;;) {
    if (signal.aborted) return false;
    const why = await tryConnect(target, 1000);
    if (why === undefined) {
      log(`database reachable at ${addr}`);
      return true;
    }
    if (Date.now() >= deadline) {
      log(`database not reachable: dial tcp ${addr}: ${why}; giving up after ${timeoutS}s`);
      return false;
    }
    log(`database not reachable: dial tcp ${addr}: ${why}; retrying`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
}

function seconds(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${name}: not a number of seconds: ${JSON.stringify(v)}`);
  return n;
}

function listen(server: Server, at: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
}

/** Runs the container entry; resolves with the exit status (after SIGTERM/SIGINT: 0). */
export async function runClairMain(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const log = (line: string): void => { process.stderr.write(`${new Date().toISOString()} ${line}\n`); };
  const fail = (msg: string, code: number): number => {
    process.stderr.write(`clair: ${msg}\n`);
    return code;
  };
  let flags: { conf: string; mode: string };
  try {
    flags = parseFlags(argv, env);
  } catch (err) {
    return fail((err as Error).message, 2);
  }
  if (flags.mode !== 'combo') return fail(`mode ${JSON.stringify(flags.mode)} is not supported by the Clair double (only "combo")`, 1);
  if (flags.conf === '') return fail('must provide a -conf flag or set CLAIR_CONF env var', 1);
  let cfg: ClairMainConfig;
  let updateDelay: number;
  let dbTimeout: number;
  try {
    let text: string;
    try {
      text = readFileSync(flags.conf, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config ${flags.conf}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    cfg = parseConfig(text, flags.conf, flags.mode);
    updateDelay = env['CLAIR_DOUBLE_UPDATE_DELAY'] === 'signal' ? Infinity : seconds(env, 'CLAIR_DOUBLE_UPDATE_DELAY', 2);
    dbTimeout = seconds(env, 'CLAIR_DOUBLE_DB_TIMEOUT', 300);
  } catch (err) {
    if (err instanceof ConfigError) return fail(`invalid config: ${err.message}`, 1);
    throw err;
  }
  const quiet = ['warn', 'warning', 'error', 'fatal', 'panic'].includes(cfg.logLevel);
  log(`clair-double: starting (mode ${cfg.mode}, config ${cfg.confPath}, log_level ${cfg.logLevel})`);

  const stopping = new AbortController();
  let double: ClairDouble | undefined;
  let introspection: Server | undefined;
  let updateTimer: NodeJS.Timeout | undefined;
  let updateRequested = false;
  let updated = false;
  const finishFirstUpdate = (): void => {
    if (double === undefined || updated) return;
    updated = true;
    clearTimeout(updateTimer);
    double.finishUpdate(new Date());
    log('updater: first update finished');
  };
  let stopped: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => { stopped = resolve; });
  const stop = (sig: string): void => {
    if (stopping.signal.aborted) return;
    log(`clair-double: ${sig} received; shutting down`);
    stopping.abort();
    clearTimeout(updateTimer);
    const closing: Promise<unknown>[] = [double?.close() ?? Promise.resolve()];
    if (introspection !== undefined) {
      const srv = introspection;
      closing.push(new Promise<void>((resolve) => { srv.close(() => resolve()); srv.closeAllConnections(); }));
    }
    void Promise.all(closing).then(() => stopped(0));
  };
  const onTerm = (): void => stop('SIGTERM');
  const onInt = (): void => stop('SIGINT');
  // Before listening it is remembered: the update then finishes as soon as the API is up.
  const onUsr2 = (): void => {
    updateRequested = true;
    finishFirstUpdate();
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGUSR2', onUsr2);
  try {
    const tmpDir = env['TMPDIR'] || '/var/tmp';
    const tmpErr = probeTmpfile(tmpDir);
    if (tmpErr !== undefined) {
      log(`WARNING: cannot open an O_TMPFILE file in ${tmpDir} (${tmpErr}): every layer fetch will fail with ` +
        '"openat fetcher.NNN: no such file or directory", as Clair v4.9.0 does (quay/clair#2362); ' +
        'mount a tmpfs (or another O_TMPFILE-capable file system) there');
    }

    if (cfg.database !== undefined) {
      if (!(await waitForDatabase(cfg.database, log, dbTimeout, stopping.signal))) {
        if (stopping.signal.aborted) return await finished;
        return fail(`database at ${cfg.database.host}:${cfg.database.port} not reachable after ${dbTimeout}s`, 1);
      }
    }
    if (stopping.signal.aborted) return await finished;

    const opts: ClairDoubleOptions = {
      api: 'v4', host: cfg.listen.host, port: cfg.listen.port, emptyDb: updateDelay > 0,
      vulns: env['CLAIR_DOUBLE_VULNS'] || DEFAULT_VULNS_FILE, noTmpfile: tmpErr !== undefined,
    };
    if (cfg.psk !== undefined) {
      opts.psk = cfg.psk;
      opts.issuers = cfg.issuers;
    }
    if (cfg.indexConcurrency !== undefined) opts.indexConcurrency = cfg.indexConcurrency;
    if (!quiet) opts.log = log;
    double = await startClairDouble(opts);
    log(`clair-double: Clair v4 API (combo mode) listening on ${cfg.listen.host}:${double.port}` +
      `${cfg.psk !== undefined ? ` (PSK auth, issuers: ${['clair-intraservice', ...cfg.issuers].join(', ')})` : ''}`);
    if (stopping.signal.aborted) {
      await double.close();
      return await finished;
    }
    if (updateDelay === 0 || updateRequested) {
      finishFirstUpdate();
    } else if (updateDelay === Infinity) {
      log('updater: first update running (vulnerability database empty until SIGUSR2)');
    } else {
      log(`updater: first update running (vulnerability database empty for ${updateDelay}s)`);
      updateTimer = setTimeout(finishFirstUpdate, updateDelay * 1000);
    }

    if (cfg.introspection !== undefined) {
      introspection = createServer((req, res) => {
        const p = new URL(req.url ?? '/', 'http://introspection.invalid').pathname;
        if (p === '/healthz' || p === '/readyz') {
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end('ok\n');
        } else if (p === '/metrics') {
          res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
          res.end('# clair-double exposes no metrics\n');
        } else {
          res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end('404 page not found\n');
        }
      });
      await listen(introspection, cfg.introspection);
      log(`clair-double: introspection (/healthz, /readyz, /metrics) listening on ${cfg.introspection.host}:${cfg.introspection.port}`);
    }
    return await finished;
  } catch (err) {
    await double?.close();
    return fail(err instanceof Error ? err.message : String(err), 1);
  } finally {
    clearTimeout(updateTimer);
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGUSR2', onUsr2);
  }
}

if (process.argv[1] !== undefined &&
  (import.meta.url === pathToFileURL(process.argv[1]).href || process.argv[1].endsWith('/test/double/clair-main.ts'))) {
  void runClairMain(process.argv.slice(2)).then((code) => process.exit(code));
}
