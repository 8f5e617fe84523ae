import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ConfigError, parseConfig, parseConnString, parseFlags, parseListenAddr, probeTmpfile } from './clair-main.js';
import { startClairDouble } from './server.js';
import { call, debianBaseLayer, dpkgStanza, layerRef, postIndex, startLayerServer } from './test-support.js';

const MAIN = fileURLToPath(new URL('./clair-main.ts', import.meta.url));
const COMBO = 'indexer:\n  connstring: host=db port=5433 user=clair\nmatcher: {}\nnotifier: {}\n';

describe('clair-main config', () => {
  test('flags: -conf/-mode in Go flag forms, env defaults', () => {
    assert.deepEqual(parseFlags([], { CLAIR_CONF: '/c.yaml', CLAIR_MODE: 'combo' }), { conf: '/c.yaml', mode: 'combo' });
    assert.deepEqual(parseFlags(['-conf', 'a.yaml', '--mode=indexer'], {}), { conf: 'a.yaml', mode: 'indexer' });
    assert.deepEqual(parseFlags(['-conf=b.yaml'], { CLAIR_CONF: 'x' }), { conf: 'b.yaml', mode: 'combo' });
    assert.throws(() => parseFlags(['-bogus'], {}), /flag provided but not defined: -bogus/);
    assert.throws(() => parseFlags(['-conf'], {}), /flag needs an argument/);
  });

  test('listen addresses and connection strings', () => {
    assert.deepEqual(parseListenAddr(':6060', 'x'), { host: '0.0.0.0', port: 6060 });
    assert.deepEqual(parseListenAddr('[::1]:8089', 'x'), { host: '::1', port: 8089 });
    assert.deepEqual(parseListenAddr('localhost:1', 'x'), { host: 'localhost', port: 1 });
    assert.throws(() => parseListenAddr('6060', 'http_listen_addr'), /http_listen_addr/);
    assert.deepEqual(parseConnString('host=docker-clair-postgres port=5432 user=clair password=x dbname=clair sslmode=disable'),
      { host: 'docker-clair-postgres', port: 5432 });
    assert.deepEqual(parseConnString("user=clair password='a b\\'c' host=db"), { host: 'db', port: 5432 });
    assert.deepEqual(parseConnString('postgres://clair:pw@db.example:6543/clair?sslmode=disable'), { host: 'db.example', port: 6543 });
    assert.deepEqual(parseConnString('postgresql://clair@[fd00::1]/clair'), { host: 'fd00::1', port: 5432 });
    assert.deepEqual(parseConnString('dbname=clair'), { host: 'localhost', port: 5432 });
    assert.equal(parseConnString('host=/var/run/postgresql dbname=clair'), undefined);
  });

  test('combo mode: all three blocks, auth, defaults', () => {
    const cfg = parseConfig(`http_listen_addr: ":7070"\nlog_level: debug\nauth:\n  psk:\n    key: c2VjcmV0\n    iss: [a, b]\n${COMBO}`,
      'c.yaml', 'combo');
    assert.deepEqual(cfg, {
      mode: 'combo', confPath: 'c.yaml', listen: { host: '0.0.0.0', port: 7070 }, introspection: { host: '0.0.0.0', port: 8089 },
      logLevel: 'debug', psk: 'c2VjcmV0', issuers: ['a', 'b'], database: { host: 'db', port: 5433 }, indexConcurrency: undefined,
    });
    assert.throws(() => parseConfig('indexer: {}\nmatcher: {}\n', 'c.yaml', 'combo'), (e: unknown) =>
      e instanceof ConfigError && /combo mode needs the indexer, matcher and notifier config blocks; c.yaml lacks notifier/.test(e.message));
    assert.throws(() => parseConfig(COMBO, 'c.yaml', 'indexer'), /only "combo"/);
    assert.throws(() => parseConfig(`auth:\n  psk:\n    key: "not base64!"\n${COMBO}`, 'c.yaml', 'combo'), /auth.psk.key/);
    assert.throws(() => parseConfig(`log_level: loud\n${COMBO}`, 'c.yaml', 'combo'), /log_level/);
  });

  test('O_TMPFILE probe: a real directory passes, something else fails', () => {
    assert.equal(probeTmpfile(tmpdir()), undefined);
    assert.notEqual(probeTmpfile('/proc'), undefined);
  });
});

