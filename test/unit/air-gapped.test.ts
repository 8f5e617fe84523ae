// Air-gapped use without a daemon: the age of Clair's vulnerability data (--max-db-age, `server status`), the
// offline config, the command line of `server up --import` and `server import`, and the checks an updates file
// passes before anything is copied. The daemon side runs end to end in test/e2e/server-real.test.ts.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseCommandLine, type Invocation } from '../../src/cli/app.js';
import type { ScanOptions } from '../../src/cli/options/scan-options.js';
import type { ServerOptions } from '../../src/cli/options/server-options.js';
import { formatAge, newestUpdate, staleDataWarning, updateAgeMs } from '../../src/clair/v4/update-age.js';
import type * as V4 from '../../src/clair/v4/wire.js';
import { UsageError } from '../../src/runtime/errors.js';
import { clairConfig, EMPTY_MAPPING } from '../../src/managed-clair/config.js';
import { checkUpdatesFile, lastWords } from '../../src/managed-clair/import.js';
import type { ServerStatus } from '../../src/managed-clair/status.js';
import { statusLines } from '../../src/managed-clair/run.js';
import { rejected } from '../helpers/command-line.js';

const op = (updater: string, date: string): V4.UpdateOperation => ({ ref: `ref-${date}`, updater, fingerprint: '', date, kind: 'vulnerability' });
const NOW = new Date('2030-06-15T12:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function parsed(args: string[]): Promise<Invocation> {
  return (await parseCommandLine(args, {})).invocation;
}

describe('the age of Clair\'s vulnerability data', () => {
  const operations: V4.UpdateOperations = {
    'debian/updater': [op('debian/updater', '2030-06-10T12:00:00Z'), op('debian/updater', '2030-06-01T00:00:00Z')],
    'alpine-main-v3.20-updater': [op('alpine-main-v3.20-updater', '2030-06-12T12:00:00.123456Z')],
  };

  it('the newest operation across every updater counts, fractional seconds and all', () => {
    assert.equal(newestUpdate(operations)?.toISOString(), '2030-06-12T12:00:00.123Z');
    assert.equal(updateAgeMs(operations, NOW), 3 * DAY - 123);
  });

  it('no operation, or none dated: no age (an empty database is a verdict of its own, not a warning)', () => {
    assert.equal(newestUpdate({}), undefined);
    assert.equal(newestUpdate({ x: [op('x', '')] }), undefined);
    assert.equal(updateAgeMs({ x: [] }, NOW), undefined);
    assert.equal(staleDataWarning({}, 1, NOW), undefined);
  });

  it('warns only when the data is older than the limit; 0 turns the check off', () => {
    assert.equal(staleDataWarning(operations, 7 * DAY, NOW), undefined);
    assert.equal(staleDataWarning(operations, 3 * DAY - 123, NOW), undefined, 'exactly the limit is not older');
    const warning = staleDataWarning(operations, 3 * DAY - 124, NOW);
    assert.match(warning ?? '', /^Clair's vulnerability data is 2 days 23 h old \(last update 2030-06-12T12:00:00\.123Z\), older than --max-db-age 2 days 23 h: advisories published since then are missing/);
    assert.match(staleDataWarning(operations, 36 * HOUR, NOW) ?? '', /older than --max-db-age 36 h:/);
    assert.equal(staleDataWarning(operations, 0, NOW), undefined);
  });

  it('a Clair clock ahead of ours reads as "just now", never as a negative age', () => {
    const ahead = { x: [op('x', '2030-06-15T12:00:05Z')] };
    assert.equal(updateAgeMs(ahead, NOW), 0);
    assert.equal(staleDataWarning(ahead, 1, NOW), undefined);
  });

  it('ages for people', () => {
    assert.equal(formatAge(250), '250 ms');
    assert.equal(formatAge(45_000), '45 s');
    assert.equal(formatAge(12 * 60_000 + 5_000), '12 min');
    assert.equal(formatAge(5 * HOUR + 3 * 60_000), '5 h 3 min');
    assert.equal(formatAge(36 * HOUR), '36 h');
    assert.equal(formatAge(9 * DAY + HOUR), '9 days 1 h');
    assert.equal(formatAge(7 * DAY), '7 days');
  });
});

describe('scan --max-db-age', () => {
  const scan = async (args: string[]) => ((await parsed(['scan', ...args, 'img'])) as { options: Readonly<ScanOptions> }).options;

  it('defaults to 7 days; the --timeout syntax; 0 = off', async () => {
    assert.equal((await scan([])).maxDbAgeMs, 7 * DAY);
    assert.equal((await scan(['--max-db-age', '36h'])).maxDbAgeMs, 36 * HOUR);
    assert.equal((await scan(['--max-db-age', '1h30m'])).maxDbAgeMs, 1.5 * HOUR);
    assert.equal((await scan(['--max-db-age', '250ms'])).maxDbAgeMs, 250);
    assert.equal((await scan(['--max-db-age', '90'])).maxDbAgeMs, 90_000);
    assert.equal((await scan(['--max-db-age', '0'])).maxDbAgeMs, 0);
  });

  it('a bad value is a usage error naming the flag', async () => {
    assert.match((await rejected(['scan', '--max-db-age', 'a week', 'img'])).message, /^invalid --max-db-age "a week"$/);
    assert.match((await rejected(['scan', '--max-db-age', '7d', 'img'])).message, /^invalid --max-db-age "7d"$/);
    assert.match((await rejected(['scan', '--max-db-age', '1', '--max-db-age', '2', 'img'])).message, /--max-db-age was given more than once/);
  });
});

describe('server up --import and server import: the command line', () => {
  const server = async (args: string[]) => ((await parsed(['server', ...args])) as { options: Readonly<ServerOptions> }).options;

  it('up --import FILE', async () => {
    const o = await server(['up', '--import', 'updates.jsonl.gz']);
    assert.equal(o.action, 'up');
    assert.equal((o as Extract<ServerOptions, { action: 'up' }>).importFile, 'updates.jsonl.gz');
    assert.match((await rejected(['server', 'up', '--import', ''])).message, /--import needs a file/);
  });

  it('import FILE, with --timeout (default 30m) and -q', async () => {
    assert.deepEqual(await server(['import', 'u.json']), { action: 'import', file: 'u.json', timeoutMs: 30 * 60_000, quiet: false });
    assert.deepEqual(await server(['import', '--timeout', '2h', '-q', 'u.json']), { action: 'import', file: 'u.json', timeoutMs: 2 * HOUR, quiet: true });
    await rejected(['server', 'import']);
  });
});

describe('the air-gapped config', () => {
  const secrets = { dbPassword: 'pw', pskKey: 'a2V5' };

  it('updaters off, and the RHEL scanners read the local empty mapping file next to the config', () => {
    const config = parse(clairConfig({ ...secrets, airGapped: true })) as Record<string, Record<string, unknown>>;
    assert.equal(config.matcher?.disable_updaters, true);
    assert.deepEqual(config.updaters, { sets: [] });
    assert.deepEqual(config.indexer?.scanner, {
      repo: { 'rhel-repository-scanner': { repo2cpe_mapping_file: '/config/empty-mapping.json' } },
      package: { rhel_containerscanner: { name2repos_mapping_file: '/config/empty-mapping.json' } },
    });
    assert.deepEqual(JSON.parse(EMPTY_MAPPING), { data: {} });
  });

  it('online (the default) none of it', () => {
    const config = parse(clairConfig(secrets)) as Record<string, Record<string, unknown>>;
    assert.equal(config.matcher?.disable_updaters, undefined);
    assert.equal(config.updaters, undefined);
    assert.equal(config.indexer?.scanner, undefined);
  });
});

describe('the updates file, checked before anything is copied', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'docker-clair-air-gapped-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string | Buffer) => {
    const p = path.join(dir, name);
    writeFileSync(p, content);
    return p;
  };

  it('compression from the first bytes, whatever the name says (clairctl goes by the name)', async () => {
    assert.equal((await checkUpdatesFile(file('a.json', gzipSync('{}\n')))).compression, 'gzip');
    assert.equal((await checkUpdatesFile(file('b.gz', '{}\n'))).compression, 'none');
    assert.equal((await checkUpdatesFile(file('c', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0])))).compression, 'zstd');
    assert.equal((await checkUpdatesFile(file('d', '{}'))).size, 2);
  });

  it('missing, a directory, empty or unreadable: a usage error naming the file and why', async () => {
    const why = async (p: string) => {
      try {
        await checkUpdatesFile(p);
      } catch (error) {
        assert.ok(error instanceof UsageError);
        assert.match(error.hint ?? '', /clairctl export-updaters/);
        return error.message;
      }
      assert.fail(`${p} was accepted`);
    };
    assert.equal(await why(path.join(dir, 'nope')), `cannot read the vulnerability data file ${path.join(dir, 'nope')}: no such file`);
    assert.match(await why(dir), /: it is a directory$/);
    assert.match(await why(file('empty', '')), /: it is empty$/);
    if (process.getuid?.() !== 0) {
      const locked = file('locked', 'x');
      chmodSync(locked, 0);
      assert.match(await why(locked), /: EACCES$/);
    }
  });
});