describe('clair-main process', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'clair-main-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  interface Run {
    proc: ReturnType<typeof spawn>;
    out: () => string;
    exited: Promise<number | null>;
    /** Resolves with the match once the output (stdout and stderr) matches `re`; rejects if the process exits first. */
    seen: (re: RegExp) => Promise<RegExpExecArray>;
  }

  function run(args: string[], env: Record<string, string>): Run {
    const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let done = false;
    const checks = new Set<() => void>();
    const more = (c: Buffer): void => {
      out += c.toString();
      for (const check of [...checks]) check();
    };
    proc.stdout?.on('data', more);
    proc.stderr?.on('data', more);
    const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => {
      done = true;
      for (const check of [...checks]) check();
      resolve(code);
    }));
    const seen = (re: RegExp): Promise<RegExpExecArray> => new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(out);
        if (m === null && !done) return;
        checks.delete(check);
        if (m !== null) resolve(m);
        else reject(new Error(`exited without printing ${String(re)}:\n${out}`));
      };
      checks.add(check);
      check();
    });
    return { proc, out: () => out, exited, seen };
  }

  test('a config without notifier exits 1 with the reason', async () => {
    const conf = path.join(dir, 'bad.yaml');
    writeFileSync(conf, 'indexer: {}\nmatcher: {}\n');
    const r = run(['-conf', conf], {});
    assert.equal(await r.exited, 1);
    assert.match(r.out(), /clair: invalid config: combo mode needs .* lacks notifier/);
  });

  test('waits for the database, serves with an empty database, loads it on SIGUSR2; SIGTERM exits 0', { timeout: 120_000 }, async () => {
    // A port nobody listens on yet: the double must retry until it opens.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const dbPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const conf = path.join(dir, 'ok.yaml');
    writeFileSync(conf, 'http_listen_addr: "127.0.0.1:0"\nintrospection_addr: ""\n' +
      `indexer:\n  connstring: postgres://clair:x@127.0.0.1:${dbPort}/clair\nmatcher: {}\nnotifier: {}\n`);
    const r = run([], { CLAIR_CONF: conf, CLAIR_MODE: 'combo', CLAIR_DOUBLE_UPDATE_DELAY: 'signal' });
    try {
      const retry = await r.seen(/database not reachable: .*; retrying\n/);
      assert.match(retry[0], new RegExp(`database not reachable: dial tcp 127.0.0.1:${dbPort}: connect: connection refused; retrying`));
      const db = createServer((s) => s.destroy());
      await new Promise<void>((resolve) => db.listen(dbPort, '127.0.0.1', resolve));
      try {
        const apiPort = (await r.seen(/listening on 127\.0\.0\.1:(\d+)\n/))[1];
        const url = `http://127.0.0.1:${apiPort}/matcher/api/v1/internal/update_operation`;
        assert.equal((await call(url)).text, '{}');
        const signalled = Date.now();
        r.proc.kill('SIGUSR2');
        await r.seen(/updater: first update finished/);
        const loaded = await call(url);
        const ops = loaded.json as Record<string, { date: string }[]>;
        const date = Date.parse(ops['debian/updater']?.[0]?.date ?? '');
        // Dated when the signal was handled (to the second, as Go's RFC 3339).
        assert.ok(date >= Math.floor(signalled / 1000) * 1000 && date <= Date.now(), `update dated ${String(ops['debian/updater']?.[0]?.date)}`);
      } finally {
        await new Promise<void>((resolve) => db.close(() => resolve()));
      }
      r.proc.kill('SIGTERM');
      assert.equal(await r.exited, 0, r.out());
    } finally {
      r.proc.kill('SIGKILL');
    }
  });

  test('CLAIR_DOUBLE_UPDATE_DELAY: the first update finishes by itself after that many seconds', { timeout: 120_000 }, async () => {
    const conf = path.join(dir, 'delay.yaml');
    // A unix-socket connstring: nothing to wait for.
    writeFileSync(conf, 'http_listen_addr: "127.0.0.1:0"\nintrospection_addr: ""\n' +
      'indexer:\n  connstring: host=/var/run/postgresql\nmatcher: {}\nnotifier: {}\n');
    const r = run(['-conf', conf], { CLAIR_DOUBLE_UPDATE_DELAY: '1' });
    try {
      const apiPort = (await r.seen(/listening on 127\.0\.0\.1:(\d+)\n/))[1];
      await r.seen(/updater: first update running \(vulnerability database empty for 1s\)/);
      await r.seen(/updater: first update finished/);
      const ops = (await call(`http://127.0.0.1:${apiPort}/matcher/api/v1/internal/update_operation`)).json as Record<string, unknown[]>;
      assert.equal(ops['debian/updater']?.length, 1);
      r.proc.kill('SIGTERM');
      assert.equal(await r.exited, 0, r.out());
    } finally {
      r.proc.kill('SIGKILL');
    }
  });
});

describe('noTmpfile: Clair v4.9.0 on a temp dir without O_TMPFILE', () => {
  test('every layer fetch fails with openat fetcher.N, IndexError, no GET', async () => {
    const layers = await startLayerServer();
    const double = await startClairDouble({ vulns: [], noTmpfile: true });
    try {
      const body = await debianBaseLayer([dpkgStanza({ name: 'bash', version: '5.2.15-2+b2' })]);
      const ref = layerRef(layers, '/l.tar', body);
      layers.set('/l.tar', { body });
      const hash = `sha256:${'1'.repeat(64)}`;
      const r = await postIndex(double.url, { hash, layers: [ref] });
      assert.equal(r.status, 500);
      assert.match((r.json as { message: string }).message,
        /^failed to start scan: failed to fetch layers: fetcher: encountered errors: openat fetcher\.\d+: no such file or directory$/);
      assert.equal(layers.requests.length, 0);
      const report = double.indexReport(hash) as { state: string; err: string };
      assert.equal(report.state, 'IndexError');
      assert.match(report.err, /openat fetcher\.\d+: no such file or directory/);
    } finally {
      await double.close();
      await layers.close();
    }
  });

  test('finishUpdate: an emptyDb double loads and dates its update operations', async () => {
    const double = await startClairDouble({ emptyDb: true });
    try {
      const url = `${double.url}/matcher/api/v1/internal/update_operation`;
      assert.equal((await call(url)).text, '{}');
      const at = new Date('2030-01-02T03:04:05.678Z');
      double.finishUpdate(at);
      const ops = (await call(url)).json as Record<string, { date: string }[]>;
      assert.equal(ops['debian/updater']?.[0]?.date, '2030-01-02T03:04:05Z');
    } finally {
      await double.close();
    }
  });
});