describe("clairctl's error in one line", () => {
  it('a logged error: colours and timestamp dropped', () => {
    assert.equal(lastWords('\x1b[90m2026-12-06T03:25:57Z\x1b[0m \x1b[31mERR\x1b[0m \x1b[36merror=\x1b[0m"gzip: invalid header"\n'),
      'ERR error="gzip: invalid header"');
  });

  it('a Go panic: its first line, not the stack', () => {
    const panic = 'Something unexpected happened: runtime error: invalid memory address or nil pointer dereference\n' +
      'goroutine 1 [running]:\nruntime/debug.Stack()\n\truntime/debug/stack.go:26 +0x5e\nmain.main()\n';
    assert.equal(lastWords(panic), 'Something unexpected happened: runtime error: invalid memory address or nil pointer dereference');
  });

  it('nothing printed', () => {
    assert.equal(lastWords('\n'), 'it printed nothing');
  });
});

describe('server status: air-gapped and the data\'s age', () => {
  it('says the updaters are off and how old the data is', () => {
    const status: ServerStatus = {
      containers: [{ role: 'clair', name: 'docker-clair-server', state: 'running', image: 'clair:4.9.0' }],
      network: true, volume: true, api: 'ready', url: 'http://127.0.0.1:6060', airGapped: true,
      database: { empty: false, updaters: 1, lastUpdate: '2030-06-12T12:00:00.000Z', ageSeconds: 3 * 86_400 },
    };
    const lines = statusLines(status);
    assert.ok(lines.includes('Updaters:   off (air-gapped: load data with "docker clair server import FILE")'), lines.join('\n'));
    assert.ok(lines.includes('Database:   1 updater(s), last update 2030-06-12T12:00:00.000Z (3 days old)'), lines.join('\n'));
    const empty = statusLines({ ...status, database: { empty: true, updaters: 0 } });
    assert.ok(empty.includes('Database:   empty: no vulnerability data imported yet (scans exit 3)'), empty.join('\n'));
  });
});
